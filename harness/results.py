"""The run's results table: one row per model, as timm's validate.py writes its results (results.csv, results.json);
and how the report's tables are written, as cells set in Markdown or LaTeX (Cell, Table).

A row flattens what a model's config.json and metrics.json say: the model spec, where its weights
came from and their hash, the label space and mapping, the preprocessing, the number of parameters,
then the estimates, named as in metrics.json: top1, top5, P0-P3 and the seven P^A partitions'
accuracies, G_t, G_w, G_l, gap_overall, gap_overall_paper, each with its interval (NAME_ci_low,
NAME_ci_high), then the effective robustness, the throughput and the images that failed to decode.
Rows are sorted by top-1, best first.

results.json keeps the estimates as metrics.json has them, fractions (and says so in its "units");
results.csv and the printed table give them in percent, as report.md does: accuracies in %, gaps and
effective robustness in percentage points (pp), with two decimals. Its header names each column's unit.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from focus_common.messages import markdown_code, markdown_text, spreadsheet_cell
from focus_tools.schema import COUNT_PARTITIONS, GAPS, PARTITION_NAMES
from harness import scoring

# metrics.json's partitions: P0, the groups P1-P3, then P(t) ... P(t,w,l).
# The accuracies of a results row: P0, P1-P3 (by number of uncommon attributes), then each P^A.
PARTITIONS = [*COUNT_PARTITIONS, *PARTITION_NAMES[1:]]
ACCURACIES = ["top1", "top5", *PARTITIONS]
INTERVAL_SUFFIXES = ("_ci_low", "_ci_high")
# Every estimate's columns: its value, then its interval's bounds.
ESTIMATE_COLUMNS = [f"{name}{suffix}" for name in [*ACCURACIES, *GAPS] for suffix in ("", *INTERVAL_SUFFIXES)]
COLUMNS = [
    "model", "paper_name", "source", "weights", "sha256", "label_space", "mapping", "preprocess",
    "input_size", "resize", "crop_pct", "crop_mode", "interpolation", "mean", "std", "num_params",
    *ESTIMATE_COLUMNS, "effective_robustness", "images_per_second", "n_images", "n_failed_images",
]
# Columns in percent in results.csv (fractions in results.json): accuracies in %, differences of two accuracies
# in percentage points.
PERCENT_COLUMNS = {column: "pp" if column.startswith(tuple(GAPS)) else "%" for column in ESTIMATE_COLUMNS} | {
    "effective_robustness": "pp"}
UNITS = {column: "fraction (results.csv: %)" if unit == "%" else "difference of fractions (results.csv: pp)"
         for column, unit in PERCENT_COLUMNS.items()} | {"images_per_second": "images per second"}
RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"


def csv_header(column: str) -> str:
    """A results.csv column's name with its unit.

    >>> csv_header("top1"), csv_header("G_t_ci_low"), csv_header("images_per_second"), csv_header("model")
    ('top1 (%)', 'G_t_ci_low (pp)', 'images_per_second (img/s)', 'model')
    """
    unit = PERCENT_COLUMNS.get(column) or ("img/s" if column == "images_per_second" else None)
    return column if unit is None else f"{column} ({unit})"


def _preprocessing(config: dict[str, Any]) -> dict[str, Any]:
    """The preprocessing recorded in config.json (older runs: timm's data config)."""
    recorded = config.get("preprocessing")
    if recorded:
        return recorded
    data = config.get("data_config") or {}
    return {"protocol": "timm", "input_size": data.get("input_size"), "crop_pct": data.get("crop_pct"),
            "crop_mode": data.get("crop_mode"), "interpolation": data.get("interpolation"),
            "mean": data.get("mean"), "std": data.get("std")}


@functools.cache
def _wilson_interval():
    return scoring.load_metric_module().wilson_interval


def _top_k_estimates(metrics: dict[str, Any]) -> dict[str, Any]:
    """top1 and top5 with Wilson intervals at the metric's confidence, from the images they count (metrics.json
    gives the partitions' intervals, not these), as the metric computes the partitions'."""
    n, confidence = metrics.get("n"), (metrics.get("config") or {}).get("confidence", 0.95)
    estimates = {}
    for name in ("top1", "top5"):
        value = metrics.get(name)
        low = high = None
        if value is not None and n:
            low, high = (float(bound) for bound in _wilson_interval()(round(value * n), n, confidence))
        estimates |= {name: value, f"{name}_ci_low": low, f"{name}_ci_high": high}
    return estimates


def _estimates(metrics: dict[str, Any]) -> dict[str, Any]:
    """Every accuracy and gap of metrics.json with its interval, as fractions."""
    estimates = _top_k_estimates(metrics)
    records = {name: (metrics["partitions"][name], "accuracy") for name in PARTITIONS} | {
        name: (metrics.get(name) or {}, "value") for name in GAPS}
    for name, (record, key) in records.items():
        estimates |= {name: record.get(key), f"{name}_ci_low": record.get("ci_low"),
                      f"{name}_ci_high": record.get("ci_high")}
    return estimates


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
    }
    row |= _estimates(metrics)
    # images/s: of the pass that made the predictions (with a shared decode, the rate of the group's pass).
    row |= {"effective_robustness": None, "images_per_second": config.get("images_per_second"),
            "n_images": metrics.get("n"), "n_failed_images": n_failed}
    return row


