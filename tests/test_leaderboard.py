"""harness.leaderboard: pack, verify by recomputation, render (checked in headless Chromium), push dry-run.

Run folders are fabricated here the way harness/run.py writes them: predictions.parquet in
runfolder.PREDICTION_SCHEMA from the dataset's own columns plus synthetic top-5s, config.json, and
metrics.json = runfolder.compute_metrics(predictions) plus the count of undecodable images.
"""

import base64
import doctest
import hashlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import focus_dataset
from harness import leaderboard, runfolder
from harness.labels import imagenet_to_focus_index

NOW = datetime.now(timezone.utc)
CHROMIUM = next((path for path in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(path).exists()), None)

# Three models whose accuracy order (A, B, C) differs from their parameter order (B, C, A).
MODELS = {
    "model_a.in1k": dict(accuracy=0.8, num_params=50_000_000, paper_name="Model A", seed=1),
    "model_b.in1k": dict(accuracy=0.55, num_params=5_000_000, paper_name=None, seed=2),
    "model_c.in1k": dict(accuracy=0.3, num_params=20_000_000, paper_name="<script>alert('C')</script> | *C*", seed=3),
}


def fabricate_predictions(truth: pa.Table, accuracy: float, seed: int, label_space: str = "imagenet",
                          mapping: str | None = "paper") -> pa.Table:
    """A model's predictions in runfolder.PREDICTION_SCHEMA: top-1 right with `accuracy`.

    `prediction` follows the label space and mapping as harness.labels.focus_predictions does; under the
    restricted mapping, a row without a mapped class in its top-5 predicts class 0 (the argmax lies below).
    """
    rng = np.random.default_rng(seed)
    focus_of = imagenet_to_focus_index() if label_space == "imagenet" else np.arange(len(focus_dataset.CLASS_NAMES))
    labels = truth.column("label").to_numpy()
    top5_ids = np.empty((truth.num_rows, 5), dtype=np.int64)
    for row, label in enumerate(labels):
        right = rng.random() < accuracy
        top1 = rng.choice(np.flatnonzero((focus_of == label) == right))
        others = rng.choice(np.setdiff1d(np.arange(len(focus_of)), [top1]), size=4, replace=False)
        top5_ids[row] = [top1, *others]
    top5_probs = -np.sort(-rng.dirichlet(np.ones(6), size=truth.num_rows)[:, :5], axis=1)
    top5_focus = focus_of[top5_ids]
    prediction = top5_focus[:, 0]
    if mapping == "restricted":
        mapped = top5_focus >= 0
        best = top5_focus[np.arange(truth.num_rows), mapped.argmax(axis=1)]
        prediction = np.where(mapped.any(axis=1), best, 0)
    columns = {name: truth.column(name) for name in runfolder.ANNOTATION_COLUMNS} | {
        "prediction": pa.array(prediction),
        "top5_ids": pa.array(list(top5_ids)),
        "top5_probs": pa.array(list(top5_probs.astype(np.float32))),
        "top5_correct": pa.array((top5_focus == labels[:, None]).any(axis=1)),
        "correct": pa.array(prediction == labels),
    }
    schema = runfolder.PREDICTION_SCHEMA
    return pa.table([columns[f.name] for f in schema], names=schema.names).cast(schema).sort_by("file_name")


def fabricate_run(run_dir: Path, truth: pa.Table, model: str, *, accuracy: float, num_params: int,
                  paper_name: str | None, seed: int, **config) -> Path:
    folder = runfolder.model_dir(run_dir, model)
    folder.mkdir(parents=True)
    predictions = fabricate_predictions(truth, accuracy, seed, config.get("label_space", "imagenet"),
                                        config.get("mapping", "paper"))
    pq.write_table(predictions, folder / runfolder.PREDICTIONS_FILE)
    runfolder.write_json(folder / runfolder.METRICS_FILE,
                         runfolder.compute_metrics(predictions) | {"n_failed_images": 0})
    runfolder.write_json(folder / runfolder.FAILED_FILE, [])
    runfolder.write_json(folder / runfolder.CONFIG_FILE, {
        "model": model, "paper_name": paper_name,
        "weights": "hub-cache", "sha256": hashlib.sha256(model.encode()).hexdigest(), "random_init": False,
        "num_params": num_params, "input_size": [3, 224, 224],
        "data_config": {"input_size": [3, 224, 224], "interpolation": "bicubic", "mean": [0.485, 0.456, 0.406],
                        "std": [0.229, 0.224, 0.225], "crop_pct": 0.875, "crop_mode": "center"},
        "precision": "fp32", "label_space": "imagenet", "mapping": "paper", "harness_version": "0.1.0",
        "dataset_fingerprint": focus_dataset.dataset_fingerprint(truth),
        "started": (NOW - timedelta(hours=2)).isoformat(), "finished": (NOW - timedelta(hours=1)).isoformat(),
        "versions": {"torch": "2.14.1", "timm": "1.0.31"},
    } | config)
    return folder


@pytest.fixture(scope="module")
def truth(converted) -> leaderboard.GroundTruth:
    return leaderboard.ground_truth(converted)


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
        leaderboard.pack(run_dir, model, folder / runfolder.model_slug(model))
    return folder


@pytest.fixture
def submission(tmp_path, submissions) -> Path:
    """A writable copy of model A's submission, for tests that tamper with it."""
    return Path(shutil.copytree(submissions / "model_a.in1k", tmp_path / "model_a.in1k"))


