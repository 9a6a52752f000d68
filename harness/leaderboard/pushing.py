"""push: a verified submission as a pull request on the leaderboard's Hub dataset, and its model-index block."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import yaml
from huggingface_hub import CommitOperationAdd, EvalResult, HfApi, ModelCardData, metadata_update
from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

from focus_common import outputs
from harness.leaderboard.errors import LeaderboardError, RejectedSubmissionError
from harness.leaderboard.strict import _clip
from harness.leaderboard.submission import MODEL_INDEX_FILE, SUBMITTED_FILES, display_name, headline, submission_id
from harness.leaderboard.verification import GroundTruth, verify

FOCUS_DATASET_NAME = "FOCUS"
DEFAULT_DATASET_ID = "focus"

MODEL_INDEX_METRICS = [
    ("accuracy", "accuracy", "all", "FOCUS accuracy"),
    ("P0", "accuracy", "P0", "FOCUS accuracy, common settings (P0)"),
    ("P1", "accuracy", "P1", "FOCUS accuracy, one uncommon attribute (P1)"),
    ("P2", "accuracy", "P2", "FOCUS accuracy, two uncommon attributes (P2)"),
    ("P3", "accuracy", "P3", "FOCUS accuracy, three uncommon attributes (P3)"),
    ("G_t", "generalization_gap", "G_t", "FOCUS generalization gap, time"),
    ("G_w", "generalization_gap", "G_w", "FOCUS generalization gap, weather"),
    ("G_l", "generalization_gap", "G_l", "FOCUS generalization gap, locations"),
    ("gap_overall", "generalization_gap", "gap_overall", "FOCUS overall gap A(P0) - A(P1 or P2 or P3)"),
    ("gap_overall_paper", "generalization_gap", "gap_overall_paper",
     "FOCUS overall gap as published, A(P0) - A(P1 or P2)"),
]


def model_index(metadata: dict, metrics: dict, *, dataset_id: str = DEFAULT_DATASET_ID,
                source_url: str | None = None) -> str:
    """The model-index block for the model card's YAML header (percentages, as the paper reports them)."""
    values = headline(metrics)
    results = [
        EvalResult(task_type="image-classification", task_name="Image Classification", dataset_type=dataset_id,
                   dataset_name=FOCUS_DATASET_NAME, dataset_split="test", metric_type=metric_type,
                   metric_name=name, metric_config=config, metric_value=round(100 * values[key], 2),
                   verified=False, source_name="FOCUS leaderboard", source_url=source_url)
        for key, metric_type, config, name in MODEL_INDEX_METRICS if values[key] is not None
    ]
    return ModelCardData(model_name=display_name(metadata), eval_results=results).to_yaml() + "\n"


def push_operations(submission: Path, metadata: dict) -> list[CommitOperationAdd]:
    """The files of a pull request on the leaderboard repository: submissions/<id>/<file>."""
    folder = f"submissions/{submission_id(metadata)}"
    return [CommitOperationAdd(path_in_repo=f"{folder}/{name}", path_or_fileobj=str(submission / name))
            for name in SUBMITTED_FILES]


# An access token as huggingface_hub writes them; masked in every message, in case an error quotes one.
_TOKEN = re.compile(r"hf_[A-Za-z0-9]{6,}")


def _reason(err: BaseException) -> str:
    """An exception in one line, clipped, with any access token masked."""
    text = _TOKEN.sub("hf_***", " ".join(str(err).split())) or "no message"
    return f"{type(err).__name__}: {_clip(text, 300)}"


