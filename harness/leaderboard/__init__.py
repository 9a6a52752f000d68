"""The FOCUS leaderboard: pack a run into a submission, verify it by recomputation, render, push to the Hub.

    focus-leaderboard pack RUN_DIR --model NAME [--output DIR]
    focus-leaderboard verify SUBMISSION --data DATASET
    focus-leaderboard render SUBMISSIONS_DIR OUT --data DATASET [--strict]
    focus-leaderboard push SUBMISSION --repo REPO_ID --data DATASET [--dry-run]

A submission is one folder:

    SUBMISSION/
      submission.json      what was evaluated, how and on which data (schemas/submission.schema.json)
      predictions.parquet  one row per image: file_name, prediction (FOCUS id, -1 for none), top5_ids, top5_probs
      metrics.json         the metrics the submitter claims: the run's metrics.json without n_failed_images (0)
      model_index.yaml     written by push: the model-index block for the model's card (verify ignores it)

Nothing in a submission is taken on trust. `verify` joins the predictions to the ground-truth dataset by
file_name (labels, attributes and uncommon flags always come from the dataset), recomputes every metric
with `runfolder.compute_metrics` (the harness's own implementation) and the recorded bootstrap settings,
and compares the claims field by field. The leaderboard shows only recomputed numbers, in one ranked table
per label space and mapping (PROTOCOLS): accuracies scored under different mappings do not compare.

The package's modules follow those steps: `strict` reads submitted files (sizes before parsing, strict JSON,
typed Parquet), `submission` is the format (files, schema, ids, protocols), `verification` checks and
recomputes, `packing` and `hub` are the pack and push commands, `rendering` the render command over
`tables` (rows and cells), `markdown` and `page`; `statistics` holds the pure statistics (McNemar, paired
bootstrap, rank intervals, agreement, effective robustness) and `comparisons` applies them to submissions
(copies, near-copies, each table's comparisons); `outputs` writes files as the umask says, and `cli` is
the command line on top. Every public name is importable from `harness.leaderboard` itself.
"""

from harness.leaderboard.cli import build_parser, main
from harness.leaderboard.errors import LeaderboardError, RejectedSubmissionError, SubmissionError
from harness.leaderboard.hub import (
    DEFAULT_DATASET_ID, FOCUS_DATASET_NAME, PushResult, connect, model_index, push, push_operations,
)
from harness.leaderboard.packing import is_packed_submission, pack, submission_metadata
from harness.leaderboard.comparisons import compare, flag_near_copies, group_weights, reject_copies, verify_among
from harness.leaderboard.markdown import render_markdown
from harness.leaderboard.page import TEMPLATE_PATH, common_uncommon_chart, effective_robustness_chart, render_html
from harness.leaderboard.rendering import (
    HTML_FILE, LEDGER_FILE, MARKDOWN_FILE, StrictRenderError, read_ledger, render,
)
from harness.leaderboard.statistics import effective_robustness
from harness.leaderboard.tables import (
    COLUMNS, NOTES, Column, Table, leaderboard_rows, leaderboard_tables, preprocessing_text, ranked_tables,
)
from harness.leaderboard.strict import (
    SUBMISSION_SCHEMA, TOP_K, Limits, loads_strict, read_json_strict, read_submitted_predictions,
)
from harness.leaderboard.submission import (
    COUNT_PARTITIONS, FAILED_COUNT, GAPS, HASHED_FILES, LATER_METRICS, METRICS_FILE, MODEL_INDEX_FILE, NUM_CLASSES,
    PREDICTIONS_FILE, PREPROCESSINGS, PROTOCOLS, SCHEMA_PATH, SCHEMA_VERSION, SCORINGS, SUBMISSION_FILE,
    SUBMITTED_FILES, UNCOMMON_PARTITIONS, Protocol, Scoring, display_name, file_records, headline, metadata_problems,
    preprocessing_kind, protocol_of, submission_id, submission_schema,
)
from harness.leaderboard.verification import (
    INTERVAL_TOLERANCE, POINT_TOLERANCE, GroundTruth, Verification, compare_claims, ground_truth, recompute_metrics,
    scored_predictions, submission_folders, top5_problems, value_problems, verify,
)

__all__ = [
    "COLUMNS", "COUNT_PARTITIONS", "DEFAULT_DATASET_ID", "FAILED_COUNT", "FOCUS_DATASET_NAME", "GAPS",
    "HASHED_FILES", "HTML_FILE", "INTERVAL_TOLERANCE", "LATER_METRICS", "LEDGER_FILE", "MARKDOWN_FILE",
    "METRICS_FILE", "MODEL_INDEX_FILE", "NOTES", "NUM_CLASSES", "POINT_TOLERANCE", "PREDICTIONS_FILE", "PREPROCESSINGS",
    "PROTOCOLS", "SCHEMA_PATH", "SCHEMA_VERSION", "SCORINGS", "SUBMISSION_FILE", "SUBMISSION_SCHEMA",
    "SUBMITTED_FILES", "TEMPLATE_PATH", "TOP_K", "UNCOMMON_PARTITIONS", "build_parser", "Column",
    "common_uncommon_chart", "compare", "compare_claims", "connect", "display_name", "effective_robustness",
    "effective_robustness_chart", "file_records", "flag_near_copies", "ground_truth", "GroundTruth",
    "group_weights", "headline", "is_packed_submission", "leaderboard_rows", "leaderboard_tables",
    "LeaderboardError", "Limits", "loads_strict", "main", "metadata_problems", "model_index", "pack",
    "preprocessing_kind", "preprocessing_text", "Protocol", "protocol_of", "push", "push_operations", "PushResult",
    "ranked_tables", "read_json_strict", "read_ledger", "read_submitted_predictions", "recompute_metrics",
    "reject_copies",
    "RejectedSubmissionError", "render", "render_html", "render_markdown", "scored_predictions", "Scoring",
    "StrictRenderError", "submission_folders", "submission_id", "submission_metadata", "submission_schema",
    "SubmissionError", "Table", "top5_problems", "value_problems", "Verification", "verify", "verify_among",
]