def restamp(submission: Path) -> None:
    """Record the files' new hashes, as a careful tamperer would, so only the tampering itself shows."""
    metadata = json.loads((submission / leaderboard.SUBMISSION_FILE).read_text())
    metadata["files"] = leaderboard.file_records(submission)
    runfolder.write_json(submission / leaderboard.SUBMISSION_FILE, metadata)


def edit_json(submission: Path, name: str, edit) -> None:
    data = json.loads((submission / name).read_text())
    edit(data)
    runfolder.write_json(submission / name, data)
    restamp(submission)


def edit_predictions(submission: Path, edit) -> None:
    path = submission / leaderboard.PREDICTIONS_FILE
    pq.write_table(edit(pq.read_table(path)), path)
    restamp(submission)


def rejected(submission: Path, truth, **kwargs) -> list[str]:
    result = leaderboard.verify(submission, truth, **kwargs)
    assert not result.accepted
    return result.problems


# --------------------------------------------------------------------------------------------
# pack and verify
# --------------------------------------------------------------------------------------------

def test_pack_writes_the_submission_layout(submissions, run_dir):
    folder = submissions / "model_a.in1k"
    assert sorted(p.name for p in folder.iterdir()) == sorted(leaderboard.SUBMITTED_FILES)
    predictions = pq.read_table(folder / leaderboard.PREDICTIONS_FILE)
    assert predictions.schema.names == ["file_name", "prediction", "top5_ids", "top5_probs"]
    claimed = json.loads((folder / leaderboard.METRICS_FILE).read_text())
    run_metrics = json.loads((run_dir / "model_a.in1k" / runfolder.METRICS_FILE).read_text())
    assert claimed | {"n_failed_images": 0} == run_metrics
    metadata = json.loads((folder / leaderboard.SUBMISSION_FILE).read_text())
    assert metadata["metric"] == {"gap_unit": "occurrence", "confidence": 0.95, "n_bootstrap": 1000, "seed": 0}
    assert metadata["paper_name"] == "Model A" and metadata["num_params"] == 50_000_000
    assert metadata["weights"] == {"source": "hub-cache", "sha256": hashlib.sha256(b"model_a.in1k").hexdigest()}
    assert leaderboard.metadata_problems(metadata) == []


def test_pack_then_verify_accepts_and_recomputes_the_claims(submissions, truth):
    result = leaderboard.verify(submissions / "model_a.in1k", truth)
    assert result.problems == [] and result.accepted
    assert result.recomputed == json.loads((submissions / "model_a.in1k" / leaderboard.METRICS_FILE).read_text())
    assert result.compared_fields > 500  # partitions, gaps, per class, heatmaps, config, top-1/top-5


def test_pack_then_verify_accepts_a_focus_head_whose_mapping_is_null(tmp_path, truth):
    fabricate_run(tmp_path / "run", truth.table, "head", accuracy=0.6, num_params=10, paper_name=None, seed=4,
                  label_space="focus", mapping=None)
    output = leaderboard.pack(tmp_path / "run", "head", tmp_path / "head")
    metadata = json.loads((output / leaderboard.SUBMISSION_FILE).read_text())
    assert (metadata["label_space"], metadata["mapping"]) == ("focus", None)
    result = leaderboard.verify(output, truth)
    assert result.problems == [] and result.accepted


