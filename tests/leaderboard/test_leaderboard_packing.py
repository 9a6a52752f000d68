"""harness.packing: a run's model becomes a submission folder that verify accepts."""

import doctest
import fcntl
import hashlib
import json
import os
import stat
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from harness import runfolder
from harness.leaderboard import errors, packing, submission as submission_format, verification

from .fabricate import PAPER_PREPROCESSING, fabricate_run


def test_pack_writes_the_submission_layout(submissions, run_dir):
    folder = submissions / "model_a.in1k"
    assert sorted(p.name for p in folder.iterdir()) == sorted(submission_format.SUBMITTED_FILES)
    predictions = pq.read_table(folder / submission_format.PREDICTIONS_FILE)
    assert predictions.schema.names == ["file_name", "prediction", "top5_ids", "top5_probs"]
    claimed = json.loads((folder / submission_format.METRICS_FILE).read_text())
    run_metrics = json.loads((run_dir / "model_a.in1k" / runfolder.METRICS_FILE).read_text())
    assert claimed | {"n_failed_images": 0} == run_metrics
    metadata = json.loads((folder / submission_format.SUBMISSION_FILE).read_text())
    assert metadata["metric"] == {"gap_unit": "occurrence", "confidence": 0.95, "n_bootstrap": 1000, "seed": 0}
    assert metadata["paper_name"] == "Model A" and metadata["num_params"] == 50_000_000
    assert metadata["weights"] == {"source": "hub-cache", "sha256": hashlib.sha256(b"model_a.in1k").hexdigest()}
    assert submission_format.metadata_problems(metadata) == []


def test_pack_then_verify_accepts_and_recomputes_the_claims(submissions, truth):
    result = verification.verify(submissions / "model_a.in1k", truth)
    assert result.problems == [] and result.accepted
    assert result.recomputed == json.loads((submissions / "model_a.in1k" / submission_format.METRICS_FILE).read_text())
    assert result.compared_fields > 500  # partitions, gaps, per class, heatmaps, config, top-1/top-5


def test_pack_then_verify_accepts_a_focus_head_whose_mapping_is_null(tmp_path, truth):
    fabricate_run(tmp_path / "run", truth.table, "head", accuracy=0.6, num_params=10, paper_name=None, seed=4,
                  label_space="focus", mapping=None)
    output = packing.pack(tmp_path / "run", "head", tmp_path / "head")
    metadata = json.loads((output / submission_format.SUBMISSION_FILE).read_text())
    assert (metadata["label_space"], metadata["mapping"]) == ("focus", None)
    result = verification.verify(output, truth)
    assert result.problems == [] and result.accepted


