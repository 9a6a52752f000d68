"""harness.pushing: push as a pull request, its dry run, and the model-index block."""

import doctest
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
import yaml
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from harness.leaderboard import cli, errors, pushing, submission as submission_format

from .fabricate import edit_json


class _NoNetwork:
    def __init__(self, *args, **kwargs):
        raise AssertionError("push --dry-run constructed a Hub client")


def test_push_dry_run_prints_the_operations_and_touches_no_network(submission, converted, monkeypatch, capsys):
    monkeypatch.setattr(pushing, "HfApi", _NoNetwork)
    monkeypatch.setattr(pushing, "metadata_update", _NoNetwork)
    before = {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in submission.iterdir()}
    assert cli.main(["push", str(submission), "--repo", "focus-bench/leaderboard", "--data", str(converted),
                             "--dry-run", "--model-repo", "someone/model_a"]) == 0
    assert {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in submission.iterdir()} == before
    output = capsys.readouterr().out
    sha = hashlib.sha256(b"model_a.in1k").hexdigest()
    folder = f"submissions/model_a.in1k-fp32-{sha[:8]}"
    for name in submission_format.SUBMITTED_FILES:
        path = submission / name
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert f"  {folder}/{name}  {path.stat().st_size:,} bytes  sha256 {digest}\n" in output
    assert "dry run, nothing sent: a pull request on the dataset repository focus-bench/leaderboard" in output
    assert "and a pull request on the model repository someone/model_a would add the model-index block" in output
    assert "model-index block for the model card (a dry run writes nothing):\nmodel-index:\n" in output
    card = yaml.safe_load(output.split("(a dry run writes nothing):\n", 1)[1])
    (entry,) = card["model-index"]
    assert entry["name"] == "Model A (model_a.in1k)"
    metrics = {m["config"]: m["value"] for m in entry["results"][0]["metrics"]}
    claimed = json.loads((submission / submission_format.METRICS_FILE).read_text())
    assert metrics["all"] == round(100 * claimed["accuracy"], 2)
    assert metrics["G_t"] == round(100 * claimed["G_t"]["value"], 2)
    assert metrics["gap_overall"] == round(100 * claimed["gap_overall"]["value"], 2)
    assert metrics["gap_overall_paper"] == round(100 * claimed["gap_overall_paper"]["value"], 2)
    names = {m["config"]: m["name"] for m in entry["results"][0]["metrics"]}
    assert names["gap_overall_paper"] == "FOCUS overall gap as published, A(P0) - A(P1 or P2)"
    assert entry["results"][0]["dataset"] == {"name": "FOCUS", "type": "focus", "split": "test"}


def test_push_opens_a_pull_request_with_create_pr(submission, truth, converted, monkeypatch, capsys):
    calls = []

    class FakeApi:
        def whoami(self):
            return {"name": "someone"}

        def repo_info(self, repo_id, **kwargs):
            calls.append(("repo_info", repo_id))

        def create_commit(self, repo_id, **kwargs):
            calls.append((repo_id, kwargs))
            return type("CommitInfo", (), {"pr_url": "https://huggingface.co/datasets/x/y/discussions/1"})()

    monkeypatch.setattr(pushing, "HfApi", FakeApi)
    result = pushing.push(submission, "x/y", truth)
    assert result.pr_url == "https://huggingface.co/datasets/x/y/discussions/1"
    assert capsys.readouterr().out == ""  # the library returns; the command prints
    assert calls[0] == ("repo_info", "x/y")  # access checked before the long work
    ((repo_id, kwargs),) = calls[1:]
    assert repo_id == "x/y" and kwargs["repo_type"] == "dataset" and kwargs["create_pr"] is True
    assert [op.path_in_repo.rsplit("/", 1)[1] for op in kwargs["operations"]] == list(submission_format.SUBMITTED_FILES)
    assert (submission / submission_format.MODEL_INDEX_FILE).read_text() == result.model_index
    calls.clear()
    assert cli.main(["push", str(submission), "--repo", "x/y", "--data", str(converted)]) == 0
    assert "opened https://huggingface.co/datasets/x/y/discussions/1" in capsys.readouterr().out


def test_push_dry_run_returns_the_operations_and_the_block_and_prints_nothing(submission, truth, monkeypatch,
                                                                              capsys):
    monkeypatch.setattr(pushing, "HfApi", _NoNetwork)
    result = pushing.push(submission, "focus-bench/leaderboard", truth, dry_run=True)
    assert capsys.readouterr().out == ""
    assert result.pr_url is None and result.dry_run
    assert [op.path_in_repo.rsplit("/", 1)[1] for op in result.operations] == list(submission_format.SUBMITTED_FILES)
    assert yaml.safe_load(result.model_index)["model-index"][0]["name"] == "Model A (model_a.in1k)"
    assert not (submission / submission_format.MODEL_INDEX_FILE).exists()