def sort_key(top1: float | None, model: str) -> tuple[bool, float, str]:
    """The order of every table of a run: best top-1 first (as timm's validate results), models without one last,
    then by name."""
    return top1 is None, -(top1 or 0.0), str(model)


def sort_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows in the run's order (sort_key)."""
    return sorted(rows, key=lambda row: sort_key(row["top1"], row["model"]))


def _csv_cell(column: str, value: Any) -> Any:
    """A value as results.csv writes it: estimates in percent with two decimals, lists space-separated (3 224 224),
    text safe in a spreadsheet."""
    if value is None:
        return ""
    if column in PERCENT_COLUMNS:
        return f"{100 * value:.2f}"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    return spreadsheet_cell(value)


def results_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV, estimates in percent, each column's unit in its name (csv_header)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([csv_header(column) for column in COLUMNS])
    for row in rows:
        writer.writerow([_csv_cell(column, row[column]) for column in COLUMNS])
    return buffer.getvalue()


def results_json(rows: Sequence[dict[str, Any]], effective_robustness: dict[str, Any] | None = None) -> str:
    """results.json: the rows (fractions, as metrics.json), their units, and the effective-robustness fit across
    them (None with fewer than three)."""
    return json.dumps({"columns": COLUMNS, "units": UNITS, "sorted_by": "top1", "rows": list(rows),
                       "effective_robustness": effective_robustness}, indent=2, allow_nan=False) + "\n"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


# The printed table's text columns, set flush left; the others are numbers.
_TEXT_COLUMNS = ("model", "input", "preprocess")


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
    """The table a run prints at its end, in columns: text flush left, numbers flush right."""
    header, body = _cells(rows)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) if name in _TEXT_COLUMNS else cell.rjust(width)
                               for name, cell, width in zip(header, line, widths)).rstrip()
                     for line in [header, *body])


def markdown_results(rows: Sequence[dict[str, Any]]) -> str:
    """The same table in Markdown, for report.md: text columns left-aligned, numbers right-aligned."""
    header, body = _cells(rows)
    cells = [[Cell(line[0], "model"), *(Cell(text) for text in line[1:])] for line in body]
    return markdown_table(Table(header, cells, "".join("l" if name in _TEXT_COLUMNS else "r" for name in header)))


class Cell(NamedTuple):
    """A table cell, before it is written as Markdown or LaTeX: its value, how the value is set, and its interval
    and image count, which follow it.

    style: "" (plain), "best" (bold: the column's single best), "paper" (italic: a published number), "model"
    (a model's name), "random model" (one with random weights), "paper label" (the published row of the paper
    model `value`), "markdown" (Markdown already, for report.md only).
    """

    value: str
    style: str = ""
    interval: str = ""
    n: int | None = None