def test_pack_default_output_names_model_precision_and_weights(tmp_path, run_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    output = packing.pack(run_dir, "model_b.in1k")
    sha = hashlib.sha256(b"model_b.in1k").hexdigest()
    assert output == Path("submissions") / f"model_b.in1k-fp32-{sha[:8]}"


def test_pack_refuses_an_existing_output(tmp_path, run_dir, submissions):
    with pytest.raises(errors.LeaderboardError, match="already exists; choose another --output or pass "
                                                           "--overwrite"):
        packing.pack(run_dir, "model_a.in1k", submissions / "model_a.in1k")


def test_pack_names_the_models_of_the_run_for_an_unknown_model(run_dir, tmp_path):
    with pytest.raises(errors.LeaderboardError,
                       match=r"no model 'resnet50' .*\['model_a.in1k', 'model_b.in1k', 'model_c.in1k'\]"):
        packing.pack(run_dir, "resnet50", tmp_path / "out")


def test_pack_keeps_only_the_file_name_of_a_checkpoint(tmp_path, truth):
    fabricate_run(tmp_path / "run", truth.table, "m", accuracy=0.5, num_params=10, paper_name=None, seed=0,
                  weights="checkpoint:/home/someone/private/weights/lite0.pth")
    metadata = json.loads((packing.pack(tmp_path / "run", "m", tmp_path / "out") / "submission.json").read_text())
    assert metadata["weights"]["source"] == "checkpoint:lite0.pth"


def test_pack_refuses_metrics_that_its_predictions_contradict(tmp_path, truth):
    folder = fabricate_run(tmp_path / "run", truth.table, "m", accuracy=0.5, num_params=10, paper_name=None, seed=0)
    metrics = runfolder.read_json(folder / runfolder.METRICS_FILE)
    runfolder.write_json(folder / runfolder.METRICS_FILE, metrics | {"accuracy": 0.9})
    with pytest.raises(errors.LeaderboardError, match=r"metrics.json does not match predictions.parquet "
                                                           r"\(was the run changed after it finished\?\):\n"
                                                           r"  - metrics.json \$.accuracy: claimed 0.9, recomputed"):
        packing.pack(tmp_path / "run", "m", tmp_path / "out")


def test_pack_refuses_a_run_with_undecodable_images(tmp_path, truth):
    folder = fabricate_run(tmp_path / "run", truth.table, "m", accuracy=0.5, num_params=10, paper_name=None, seed=0)
    runfolder.write_json(folder / runfolder.FAILED_FILE, [{"file_name": "cat-snow/1.jpg", "error": "truncated"}])
    with pytest.raises(errors.LeaderboardError, match="1 image.* could not be decoded"):
        packing.pack(tmp_path / "run", "m", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_pack_refuses_a_random_init_run_and_writes_nothing(tmp_path, truth):
    fabricate_run(tmp_path / "run", truth.table, "m", accuracy=0.5, num_params=10, paper_name=None, seed=0,
                  random_init=True)
    with pytest.raises(errors.LeaderboardError, match=r"\$.random_init: the model was evaluated with random"):
        packing.pack(tmp_path / "run", "m", tmp_path / "out")
    assert list(tmp_path.iterdir()) == [tmp_path / "run"]


def test_pack_copies_the_runs_preprocessing_into_a_version_2_submission(submissions):
    metadata = json.loads((submissions / "model_a.in1k" / submission_format.SUBMISSION_FILE).read_text())
    assert metadata["schema_version"] == 2 == submission_format.SCHEMA_VERSION
    assert metadata["preprocessing"] == PAPER_PREPROCESSING


def test_pack_records_timms_data_config_for_a_run_that_predates_the_preprocessing_record(tmp_path, truth):
    folder = fabricate_run(tmp_path / "run", truth.table, "m", accuracy=0.5, num_params=10, paper_name=None, seed=0)
    config = runfolder.read_json(folder / runfolder.CONFIG_FILE)
    del config["preprocessing"]  # focus-eval before --preprocess: always timm's data config, no overrides
    runfolder.write_json(folder / runfolder.CONFIG_FILE, config)
    output = packing.pack(tmp_path / "run", "m", tmp_path / "out")
    metadata = json.loads((output / submission_format.SUBMISSION_FILE).read_text())
    assert metadata["preprocessing"] == {"protocol": "timm", "custom": False, "input_size": [3, 224, 224],
                                         "crop_pct": 0.875, "crop_mode": "center", "interpolation": "bicubic",
                                         "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert submission_format.board_of(metadata).key == "paper-timm"
    assert output.name == "out" and submission_format.submission_id(metadata).endswith("-timm")


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def own_run(tmp_path, truth) -> Path:
    """A run of one model that a test may damage."""
    fabricate_run(tmp_path / "run", truth.table, "m", accuracy=0.5, num_params=10, paper_name=None, seed=0)
    return tmp_path / "run"


@pytest.mark.parametrize("where", ["run", "parent of run", "model folder in run", "new folder in run"])
def test_pack_overwrite_never_replaces_the_run_a_folder_holding_it_or_one_inside_it(own_run, where):
    output = {"run": own_run, "parent of run": own_run.parent, "model folder in run": own_run / "m",
              "new folder in run": own_run / "submission"}[where]
    output.mkdir(exist_ok=True)
    before = _listing(own_run.parent)
    with pytest.raises(errors.LeaderboardError, match=r"the run folder .*--overwrite never replaces"):
        packing.pack(own_run, "m", output, overwrite=True)
    assert _listing(own_run.parent) == before


def test_pack_overwrite_refuses_a_folder_that_pack_did_not_write(own_run, tmp_path):
    thesis = tmp_path / "v" / "thesis.tex"
    thesis.parent.mkdir()
    thesis.write_text("x")
    with pytest.raises(errors.LeaderboardError,
                       match=r"v: not a submission folder that pack wrote \(it holds 'thesis.tex'\); --overwrite "
                             r"replaces only those"):
        packing.pack(own_run, "m", thesis.parent, overwrite=True)
    assert thesis.read_text() == "x"
    plain_file = tmp_path / "notes.txt"
    plain_file.write_text("y")
    with pytest.raises(errors.LeaderboardError, match="notes.txt: not a submission folder that pack wrote"):
        packing.pack(own_run, "m", plain_file, overwrite=True)
    assert plain_file.read_text() == "y"


def test_pack_overwrite_refuses_a_symbolic_link_to_a_submission(own_run, tmp_path):
    target = packing.pack(own_run, "m", tmp_path / "real")
    (tmp_path / "link").symlink_to(target)
    before = _listing(target)
    with pytest.raises(errors.LeaderboardError, match="link: is a symbolic link"):
        packing.pack(own_run, "m", tmp_path / "link", overwrite=True)
    assert _listing(target) == before and (tmp_path / "link").is_symlink()


def test_pack_overwrite_replaces_a_submission_it_wrote_before(own_run, tmp_path):
    output = packing.pack(own_run, "m", tmp_path / "sub")
    (output / submission_format.MODEL_INDEX_FILE).write_text("model-index: []\n")  # push wrote it
    metadata = json.loads((output / submission_format.SUBMISSION_FILE).read_text())
    later = datetime.fromisoformat(metadata["submitted"]) + timedelta(minutes=1)
    assert packing.pack(own_run, "m", output, overwrite=True, now=later) == output
    assert sorted(p.name for p in output.iterdir()) == sorted(submission_format.SUBMITTED_FILES)
    assert json.loads((output / submission_format.SUBMISSION_FILE).read_text())["submitted"] == later.isoformat(
        timespec="seconds")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # nothing left behind


def test_pack_writes_folders_and_files_as_the_umask_says(own_run, tmp_path):
    previous = os.umask(0o022)
    try:
        output = packing.pack(own_run, "m", tmp_path / "a" / "sub")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(output.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in output.iterdir()} == {0o644}


def test_a_partial_folder_of_a_killed_pack_is_removed_by_the_next_pack(own_run, tmp_path):
    # A pack killed with SIGKILL (here, while it verifies its staged submission) leaves its partial folder;
    # its lock died with it.
    script = (f"import os, signal\n"
              f"from harness.leaderboard import packing\n"
              f"def killed(*args, **kwargs): os.kill(os.getpid(), signal.SIGKILL)\n"
              f"packing.verify = killed\n"
              f"packing.pack({str(own_run)!r}, 'm', {str(tmp_path / 'sub')!r})\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
    assert result.returncode == -9
    partials = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert len(partials) == 1 and partials[0].startswith(".sub.partial-")
    (tmp_path / ".other.partial-0123456789ab").mkdir()  # another output's: not ours to remove
    packing.pack(own_run, "m", tmp_path / "sub")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.partial-0123456789ab", "run", "sub"]


def test_a_live_pack_into_the_same_output_is_left_alone_and_named(own_run, tmp_path):
    partial = tmp_path / ".sub.partial-0123456789ab"
    partial.mkdir()
    with (partial / ".lock").open("w") as lock:
        lock.write("focus-leaderboard pack (pid 4242 on host, since then)")
        lock.flush()
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(errors.LeaderboardError,
                           match=r"another pack into .*sub is running \(focus-leaderboard pack \(pid 4242 on host, since then\)\), "
                                 r"writing \.sub\.partial-"):
            packing.pack(own_run, "m", tmp_path / "sub")
        assert partial.is_dir() and sorted(p.name for p in tmp_path.iterdir()) == [".sub.partial-0123456789ab",
                                                                                  "run"]


def test_doctests_pass():
    assert doctest.testmod(packing, optionflags=doctest.ELLIPSIS).failed == 0
