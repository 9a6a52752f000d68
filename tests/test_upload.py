"""focus_tools.upload: uploading a converted folder, with credentials and access checked first."""

from unittest import mock

import huggingface_hub
import pytest
from huggingface_hub.errors import HfHubHTTPError

from focus_tools import cli, convert

TOKEN = "hf_doNotPrintThisToken123"


@pytest.fixture
def logged_out(monkeypatch, tmp_path):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-stored-tokens"))


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)


def whoami(role="write", name="me", orgs=()):
    return lambda self, *args, **kwargs: {"name": name, "orgs": [{"name": org} for org in orgs],
                                          "auth": {"accessToken": {"role": role}}}


def push(release, output, capsys, repo_id="me/focus"):
    status = cli.main(["convert", str(release), str(output), "--push-to-hub", repo_id])
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err
    return status, captured.err


def test_push_without_a_token_stops_before_converting(tmp_path, sample_release, capsys, logged_out):
    status, err = push(sample_release, tmp_path / "out", capsys)
    assert status == 2 and err.count("\n") == 1
    assert "not logged in to the Hugging Face Hub" in err and "hf auth login" in err and "huggingface-cli" not in err
    assert not (tmp_path / "out").exists()


def test_push_offline_stops_before_converting(tmp_path, sample_release, capsys, token, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    status, err = push(sample_release, tmp_path / "out", capsys)
    assert status == 2 and err.count("\n") == 1 and "offline" in err
    assert not (tmp_path / "out").exists()


def test_push_with_the_hub_unreachable_stops_before_converting(tmp_path, sample_release, capsys, token, monkeypatch):
    def unreachable(self, *args, **kwargs):
        raise ConnectionError("[Errno -2] Name or service not known")  # as the Hub client's HTTP library does
    monkeypatch.setattr(huggingface_hub.HfApi, "whoami", unreachable)
    status, err = push(sample_release, tmp_path / "out", capsys)
    assert status == 2 and err.count("\n") == 1 and "cannot reach the Hugging Face Hub" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("identity, repo_id, message", [
    (whoami(role="read"), "me/focus", "read-only"),
    (whoami(name="me", orgs=["lab"]), "someone-else/focus", "logged in as 'me', who cannot write to 'someone-else'"),
])
def test_push_without_write_access_stops_before_converting(tmp_path, sample_release, capsys, token, monkeypatch,
                                                           identity, repo_id, message):
    monkeypatch.setattr(huggingface_hub.HfApi, "whoami", identity)
    status, err = push(sample_release, tmp_path / "out", capsys, repo_id)
    assert status == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "out").exists()


def test_a_refused_upload_is_one_line_and_the_converted_folder_is_kept(tmp_path, sample_release, capsys, token,
                                                                       monkeypatch):
    def refused(self, *args, **kwargs):
        raise HfHubHTTPError("403 Forbidden: you don't have the rights\nmore detail",
                             response=mock.Mock(status_code=403, headers={}))
    monkeypatch.setattr(huggingface_hub.HfApi, "whoami", whoami(orgs=["lab"]))
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", refused)
    status, err = push(sample_release, tmp_path / "out", capsys, "lab/focus")
    assert status == 2 and err.count("\n") == 1
    assert "the Hub refused (403)" in err and "hf upload lab/focus" in err
    assert (tmp_path / "out" / convert.REPORT_NAME).exists()