def test_push_refuses_a_rejected_submission(submission, truth, monkeypatch):
    monkeypatch.setattr(pushing, "HfApi", _NoNetwork)
    edit_json(submission, submission_format.METRICS_FILE, lambda m: m.update(accuracy=0.99))
    with pytest.raises(errors.LeaderboardError, match=r"not pushed, the submission has 1 problem\(s\):\n"
                                                           r"  - metrics.json \$.accuracy: claimed 0.99"):
        pushing.push(submission, "x/y", truth, dry_run=True)


REPO = Path(__file__).resolve().parents[2]
TOKEN = "hf_" + "Secret0123456789" * 2  # a well-formed token that no message may show


def _push_cli(submission: Path, data: Path, env: dict) -> subprocess.CompletedProcess:
    """focus-leaderboard push in a fresh process, with only the given Hugging Face settings."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGING"))}
    return subprocess.run([sys.executable, "-m", "harness.leaderboard", "push", str(submission), "--repo",
                           "focus-bench/leaderboard", "--data", str(data)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=clean | env)


@pytest.mark.slow
@pytest.mark.parametrize("setting, message", [
    ("no token", r"error: no Hugging Face token \(LocalTokenNotFoundError\); log in with `hf auth login` or set "
                 r"HF_TOKEN, then push again"),
    ("offline", r"error: cannot reach the Hugging Face Hub to check focus-bench/leaderboard \(OfflineModeIsEnabled: "
                r".*\); connect, unset HF_HUB_OFFLINE, or check the submission with --dry-run"),
    ("no network", r"error: cannot reach the Hugging Face Hub to check focus-bench/leaderboard \(ConnectError: "
                   r".*\); connect, unset HF_HUB_OFFLINE, or check the submission with --dry-run"),
])
def test_push_fails_in_one_line_with_exit_2_before_loading_the_dataset(submission, tmp_path, setting, message):
    env = {"no token": {"HF_HOME": str(tmp_path / "hf")},
           "offline": {"HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1"},
           "no network": {"HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": TOKEN}}[setting]
    # --data names nothing: the Hub is checked first, so its failure is what the user reads.
    result = _push_cli(submission, tmp_path / "nowhere", env)
    assert result.returncode == 2 and result.stdout == ""
    assert re.fullmatch(message + "\n", result.stderr), result.stderr
    assert TOKEN not in result.stderr and "Traceback" not in result.stderr


class _RefusingApi:
    """A Hub client whose token works but which refuses the repository, its message quoting the token."""

    def __init__(self, *args, **kwargs):
        pass

    def whoami(self):
        return {"name": "someone"}

    def repo_info(self, repo_id, **kwargs):
        url = f"https://huggingface.co/api/datasets/{repo_id}"
        raise RepositoryNotFoundError(f"404 Client Error. Repository Not Found for url: {url} (token {TOKEN})",
                                      response=httpx2.Response(404, request=httpx2.Request("GET", url)))


def test_push_refused_by_the_hub_fails_in_one_line_naming_the_repository(submission, truth, monkeypatch, capsys):
    monkeypatch.setattr(pushing, "HfApi", _RefusingApi)
    assert cli.main(["push", str(submission), "--repo", "x/y", "--data", "unused"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the Hugging Face Hub refused the dataset repository x/y to someone "
                          "(RepositoryNotFoundError: 404 Client Error. Repository Not Found for url: ")
    assert err.endswith("; check the name, and that this token may open pull requests on it (hf auth whoami)\n")
    assert err.count("\n") == 1 and TOKEN not in err and "hf_***" in err


def test_push_failing_during_the_commit_fails_in_one_line(submission, truth, monkeypatch, capsys):
    class FailingApi(_RefusingApi):
        def repo_info(self, repo_id, **kwargs):
            return None

        def create_commit(self, repo_id, **kwargs):
            url = f"https://huggingface.co/api/datasets/{repo_id}/commit/main"
            raise HfHubHTTPError("403 Forbidden: pull requests are disabled",
                                 response=httpx2.Response(403, request=httpx2.Request("POST", url)))

    monkeypatch.setattr(pushing, "HfApi", FailingApi)
    with pytest.raises(errors.LeaderboardError, match=r"^the Hugging Face Hub did not take the pull request on "
                                                           r"x/y \(HfHubHTTPError: 403 Forbidden: pull requests are "
                                                           r"disabled\)"):
        pushing.push(submission, "x/y", truth)


def test_push_of_a_rejected_submission_exits_1(submission, converted, monkeypatch, capsys):
    monkeypatch.setattr(pushing, "HfApi", _RefusingApi)
    monkeypatch.setattr(_RefusingApi, "repo_info", lambda self, repo_id, **kwargs: None)
    edit_json(submission, submission_format.METRICS_FILE, lambda m: m.update(accuracy=0.99))
    assert cli.main(["push", str(submission), "--repo", "x/y", "--data", str(converted)]) == 1
    assert "metrics.json $.accuracy: claimed 0.99" in capsys.readouterr().out


def test_messages_advise_the_hf_command():
    sources = "".join(path.read_text() for path in (REPO / "harness" / "leaderboard").glob("*.py"))
    assert "huggingface-cli" not in sources and "hf auth login" in sources


def test_doctests_pass():
    assert doctest.testmod(pushing, optionflags=doctest.ELLIPSIS).failed == 0
