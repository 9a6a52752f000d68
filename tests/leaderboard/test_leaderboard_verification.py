"""harness.verification: claims recomputed and compared, predictions checked and joined to the truth."""

import doctest
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from focus_tools import convert, sample
from harness.leaderboard import packing, strict, submission as submission_format, verification
from harness.labels import imagenet_to_focus_index

from .fabricate import as_version_1, edit_json, edit_predictions, fabricate_run, rejected


def test_changed_claimed_gap_is_rejected_by_its_json_path(submission, truth):
    edit_json(submission, submission_format.METRICS_FILE, lambda m: m["G_t"].update(value=m["G_t"]["value"] + 0.01))
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

    edit_json(submission, submission_format.METRICS_FILE, edit)
    problems = rejected(submission, truth)
    paths = sorted(problem.split(":")[0] for problem in problems)
    assert paths == sorted([
        'metrics.json $.partitions["P(t)"].n', "metrics.json $.per_class.cat.P0.ci_low",
        "metrics.json $.heatmaps.time.total[0][0]", "metrics.json $.top5", "metrics.json $.leaderboard_rank",
    ])
    assert any("$.top5: missing from the claims" in p for p in problems)
    assert any("$.leaderboard_rank: not a FOCUS metric (claimed 1); remove it" in p for p in problems)


def test_a_count_claimed_as_a_bool_or_float_is_a_difference():
    assert verification.compare_claims({"n": True, "m": 3.0}, {"n": 1, "m": 3}) == [
        "$.n: claimed True, recomputed 1", "$.m: claimed 3.0, recomputed 3"]


def test_dropped_image_is_rejected(submission, truth):
    edit_predictions(submission, lambda t: t.slice(1))
    problems = rejected(submission, truth)
    first = truth.table.sort_by("file_name").column("file_name")[0].as_py()
    assert f"predictions.parquet: 1 image(s) of the dataset have no prediction: {first!r}; a submission " \
           f"predicts every image" in problems
    assert "submission.json $.dataset.num_images: 48, but predictions.parquet holds 47 rows" in problems


def test_duplicated_image_is_rejected(submission, truth):
    """Row 4 predicts row 3's image again: one image twice, one without a prediction."""
    names = pq.read_table(submission / submission_format.PREDICTIONS_FILE).column("file_name").to_pylist()
    edit_predictions(submission, lambda t: pa.concat_tables([t.slice(0, 4), t.slice(3, 1), t.slice(5)]))
    assert rejected(submission, truth) == [
        f"predictions.parquet: 1 image(s) predicted more than once: {names[3]!r}; a submission predicts every image "
        f"once",
        f"predictions.parquet: 1 image(s) of the dataset have no prediction: {names[4]!r}; a submission predicts every "
        f"image"]


def test_more_rows_than_the_dataset_has_images_are_refused_before_decoding(submission, truth, monkeypatch):
    edit_predictions(submission, lambda t: pa.concat_tables([t, t.slice(3, 1)]))
    monkeypatch.setattr(pq.ParquetFile, "read_row_group", lambda *args, **kwargs: pytest.fail("decoded"))
    assert rejected(submission, truth) == [
        "predictions.parquet: 49 rows, more than the 48 images of the ground truth; a submission predicts each image "
        "once"]


def test_a_name_longer_than_every_image_name_is_refused_before_the_names_are_decoded(submission, truth, monkeypatch):
    """One long name on every row is a small file and a large column once decoded."""
    longest = truth.longest_name
    edit_predictions(submission, lambda t: t.set_column(0, "file_name", pa.array(["x" * (longest + 1)] * t.num_rows)))
    monkeypatch.setattr(strict, "_numbers", lambda *args: pytest.fail("the other columns were decoded"))
    assert rejected(submission, truth) == [
        f"predictions.parquet: file_name values up to {longest + 1:,} bytes, longer than the name of any image of the "
        f"dataset ({longest:,} bytes at most); were the predictions made on another dataset?"]


def test_swapped_fingerprint_is_rejected(submission, truth):
    edit_json(submission, submission_format.SUBMISSION_FILE, lambda m: m["dataset"].update(fingerprint="0123456789abcdef"))
    assert rejected(submission, truth) == [
        f"submission.json $.dataset.fingerprint: '0123456789abcdef' is not the fingerprint of the ground truth "
        f"({truth.fingerprint!r}, 48 images from {truth.source}); the predictions were made on another dataset, "
        f"or another version of it"]


