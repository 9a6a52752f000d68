"""The leaderboard as one self-contained page (index.html): inline CSS, JavaScript and SVG, nothing fetched.

Per board: the ranked table (sortable; the rank intervals follow the column it is sorted by), the
paired comparisons with the model ranked above, the effective-robustness chart with its fit in the page's
data, and the common-against-uncommon chart.
"""

from __future__ import annotations

import json
import math
import string
from pathlib import Path
from typing import Sequence

from focus_tools import schema
from harness.leaderboard.submission import BOARDS
from harness.leaderboard.tables import (
    COLUMNS, EMPTY_TABLE, NOTES, RANKED_COLUMNS, Table, _cell_text, _html, _interval, _lead, _percent, _skipped_lines,
    p_text, rank_text, signed_points,
)
from harness.leaderboard.verification import GroundTruth, Verification

TEMPLATE_PATH = Path(__file__).parents[1] / "templates" / "leaderboard.html"


# Columns the model cell also shows, hidden on narrower screens (the page's CSS): the precision and the input size
# can be all that tells two rows apart, so they stay in sight in the model cell at any width.
IN_MODEL_CELL = ("precision", "input")
_IN_MODEL_CELL_CLASS = ' class="in-model-cell"'


def _model_cell(row: dict) -> str:
    """The model's name, its timm name under a paper name, then how it was evaluated: precision, input size and
    images, the mapping and the preprocessing, and any near copy."""
    text = _html(row["paper_name"] or row["model"])
    if row["paper_name"]:
        text += f'<span class="sub">{_html(row["model"])}</span>'
    text += (f'<span class="sub"><span class="precision">{_html(row["values"]["precision"])}</span>, '
             f'{_html(row["input_size"])}, {row["n"]:,} images, {_html(row["mapping"])}, '
             f'{_html(row["preprocessing"])}</span>')
    for other, share in row["near_copies"]:
        text += (f'<span class="sub near-copy">near copy: agrees with {_html(other)} on '
                 f'{100 * share:.1f}% of the images</span>')
    return text


def _html_row(rank: int, row: dict) -> str:
    cells = []
    for column in COLUMNS:
        value = row["values"][column.key]
        data = "" if value is None else (value if column.kind == "text" else repr(value))
        text = _html(_cell_text(row, column))
        attributes = ""
        if column.key == "model":
            text = _model_cell(row)
        elif column.kind == "rank":
            low, high, tied = row["ranks"]["accuracy"]
            text = (f'<span class="interval">{rank_text((low, high, False))}</span>'
                    f'<span class="tie" title="tied with the leader: the rank intervals overlap"'
                    f'{"" if tied else " hidden"}> &#8776;</span>')
            ranks = {key: row["ranks"][key] for key in RANKED_COLUMNS}
            attributes = f' class="rank" data-ranks="{_html(json.dumps(ranks))}"'
        elif column.kind == "p" and row.get("neighbour"):
            pair = row["neighbour"]
            text += (f'<span class="ci" title="images only this model gets right / only the one above">'
                     f'{pair["only_this"]} / {pair["only_above"]}</span>')
        elif column.key in row["intervals"] and _interval(row["intervals"][column.key]):
            text += f'<span class="ci">{_interval(row["intervals"][column.key])}</span>'
        if column.key in IN_MODEL_CELL:
            attributes += _IN_MODEL_CELL_CLASS
        cells.append(f'<td{attributes} data-value="{_html(str(data))}">{text}</td>')
    return (f'<tr data-rank="{rank}" data-submission="{_html(row["submission"])}">'
            + "".join(cells) + "</tr>")


def point_labels(rows: list[dict], longest: int = 30) -> dict[str, str]:
    """A short label per submission for a chart: its name, with the precision when the name alone is not unique,
    the submission's folder name when that is not unique either; cut to `longest` characters.

    >>> rows = [{"submission": "a", "paper_name": "Model A", "model": "a.in1k", "values": {"precision": "fp32"}},
    ...         {"submission": "a16", "paper_name": "Model A", "model": "a.in1k", "values": {"precision": "fp16"}},
    ...         {"submission": "b", "paper_name": None, "model": "b" * 40, "values": {"precision": "fp32"}}]
    >>> point_labels(rows)
    {'a': 'Model A, fp32', 'a16': 'Model A, fp16', 'b': 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbb…'}
    """
    def counted(names: list[str]) -> list[int]:
        return [names.count(name) for name in names]

    names = [row["paper_name"] or row["model"] for row in rows]
    with_precision = [f"{name}, {row['values']['precision']}" for name, row in zip(names, rows)]
    labels = [name if once == 1 else precise if twice == 1 else row["submission"]
              for name, precise, row, once, twice in zip(names, with_precision, rows, counted(names),
                                                         counted(with_precision))]
    return {row["submission"]: label if len(label) <= longest else label[:longest - 1] + "…"
            for row, label in zip(rows, labels)}


