"""focus_common.network and --data: a machine without network, or a mistyped path, is one line at once."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import focus_dataset as fd
from focus_common import network
from harness.models import hf_cache

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def listening():
    """A local port that accepts connections."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def closed_port():
    """A local port that nothing listens on (connections are refused at once)."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


@pytest.fixture(autouse=True)
def fresh_answers(monkeypatch):
    """Each test asks the network again, with no proxy and no offline mode unless it sets them."""
    network._connection_problem.cache_clear()
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
                 "no_proxy", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    yield
    network._connection_problem.cache_clear()


@pytest.fixture
def hub_down(monkeypatch, closed_port):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port}")


def test_a_listening_server_is_reachable_and_a_closed_port_says_why(listening, closed_port):
    assert network.unreachable(f"http://127.0.0.1:{listening}/anything") is None
    assert network.unreachable(f"https://127.0.0.1:{closed_port}/x") == f"127.0.0.1:{closed_port}: Connection refused"


def test_a_name_that_does_not_resolve_is_said_so():
    assert "no-such-host.invalid: name not resolved" in network.unreachable("https://no-such-host.invalid/file")


def test_the_connection_goes_to_the_proxy_unless_the_host_is_exempt(monkeypatch, listening):
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{listening}")
    assert network.unreachable("https://no-such-host.invalid/file") is None  # the proxy answers for it
    monkeypatch.setenv("NO_PROXY", "no-such-host.invalid")
    assert network.unreachable("https://no-such-host.invalid/file") is not None


def test_offline_mode_is_read_when_asked(monkeypatch):
    assert not network.hub_offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert network.hub_offline() and hf_cache.offline()


@pytest.mark.parametrize("data", ["./focsu", "/nowhere/focsu", "runs/a/focus", "focus.zip", "my focus", "~/focus"])
def test_data_that_looks_like_a_path_is_a_missing_path_not_a_hub_id(data, hub_down):
    with pytest.raises(fd.FocusDataError, match="no such file or folder; expected a folder written by"):
        fd.load_focus(data)


def test_an_existing_file_that_is_not_a_release_says_what_it_is(tmp_path, hub_down):
    pq.write_table(pa.table({"x": [1]}), tmp_path / "predictions.parquet")
    with pytest.raises(fd.FocusDataError, match="predictions.parquet: a file that is not focus.zip"):
        fd.load_focus(tmp_path / "predictions.parquet")
    (tmp_path / "gone").symlink_to(tmp_path / "nothing")
    with pytest.raises(fd.FocusDataError, match="gone: a symbolic link to nothing"):
        fd.load_focus(tmp_path / "gone")


@pytest.mark.parametrize("data", ["focsu", "lab/focus"])
def test_a_hub_id_with_the_hub_unreachable_is_one_line_at_once_suggesting_offline_mode(data, hub_down):
    with pytest.raises(fd.FocusDataError) as raised:
        fd.load_focus(data)
    message = str(raised.value)
    assert message.startswith(f"{data}: no such folder here, and the Hugging Face Hub cannot be reached (127.0.0.1")
    assert "HF_HUB_OFFLINE=1" in message and "\n" not in message


def test_a_hub_id_offline_is_looked_up_in_the_cache_only(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("datasets.config.HF_HUB_OFFLINE", True)
    with pytest.raises(fd.FocusDataError, match="focsu: no such folder here, and no dataset of that id in the "
                                                "datasets cache .HF_HUB_OFFLINE is set"):
        fd.load_focus("focsu", cache_dir=str(tmp_path))


def test_weights_not_cached_with_the_hub_unreachable_fail_at_once(monkeypatch, tmp_path, hub_down):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)

    def download(*args, **kwargs):
        raise AssertionError("huggingface_hub was asked to download (and would retry for 25 s)")
    monkeypatch.setattr("huggingface_hub.hf_hub_download", download)
    with pytest.raises(hf_cache.WeightsNotFoundError) as raised:
        hf_cache.fetch_file("timm/resnet18.a1_in1k", ["model.safetensors"], what="Pretrained weights",
                            alternative="pass --checkpoint")
    assert "the Hugging Face Hub cannot be reached (127.0.0.1" in str(raised.value)
    assert "HF_HUB_OFFLINE=1" in str(raised.value)


def test_focus_eval_on_a_mistyped_folder_with_no_network_stops_in_one_line(tmp_path, closed_port):
    """The issue's case: `--data focsu`, no such folder, the Hub unreachable, HF_HUB_OFFLINE unset."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE") and "PROXY" not in k.upper()}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{closed_port}", PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, str(REPO / "harness" / "run.py"), "--data", "focsu", "--models",
                           "resnet18", "--output", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "focsu: no such folder here" in errors[0] and "HF_HUB_OFFLINE=1" in errors[0]
    assert "Retrying" not in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()
