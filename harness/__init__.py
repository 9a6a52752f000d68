"""The FOCUS evaluation harness: models and data in; predictions, metrics, reports and submissions out.

The metric in one call, wherever the toolkit is installed:

    import harness
    metric = harness.load_metric()                      # evaluate.load on metrics/focus_generalization
    predictions = harness.read_predictions("runs/demo/tf_efficientnet_lite0/predictions.parquet")
    results = metric.compute(**harness.metric_inputs(predictions), seed=0)
"""

from harness.scoring import METRIC_DIR, load_metric, metric_inputs, read_predictions

__all__ = ["METRIC_DIR", "load_metric", "metric_inputs", "read_predictions"]
