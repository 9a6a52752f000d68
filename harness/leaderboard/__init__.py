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
with `harness.scoring.compute_metrics` (the harness's own implementation) and the recorded bootstrap settings,
and compares the claims field by field. The leaderboard shows only recomputed numbers, in one ranked table
per label space and mapping (BOARDS): accuracies scored under different mappings do not compare.

The package's modules follow those steps: `strict` reads submitted files (sizes before parsing, strict JSON,
typed Parquet), `submission` is the format (files, schema, ids, the leaderboard's tables), `verification`
checks and recomputes, `packing` and `pushing` are the pack and push commands, `rendering` the render command
over `tables` (rows and cells), `markdown` and `page`; `significance` holds the pure statistics (McNemar,
paired bootstrap, rank intervals, agreement) and `comparisons` applies them to submissions (copies,
near-copies, each table's comparisons); `errors` are its failures and `cli` is the command line on top.
Import what you need from the module that holds it; the package itself exports the command (`main`).
"""

from harness.leaderboard.cli import main

__all__ = ["main"]
