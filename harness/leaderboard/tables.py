"""The leaderboard's tables: one per board, a row per accepted submission, and how each cell reads.

Rows hold only recomputed numbers. `leaderboard_tables` splits them by board and adds each table's
comparisons (comparisons.compare): rank intervals, the tests against the row above, effective robustness.
Markdown (markdown.py) and the page (page.py) both render these tables.
"""

from __future__ import annotations

import dataclasses
import html
import re
from typing import NamedTuple, Sequence

from focus_tools import schema
from harness.leaderboard import significance
from harness.leaderboard.comparisons import COLUMN_GROUPS, Comparison, compare, group_weights
from harness.leaderboard.submission import BOARDS, Board, board_of, display_name, headline, preprocessing_kind
from harness.leaderboard.verification import GroundTruth, Verification


class Column(NamedTuple):
    key: str
    title: str
    kind: str  # text, percent, gap (points with an interval), points, rank, p, count
    order: str  # the order a first click sorts in: better first
    help: str


COLUMNS = [
    Column("model", "Model", "text", "asc", "timm model name (and the paper's name)"),
    Column("rank", "Rank (95%)", "rank", "asc",
           "95% interval of the model's rank over 1000 paired bootstrap resamples of the images, for the column "
           "the table is sorted by; ≈: tied with that column's leader (their intervals overlap)"),
    Column("accuracy", "Accuracy", "percent", "desc", "top-1 accuracy over all images"),
    Column("P0", "P0", "percent", "desc", "accuracy on images with no uncommon attribute"),
    Column("P1", "P1", "percent", "desc", "accuracy on images with one uncommon attribute"),
    Column("P2", "P2", "percent", "desc", "accuracy on images with two uncommon attributes"),
    Column("P3", "P3", "percent", "desc", "accuracy on images with uncommon time, weather and locations"),
    Column("G_t", "G_t", "gap", "asc", "time gap: accuracy at common minus uncommon times (Eq. 1)"),
    Column("G_w", "G_w", "gap", "asc", "weather gap: accuracy in common minus uncommon weather (Eq. 1)"),
    Column("G_l", "G_l", "gap", "asc", "locations gap: accuracy in common minus uncommon locations (Eq. 1)"),
    Column("gap_overall", "gap_overall", "gap", "asc",
           "overall gap A(P0) − A(P1 ∪ P2 ∪ P3): every image with an uncommon attribute, as the paper's text "
           "defines it"),
    Column("gap_overall_paper", "gap_overall_paper", "gap", "asc",
           "overall gap as the paper published it, A(P0) − A(P1 ∪ P2): P3 left out (its footnote 2); compare with "
           "the paper's 24.2 (Wide-ResNet50-2) and 21.00 (EfficientNet-b7)"),
    Column("effective_robustness", "ER", "points", "desc",
           "effective robustness (Taori et al. 2020): accuracy on P1 ∪ P2 ∪ P3 minus what the line fitted in logit "
           "space over the table's models predicts from the accuracy on P0, in points; needs 3 models"),
    Column("num_params", "Parameters", "count", "asc", "number of parameters"),
    Column("precision", "Precision", "text", "asc", "numeric precision of the evaluation"),
    Column("input", "Input", "count", "desc", "input height x width after preprocessing"),
    Column("vs_above", "vs above", "p", "asc",
           "exact McNemar test on top-1 correctness against the model ranked above by accuracy: the p-value, and "
           "the images only this model and only the one above get right"),
]
# Columns with rank intervals: the statistical ones (comparisons.COLUMN_GROUPS).
RANKED_COLUMNS = tuple(column.key for column in COLUMNS if column.key in COLUMN_GROUPS)


@dataclasses.dataclass
class Table:
    """One board's ranked rows (best accuracy first) and their comparisons (None without rows)."""

    board: Board
    rows: list[dict]
    comparison: Comparison | None


def _uncommon_accuracy(partitions: dict) -> float | None:
    """A(P1 ∪ P2 ∪ P3) from the partitions' counts."""
    n = sum(partitions[name]["n"] for name in schema.PARTITION_GROUPS)
    return sum(partitions[name]["correct"] for name in schema.PARTITION_GROUPS) / n if n else None