def test_pack_default_output_names_model_precision_and_weights(tmp_path, run_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    output = leaderboard.pack(run_dir, "model_b.in1k")
    sha = hashlib.sha256(b"model_b.in1k").hexdigest()
    assert output == Path("submissions") / f"model_b.in1k-fp32-{sha[:8]}"


def test_pack_refuses_an_existing_output(tmp_path, run_dir, submissions):
    with pytest.raises(leaderboard.LeaderboardError, match="already exists; choose another --output or pass "
                                                           "--overwrite"):
        leaderboard.pack(run_dir, "model_a.in1k", submissions / "model_a.in1k")


def test_pack_names_the_models_of_the_run_for_an_unknown_model(run_dir, tmp_path):
    with pytest.raises(leaderboard.LeaderboardError,
                       match=r"no model 'resnet50' .*\['model_a.in1k', 'model_b.in1k', 'model_c.in1k'\]"):
        leaderboard.pack(run_dir, "resnet50", tmp_path / "out")


def test_pack_keeps_only_the_file_name_of_a_checkpoint(tmp_path, truth):
    fabricate_run(tmp_path / "run", truth.table, "m", accuracy=0.5, num_params=10, paper_name=None, seed=0,
                  weights="checkpoint:/home/someone/private/weights/lite0.pth")
    metadata = json.loads((leaderboard.pack(tmp_path / "run", "m", tmp_path / "out") / "submission.json").read_text())
    assert metadata["weights"]["source"] == "checkpoint:lite0.pth"


def test_pack_refuses_metrics_that_its_predictions_contradict(tmp_path, truth):
    folder = fabricate_run(tmp_path / "run", truth.table, "m", accuracy=0.5, num_params=10, paper_name=None, seed=0)
    metrics = runfolder.read_json(folder / runfolder.METRICS_FILE)
    runfolder.write_json(folder / runfolder.METRICS_FILE, metrics | {"accuracy": 0.9})
    with pytest.raises(leaderboard.LeaderboardError, match=r"metrics.json does not match predictions.parquet "
                                                           r"\(was the run changed after it finished\?\):\n"
                                                           r"  - metrics.json \$.accuracy: claimed 0.9, recomputed"):
        leaderboard.pack(tmp_path / "run", "m", tmp_path / "out")


def test_pack_refuses_a_run_with_undecodable_images(tmp_path, truth):
    folder = fabricate_run(tmp_path / "run", truth.table, "m", accuracy=0.5, num_params=10, paper_name=None, seed=0)
    runfolder.write_json(folder / runfolder.FAILED_FILE, [{"file_name": "cat-snow/1.jpg", "error": "truncated"}])
    with pytest.raises(leaderboard.LeaderboardError, match="1 image.* could not be decoded"):
        leaderboard.pack(tmp_path / "run", "m", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_pack_refuses_a_random_init_run_and_writes_nothing(tmp_path, truth):
    fabricate_run(tmp_path / "run", truth.table, "m", accuracy=0.5, num_params=10, paper_name=None, seed=0,
                  random_init=True)
    with pytest.raises(leaderboard.LeaderboardError, match=r"\$.random_init: the model was evaluated with random"):
        leaderboard.pack(tmp_path / "run", "m", tmp_path / "out")
    assert list(tmp_path.iterdir()) == [tmp_path / "run"]


def test_changed_claimed_gap_is_rejected_by_its_json_path(submission, truth):
    edit_json(submission, leaderboard.METRICS_FILE, lambda m: m["G_t"].update(value=m["G_t"]["value"] + 0.01))
    problems = rejected(submission, truth)
    assert len(problems) == 1
    assert re.fullmatch(r"metrics.json \$\.G_t\.value: claimed -?[0-9.e-]+, recomputed -?[0-9.e-]+", problems[0])


def test_every_differing_claim_is_reported(submission, truth):
    def edit(metrics):
        metrics["partitions"]["P(t)"]["n"] += 1
        metrics["per_class"]["cat"]["P0"]["ci_low"] += 1e-12  # intervals are compared exactly
        metrics["heatmaps"]["time"]["total"][0][0] += 1
        metrics["gap_overall"]["value"] += 1e-12  # within the point tolerance
        del metrics["top5"]
        metrics["leaderboard_rank"] = 1

    edit_json(submission, leaderboard.METRICS_FILE, edit)
    problems = rejected(submission, truth)
    paths = sorted(problem.split(":")[0] for problem in problems)
    assert paths == sorted([
        'metrics.json $.partitions["P(t)"].n', "metrics.json $.per_class.cat.P0.ci_low",
        "metrics.json $.heatmaps.time.total[0][0]", "metrics.json $.top5", "metrics.json $.leaderboard_rank",
    ])
    assert any("$.top5: missing from the claims" in p for p in problems)
    assert any("$.leaderboard_rank: not a FOCUS metric (claimed 1); remove it" in p for p in problems)


def test_a_count_claimed_as_a_bool_or_float_is_a_difference():
    assert leaderboard.compare_claims({"n": True, "m": 3.0}, {"n": 1, "m": 3}) == [
        "$.n: claimed True, recomputed 1", "$.m: claimed 3.0, recomputed 3"]


def test_dropped_image_is_rejected(submission, truth):
    edit_predictions(submission, lambda t: t.slice(1))
    problems = rejected(submission, truth)
    first = truth.table.sort_by("file_name").column("file_name")[0].as_py()
    assert f"predictions.parquet: 1 image(s) of the dataset have no prediction: {first!r}; a submission " \
           f"predicts every image" in problems
    assert "submission.json $.dataset.num_images: 48, but predictions.parquet holds 47 rows" in problems


def test_duplicated_image_is_rejected(submission, truth):
    edit_predictions(submission, lambda t: pa.concat_tables([t, t.slice(3, 1)]))
    problems = rejected(submission, truth)
    name = pq.read_table(submission / leaderboard.PREDICTIONS_FILE).column("file_name")[3].as_py()
    assert f"predictions.parquet: 1 image(s) predicted more than once: {name!r}; a submission predicts every " \
           f"image once" in problems


def test_swapped_fingerprint_is_rejected(submission, truth):
    edit_json(submission, leaderboard.SUBMISSION_FILE, lambda m: m["dataset"].update(fingerprint="0123456789abcdef"))
    assert rejected(submission, truth) == [
        f"submission.json $.dataset.fingerprint: '0123456789abcdef' is not the fingerprint of the ground truth "
        f"({truth.fingerprint!r}, 48 images from {truth.source}); the predictions were made on another dataset, "
        f"or another version of it"]


def test_edited_prediction_no_longer_matches_the_claims(submission, truth):
    """A consistent edit (prediction and top-1 both moved to the true class) changes the recomputed numbers."""
    table = pq.read_table(submission / leaderboard.PREDICTIONS_FILE)
    labels = dict(zip(truth.table.column("file_name").to_pylist(), truth.table.column("label").to_pylist()))
    focus_of = imagenet_to_focus_index()
    rows = table.to_pylist()
    row = next(r for r in rows if r["prediction"] != labels[r["file_name"]])
    row["prediction"] = labels[row["file_name"]]
    row["top5_ids"] = [int(np.flatnonzero(focus_of == row["prediction"])[0])] + row["top5_ids"][1:]
    edit_predictions(submission, lambda t: pa.Table.from_pylist(rows, schema=t.schema))
    problems = rejected(submission, truth)
    assert all(problem.startswith("metrics.json $.") for problem in problems)
    assert any(re.match(r"metrics.json \$\.accuracy: claimed [0-9.]+, recomputed [0-9.]+$", p) for p in problems)
    assert any(p.startswith("metrics.json $.correct: claimed ") for p in problems)


def test_prediction_that_its_top5_contradicts_is_rejected(submission, truth):
    def edit(table):
        prediction = table.column("prediction").to_numpy().copy()
        prediction[0] = (prediction[0] + 1) % 10
        return table.set_column(1, "prediction", pa.array(prediction))

    edit_predictions(submission, edit)
    problems = rejected(submission, truth)
    assert any(p.startswith("predictions.parquet: 1 prediction(s) are not the FOCUS class of the top-1 (paper's "
                            "mapping) (label_space='imagenet', mapping='paper'); first at ") for p in problems)


def test_predictions_made_on_another_dataset_are_rejected(tmp_path, truth):
    other_release = focus_dataset.write_sample_release(tmp_path / "other" / "focus", 24, seed=3)
    focus_dataset.convert(other_release, tmp_path / "other" / "converted")
    other = leaderboard.ground_truth(tmp_path / "other" / "converted")
    fabricate_run(tmp_path / "run", other.table, "m", accuracy=0.5, num_params=10, paper_name=None, seed=0)
    submission = leaderboard.pack(tmp_path / "run", "m", tmp_path / "m")
    assert leaderboard.verify(submission, other).accepted
    problems = rejected(submission, truth)
    assert problems[0].startswith(f"submission.json $.dataset.fingerprint: {other.fingerprint!r} is not the "
                                  f"fingerprint of the ground truth")
    assert any(re.match(r"predictions.parquet: \d+ predicted image\(s\) are not in the dataset: .*; were the "
                        r"predictions made on another dataset\?", p) for p in problems)
    assert any(re.match(r"predictions.parquet: \d+ image\(s\) of the dataset have no prediction", p) for p in problems)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(num_params="lots"), "submission.json $.num_params: 'lots' is not of type 'integer'"),
    (lambda m: m.update(num_params=0), "submission.json $.num_params: 0 is less than the minimum of 1"),
    (lambda m: m.update(num_params=10**13),
     "submission.json $.num_params: 10000000000000 is greater than the maximum of 1000000000000"),
    (lambda m: m.update(input_size=[3, 4, 224]), "submission.json $.input_size[1]: 4 is less than the minimum of 8"),
    (lambda m: m.update(precision="fp8"), "submission.json $.precision: 'fp8' is not one of ['fp32', 'bf16', 'fp16']"),
    (lambda m: m["weights"].update(sha256="abc"),
     "submission.json $.weights.sha256: 'abc' does not match '^[0-9a-f]{64}$'"),
    (lambda m: m.update(extra=1), "submission.json $: Additional properties are not allowed ('extra' was unexpected)"),
    (lambda m: m.pop("dataset"), "submission.json $: 'dataset' is a required property"),
    (lambda m: m["metric"].update(gap_unit="image"), "submission.json $.metric.gap_unit: 'occurrence' was expected"),
    (lambda m: m.update(mapping=None), "submission.json $.mapping: None is not one of ['paper', 'restricted']"),
    (lambda m: m.update(label_space="focus"), "submission.json $.mapping: None was expected"),
    (lambda m: m.update(random_init=True), "submission.json $.random_init: the model was evaluated with random "
                                           "weights; the leaderboard ranks trained models only"),
    (lambda m: m.update(submitted="yesterday"), "submission.json $.submitted: 'yesterday' is not an ISO 8601 date"),
    (lambda m: m.update(submitted=(NOW + timedelta(days=3)).isoformat()), "submission.json $.submitted: "),
    (lambda m: m["evaluated"].update(finished="2019-05-01T00:00:00"),
     "submission.json $.evaluated.finished: 2019-05-01T00:00:00+00:00 is before FOCUS was published (2022-01-01)"),
])
def test_schema_violation_and_absurd_metadata_are_rejected(submission, truth, edit, message):
    edit_json(submission, leaderboard.SUBMISSION_FILE, edit)
    problems = rejected(submission, truth)
    assert any(problem.startswith(message) for problem in problems), problems


