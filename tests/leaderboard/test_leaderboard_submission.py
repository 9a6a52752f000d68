"""harness.leaderboard.submission: the metadata schema and the checks beyond it."""

import doctest
from datetime import timedelta

import jsonschema
import pytest

from harness import leaderboard

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
    edit_json(submission, leaderboard.SUBMISSION_FILE, edit)
    problems = rejected(submission, truth)
    assert any(problem.startswith(message) for problem in problems), problems


def test_future_date_message_says_so(submission, truth):
    future = NOW + timedelta(days=3)
    edit_json(submission, leaderboard.SUBMISSION_FILE, lambda m: m.update(submitted=future.isoformat()))
    assert any(p.startswith(f"submission.json $.submitted: {future.isoformat()} is in the future")
               for p in rejected(submission, truth))


def test_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(leaderboard.submission_schema())


def test_doctests_pass():
    assert doctest.testmod(leaderboard.submission, optionflags=doctest.ELLIPSIS).failed == 0