def common_uncommon_chart(rows: list[dict], width: int = 760) -> str:
    """An inline SVG: per model, accuracy on P0 (common) and on P1 ∪ P2 ∪ P3 (uncommon), joined by the gap."""
    left, right, top, step = 260, 30, 34, 26
    height = top + step * max(len(rows), 1) + 30
    span = width - left - right

    def x(value: float) -> float:
        return left + span * value

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="Accuracy in common and uncommon settings per model">',
             f'<circle class="common" cx="{left}" cy="12" r="5"/><text x="{left + 10}" y="16">common (P0)</text>',
             f'<circle class="uncommon" cx="{left + 120}" cy="12" r="5"/>'
             f'<text x="{left + 130}" y="16">uncommon (P1 &#8746; P2 &#8746; P3)</text>']
    bottom = height - 24
    labels = point_labels(rows, longest=36)
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line class="axis" x1="{x(tick):.1f}" y1="{top - 8}" x2="{x(tick):.1f}" y2="{bottom}"/>'
                     f'<text x="{x(tick):.1f}" y="{bottom + 16}" text-anchor="middle">{tick:.0%}</text>')
    for i, row in enumerate(rows):
        y = top + step * i + step / 2
        label = labels[row["submission"]]
        common, uncommon = row["common"], row["uncommon"]
        summary = (f"{row['name']}: common {_percent(common)}%, uncommon {_percent(uncommon)}%, "
                   f"gap_overall {_percent(row['values']['gap_overall'])} points")
        parts.append(f'<g data-submission="{_html(row["submission"])}"><title>{_html(summary)}</title>'
                     f'<text x="{left - 10}" y="{y + 4:.1f}" text-anchor="end">{_html(label)}</text>')
        if common is not None and uncommon is not None:
            parts.append(f'<line class="gap" x1="{x(uncommon):.1f}" y1="{y:.1f}" x2="{x(common):.1f}" y2="{y:.1f}"/>')
        for value, kind in ((uncommon, "uncommon"), (common, "common")):
            if value is not None:
                parts.append(f'<circle class="{kind}" cx="{x(value):.1f}" cy="{y:.1f}" r="6"/>')
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


# Probabilities that label a logit axis, where they fall inside it.
_LOGIT_TICKS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)  # as harness.robustness.effective_robustness clips
    return math.log(p / (1 - p))


def _spread(points: dict[str, tuple[bool, float]], gap: float) -> dict[str, float]:
    """Each label's height: its point's, moved down just enough that labels on the same side stay `gap` apart."""
    heights = {}
    for side in (True, False):
        last = -math.inf
        for key, (_, y) in sorted(((k, v) for k, v in points.items() if v[0] == side), key=lambda item: item[1][1]):
            heights[key] = last = max(y, last + gap)
    return heights