def test_future_date_message_says_so(submission, truth):
    future = NOW + timedelta(days=3)
    edit_json(submission, leaderboard.SUBMISSION_FILE, lambda m: m.update(submitted=future.isoformat()))
    assert any(p.startswith(f"submission.json $.submitted: {future.isoformat()} is in the future")
               for p in rejected(submission, truth))


@pytest.mark.parametrize("name, text, message", [
    ("metrics.json", '{"accuracy": NaN}', "metrics.json is not valid JSON: NaN is not a number in JSON"),
    ("metrics.json", '{"accuracy": 1e999}', "metrics.json is not valid JSON: 1e999 overflows to infinity"),
    ("submission.json", '{"num_params": -Infinity}', "submission.json is not valid JSON: -Infinity is not a number"),
    ("submission.json", '{"model": "a", "model": "b"}',
     "submission.json is not valid JSON: the key 'model' appears twice"),
    ("submission.json", '{"model": "a",', "submission.json is not valid JSON: Expecting property name enclosed in "
                                          "double quotes: line 1 column 15 (char 14)"),
    ("metrics.json", b'{"accuracy": "\xff"}', "metrics.json is not valid JSON: it is not UTF-8 text"),
    ("metrics.json", "[1, 2]", "metrics.json $: [1, 2] is not an object of metrics"),
])
def test_malformed_json_is_rejected_with_its_reason(submission, truth, name, text, message):
    path = submission / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    if name == leaderboard.METRICS_FILE:  # the tampered file, its hash recorded
        restamp(submission)
    problems = rejected(submission, truth)
    assert any(problem.startswith(message) for problem in problems), problems


