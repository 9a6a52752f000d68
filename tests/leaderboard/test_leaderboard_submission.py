"""harness.submission: the metadata schema and the checks beyond it."""

import doctest
from datetime import timedelta

import jsonschema
import pytest

from harness.leaderboard import submission as submission_format

from .fabricate import NOW, edit_json, rejected


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
    edit_json(submission, submission_format.SUBMISSION_FILE, edit)
    problems = rejected(submission, truth)
    assert any(problem.startswith(message) for problem in problems), problems


def test_future_date_message_says_so(submission, truth):
    future = NOW + timedelta(days=3)
    edit_json(submission, submission_format.SUBMISSION_FILE, lambda m: m.update(submitted=future.isoformat()))
    assert any(p.startswith(f"submission.json $.submitted: {future.isoformat()} is in the future")
               for p in rejected(submission, truth))


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.pop("preprocessing"), "submission.json $: 'preprocessing' is a required property"),
    (lambda m: m["preprocessing"].update(protocol="torchvision"),
     "submission.json $.preprocessing.protocol: 'torchvision' is not one of ['paper', 'timm']"),
    (lambda m: m["preprocessing"].pop("custom"), "submission.json $.preprocessing: 'custom' is a required property"),
    (lambda m: m["preprocessing"].update(std=[0.2, 0.0, 0.2]),
     "submission.json $.preprocessing.std[1]: 0.0 is less than or equal to the minimum of 0"),
    (lambda m: m["preprocessing"].update(notes="x" * 300), "submission.json $.preprocessing.notes: "),
    (lambda m: m["preprocessing"].update(input_size=[3, 256, 256]),
     "submission.json $.preprocessing.input_size: [3, 256, 256] is not $.input_size ([3, 224, 224]); they record "
     "one model input"),
    (lambda m: m.update(schema_version=1), "submission.json $.preprocessing: a version-1 submission records no "
                                           "preprocessing"),
    (lambda m: m.update(schema_version=3), "submission.json $.schema_version: 3 is not one of [1, 2]"),
])
def test_preprocessing_record_is_checked(submission, truth, edit, message):
    edit_json(submission, submission_format.SUBMISSION_FILE, edit)
    problems = rejected(submission, truth)
    assert any(problem.startswith(message) for problem in problems), problems


@pytest.mark.parametrize("preprocessing, key", [
    ({"protocol": "paper", "custom": False}, "paper"),
    ({"protocol": "timm", "custom": False}, "paper-timm"),
    ({"protocol": "paper", "custom": True}, "paper-custom"),
    ({"protocol": "timm", "custom": True}, "paper-custom"),
    (None, "paper-timm"),  # version 1: recorded none, made with timm's data config
])
def test_board_is_label_space_mapping_and_preprocessing(preprocessing, key):
    metadata = {"label_space": "imagenet", "mapping": "paper"}
    if preprocessing is not None:
        metadata["preprocessing"] = preprocessing
    board = submission_format.board_of(metadata)
    assert board.key == key
    assert board.title.endswith({"paper": ", the paper's preprocessing", "paper-timm": ", timm preprocessing "
                                    "(not comparable)", "paper-custom": ", custom preprocessing (not comparable)"}[key])


def test_every_board_has_its_own_key_and_title():
    assert len({p.key for p in submission_format.BOARDS}) == len({p.title for p in submission_format.BOARDS}) == 9
    assert submission_format.BOARDS[0][1:4] == ("imagenet", "paper", "paper")  # the paper's board: the leaderboard


def test_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(submission_format.submission_schema())


def test_doctests_pass():
    assert doctest.testmod(submission_format, optionflags=doctest.ELLIPSIS).failed == 0
