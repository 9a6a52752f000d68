"""The leaderboard as Markdown (leaderboard.md): per board, the ranked table, the paired comparisons and the fit."""

from __future__ import annotations

from typing import Sequence

from focus_tools import schema
from harness.leaderboard.tables import (
    COLUMNS, EMPTY_TABLE, NOTES, Table, _cell_text, _interval, _lead, _md, _md_line, _skipped_lines, p_text,
    signed_points,
)
from harness.leaderboard.verification import GroundTruth, Verification


def _ranked_table(rows: list[dict]) -> list[str]:
    lines = ["| # | " + " | ".join(column.title.replace("_", "\\_") for column in COLUMNS) + " |",
             "|---|" + "|".join("---" if column.kind == "text" else "---:" for column in COLUMNS) + "|"]
    for rank, row in enumerate(rows, 1):
        cells = []
        for column in COLUMNS:
            text = _md(_cell_text(row, column))
            if column.kind == "gap" and _interval(row["intervals"][column.key]):
                text += " " + _interval(row["intervals"][column.key])
            if column.kind == "p" and row.get("neighbour"):
                text += f" ({row['neighbour']['only_this']}/{row['neighbour']['only_above']})"
            cells.append(text)
        lines.append(f"| {rank} | " + " | ".join(cells) + " |")
    return lines


def _difference(gap: tuple[float | None, float | None, float | None]) -> str:
    value, low, high = gap
    bounds = "" if low is None or high is None else f" [{signed_points(low)}, {signed_points(high)}]"
    return signed_points(value) + bounds


def _pairs(rows: list[dict]) -> list[str]:
    """Each row against the row above: discordant images, McNemar p and the gap differences with intervals."""
    lines = ["### Paired comparisons with the model ranked above", "",
             "Both models scored on the same images: the exact McNemar test on top-1 correctness (images only "
             "this model gets right / only the one above does), and each gap's difference, this model's minus "
             "the one above's, in points with its paired 95% bootstrap interval (images resampled jointly).", "",
             "| Submission | Above | Only this | Only above | McNemar p | "
             + " | ".join(_md(f"Δ{gap}") for gap in schema.GAPS) + " |",
             "|---|---|---:|---:|---:|" + "---:|" * len(schema.GAPS)]
    for row in rows[1:]:
        pair = row["neighbour"]
        cells = [_md(row["submission"]), _md(pair["above"]), str(pair["only_this"]), str(pair["only_above"]),
                 p_text(pair["p_value"])] + [_difference(pair["gaps"][gap]) for gap in schema.GAPS]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _robustness(table: Table) -> list[str]:
    fit = table.comparison.fit
    if fit is None:
        return ["Effective robustness: no fit (it needs at least three models whose accuracies on P0 differ)."]
    return [f"Effective robustness: logit A(P1 ∪ P2 ∪ P3) = {fit['intercept']:.3f} + {fit['slope']:.3f} × "
            f"logit A(P0), fitted over {fit['n']} models; ER is a model's distance above that line, in points "
            f"of accuracy on P1 ∪ P2 ∪ P3."]


def _near_copies(rows: list[dict]) -> list[str]:
    return [f"- {_md_line(row['name'])} agrees with {_md(other)} on {100 * share:.1f}% of the images (top-1), and "
            f"claims a different model" for row in rows for other, share in row["near_copies"]]


def render_markdown(tables: Sequence[Table], skipped: Sequence[Verification], truth: GroundTruth) -> str:
    """The leaderboard as Markdown: one table per board, best accuracy first, with its comparisons."""
    rows = [row for table in tables for row in table.rows]
    lines = ["# FOCUS leaderboard", "", _lead(rows, truth)]
    for table in tables:
        lines += ["", f"## {_md(table.board.title)}", "", _md(table.board.description), ""]
        if not table.rows:
            lines.append(EMPTY_TABLE)
            continue
        lines += _ranked_table(table.rows)
        if len(table.rows) > 1:
            lines += [""] + _pairs(table.rows)
        lines += [""] + _robustness(table)
        near = _near_copies(table.rows)
        if near:
            lines += ["", "Near copies, flagged and not rejected (fine-tunes of one checkpoint can agree that much):",
                      ""] + near
    lines += ["", NOTES]
    if skipped:
        lines += ["", "## Not shown", "", "These submissions failed verification:", ""]
        lines += [f"- {_md_line(name)}: {_md(reason)}" for name, reason in _skipped_lines(skipped)]
    return "\n".join(lines) + "\n"