def effective_robustness_chart(rows: list[dict], fit: dict, width: int = 560, height: int = 420) -> str:
    """An inline SVG: uncommon (P1 ∪ P2 ∪ P3) against common (P0) accuracy, both logit-scaled, with the fit.

    Each model is a point labelled with its name and effective robustness; the line is the fit over the
    models; y = x is drawn dashed (no drop at all). The axes are ticked in percent.
    """
    left, right, top, bottom = 64, 20, 20, 48
    points = {submission: (_logit(c), _logit(u)) for submission, c, u in
              zip(fit["submissions"], fit["common"], fit["uncommon"])}
    xs, ys = [x for x, _ in points.values()], [y for _, y in points.values()]
    low, high = min(xs + ys), max(xs + ys)
    margin = max(0.25, 0.08 * (high - low))
    low, high = low - margin, high + margin  # one scale for both axes, so that y = x is the diagonal

    def sx(value: float) -> float:
        return left + (width - left - right) * (value - low) / (high - low)

    def sy(value: float) -> float:
        return height - bottom - (height - top - bottom) * (value - low) / (high - low)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="er-chart" width="{width}" height="{height}" '
             f'role="img" aria-label="Effective robustness: accuracy in uncommon against common settings, logit '
             f'axes, with the linear fit">']
    last = -math.inf
    for tick in _LOGIT_TICKS:
        at = _logit(tick)
        if low <= at <= high and sx(at) - last >= 34:  # labels that would overlap are left out
            last = sx(at)
            label = f"{100 * tick:g}%"
            parts.append(f'<line class="axis" x1="{sx(at):.1f}" y1="{top}" x2="{sx(at):.1f}" y2="{height - bottom}"/>'
                         f'<text x="{sx(at):.1f}" y="{height - bottom + 16}" text-anchor="middle">{label}</text>'
                         f'<line class="axis" x1="{left}" y1="{sy(at):.1f}" x2="{width - right}" y2="{sy(at):.1f}"/>'
                         f'<text x="{left - 6}" y="{sy(at) + 4:.1f}" text-anchor="end">{label}</text>')
    parts.append(f'<text x="{(left + width - right) / 2:.1f}" y="{height - 8}" text-anchor="middle">accuracy on P0 '
                 f'(common), logit scale</text>'
                 f'<text transform="translate(14 {(top + height - bottom) / 2:.1f}) rotate(-90)" '
                 f'text-anchor="middle">accuracy on P1 &#8746; P2 &#8746; P3 (uncommon)</text>')
    parts.append(f'<line class="diagonal" x1="{sx(low):.1f}" y1="{sy(low):.1f}" x2="{sx(high):.1f}" '
                 f'y2="{sy(high):.1f}"/>')
    ends = [(x, fit["intercept"] + fit["slope"] * x) for x in (low, high)]
    parts.append(f'<line class="fit" x1="{sx(ends[0][0]):.1f}" y1="{sy(ends[0][1]):.1f}" x2="{sx(ends[1][0]):.1f}" '
                 f'y2="{sy(ends[1][1]):.1f}"/>')
    names = {row["submission"]: row for row in rows}
    labels = point_labels([names[submission] for submission in fit["submissions"]])
    # A label sits right of its point in the left half of the chart and left of it in the right half; labels on one
    # side are kept a line apart.
    middle = (left + width - right) / 2
    label_at = _spread({submission: (sx(x) < middle, sy(y)) for submission, (x, y) in points.items()}, 14)
    for submission, (x, y), robustness in zip(fit["submissions"], points.values(), fit["effective_robustness"]):
        row = names[submission]
        summary = (f"{row['name']}: common {_percent(row['common'])}%, uncommon {_percent(row['uncommon'])}%, "
                   f"effective robustness {signed_points(robustness)} points")
        right_of = sx(x) < middle
        parts.append(f'<g data-submission="{_html(submission)}"><title>{_html(summary)}</title>'
                     f'<line class="residual" x1="{sx(x):.1f}" y1="{sy(y):.1f}" x2="{sx(x):.1f}" '
                     f'y2="{sy(fit["intercept"] + fit["slope"] * x):.1f}"/>'
                     f'<circle class="model" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5"/>'
                     f'<text class="point-label" x="{sx(x) + (9 if right_of else -9):.1f}" '
                     f'y="{label_at[submission] + 4:.1f}" text-anchor="{"start" if right_of else "end"}">'
                     f'{_html(labels[submission])} ({signed_points(robustness)})</text></g>')
    parts.append("</svg>")
    return "\n".join(parts)


