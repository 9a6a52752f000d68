"""harness.leaderboard.hub: push as a pull request, its dry run, and the model-index block."""

import doctest
import hashlib
import json

import pytest
import yaml

from harness import leaderboard

from .fabricate import edit_json


class _NoNetwork:
    def __init__(self, *args, **kwargs):
        raise AssertionError("push --dry-run constructed a Hub client")


def test_push_dry_run_prints_the_operations_and_touches_no_network(submission, converted, monkeypatch, capsys):
    monkeypatch.setattr(leaderboard.hub, "HfApi", _NoNetwork)
    monkeypatch.setattr(leaderboard.hub, "metadata_update", _NoNetwork)
    assert leaderboard.main(["push", str(submission), "--repo", "focus-bench/leaderboard", "--data", str(converted),
                             "--dry-run", "--model-repo", "someone/model_a"]) == 0
    output = capsys.readouterr().out
    sha = hashlib.sha256(b"model_a.in1k").hexdigest()
    folder = f"submissions/model_a.in1k-fp32-{sha[:8]}"
    for name in leaderboard.SUBMITTED_FILES:
        path = submission / name
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert f"  {folder}/{name}  {path.stat().st_size:,} bytes  sha256 {digest}\n" in output
    assert "dry run, nothing sent: a pull request on the dataset repository focus-bench/leaderboard" in output
    assert "and a pull request on the model repository someone/model_a would add the model-index block" in output
    card = yaml.safe_load((submission / leaderboard.MODEL_INDEX_FILE).read_text())
    (entry,) = card["model-index"]
    assert entry["name"] == "Model A (model_a.in1k)"
    metrics = {m["config"]: m["value"] for m in entry["results"][0]["metrics"]}
    claimed = json.loads((submission / leaderboard.METRICS_FILE).read_text())
    assert metrics["all"] == round(100 * claimed["accuracy"], 2)
    assert metrics["G_t"] == round(100 * claimed["G_t"]["value"], 2)
    assert metrics["gap_overall"] == round(100 * claimed["gap_overall"]["value"], 2)
    assert metrics["gap_overall_paper"] == round(100 * claimed["gap_overall_paper"]["value"], 2)
    names = {m["config"]: m["name"] for m in entry["results"][0]["metrics"]}
    assert names["gap_overall_paper"] == "FOCUS overall gap as published, A(P0) - A(P1 or P2)"
    assert entry["results"][0]["dataset"] == {"name": "FOCUS", "type": "focus", "split": "test"}


def test_push_opens_a_pull_request_with_create_pr(submission, truth, monkeypatch, capsys):
    calls = []

    class FakeApi:
        def create_commit(self, repo_id, **kwargs):
            calls.append((repo_id, kwargs))
            return type("CommitInfo", (), {"pr_url": "https://huggingface.co/datasets/x/y/discussions/1"})()

    monkeypatch.setattr(leaderboard.hub, "HfApi", FakeApi)
    assert leaderboard.push(submission, "x/y", truth) == "https://huggingface.co/datasets/x/y/discussions/1"
    ((repo_id, kwargs),) = calls
    assert repo_id == "x/y" and kwargs["repo_type"] == "dataset" and kwargs["create_pr"] is True
    assert [op.path_in_repo.rsplit("/", 1)[1] for op in kwargs["operations"]] == list(leaderboard.SUBMITTED_FILES)
    assert "opened https://huggingface.co/datasets/x/y/discussions/1" in capsys.readouterr().out


def test_push_refuses_a_rejected_submission(submission, truth, monkeypatch):
    monkeypatch.setattr(leaderboard.hub, "HfApi", _NoNetwork)
    edit_json(submission, leaderboard.METRICS_FILE, lambda m: m.update(accuracy=0.99))
    with pytest.raises(leaderboard.LeaderboardError, match=r"not pushed, the submission has 1 problem\(s\):\n"
                                                           r"  - metrics.json \$.accuracy: claimed 0.99"):
        leaderboard.push(submission, "x/y", truth, dry_run=True)


def test_doctests_pass():
    assert doctest.testmod(leaderboard.hub, optionflags=doctest.ELLIPSIS).failed == 0