def connect(repo_id: str, model_repo: str | None = None) -> HfApi:
    """A Hub client whose token works and which sees the dataset `repo_id` (and `model_repo`).

    push calls it before any long work, so that a missing token, no network or a refused repository
    stops it at once, each with one clear LeaderboardError.
    """
    api = HfApi()
    unreachable = f"cannot reach the Hugging Face Hub to check {repo_id}"
    advice = "connect, unset HF_HUB_OFFLINE, or check the submission with --dry-run"
    try:
        user = api.whoami()["name"]
    except LocalTokenNotFoundError as err:
        raise LeaderboardError(f"no Hugging Face token ({type(err).__name__}); log in with `hf auth login` or set "
                               f"HF_TOKEN, then push again") from err
    except HfHubHTTPError as err:
        raise LeaderboardError(f"the Hugging Face Hub did not accept the token ({_reason(err)}); log in again with "
                               f"`hf auth login`") from err
    except Exception as err:  # offline mode, DNS, timeouts: every way of not reaching the Hub
        raise LeaderboardError(f"{unreachable} ({_reason(err)}); {advice}") from err
    for repo, repo_type in ((repo_id, "dataset"), (model_repo, "model")):
        if repo is None:
            continue
        try:
            api.repo_info(repo, repo_type=repo_type)
        except HfHubHTTPError as err:  # not found, gated, forbidden
            raise LeaderboardError(f"the Hugging Face Hub refused the {repo_type} repository {repo} to {user} "
                                   f"({_reason(err)}); check the name, and that this token may open pull requests "
                                   f"on it (hf auth whoami)") from err
        except Exception as err:
            raise LeaderboardError(f"{unreachable} ({_reason(err)}); {advice}") from err
    return api


@dataclasses.dataclass
class PushResult:
    """What push sent, or in a dry run would send: the files of the pull request and the model-index block.

    pr_url and card_url are the opened pull requests (None in a dry run, or without a model repository);
    model_index_file is where the block was written (None in a dry run, which writes nothing).
    """

    repo_id: str
    operations: list[CommitOperationAdd]
    model_index: str
    model_repo: str | None = None
    dry_run: bool = False
    pr_url: str | None = None
    card_url: str | None = None
    model_index_file: Path | None = None


def push(
    submission: str | os.PathLike,
    repo_id: str,
    truth: GroundTruth,
    *,
    dry_run: bool = False,
    model_repo: str | None = None,
    dataset_id: str = DEFAULT_DATASET_ID,
    api: HfApi | None = None,
) -> PushResult:
    """Verify the submission, write its model_index.yaml, and open a pull request on the Hub dataset `repo_id`.

    Only a submission that verify accepts is pushed (RejectedSubmissionError otherwise), and the
    model-index holds the recomputed numbers. The Hub access is checked first (`connect`, unless `api` is
    given). `dry_run` writes nothing, sends nothing and constructs no Hub client: the result says what a
    push would send.
    """
    submission = Path(submission)
    if not dry_run and api is None:
        api = connect(repo_id, model_repo)
    verification = verify(submission, truth)
    if not verification.accepted:
        raise RejectedSubmissionError(
            f"{submission}: not pushed, the submission has {len(verification.problems)} problem(s):\n"
            + "\n".join(f"  - {p}" for p in verification.problems), [verification])
    metadata = verification.metadata
    block = model_index(metadata, verification.recomputed, dataset_id=dataset_id,
                        source_url=f"https://huggingface.co/datasets/{repo_id}")
    result = PushResult(repo_id, push_operations(submission, metadata), block, model_repo, dry_run)
    if dry_run:
        return result
    result.model_index_file = submission / MODEL_INDEX_FILE
    try:
        outputs.write_atomic(result.model_index_file, block)  # whole or not at all
    except OSError as err:
        raise LeaderboardError(f"{result.model_index_file}: cannot be written ({err.strerror or err}); nothing was "
                               f"sent") from None
    try:
        commit = api.create_commit(repo_id, repo_type="dataset", operations=result.operations,
                                   commit_message=f"Add FOCUS submission {submission_id(metadata)}",
                                   commit_description=f"{display_name(metadata)} on FOCUS, packed by "
                                                      f"focus-leaderboard.", create_pr=True)
    except Exception as err:
        raise LeaderboardError(f"the Hugging Face Hub did not take the pull request on {repo_id} ({_reason(err)}); "
                               f"nothing else was sent") from err
    result.pr_url = commit.pr_url
    if model_repo:
        try:
            result.card_url = metadata_update(model_repo, yaml.safe_load(block), repo_type="model", create_pr=True,
                                              commit_message=f"Add FOCUS results ({repo_id})")
        except Exception as err:
            raise LeaderboardError(f"opened {commit.pr_url}, but the Hugging Face Hub did not take the pull request "
                                   f"on the model card {model_repo} ({_reason(err)})") from err
    return result
