"""focus_tools.upload: uploading a converted folder, with credentials and access checked first."""

from unittest import mock

import huggingface_hub
import pytest
from huggingface_hub.errors import HfHubHTTPError

from focus_tools import cli, convert
from focus_tools.schema import CLASS_NAMES, UNCOMMON_ATTRIBUTES

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
    assert "the Hub refused (403)" in err and f"focus-dataset push {tmp_path / 'out'} lab/focus" in err
    assert (tmp_path / "out" / convert.REPORT_NAME).exists()


@pytest.fixture
def uploads(monkeypatch):
    """The Hub as far as pushing goes: every upload_folder call is recorded, nothing leaves the machine."""
    calls = []
    monkeypatch.setattr(huggingface_hub.HfApi, "whoami", whoami())
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, *args, **kwargs: None)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder",
                        lambda self, **kwargs: calls.append(kwargs) or "https://hf.co/datasets/me/focus/commit/1")
    return calls


def test_push_uploads_a_conversion_without_the_toolkits_bookkeeping(tmp_path, sample_release, capsys, token,
                                                                   uploads):
    convert.convert(sample_release, tmp_path / "out")
    assert cli.main(["push", str(tmp_path / "out"), "me/focus"]) == 0
    assert "commit/1" in capsys.readouterr().out
    (call,) = uploads
    assert call["folder_path"] == str(tmp_path / "out") and call["repo_type"] == "dataset"
    assert ".focus-written.json" in call["ignore_patterns"] and ".lock" in call["ignore_patterns"]


def test_push_of_a_folder_that_convert_did_not_write_is_refused_before_the_hub(tmp_path, capsys, token, uploads):
    (tmp_path / "photos").mkdir()
    assert cli.main(["push", str(tmp_path / "photos"), "me/focus"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a folder written by focus-dataset convert" in err and not uploads


def test_convert_push_after_a_conversion_pushes_it_as_it_is(tmp_path, sample_release, capsys, token, uploads):
    convert.convert(sample_release, tmp_path / "out")
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*")}
    status, err = push(sample_release, tmp_path / "out", capsys)
    assert status == 0 and err == "" and len(uploads) == 1
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*")} == before  # not converted again


def test_convert_push_onto_a_conversion_of_another_release_still_needs_overwrite(tmp_path, sample_release, capsys,
                                                                                  token, uploads):
    convert.convert(sample_release, tmp_path / "out")
    assert cli.main(["sample", str(tmp_path / "other"), "--num-images", "20", "--seed", "7"]) == 0
    status, err = push(tmp_path / "other", tmp_path / "out", capsys)
    assert status == 2 and "already exists and is not empty" in err and "--overwrite" in err and not uploads


def test_convert_push_onto_a_changed_conversion_still_needs_overwrite(tmp_path, sample_release, capsys, token,
                                                                      uploads):
    convert.convert(sample_release, tmp_path / "out")
    (tmp_path / "out" / "notes.txt").write_text("mine")
    status, err = push(sample_release, tmp_path / "out", capsys)
    assert status == 2 and "already exists" in err and not uploads
    assert convert.holds_conversion_of(sample_release, tmp_path / "other") is False


def test_convert_push_with_another_uncommon_table_converts_again(tmp_path, sample_release):
    convert.convert(sample_release, tmp_path / "out")
    assert convert.holds_conversion_of(sample_release, tmp_path / "out")
    other = {attribute: {name: [] for name in CLASS_NAMES} for attribute in UNCOMMON_ATTRIBUTES}  # nothing uncommon
    assert not convert.holds_conversion_of(sample_release, tmp_path / "out", uncommon=other)