def leaderboard_rows(accepted: Sequence[Verification]) -> list[dict]:
    """One row per accepted submission, from the recomputed metrics only; best accuracy first."""
    rows = []
    for verification in accepted:
        metadata, metrics = verification.metadata, verification.recomputed
        intervals = {name: (metrics["partitions"][name]["ci_low"], metrics["partitions"][name]["ci_high"])
                     for name in schema.COUNT_PARTITIONS} | {
            name: (metrics[name]["ci_low"], metrics[name]["ci_high"]) for name in schema.GAPS
        }
        _, height, width = metadata["input_size"]
        rows.append({
            "submission": verification.submission.name,
            "model": metadata["model"],
            "paper_name": metadata.get("paper_name"),
            "name": display_name(metadata),
            "board": board_of(metadata),
            "values": headline(metrics) | {"num_params": metadata["num_params"], "precision": metadata["precision"],
                                           "input": height * width, "model": display_name(metadata),
                                           "rank": None, "effective_robustness": None, "vs_above": None},
            "intervals": intervals,
            "input_size": f"{height}×{width}",
            "mapping": f"{metadata['mapping']} mapping" if metadata["mapping"] else "FOCUS head",
            "preprocessing": preprocessing_text(metadata),
            "n": metrics["n"],
            "common": metrics["partitions"]["P0"]["accuracy"],
            "uncommon": _uncommon_accuracy(metrics["partitions"]),
            "correct": verification.correct,
            "near_copies": verification.near_copies,
        })
    return sorted(rows, key=lambda row: (-(row["values"]["accuracy"] or 0.0), row["name"]))


def preprocessing_text(metadata: dict) -> str:
    """A submission's preprocessing in a few words.

    >>> preprocessing_text({"preprocessing": {"protocol": "paper", "custom": False, "input_size": [3, 224, 224],
    ...                                       "resize": 224, "interpolation": "bilinear"}})
    'paper preprocessing: resize 224, crop 224×224, bilinear'
    >>> preprocessing_text({"schema_version": 1, "input_size": [3, 224, 224]})
    'timm preprocessing (data config, not recorded)'
    """
    preprocessing = metadata.get("preprocessing")
    if not isinstance(preprocessing, dict):
        return f"{preprocessing_kind(metadata)} preprocessing (data config, not recorded)"
    settings = []
    if preprocessing.get("resize") is not None:
        resize = preprocessing["resize"]
        settings.append(f"resize {'×'.join(map(str, resize)) if isinstance(resize, list) else resize}")
    if isinstance(preprocessing.get("input_size"), list):
        settings.append(f"crop {'×'.join(map(str, preprocessing['input_size'][1:]))}")
    if preprocessing.get("interpolation"):
        settings.append(str(preprocessing["interpolation"]))
    kind = preprocessing["protocol"] + (" preprocessing, custom" if preprocessing.get("custom") else " preprocessing")
    return kind + (": " + ", ".join(settings) if settings else "")


def ranked_tables(rows: list[dict]) -> list[tuple[Board, list[dict]]]:
    """The rows split by board, each list ranked on its own; the paper's table is shown even when empty."""
    tables = [(board, [row for row in rows if row["board"] == board]) for board in BOARDS]
    return [(board, members) for board, members in tables if members or board == BOARDS[0]]


def leaderboard_tables(accepted: Sequence[Verification], truth: GroundTruth) -> list[Table]:
    """The ranked tables with their comparisons; every table's bootstrap uses the same resamples of the images."""
    rows = leaderboard_rows(accepted)
    weights = group_weights(truth) if rows else {}
    counts = significance.bootstrap_counts(truth.num_images) if rows else None
    tables = []
    for board, members in ranked_tables(rows):
        comparison = compare(members, weights, counts) if members else None
        if comparison is not None:
            _annotate(members, comparison)
        tables.append(Table(board, members, comparison))
    return tables


def _annotate(rows: list[dict], comparison: Comparison) -> None:
    """The comparison's numbers into the rows' values, so that every cell sorts by a number."""
    for i, row in enumerate(rows):
        row["ranks"] = {key: comparison.rank_intervals[key][i] for key in RANKED_COLUMNS}
        low, high, _ = row["ranks"]["accuracy"]
        neighbour = comparison.neighbours[i]
        row["neighbour"] = neighbour
        row["values"] |= {"rank": low + high / 1000, "effective_robustness": comparison.effective_robustness[i],
                          "vs_above": None if neighbour is None else neighbour["p_value"]}


def _percent(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}"


def _interval(bounds: tuple[float | None, float | None]) -> str:
    low, high = bounds
    return "" if low is None or high is None else f"[{_percent(low, 1)}, {_percent(high, 1)}]"


def _parameters(count: int) -> str:
    return f"{count / 1e6:.2f} M" if count >= 1e5 else f"{count:,}"


def rank_text(bounds: tuple[int, int, bool]) -> str:
    """A rank interval as shown: "2", "2–4", with ≈ when it overlaps the leader's.

    >>> rank_text((1, 1, False)), rank_text((2, 4, True))
    ('1', '2–4 ≈')
    """
    low, high, tied = bounds
    return (str(low) if low == high else f"{low}–{high}") + (" ≈" if tied else "")