class Table(NamedTuple):
    """A report table: its header, its rows of cells, and each column's alignment ("l" text, "r" numbers)."""

    header: list[str]
    rows: list[list[Cell]]
    align: str


_MARKDOWN_STYLES = {"best": "**{}**", "paper": "*{}*", "paper label": "*paper* ({})"}


def _markdown_cell(cell: Cell) -> str:
    if cell.style == "markdown":
        text = cell.value
    elif cell.style in ("model", "random model"):
        text = markdown_code(cell.value) + (" **random weights**" if cell.style == "random model" else "")
    else:
        text = _MARKDOWN_STYLES.get(cell.style, "{}").format(markdown_text(cell.value))
    return text + (f" {cell.interval}" if cell.interval else "") + ("" if cell.n is None else f" (n={cell.n})")


def markdown_table(table: Table) -> str:
    """A table in Markdown: text columns left-aligned, numbers right-aligned."""
    lines = ["| " + " | ".join(table.header) + " |",
             "|" + "|".join("---" if align == "l" else "--:" for align in table.align) + "|"]
    lines += ["| " + " | ".join(_markdown_cell(cell) for cell in row) + " |" for row in table.rows]
    return "\n".join(lines)


# LaTeX for what a paper's table holds: its specials escaped, and the report's symbols as LaTeX writes them.
_LATEX_SPECIALS = {**{c: "\\" + c for c in "&%$#_{}"}, "\\": r"\textbackslash{}", "~": r"\textasciitilde{}",
                   "^": r"\textasciicircum{}", "—": "---", "−": "$-$", "∪": r"$\cup$"}
_LATEX_STYLES = {"best": r"\textbf{%s}", "paper": r"\textit{%s}", "model": r"\texttt{%s}",
                 "random model": r"\texttt{%s} (random weights)", "paper label": r"\textit{paper} (%s)"}


def latex_text(text: str) -> str:
    r"""Text as LaTeX typesets it: specials escaped, a number's minus sign a minus, G_t a symbol.

    >>> print(latex_text("G_t (time)"), latex_text("res_net & 50%"), latex_text("[-1.5, 2.0]"))
    $G_t$ (time) res\_net \& 50\% [$-$1.5, 2.0]
    """
    text = "".join(_LATEX_SPECIALS.get(character, character) for character in str(text))
    return re.sub(r"(?<![\w$])-(?=\d)", "$-$", re.sub(r"\bG\\_([twl])\b", r"$G_\1$", text))


def latex_table(table: Table, caption: str, label: str) -> str:
    """A table for a paper, with booktabs rules: each model's intervals on a line of their own beneath its values,
    in small type; the image counts, which every model shares, in the header. Needs \\usepackage{booktabs}."""
    counts = [{cell.n for row in table.rows for cell in row[i:i + 1] if cell.n is not None}
              for i in range(len(table.header))]
    header = [latex_text(title) + (f" ($n$={min(count):,})" if len(count) == 1 else "")
              for title, count in zip(table.header, counts)]
    lines = ["% Written by focus-eval (harness/report.py). Needs \\usepackage{booktabs}.",
             "\\begin{table*}[t]", "\\centering", "\\small", f"\\caption{{{latex_text(caption)}}}",
             f"\\label{{{label}}}", f"\\begin{{tabular}}{{{table.align}}}", "\\toprule",
             " & ".join(header) + " \\\\", "\\midrule"]
    for row in table.rows:
        lines.append(" & ".join(_LATEX_STYLES.get(cell.style, "%s") % latex_text(cell.value)
                                + ("" if cell.n is None or len(count) == 1 else f" ($n$={cell.n})")
                                for cell, count in zip(row, counts)) + " \\\\")
        if any(cell.interval for cell in row):
            lines.append(" & ".join(f"{{\\scriptsize {latex_text(cell.interval)}}}" if cell.interval else ""
                                    for cell in row) + " \\\\")
    return "\n".join(lines + ["\\bottomrule", "\\end{tabular}", "\\end{table*}"]) + "\n"