def test_oversized_files_are_rejected_before_parsing(submission, truth):
    size = (submission / leaderboard.PREDICTIONS_FILE).stat().st_size
    problems = rejected(submission, truth, limits=leaderboard.Limits(predictions_bytes=100, json_bytes=100))
    assert f"predictions.parquet: {size:,} bytes is over the limit of 100 bytes (raise it with " \
           f"--max-predictions-mb)" in problems
    assert any(p.startswith("submission.json: ") and "over the limit of 100 bytes" in p for p in problems)


def test_parquet_row_count_is_limited_before_reading(submission, truth):
    problems = rejected(submission, truth, limits=leaderboard.Limits(rows=10))
    assert any(p.startswith("predictions.parquet: 48 rows and ") and "over the limits of 10 rows" in p
               for p in problems)


def test_labels_in_the_predictions_file_are_refused(submission, truth):
    edit_predictions(submission, lambda t: t.append_column("label", pa.array(np.zeros(t.num_rows, dtype=np.int64))))
    assert rejected(submission, truth) == [
        "predictions.parquet: unexpected column(s) ['label']; a submission holds only ['file_name', 'prediction', "
        "'top5_ids', 'top5_probs'] (labels and attributes come from the dataset)"]


def test_a_predictions_file_that_is_not_parquet_is_rejected(submission, truth):
    (submission / leaderboard.PREDICTIONS_FILE).write_text("file_name,prediction\n")
    restamp(submission)
    assert any(p.startswith("predictions.parquet is not a Parquet file") for p in rejected(submission, truth))


@pytest.mark.parametrize("column, value, message", [
    ("prediction", 12, "predictions.parquet: 1 prediction(s) outside -1..9 (a FOCUS class id, or -1 for none of "
                       "them); first at "),
    ("top5_ids", [1, 2, 3], "predictions.parquet: 1 row(s) without exactly 5 top5_ids and 5 top5_probs"),
    ("top5_ids", [5, 1000, 3, 2, 1], "predictions.parquet: 1 row(s) with top5_ids outside 0..999"),
    ("top5_probs", [0.5, 0.6, 0.0, 0.0, 0.0], "predictions.parquet: 1 row(s) whose top5_probs are not probabilities"),
    ("top5_probs", None, "predictions.parquet: column(s) ['top5_probs'] hold missing values"),
])
def test_predictions_with_bad_values_are_rejected(submission, truth, column, value, message):
    def edit(table):
        values = table.column(column).to_pylist()
        values[5] = value
        return table.set_column(table.schema.get_field_index(column), column,
                                pa.array(values, type=table.schema.field(column).type))

    edit_predictions(submission, edit)
    assert any(p.startswith(message) for p in rejected(submission, truth))


def test_unexpected_files_and_symlinks_are_rejected(submission, truth):
    (submission / "notes.txt").write_text("hi")
    metrics = submission / leaderboard.METRICS_FILE
    target = submission.parent / "elsewhere.json"
    metrics.rename(target)
    metrics.symlink_to(target)
    problems = rejected(submission, truth)
    assert "metrics.json: is a symbolic link; a submission holds plain files" in problems
    assert any(p.startswith("'notes.txt': unexpected in a submission") for p in problems)


def test_changed_file_without_new_hash_is_reported(submission, truth):
    path = submission / leaderboard.METRICS_FILE
    recorded = json.loads((submission / leaderboard.SUBMISSION_FILE).read_text())["files"]["metrics.json"]
    path.write_text(path.read_text() + " ")
    assert rejected(submission, truth) == [
        f"metrics.json: size or SHA-256 differs from the one recorded in submission.json ({recorded['size']:,} "
        f"bytes, {recorded['sha256'][:16]}...); the file changed after pack"]


def test_restricted_mapping_accepts_the_best_mapped_class_below_an_unmapped_top1():
    focus_of = imagenet_to_focus_index()
    unmapped, cat, dog = int(np.flatnonzero(focus_of == -1)[0]), 282, 207
    ids = np.array([[unmapped, dog, cat, 0, 1]])
    probs = np.array([[0.5, 0.2, 0.1, 0.05, 0.05]])
    agrees = leaderboard._agrees_with_top5
    assert agrees(np.array([5]), focus_of[ids], probs, "restricted").tolist() == [True]
    assert agrees(np.array([4]), focus_of[ids], probs, "restricted").tolist() == [False]
    assert agrees(np.array([-1]), focus_of[ids], probs, "paper").tolist() == [True]


def test_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(leaderboard.submission_schema())


def test_doctests_pass():
    assert doctest.testmod(leaderboard, optionflags=doctest.ELLIPSIS).failed == 0


# --------------------------------------------------------------------------------------------
# render
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory, submissions, truth) -> tuple[Path, list]:
    """The three submissions plus a tampered one, rendered."""
    board = tmp_path_factory.mktemp("board")
    shutil.copytree(submissions, board / "submissions")
    tampered = board / "submissions" / "zz_tampered"
    shutil.copytree(submissions / "model_b.in1k", tampered)
    edit_json(tampered, leaderboard.METRICS_FILE, lambda m: m.update(accuracy=0.99))
    verifications = leaderboard.render(board / "submissions", board / "site", truth)
    return board / "site", verifications


def _order(page: str) -> list[str]:
    return re.findall(r'<tr data-rank="\d+" data-submission="([^"]+)"', page)


