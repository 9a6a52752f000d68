"""The FOCUS evaluation harness: models and data in; predictions, metrics, reports and submissions out.

The metric in one call, wherever the toolkit is installed:

    import harness
    metric = harness.load_metric()                      # evaluate.load on metrics/focus_generalization
    predictions = harness.read_predictions("runs/demo/tf_efficientnet_lite0/predictions.parquet")
    results = metric.compute(**harness.metric_inputs(predictions), seed=0)
"""

from typing import Any

__all__ = ["METRIC_DIR", "load_metric", "metric_inputs", "read_predictions"]


def __getattr__(name: str) -> Any:
    # Looked up on first use: the console scripts import harness.* and answer --help before numpy, pyarrow and
    # torch are imported.
    if name in __all__:
        from harness import scoring

        return getattr(scoring, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