def p_text(p: float | None) -> str:
    """A p-value in three significant figures, "<0.001" below that.

    >>> p_text(0.0312), p_text(1.0), p_text(2e-7)
    ('0.0312', '1', '<0.001')
    """
    return "" if p is None else "<0.001" if p < 0.001 else f"{p:.3g}"


def _cell_text(row: dict, column: Column) -> str:
    value = row["values"][column.key]
    if column.kind in ("percent", "gap", "points"):
        return _percent(value)
    if column.kind == "rank":
        return rank_text(row["ranks"]["accuracy"]) if "ranks" in row else ""
    if column.kind == "p":
        return p_text(value)
    if column.key == "num_params":
        return _parameters(value)
    if column.key == "input":
        return row["input_size"]
    return str(value)


def signed_points(value: float | None) -> str:
    """A difference in points, with its sign.

    >>> signed_points(0.0123), signed_points(-0.5), signed_points(None)
    ('+1.23', '-50.00', 'n/a')
    """
    return "n/a" if value is None else f"{100 * value:+.2f}"


# Characters a reader would not see or that would rearrange what they see: controls (a terminal's escape
# sequences, newlines), zero-width and bidirectional marks.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def visible(text: str) -> str:
    """A submitter's text with its invisible characters written as escapes, as Python writes them.

    >>> print(visible("Evil\\nNet\\u202e\\x1b[31m"))
    Evil\\nNet\\u202e\\x1b[31m
    """
    return _INVISIBLE.sub(lambda found: found[0].encode("unicode_escape").decode("ascii"), str(text))


def _html(text: str) -> str:
    """A submitter's text in HTML: visible, and escaped (in an element or an attribute)."""
    return html.escape(visible(text))


# Inline Markdown: escapes, code, emphasis, links, table cells, headings, strikethrough.
_MARKDOWN_INLINE = re.compile(r"([\\`*_\[\]|#~])")
# What opens a list item or a rule at the start of a line: "-", "+", "1." or "1)".
_MARKDOWN_BLOCK = re.compile(r"^([-+])|^(\d+)([.)])")


def _md(text: str) -> str:
    """Text safe in a Markdown table cell: visible, on one line, and no HTML, links, emphasis, code or column
    breaks.

    >>> print(_md("<b>A|B</b> `x` # 1"))
    &lt;b&gt;A\\|B&lt;/b&gt; \\`x\\` \\# 1
    """
    text = html.escape(" ".join(visible(text).split()), quote=False)
    return _MARKDOWN_INLINE.sub(r"\\\1", text)


def _md_line(text: str) -> str:
    """`_md` for text that begins a line's content (a list item's): nothing there opens a list or a rule.

    >>> print(_md_line("1. first"), _md_line("- item"), _md_line("# heading"))
    1\\. first \\- item \\# heading
    """
    return _MARKDOWN_BLOCK.sub(lambda found: f"\\{found[1]}" if found[1] else f"{found[2]}\\{found[3]}", _md(text))


def _lead(rows: list[dict], truth: GroundTruth) -> str:
    return (f"{len(rows)} model(s). Every number is recomputed from the submitted predictions against the "
            f"ground truth: {truth.num_images:,} images, dataset fingerprint {truth.fingerprint}.")


EMPTY_TABLE = "No submissions yet: none has been verified for this table."
NOTES = ("Accuracies in %; gaps (G_t, G_w, G_l, gap_overall, gap_overall_paper) in percentage points, smaller is "
         "better, with 95% bootstrap intervals; partition accuracies with 95% Wilson intervals. P1, P2, P3: images "
         "with 1, 2, 3 uncommon attributes (time, weather, locations). gap_overall is A(P0) − A(P1 ∪ P2 ∪ P3); "
         "gap_overall_paper is A(P0) − A(P1 ∪ P2), the definition behind the paper's published overall gaps "
         "(P3 left out, footnote 2). n/a: no image in that group. "
         "Rank (95%): the interval of the rank over 1000 paired bootstrap resamples of the images (seed 0), ≈ "
         "where it overlaps the leader's: a statistical tie. vs above: exact McNemar test against the model ranked "
         "above. ER: effective robustness in points (Taori et al. 2020). "
         "Kattakinda & Feizi, FOCUS: Familiar Objects in Common and Uncommon Settings, ICML 2022.")


def _skipped_lines(skipped: Sequence[Verification], shown: int = 3) -> list[tuple[str, str]]:
    lines = []
    for verification in skipped:
        problems = verification.problems or ["could not be verified"]
        more = f" (and {len(problems) - shown} more)" if len(problems) > shown else ""
        lines.append((verification.submission.name, "; ".join(problems[:shown]) + more))
    return lines
