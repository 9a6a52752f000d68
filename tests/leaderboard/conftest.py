"""Fixtures of the leaderboard's tests: a ground truth, a run of three models, their submissions, a site."""

import shutil
from pathlib import Path

import pytest

from harness.leaderboard import packing, rendering, submission as submission_format, verification
from harness import runfolder

from .fabricate import MODELS, edit_json, fabricate_run


@pytest.fixture(scope="module")
def truth(converted) -> verification.GroundTruth:
    return verification.ground_truth(converted)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, truth) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    for model, spec in MODELS.items():
        fabricate_run(run_dir, truth.table, model, **spec)
    return run_dir


@pytest.fixture(scope="module")
def submissions(tmp_path_factory, run_dir) -> Path:
    """One packed submission per model, in a leaderboard's submissions folder."""
    folder = tmp_path_factory.mktemp("leaderboard") / "submissions"
    for model in MODELS:
        packing.pack(run_dir, model, folder / runfolder.model_slug(model))
    return folder


@pytest.fixture
def submission(tmp_path, submissions) -> Path:
    """A writable copy of model A's submission, for tests that tamper with it."""
    return Path(shutil.copytree(submissions / "model_a.in1k", tmp_path / "model_a.in1k"))


@pytest.fixture(scope="module")
def site(tmp_path_factory, submissions, truth) -> tuple[Path, list]:
    """The three submissions plus a tampered one, rendered."""
    board = tmp_path_factory.mktemp("board")
    shutil.copytree(submissions, board / "submissions")
    tampered = board / "submissions" / "zz_tampered"
    shutil.copytree(submissions / "model_b.in1k", tampered)
    edit_json(tampered, submission_format.METRICS_FILE, lambda m: m.update(accuracy=0.99))
    verifications = rendering.render(board / "submissions", board / "site", truth)
    return board / "site", verifications
