"""The run's results table: one row per model, as timm's validate.py writes its results (results.csv, results.json).

A row flattens what a model's config.json and metrics.json say: the model spec, where its weights
came from and their hash, the label space and mapping, the preprocessing, the number of parameters,
then the numbers, named as in metrics.json (fractions, not percent): top1, top5, P0-P3 and the seven
P^A partitions' accuracies, G_t, G_w, G_l, gap_overall, gap_overall_paper, and the throughput and
the images that failed to decode. Rows are sorted by top-1, best first.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from focus_common.messages import markdown_code, spreadsheet_cell
from focus_tools.schema import COUNT_PARTITIONS, GAPS, PARTITION_NAMES

# metrics.json's partitions: P0, the groups P1-P3, then P(t) ... P(t,w,l).
# The accuracies of a results row: P0, P1-P3 (by number of uncommon attributes), then each P^A.
PARTITIONS = [*COUNT_PARTITIONS, *PARTITION_NAMES[1:]]
COLUMNS = [
    "model", "paper_name", "source", "weights", "sha256", "label_space", "mapping", "preprocess",
    "input_size", "resize", "crop_pct", "crop_mode", "interpolation", "mean", "std", "num_params",
    "top1", "top5", *PARTITIONS, *GAPS, "effective_robustness", "images_per_second", "n_images", "n_failed_images",
]
RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"


def _preprocessing(config: dict[str, Any]) -> dict[str, Any]:
    """The preprocessing recorded in config.json (older runs: timm's data config)."""
    recorded = config.get("preprocessing")
    if recorded:
        return recorded
    data = config.get("data_config") or {}
    return {"protocol": "timm", "input_size": data.get("input_size"), "crop_pct": data.get("crop_pct"),
            "crop_mode": data.get("crop_mode"), "interpolation": data.get("interpolation"),
            "mean": data.get("mean"), "std": data.get("std")}


def result_row(config: dict[str, Any], metrics: dict[str, Any], n_failed: int = 0) -> dict[str, Any]:
    """One model's row: its config.json and metrics.json flattened (see the module docstring)."""
    preprocessing = _preprocessing(config)
    protocol = preprocessing.get("protocol")
    row = {
        "model": config.get("model"), "paper_name": config.get("paper_name"), "source": config.get("source", "timm"),
        "weights": config.get("weights"), "sha256": config.get("sha256"), "label_space": config.get("label_space"),
        "mapping": config.get("mapping"),
        "preprocess": f"{protocol}+overrides" if preprocessing.get("custom") else protocol,
        "input_size": preprocessing.get("input_size"), "resize": preprocessing.get("resize"),
        "crop_pct": preprocessing.get("crop_pct"), "crop_mode": preprocessing.get("crop_mode"),
        "interpolation": preprocessing.get("interpolation"), "mean": preprocessing.get("mean"),
        "std": preprocessing.get("std"), "num_params": config.get("num_params"),
        "top1": metrics.get("top1"), "top5": metrics.get("top5"),
    }
    row |= {name: metrics["partitions"][name]["accuracy"] for name in PARTITIONS}
    row |= {name: (metrics.get(name) or {}).get("value") for name in GAPS}
    # images/s: of the pass that made the predictions (with a shared decode, the rate of the group's pass).
    row |= {"effective_robustness": None, "images_per_second": config.get("images_per_second"),
            "n_images": metrics.get("n"), "n_failed_images": n_failed}
    return row


def sort_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best top-1 first (as timm's validate results), models without one last, then by name."""
    return sorted(rows, key=lambda row: (row["top1"] is None, -(row["top1"] or 0.0), str(row["model"])))


def results_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV, lists written as space-separated values (3 224 224)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: " ".join(map(str, value)) if isinstance(value, (list, tuple)) else
                         ("" if value is None else spreadsheet_cell(value)) for key, value in row.items()})
    return buffer.getvalue()


def results_json(rows: Sequence[dict[str, Any]], effective_robustness: dict[str, Any] | None = None) -> str:
    """results.json: the rows, and the effective-robustness fit across them (None with fewer than three)."""
    return json.dumps({"columns": COLUMNS, "sorted_by": "top1", "rows": list(rows),
                       "effective_robustness": effective_robustness}, indent=2, allow_nan=False) + "\n"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _cells(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The headline columns as text: accuracies and gaps in percent, parameters in millions."""
    robustness = any(row["effective_robustness"] is not None for row in rows)
    numbers = ["top1", "top5", *COUNT_PARTITIONS, *GAPS, *(["effective_robustness"] if robustness else [])]
    header = ["model", *numbers, "params (M)", "input", "preprocess", "img/s"]
    body = []
    for row in rows:
        size = row["input_size"]
        body.append([
            str(row["model"]), *(_percent(row[name]) for name in numbers),
            "-" if row["num_params"] is None else f"{row['num_params'] / 1e6:.2f}",
            "-" if not size else f"{size[-2]}x{size[-1]}", str(row["preprocess"]),
            "-" if row["images_per_second"] is None else f"{row['images_per_second']:.1f}",
        ])
    return header, body


def format_results(rows: Sequence[dict[str, Any]]) -> str:
    """The table a run prints at its end, in columns."""
    header, body = _cells(rows)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                               for i, (cell, width) in enumerate(zip(line, widths))) for line in [header, *body])


def markdown_results(rows: Sequence[dict[str, Any]]) -> str:
    """The same table in Markdown, for report.md."""
    header, body = _cells(rows)
    lines = ["| " + " | ".join(header) + " |", "|---|" + "--:|" * (len(header) - 1)]
    lines += ["| " + markdown_code(line[0]) + " | " + " | ".join(line[1:]) + " |" for line in body]
    return "\n".join(lines)