def _json_script(data: dict, element_id: str) -> str:
    """Data for scripts and readers, in a <script type="application/json"> that no text can close early."""
    text = json.dumps(data, allow_nan=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def _pairs_table(rows: list[dict]) -> str:
    header = ("<tr><th>Submission</th><th>Above</th><th>Only this</th><th>Only above</th><th>McNemar p</th>"
              + "".join(f"<th>&#916;{_html(gap)}</th>" for gap in schema.GAPS) + "</tr>")
    lines = []
    for row in rows[1:]:
        pair = row["neighbour"]
        cells = [_html(row["submission"]), _html(pair["above"]), str(pair["only_this"]),
                 str(pair["only_above"]), p_text(pair["p_value"])]
        for gap in schema.GAPS:
            value, low, high = pair["gaps"][gap]
            bounds = "" if low is None or high is None else \
                f'<span class="ci">[{signed_points(low)}, {signed_points(high)}]</span>'
            cells.append(signed_points(value) + bounds)
        lines.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return (f'<div class="scroll"><table class="pairs">\n<thead>{header}</thead>\n<tbody>\n' + "\n".join(lines)
            + "\n</tbody>\n</table></div>")


def _html_section(table: Table) -> str:
    """A board's table, comparisons and charts; the paper's table has the id "leaderboard"."""
    board, rows = table.board, table.rows
    table_id = "leaderboard" if board == BOARDS[0] else f"leaderboard-{board.key}"
    section = (f'<section class="board" id="{board.key}">\n<h2>{_html(board.title)}</h2>\n'
               f'<p class="muted">{_html(board.description)}</p>')
    if not rows:
        return f'{section}\n<p class="empty" id="{table_id}">{_html(EMPTY_TABLE)}</p>\n</section>'
    # Long titles break after their underscores (gap_overall_paper), so that the header wraps rather than widens.
    header = "\n".join(
        f'<th data-key="{column.key}" data-type="{"text" if column.kind == "text" else "number"}" '
        f'data-order="{column.order}" aria-sort="{"descending" if column.key == "accuracy" else "none"}" '
        f'title="{_html(column.help)}"{_IN_MODEL_CELL_CLASS if column.key in IN_MODEL_CELL else ""}>'
        f'<button type="button">{_html(column.title).replace("_", "_<wbr>")}</button></th>'
        for column in COLUMNS)
    body = "\n".join(_html_row(rank, row) for rank, row in enumerate(rows, 1))
    parts = [f'{section}\n<div class="scroll">\n<table id="{table_id}" class="board">\n<thead><tr>\n{header}\n'
             f"</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n</div>",
             '<p class="muted rank-note">Rank (95%) and &#8776; (a tie with the leader) are for the column the table '
             'is sorted by: <span class="rank-key">accuracy</span>.</p>']
    if len(rows) > 1:
        parts.append("<h3>Paired comparisons with the model ranked above</h3>\n<p class=\"muted\">Both models on "
                     "the same images: the exact McNemar test on top-1 correctness, and each gap's difference (this "
                     "model's minus the one above's, in points) with its paired 95% bootstrap interval.</p>\n"
                     + _pairs_table(rows))
    if table.comparison is not None:
        fit = table.comparison.fit
        parts.append("<h3>Effective robustness</h3>")
        if fit is None:
            parts.append('<p class="muted">Drawn from three models on, when their accuracies on P0 differ.</p>')
        else:
            parts.append(f'<p class="muted">Accuracy on P1 &cup; P2 &cup; P3 against accuracy on P0, both '
                         f'logit-scaled; the line is the least-squares fit over the {fit["n"]} models, logit '
                         f'A(P1 &cup; P2 &cup; P3) = {fit["intercept"]:.3f} + {fit["slope"]:.3f} &times; logit '
                         f'A(P0); a model\'s effective robustness (ER) is its distance above the line, in points '
                         f'(dashed: y = x).</p>\n' + effective_robustness_chart(rows, fit) + "\n"
                         + _json_script({"effective_robustness_fit": fit}, f"data-{board.key}"))
    parts.append(f"<h3>Common against uncommon settings</h3>\n<p class=\"muted\">Accuracy on P0 (no uncommon "
                 f"attribute) and on P1 &cup; P2 &cup; P3 (at least one); the line between them is the overall "
                 f"gap.</p>\n{common_uncommon_chart(rows)}\n</section>")
    return "\n".join(parts)


def render_html(tables: Sequence[Table], skipped: Sequence[Verification], truth: GroundTruth,
                generation: str = "") -> str:
    """The leaderboard as one self-contained page (inline CSS, JS and SVG, nothing fetched): a table per board.

    `generation` names the render the page comes from, in a meta tag (writing.generation_mark).
    """
    skipped_html = ""
    if skipped:
        items = "\n".join(f"<li><code>{_html(name)}</code>: {_html(reason)}</li>"
                          for name, reason in _skipped_lines(skipped))
        skipped_html = (f'<section class="skipped" id="skipped"><h2>Not shown</h2>'
                        f"<p>These submissions failed verification:</p><ul>\n{items}\n</ul></section>")
    template = string.Template(TEMPLATE_PATH.read_text())
    return template.substitute(
        lead=_html(_lead([row for table in tables for row in table.rows], truth)),
        sections="\n\n".join(_html_section(table) for table in tables),
        notes=_html(NOTES),
        skipped=skipped_html,
        generation=_html(generation),
    )