def _expected_order(verifications, key: str, descending: bool) -> list[str]:
    """Submission names sorted by a column's recomputed value; ties keep the published (accuracy) order."""
    def value(v):
        if key == "num_params":
            return v.metadata["num_params"]
        if key in v.recomputed["partitions"]:
            return v.recomputed["partitions"][key]["accuracy"]
        return v.recomputed[key]["value"] if isinstance(v.recomputed[key], dict) else v.recomputed[key]

    accepted = sorted((v for v in verifications if v.accepted), key=lambda v: -v.recomputed["accuracy"])
    return [v.submission.name for v in sorted(accepted, key=lambda v: -value(v) if descending else value(v))]


def test_render_shows_recomputed_numbers_best_accuracy_first(site):
    out, verifications = site
    page = (out / leaderboard.HTML_FILE).read_text()
    assert _order(page) == ["model_a.in1k", "model_b.in1k", "model_c.in1k"]
    markdown = (out / leaderboard.MARKDOWN_FILE).read_text()
    a = next(v for v in verifications if v.submission.name == "model_a.in1k").recomputed
    row = next(line for line in markdown.splitlines() if line.startswith("| 1 |"))
    assert f"| {100 * a['accuracy']:.2f} | {100 * a['partitions']['P0']['accuracy']:.2f} |" in row
    assert f"| {100 * a['G_t']['value']:.2f} [" in row and "| 50.00 M | fp32 | 224×224 |" in row
    assert markdown.count("\n| ") == 4  # header and three models: the tampered claim is not shown


def test_render_lists_skipped_submissions_with_their_reason(site):
    out, verifications = site
    assert [v.submission.name for v in verifications if not v.accepted] == ["zz_tampered"]
    for name in (leaderboard.MARKDOWN_FILE, leaderboard.HTML_FILE):
        text = (out / name).read_text()
        assert "Not shown" in text and "zz" in text and "$.accuracy: claimed 0.99, recomputed" in text


def test_render_escapes_user_strings(site):
    out, _ = site
    page = (out / leaderboard.HTML_FILE).read_text()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;C&#x27;)&lt;/script&gt; | *C*" in page
    markdown = (out / leaderboard.MARKDOWN_FILE).read_text()
    assert r"&lt;script&gt;alert('C')&lt;/script&gt; \| \*C\* (model\_c.in1k)" in markdown


def test_render_page_is_self_contained(site):
    page = (site[0] / leaderboard.HTML_FILE).read_text()
    assert not re.search(r'(src|href)=["\']?(https?:)?//', page)
    assert "<svg" in page and page.count('<circle class="common"') == 4  # legend and three models


def test_render_shows_only_the_papers_mapping_table_when_no_other_protocol_is_submitted(site):
    markdown = (site[0] / leaderboard.MARKDOWN_FILE).read_text()
    assert "## ImageNet-1k models, the paper's mapping\n" in markdown
    assert "restricted" not in markdown and "FOCUS heads" not in markdown


@pytest.fixture(scope="module")
def protocols_site(tmp_path_factory, submissions, truth) -> Path:
    """Models A and B (paper's mapping), a restricted-mapping model and a FOCUS head, rendered.

    The restricted model and the head have a better accuracy than A, so a single table would rank them first.
    """
    board = tmp_path_factory.mktemp("protocols")
    for model in ("model_a.in1k", "model_b.in1k"):
        shutil.copytree(submissions / model, board / "submissions" / model)
    run = board / "run"
    fabricate_run(run, truth.table, "model_r.in1k", accuracy=0.9, num_params=10, paper_name=None, seed=5,
                  mapping="restricted")
    fabricate_run(run, truth.table, "head_f", accuracy=0.95, num_params=10, paper_name=None, seed=6,
                  label_space="focus", mapping=None)
    for model in ("model_r.in1k", "head_f"):
        leaderboard.pack(run, model, board / "submissions" / model)
    verifications = leaderboard.render(board / "submissions", board / "site", truth)
    assert all(v.accepted for v in verifications)
    return board / "site"


def _table_order(page: str, table_id: str) -> list[str]:
    return _order(page.split(f'<table id="{table_id}"', 1)[1].split("</table>", 1)[0])


def test_render_ranks_each_mapping_in_its_own_labelled_table(protocols_site):
    markdown = (protocols_site / leaderboard.MARKDOWN_FILE).read_text()
    sections = re.split(r"^## ", markdown, flags=re.MULTILINE)[1:]
    assert [section.splitlines()[0] for section in sections[:3]] == [
        "ImageNet-1k models, the paper's mapping",
        "ImageNet-1k models, restricted mapping (not comparable)",
        "FOCUS heads (10 classes, no mapping)",
    ]
    ranked = [[line.split(" | ")[1] for line in section.splitlines() if re.match(r"\| \d+ \|", line)]
              for section in sections[:3]]
    assert ranked == [["Model A (model\\_a.in1k)", "model\\_b.in1k"], ["model\\_r.in1k"], ["head\\_f"]]
    assert ("Submissions with mapping \"restricted\" take the argmax over the mapped ImageNet classes only: they "
            "never predict none of the FOCUS classes, which scores higher than the paper's mapping. Ranked against "
            "each other only, never against the paper's mapping.") in markdown
    assert ("Submissions with label\\_space \"focus\" (mapping null): models whose head predicts the ten FOCUS "
            "classes directly. Ranked against each other only, never against ImageNet-1k models.") in markdown
    page = (protocols_site / leaderboard.HTML_FILE).read_text()
    assert _table_order(page, "leaderboard") == ["model_a.in1k", "model_b.in1k"]
    assert _table_order(page, "leaderboard-restricted") == ["model_r.in1k"]
    assert _table_order(page, "leaderboard-focus-head") == ["head_f"]
    assert "<h2>ImageNet-1k models, restricted mapping (not comparable)</h2>" in page
    assert 'data-rank="1" data-submission="model_r.in1k"' in page  # ranked first among its own kind only


