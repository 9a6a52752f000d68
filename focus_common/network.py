"""Whether the Hugging Face Hub (or any download server) can be reached, asked once and fast.

huggingface_hub and datasets retry an unreachable server five times (about 25 s, every warning printed)
before they give up, for every file they look up: a cluster node without internet paid that for every
model and every --data. Every lookup of the toolkit asks `unreachable(url)` first -- one TCP
connection with a 3-second timeout, through the proxy when one is set, its answer kept for the
process -- and a server that cannot be reached is one line at once, with the advice to set
HF_HUB_OFFLINE=1 (then only local files and the caches are read, and nothing waits).
"""

from __future__ import annotations

import functools
import os
import socket
import urllib.request
from urllib.parse import urlsplit

TIMEOUT_S = 3.0
DEFAULT_ENDPOINT = "https://huggingface.co"
OFFLINE_ADVICE = ("on a machine without network set HF_HUB_OFFLINE=1: then only local files and the Hugging Face "
                  "caches are read, and nothing waits for the network")
_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE, or datasets' HF_DATASETS_OFFLINE) is set, read now.

    huggingface_hub reads the variable once, at import; reading it at call time means a process (a
    test, a notebook) that sets it after importing still never reaches for the network.
    """
    if any(os.environ.get(name, "").upper() in _TRUE
           for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")):
        return True
    import sys

    constants = sys.modules.get("huggingface_hub.constants")  # set by a program that imported it, if any
    return bool(constants is not None and constants.HF_HUB_OFFLINE)


def hub_endpoint() -> str:
    """The Hub's address, as huggingface_hub takes it (HF_ENDPOINT, else huggingface.co)."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def unreachable(url: str) -> str | None:
    """Why the server of `url` cannot be reached, in a few words, or None when it can.

    The connection goes to the proxy that urllib would use for the url (HTTPS_PROXY, ALL_PROXY, ...,
    NO_PROXY respected), since that is the server the download would talk to.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme) or urllib.request.getproxies().get("all")
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_parts.hostname or "", proxy_parts.port or (443 if proxy_parts.scheme == "https" else 80)
    return _connection_problem(host, port)


@functools.lru_cache(maxsize=None)
def _connection_problem(host: str, port: int) -> str | None:
    try:
        socket.create_connection((host, port), timeout=TIMEOUT_S).close()
    except socket.gaierror as err:
        return f"{host}: name not resolved ({err.strerror or err})"
    except TimeoutError:
        return f"{host}:{port}: no answer in {TIMEOUT_S:g} s"
    except OSError as err:
        return f"{host}:{port}: {err.strerror or type(err).__name__}"
    return None


def hub_unreachable() -> str | None:
    """Why the Hub cannot be reached, or None; see unreachable."""
    return unreachable(hub_endpoint())