def test_edited_prediction_no_longer_matches_the_claims(submission, truth):
    """A consistent edit (prediction and top-1 both moved to the true class) changes the recomputed numbers."""
    table = pq.read_table(submission / submission_format.PREDICTIONS_FILE)
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
    other_release = sample.write_sample_release(tmp_path / "other" / "focus", 24, seed=3)
    convert.convert(other_release, tmp_path / "other" / "converted")
    other = verification.ground_truth(tmp_path / "other" / "converted")
    fabricate_run(tmp_path / "run", other.table, "m", accuracy=0.5, num_params=10, paper_name=None, seed=0)
    submission = packing.pack(tmp_path / "run", "m", tmp_path / "m")
    assert verification.verify(submission, other).accepted
    problems = rejected(submission, truth)
    assert problems[0].startswith(f"submission.json $.dataset.fingerprint: {other.fingerprint!r} is not the "
                                  f"fingerprint of the ground truth")
    assert any(re.match(r"predictions.parquet: \d+ predicted image\(s\) are not in the dataset: .*; were the "
                        r"predictions made on another dataset\?", p) for p in problems)
    assert any(re.match(r"predictions.parquet: \d+ image\(s\) of the dataset have no prediction", p) for p in problems)


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
    metrics = submission / submission_format.METRICS_FILE
    target = submission.parent / "elsewhere.json"
    metrics.rename(target)
    metrics.symlink_to(target)
    problems = rejected(submission, truth)
    assert "metrics.json: is a symbolic link; a submission holds plain files" in problems
    assert any(p.startswith("'notes.txt': unexpected in a submission") for p in problems)


def test_a_folder_of_many_unexpected_entries_is_reported_in_a_few_lines(submission, truth):
    for i in range(1000):
        (submission / f"junk-{i:04d}").touch()
    problems = rejected(submission, truth)
    assert [p.split(":")[0] for p in problems[:5]] == [f"'junk-{i:04d}'" for i in range(5)]
    assert problems[5:] == ["995 more unexpected entries in the submission folder; remove them"]


def test_changed_file_without_new_hash_is_reported(submission, truth):
    path = submission / submission_format.METRICS_FILE
    recorded = json.loads((submission / submission_format.SUBMISSION_FILE).read_text())["files"]["metrics.json"]
    path.write_text(path.read_text() + " ")
    assert rejected(submission, truth) == [
        f"metrics.json: size or SHA-256 differs from the one recorded in submission.json ({recorded['size']:,} "
        f"bytes, {recorded['sha256'][:16]}...); the file changed after pack"]


def test_restricted_mapping_accepts_the_best_mapped_class_below_an_unmapped_top1():
    focus_of = imagenet_to_focus_index()
    unmapped, cat, dog = int(np.flatnonzero(focus_of == -1)[0]), 282, 207
    ids = np.array([[unmapped, dog, cat, 0, 1]])
    probs = np.array([[0.5, 0.2, 0.1, 0.05, 0.05]])
    agrees = verification._agrees_with_top5
    assert agrees(np.array([5]), focus_of[ids], probs, "restricted").tolist() == [True]
    assert agrees(np.array([4]), focus_of[ids], probs, "restricted").tolist() == [False]
    assert agrees(np.array([-1]), focus_of[ids], probs, "paper").tolist() == [True]


def test_a_version_1_submission_is_accepted_without_the_later_overall_gap(submission, truth):
    as_version_1(submission)
    result = verification.verify(submission, truth)
    assert result.problems == [] and result.accepted
    assert "gap_overall_paper" in result.recomputed  # shown on the leaderboard all the same


def test_a_version_2_claim_without_gap_overall_paper_is_rejected(submission, truth):
    edit_json(submission, submission_format.METRICS_FILE, lambda m: m.pop("gap_overall_paper"))
    problems = rejected(submission, truth)
    assert len(problems) == 1 and problems[0].startswith("metrics.json $.gap_overall_paper: missing from the claims")


def test_doctests_pass():
    assert doctest.testmod(verification, optionflags=doctest.ELLIPSIS).failed == 0
