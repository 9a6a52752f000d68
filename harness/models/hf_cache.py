"""The Hugging Face cache and offline mode, read at call time, and one message for missing weights.

Every model source that keeps weights on the Hub (timm's tags and ``hf-hub:`` repos, open_clip,
transformers) finds them here: in the local cache first, downloaded only when HF_HUB_OFFLINE is
unset, and otherwise an error that says how to fetch them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import huggingface_hub.errors


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights that are neither in the local cache nor downloadable."""


def offline() -> bool:
    """Whether HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, read now.

    huggingface_hub reads the variable once, at import; reading it at call time means a process (a
    test, a notebook) that sets it after importing still never reaches for the network.
    """
    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return huggingface_hub.constants.HF_HUB_OFFLINE or env.upper() in {"1", "ON", "YES", "TRUE"}


def cache_dir() -> Path:
    """The Hugging Face hub cache, with huggingface_hub's precedence (HF_HUB_CACHE, then HF_HOME/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(huggingface_hub.constants.HF_HUB_CACHE)


def split_revision(repo: str) -> tuple[str, str | None]:
    """``org/name@rev`` as (repo id, revision or None).

    >>> split_revision("timm/resnet50.a1_in1k@main"), split_revision("timm/vit")
    (('timm/resnet50.a1_in1k', 'main'), ('timm/vit', None))
    """
    repo_id, _, revision = repo.partition("@")
    return repo_id, revision or None


def not_found(what: str, reason: str, repo_id: str, files: Sequence[str], alternative: str,
              revision: str | None = None) -> WeightsNotFoundError:
    """The one message for weights that are missing: what, why, where we looked, how to get them."""
    at_revision = f" at revision {revision}" if revision else ""
    return WeightsNotFoundError(
        f"{what} not found: {reason}. Looked for {' or '.join(files)} of the Hugging Face repo "
        f"{repo_id}{at_revision} in the cache {cache_dir()}. To provide them: run `hf download {repo_id}` "
        f"on a machine with network and copy its Hugging Face cache here (set HF_HOME or HF_HUB_CACHE to "
        f"it), or {alternative}."
    )


def cached_file(repo_id: str, filename: str, revision: str | None = None) -> Path | None:
    """The cached copy of one file of a Hub repo, or None."""
    cached = huggingface_hub.try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir(), revision=revision)
    return Path(cached) if isinstance(cached, str) else None  # None or a "known missing" sentinel otherwise


def fetch_file(repo_id: str, files: Sequence[str], *, what: str, alternative: str,
               revision: str | None = None) -> Path:
    """The first of `files` that the repo holds: from the cache, else downloaded unless offline."""
    for filename in files:
        if (cached := cached_file(repo_id, filename, revision)) is not None:
            return cached
    if offline():
        raise not_found(what, "not in the local cache and HF_HUB_OFFLINE is set", repo_id, files, alternative,
                        revision)
    for filename in files:
        try:
            return Path(huggingface_hub.hf_hub_download(repo_id, filename, revision=revision,
                                                        cache_dir=cache_dir()))
        except huggingface_hub.errors.LocalEntryNotFoundError as error:  # no network
            raise not_found(what, f"not cached, and the download failed ({error}); set HF_HUB_OFFLINE=1 on "
                            "machines without network to fail at once", repo_id, files, alternative,
                            revision) from error
        except huggingface_hub.errors.EntryNotFoundError:
            continue  # the repo holds another of the candidate names
        except (huggingface_hub.errors.HfHubHTTPError, OSError) as error:
            raise not_found(what, f"not cached, and the download failed ({error})", repo_id, files, alternative,
                            revision) from error
    raise not_found(what, "the Hub repo holds none of the expected files", repo_id, files, alternative, revision)


def fetch_snapshot(repo: str, patterns: Sequence[str], *, what: str, alternative: str) -> Path:
    """A local folder holding the repo's files that match `patterns` (config, weights, processor).

    From the cache, else downloaded unless offline; the folder is huggingface_hub's snapshot folder,
    which libraries read like a model saved locally.
    """
    repo_id, revision = split_revision(repo)
    try:
        folder = huggingface_hub.snapshot_download(repo_id, revision=revision, allow_patterns=list(patterns),
                                                   cache_dir=cache_dir(), local_files_only=offline())
    except huggingface_hub.errors.LocalEntryNotFoundError as error:
        reason = ("not in the local cache and HF_HUB_OFFLINE is set" if offline()
                  else f"not cached, and the download failed ({error})")
        raise not_found(what, reason, repo_id, patterns, alternative, revision) from error
    except (huggingface_hub.errors.HfHubHTTPError, OSError, ValueError) as error:
        raise not_found(what, f"not cached, and the download failed ({error})", repo_id, patterns, alternative,
                        revision) from error
    return Path(folder)