def test_render_strict_writes_nothing_when_a_submission_fails(tmp_path, site, truth):
    submissions_dir = site[0].parent / "submissions"
    with pytest.raises(leaderboard.StrictRenderError, match=r"1 submission\(s\) failed verification \(zz_tampered\)"):
        leaderboard.render(submissions_dir, tmp_path / "site", truth, strict=True)
    assert not (tmp_path / "site").exists() or not any((tmp_path / "site").iterdir())


def test_render_keeps_the_previous_page_when_rendering_fails(tmp_path, site, truth, monkeypatch):
    out = Path(shutil.copytree(site[0], tmp_path / "site"))
    before = (out / leaderboard.HTML_FILE).read_text()

    def broken(*args, **kwargs):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(leaderboard, "render_html", broken)
    with pytest.raises(RuntimeError):
        leaderboard.render(site[0].parent / "submissions", out, truth)
    assert (out / leaderboard.HTML_FILE).read_text() == before
    assert sorted(p.name for p in out.iterdir()) == sorted([leaderboard.HTML_FILE, leaderboard.MARKDOWN_FILE])


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe): stdlib only.

    Chromium reads NUL-terminated JSON commands on fd 3 and writes replies on fd 4.
    """

    def __init__(self, profile: Path, timeout: float = 30):
        command_read, self._commands = os.pipe()
        self._replies, reply_write = os.pipe()
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--remote-debugging-pipe", "--window-size=1280,1000", "about:blank"]
        # bash moves the pipe ends to the descriptors 3 and 4 that Chromium expects.
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec 3<&{command_read} 4>&{reply_write} "$@"', "bash", CHROMIUM, *flags],
            pass_fds=(command_read, reply_write), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(command_read)
        os.close(reply_write)
        self.timeout, self._buffer, self._id, self.session = timeout, b"", 0, None

    def send(self, method: str, **params):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            while b"\0" not in self._buffer:
                if not select.select([self._replies], [], [], max(0.0, deadline - time.monotonic()))[0]:
                    raise TimeoutError(f"no reply from Chromium to {method}")
                chunk = os.read(self._replies, 1 << 16)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the pipe during {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
        raise TimeoutError(f"no reply from Chromium to {method}")

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", url=url)["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.wait_for("document.readyState === 'complete' && location.protocol === 'file:'")

    def evaluate(self, expression: str):
        return self.send("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited for {expression}")
            time.sleep(0.05)

    def click(self, selector: str) -> None:
        """A real mouse click (pressed, released) at the middle of the element."""
        x, y = self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                             f"e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); "
                             f"return [r.x + r.width / 2, r.y + r.height / 2]; }})()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._commands)
        os.close(self._replies)


ROW_ORDER = "Array.from(document.querySelectorAll('#leaderboard tbody tr')).map(row => row.dataset.submission)"
SORTED_BY = "document.querySelector('th[data-key=\"{key}\"]').getAttribute('aria-sort') === '{order}'"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install chromium (make test does)")
def test_page_sorts_rows_when_a_column_header_is_clicked_in_headless_chromium(site, tmp_path):
    out, verifications = site
    page = Path(shutil.copy(out / leaderboard.HTML_FILE, tmp_path / "index.html"))
    browser = Chromium(tmp_path / "profile")
    try:
        browser.open(page.as_uri())
        assert browser.evaluate(ROW_ORDER) == ["model_a.in1k", "model_b.in1k", "model_c.in1k"]
        # Parameters: fewest first on the first click (B 5M, C 20M, A 50M), the reverse on the second.
        browser.click('th[data-key="num_params"] button')
        browser.wait_for(SORTED_BY.format(key="num_params", order="ascending"))
        assert browser.evaluate(ROW_ORDER) == ["model_b.in1k", "model_c.in1k", "model_a.in1k"]
        assert browser.evaluate("location.hash") == "#sort=num_params:asc"  # a link to this view
        browser.click('th[data-key="num_params"] button')
        browser.wait_for(SORTED_BY.format(key="num_params", order="descending"))
        assert browser.evaluate(ROW_ORDER) == ["model_a.in1k", "model_c.in1k", "model_b.in1k"]
        # Each numeric column sorts by the recomputed values: accuracies best first, gaps smallest first.
        for key in ("P0", "P1", "G_t", "G_w", "G_l", "gap_overall", "accuracy"):
            descending = key in ("accuracy", "P0", "P1")
            browser.click(f'th[data-key="{key}"] button')
            browser.wait_for(SORTED_BY.format(key=key, order="descending" if descending else "ascending"))
            assert browser.evaluate(ROW_ORDER) == _expected_order(verifications, key, descending), key
        # A linked sort (#sort=...) applies on load.
        browser.open(page.as_uri() + "#sort=accuracy:asc")
        assert browser.evaluate(ROW_ORDER) == ["model_c.in1k", "model_b.in1k", "model_a.in1k"]
        data = base64.b64decode(browser.send("Page.captureScreenshot", format="png")["data"])
    finally:
        browser.close()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width == 1280 and height > 600 and len(data) > 20_000  # the window's viewport, drawn (not blank)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install chromium (make test does)")
def test_page_sorts_every_protocols_table_by_the_clicked_column_in_headless_chromium(protocols_site, tmp_path):
    page = Path(shutil.copy(protocols_site / leaderboard.HTML_FILE, tmp_path / "index.html"))
    rows = "Array.from(document.querySelectorAll('table.board')).map(t => Array.from(t.tBodies[0].rows).map(r => " \
           "r.dataset.submission))"
    browser = Chromium(tmp_path / "profile")
    try:
        browser.open(page.as_uri())
        assert browser.evaluate(rows) == [["model_a.in1k", "model_b.in1k"], ["model_r.in1k"], ["head_f"]]
        browser.click('#leaderboard th[data-key="num_params"] button')
        browser.wait_for(SORTED_BY.format(key="num_params", order="ascending"))
        assert browser.evaluate(rows) == [["model_b.in1k", "model_a.in1k"], ["model_r.in1k"], ["head_f"]]
        assert browser.evaluate("Array.from(document.querySelectorAll('th[data-key=\"num_params\"]'))"
                                ".map(th => th.getAttribute('aria-sort'))") == ["ascending"] * 3
    finally:
        browser.close()


# --------------------------------------------------------------------------------------------
# push and the command line
# --------------------------------------------------------------------------------------------

class _NoNetwork:
    def __init__(self, *args, **kwargs):
        raise AssertionError("push --dry-run constructed a Hub client")


def test_push_dry_run_prints_the_operations_and_touches_no_network(submission, converted, monkeypatch, capsys):
    monkeypatch.setattr(leaderboard, "HfApi", _NoNetwork)
    monkeypatch.setattr(leaderboard, "metadata_update", _NoNetwork)
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
    assert entry["results"][0]["dataset"] == {"name": "FOCUS", "type": "focus", "split": "test"}


def test_push_opens_a_pull_request_with_create_pr(submission, truth, monkeypatch, capsys):
    calls = []

    class FakeApi:
        def create_commit(self, repo_id, **kwargs):
            calls.append((repo_id, kwargs))
            return type("CommitInfo", (), {"pr_url": "https://huggingface.co/datasets/x/y/discussions/1"})()

    monkeypatch.setattr(leaderboard, "HfApi", FakeApi)
    assert leaderboard.push(submission, "x/y", truth) == "https://huggingface.co/datasets/x/y/discussions/1"
    ((repo_id, kwargs),) = calls
    assert repo_id == "x/y" and kwargs["repo_type"] == "dataset" and kwargs["create_pr"] is True
    assert [op.path_in_repo.rsplit("/", 1)[1] for op in kwargs["operations"]] == list(leaderboard.SUBMITTED_FILES)
    assert "opened https://huggingface.co/datasets/x/y/discussions/1" in capsys.readouterr().out


def test_push_refuses_a_rejected_submission(submission, truth, monkeypatch):
    monkeypatch.setattr(leaderboard, "HfApi", _NoNetwork)
    edit_json(submission, leaderboard.METRICS_FILE, lambda m: m.update(accuracy=0.99))
    with pytest.raises(leaderboard.LeaderboardError, match=r"not pushed, the submission has 1 problem\(s\):\n"
                                                           r"  - metrics.json \$.accuracy: claimed 0.99"):
        leaderboard.push(submission, "x/y", truth, dry_run=True)


def test_cli_verify_exit_codes_and_output(submission, converted, capsys):
    assert leaderboard.main(["verify", str(submission), "--data", str(converted)]) == 0
    output = capsys.readouterr().out
    assert f"{submission}: accepted\n  every claimed metric matches the recomputation: " in output
    assert "intervals exact with seed 0 and 1000 bootstrap replicates" in output
    edit_json(submission, leaderboard.METRICS_FILE, lambda m: m["G_w"].update(ci_low=-1.0))
    assert leaderboard.main(["verify", str(submission), "--data", str(converted)]) == 1
    output = capsys.readouterr().out
    assert f"{submission}: rejected, 1 problem(s)\n  - metrics.json $.G_w.ci_low: claimed -1.0, recomputed " in output


def test_cli_pack_says_what_it_wrote_and_what_comes_next(run_dir, tmp_path, capsys):
    assert leaderboard.main(["pack", str(run_dir), "--model", "model_b.in1k", "--output", str(tmp_path / "b")]) == 0
    output = capsys.readouterr().out
    assert output.startswith(f"wrote {tmp_path / 'b'}\n  submission.json ")
    assert "  model_b.in1k, 48 images, dataset " in output
    assert output.endswith(f"next: focus-leaderboard verify {tmp_path / 'b'} --data DATASET\n")


def test_module_runs_as_a_script():
    result = subprocess.run([sys.executable, "-m", "harness.leaderboard", "--help"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1], timeout=60)
    assert result.returncode == 0 and "{pack,verify,render,push}" in result.stdout


def test_cli_reports_an_unloadable_dataset(submission, tmp_path, capsys):
    assert leaderboard.main(["verify", str(submission), "--data", str(tmp_path / "nowhere")]) == 2
    assert f"error: --data {tmp_path / 'nowhere'}: cannot load the FOCUS dataset" in capsys.readouterr().err


def test_cli_render_strict_exits_1_and_prints_the_problems(site, converted, tmp_path, capsys):
    submissions_dir = site[0].parent / "submissions"
    assert leaderboard.main(["render", str(submissions_dir), str(tmp_path / "out"), "--data", str(converted),
                             "--strict"]) == 1
    captured = capsys.readouterr()
    assert "zz_tampered: rejected, 1 problem(s)" in captured.out
    assert "nothing was written (--strict)" in captured.err
