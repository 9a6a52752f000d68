"""render: verified submissions become leaderboard.md and a self-contained index.html, one table per protocol."""

from __future__ import annotations

import html
import os
import re
import string
from datetime import datetime
from pathlib import Path
from typing import NamedTuple, Sequence

from harness.leaderboard import outputs
from harness.leaderboard.errors import LeaderboardError
from harness.leaderboard.strict import Limits
from harness.leaderboard.submission import (
    COUNT_PARTITIONS, GAPS, PROTOCOLS, UNCOMMON_PARTITIONS, Protocol, display_name, headline, preprocessing_kind,
    protocol_of,
)
from harness.leaderboard.verification import GroundTruth, Verification, verify

TEMPLATE_PATH = Path(__file__).parents[1] / "templates" / "leaderboard.html"


class StrictRenderError(LeaderboardError):
    """render --strict found submissions that fail verification, and wrote nothing."""

    def __init__(self, skipped: list[Verification]):
        self.skipped = skipped
        names = ", ".join(v.submission.name for v in skipped)
        super().__init__(f"{len(skipped)} submission(s) failed verification ({names}); nothing was written "
                         f"(--strict)")


class Column(NamedTuple):
    key: str
    title: str
    kind: str  # text, percent, gap, count
    order: str  # the order a first click sorts in: better first
    help: str


COLUMNS = [
    Column("model", "Model", "text", "asc", "timm model name (and the paper's name)"),
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
    Column("num_params", "Parameters", "count", "asc", "number of parameters"),
    Column("precision", "Precision", "text", "asc", "numeric precision of the evaluation"),
    Column("input", "Input", "count", "desc", "input height x width after preprocessing"),
]


def _uncommon_accuracy(partitions: dict) -> float | None:
    """A(P1 ∪ P2 ∪ P3) from the partitions' counts."""
    n = sum(partitions[name]["n"] for name in UNCOMMON_PARTITIONS)
    return sum(partitions[name]["correct"] for name in UNCOMMON_PARTITIONS) / n if n else None


def leaderboard_rows(accepted: Sequence[Verification]) -> list[dict]:
    """One row per accepted submission, from the recomputed metrics only; best accuracy first."""
    rows = []
    for verification in accepted:
        metadata, metrics = verification.metadata, verification.recomputed
        intervals = {name: (metrics["partitions"][name]["ci_low"], metrics["partitions"][name]["ci_high"])
                     for name in COUNT_PARTITIONS} | {
            name: (metrics[name]["ci_low"], metrics[name]["ci_high"]) for name in GAPS
        }
        _, height, width = metadata["input_size"]
        rows.append({
            "submission": verification.submission.name,
            "model": metadata["model"],
            "paper_name": metadata.get("paper_name"),
            "name": display_name(metadata),
            "protocol": protocol_of(metadata),
            "values": headline(metrics) | {"num_params": metadata["num_params"], "precision": metadata["precision"],
                                           "input": height * width, "model": display_name(metadata)},
            "intervals": intervals,
            "input_size": f"{height}×{width}",
            "mapping": metadata["mapping"] or "FOCUS head",
            "preprocessing": preprocessing_text(metadata),
            "n": metrics["n"],
            "common": metrics["partitions"]["P0"]["accuracy"],
            "uncommon": _uncommon_accuracy(metrics["partitions"]),
        })
    return sorted(rows, key=lambda row: (-(row["values"]["accuracy"] or 0.0), row["name"]))


def preprocessing_text(metadata: dict) -> str:
    """A submission's preprocessing in a few words.

    >>> preprocessing_text({"preprocessing": {"protocol": "paper", "custom": False, "input_size": [3, 224, 224],
    ...                                       "resize": 224, "interpolation": "bilinear"}})
    'paper: resize 224, crop 224×224, bilinear'
    >>> preprocessing_text({"schema_version": 1, "input_size": [3, 224, 224]})
    'timm data config (not recorded)'
    """
    preprocessing = metadata.get("preprocessing")
    if not isinstance(preprocessing, dict):
        return f"{preprocessing_kind(metadata)} data config (not recorded)"
    settings = []
    if preprocessing.get("resize") is not None:
        resize = preprocessing["resize"]
        settings.append(f"resize {'×'.join(map(str, resize)) if isinstance(resize, list) else resize}")
    if isinstance(preprocessing.get("input_size"), list):
        settings.append(f"crop {'×'.join(map(str, preprocessing['input_size'][1:]))}")
    if preprocessing.get("interpolation"):
        settings.append(str(preprocessing["interpolation"]))
    kind = preprocessing["protocol"] + (", custom" if preprocessing.get("custom") else "")
    return kind + (": " + ", ".join(settings) if settings else "")


def ranked_tables(rows: list[dict]) -> list[tuple[Protocol, list[dict]]]:
    """The rows split by protocol, each list ranked on its own; the paper's table is shown even when empty."""
    tables = [(protocol, [row for row in rows if row["protocol"] == protocol]) for protocol in PROTOCOLS]
    return [(protocol, members) for protocol, members in tables if members or protocol == PROTOCOLS[0]]


def _percent(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}"


def _interval(bounds: tuple[float | None, float | None]) -> str:
    low, high = bounds
    return "" if low is None or high is None else f"[{_percent(low, 1)}, {_percent(high, 1)}]"


def _parameters(count: int) -> str:
    return f"{count / 1e6:.2f} M" if count >= 1e5 else f"{count:,}"


def _cell_text(row: dict, column: Column) -> str:
    value = row["values"][column.key]
    if column.kind in ("percent", "gap"):
        return _percent(value)
    if column.key == "num_params":
        return _parameters(value)
    if column.key == "input":
        return row["input_size"]
    return str(value)


def _md(text: str) -> str:
    """Text safe in a Markdown table cell: no HTML, links, emphasis or column breaks."""
    text = html.escape(" ".join(str(text).split()), quote=False)
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", text)


def _lead(rows: list[dict], truth: GroundTruth) -> str:
    return (f"{len(rows)} model(s). Every number is recomputed from the submitted predictions against the "
            f"ground truth: {truth.num_images:,} images, dataset fingerprint {truth.fingerprint}.")


NOTES = ("Accuracies in %; gaps (G_t, G_w, G_l, gap_overall, gap_overall_paper) in percentage points, smaller is "
         "better, with 95% bootstrap intervals; partition accuracies with 95% Wilson intervals. P1, P2, P3: images "
         "with 1, 2, 3 uncommon attributes (time, weather, locations). gap_overall is A(P0) − A(P1 ∪ P2 ∪ P3); "
         "gap_overall_paper is A(P0) − A(P1 ∪ P2), the definition behind the paper's published overall gaps "
         "(P3 left out, footnote 2). n/a: no image in that group. "
         "Kattakinda & Feizi, FOCUS: Familiar Objects in Common and Uncommon Settings, ICML 2022.")


def _skipped_lines(skipped: Sequence[Verification], shown: int = 3) -> list[tuple[str, str]]:
    lines = []
    for verification in skipped:
        problems = verification.problems or ["could not be verified"]
        more = f" (and {len(problems) - shown} more)" if len(problems) > shown else ""
        lines.append((verification.submission.name, "; ".join(problems[:shown]) + more))
    return lines


def _markdown_table(rows: list[dict]) -> list[str]:
    lines = ["| # | " + " | ".join(column.title.replace("_", "\\_") for column in COLUMNS) + " |",
             "|---|" + "|".join("---" if column.kind == "text" else "---:" for column in COLUMNS) + "|"]
    for rank, row in enumerate(rows, 1):
        cells = []
        for column in COLUMNS:
            text = _md(_cell_text(row, column))
            if column.kind == "gap" and _interval(row["intervals"][column.key]):
                text += " " + _interval(row["intervals"][column.key])
            cells.append(text)
        lines.append(f"| {rank} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(rows: list[dict], skipped: Sequence[Verification], truth: GroundTruth) -> str:
    """The leaderboard as Markdown: one table per protocol, best accuracy first."""
    lines = ["# FOCUS leaderboard", "", _lead(rows, truth)]
    for protocol, members in ranked_tables(rows):
        lines += ["", f"## {_md(protocol.title)}", "", _md(protocol.description), ""]
        lines += _markdown_table(members) if members else ["No verified submission yet."]
    lines += ["", NOTES]
    if skipped:
        lines += ["", "## Not shown", "", "These submissions failed verification:", ""]
        lines += [f"- {_md(name)}: {_md(reason)}" for name, reason in _skipped_lines(skipped)]
    return "\n".join(lines) + "\n"


def _html_row(rank: int, row: dict) -> str:
    cells = []
    for column in COLUMNS:
        value = row["values"][column.key]
        data = "" if value is None else (value if column.kind == "text" else repr(value))
        text = html.escape(_cell_text(row, column))
        if column.key == "model":
            text = html.escape(row["paper_name"] or row["model"])
            if row["paper_name"]:
                text += f'<span class="sub">{html.escape(row["model"])}</span>'
            text += (f'<span class="sub">{row["n"]:,} images, {html.escape(row["mapping"])}, '
                     f'{html.escape(row["preprocessing"])}</span>')
        elif column.key in row["intervals"] and _interval(row["intervals"][column.key]):
            text += f'<span class="ci">{_interval(row["intervals"][column.key])}</span>'
        cells.append(f'<td data-value="{html.escape(str(data))}">{text}</td>')
    return (f'<tr data-rank="{rank}" data-submission="{html.escape(row["submission"])}">'
            + "".join(cells) + "</tr>")


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
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line class="axis" x1="{x(tick):.1f}" y1="{top - 8}" x2="{x(tick):.1f}" y2="{bottom}"/>'
                     f'<text x="{x(tick):.1f}" y="{bottom + 16}" text-anchor="middle">{tick:.0%}</text>')
    for i, row in enumerate(rows):
        y = top + step * i + step / 2
        label = row["paper_name"] or row["model"]
        label = label if len(label) <= 36 else label[:35] + "…"
        common, uncommon = row["common"], row["uncommon"]
        summary = (f"{row['name']}: common {_percent(common)}%, uncommon {_percent(uncommon)}%, "
                   f"gap_overall {_percent(row['values']['gap_overall'])} points")
        parts.append(f'<g data-submission="{html.escape(row["submission"])}"><title>{html.escape(summary)}</title>'
                     f'<text x="{left - 10}" y="{y + 4:.1f}" text-anchor="end">{html.escape(label)}</text>')
        if common is not None and uncommon is not None:
            parts.append(f'<line class="gap" x1="{x(uncommon):.1f}" y1="{y:.1f}" x2="{x(common):.1f}" y2="{y:.1f}"/>')
        for value, kind in ((uncommon, "uncommon"), (common, "common")):
            if value is not None:
                parts.append(f'<circle class="{kind}" cx="{x(value):.1f}" cy="{y:.1f}" r="6"/>')
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def _html_section(protocol: Protocol, rows: list[dict]) -> str:
    """A protocol's table and chart; the paper's table has the id "leaderboard"."""
    table_id = "leaderboard" if protocol == PROTOCOLS[0] else f"leaderboard-{protocol.key}"
    header = "\n".join(
        f'<th data-key="{column.key}" data-type="{"text" if column.kind == "text" else "number"}" '
        f'data-order="{column.order}" aria-sort="{"descending" if column.key == "accuracy" else "none"}" '
        f'title="{html.escape(column.help)}"><button type="button">{html.escape(column.title)}</button></th>'
        for column in COLUMNS)
    body = "\n".join(_html_row(rank, row) for rank, row in enumerate(rows, 1))
    return (f'<section class="protocol" id="{protocol.key}">\n<h2>{html.escape(protocol.title)}</h2>\n'
            f'<p class="muted">{html.escape(protocol.description)}</p>\n'
            f'<div class="scroll">\n<table id="{table_id}" class="board">\n<thead><tr>\n{header}\n</tr></thead>\n'
            f"<tbody>\n{body}\n</tbody>\n</table>\n</div>\n"
            f"<h3>Common against uncommon settings</h3>\n<p class=\"muted\">Accuracy on P0 (no uncommon attribute) "
            f"and on P1 &cup; P2 &cup; P3 (at least one); the line between them is the overall gap.</p>\n"
            f"{common_uncommon_chart(rows)}\n</section>")


def render_html(rows: list[dict], skipped: Sequence[Verification], truth: GroundTruth) -> str:
    """The leaderboard as one self-contained page (inline CSS, JS and SVG, nothing fetched): a table per protocol."""
    skipped_html = ""
    if skipped:
        items = "\n".join(f"<li><code>{html.escape(name)}</code>: {html.escape(reason)}</li>"
                          for name, reason in _skipped_lines(skipped))
        skipped_html = (f'<section class="skipped" id="skipped"><h2>Not shown</h2>'
                        f"<p>These submissions failed verification:</p><ul>\n{items}\n</ul></section>")
    template = string.Template(TEMPLATE_PATH.read_text())
    return template.substitute(
        lead=html.escape(_lead(rows, truth)),
        sections="\n\n".join(_html_section(protocol, members) for protocol, members in ranked_tables(rows)),
        notes=html.escape(NOTES),
        skipped=skipped_html,
    )


MARKDOWN_FILE = "leaderboard.md"
HTML_FILE = "index.html"


# How render knows its own pages, the only files in OUT that it replaces: how each begins.
_SIGNATURES = {MARKDOWN_FILE: "# FOCUS leaderboard\n",
               HTML_FILE: "<!DOCTYPE html>\n<!-- Written by `focus-leaderboard render`"}


def _check_out(out: Path, folders: Sequence[Path]) -> None:
    """Refuse an OUT inside a submission, and pages in OUT that render did not write."""
    resolved = out.resolve()
    inside = [folder for folder in folders if folder.resolve() in resolved.parents]
    if inside:
        raise LeaderboardError(f"{out}: lies inside the submission folder {inside[0]}; write the site outside every "
                               f"submission")
    for name, signature in _SIGNATURES.items():
        path = out / name
        if os.path.lexists(path) and not _written_by_render(path, signature):
            raise LeaderboardError(f"{path}: not a page that render wrote; render replaces only its own "
                                   f"{MARKDOWN_FILE} and {HTML_FILE} (move it, or choose another OUT)")


def _written_by_render(path: Path, signature: str) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    with open(path, "rb") as file:
        return file.read(len(signature.encode())) == signature.encode()


def _write_files(out: Path, files: dict[str, str]) -> None:
    """Each file is complete or absent: written to a temporary name beside it, then renamed."""
    out.mkdir(parents=True, exist_ok=True)
    staged = []
    try:
        for name, text in files.items():
            staged.append((outputs.write_new_file(out, f".{name}.", text), out / name))
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def render(
    submissions_dir: str | os.PathLike,
    out: str | os.PathLike,
    truth: GroundTruth,
    *,
    strict: bool = False,
    limits: Limits = Limits(),
    now: datetime | None = None,
) -> list[Verification]:
    """Verify every submission folder and write OUT/leaderboard.md and OUT/index.html; return the verifications.

    Submissions that fail verification are left out and listed under "Not shown". With `strict`, any
    such submission stops the render before anything is written. Files in OUT that render did not
    write are never replaced.
    """
    submissions_dir, out = Path(submissions_dir), Path(out)
    if not submissions_dir.is_dir():
        raise LeaderboardError(f"{submissions_dir}: not a folder; pass the folder that holds the submission folders")
    # Hidden folders and OUT itself (when it sits among the submissions) are not submissions.
    folders = sorted(p for p in submissions_dir.iterdir()
                     if p.is_dir() and not p.name.startswith(".") and p.resolve() != out.resolve())
    _check_out(out, folders)
    verifications = [verify(folder, truth, limits=limits, now=now) for folder in folders]
    skipped = [v for v in verifications if not v.accepted]
    if strict and skipped:
        raise StrictRenderError(skipped)
    rows = leaderboard_rows([v for v in verifications if v.accepted])
    _write_files(out, {MARKDOWN_FILE: render_markdown(rows, skipped, truth),
                       HTML_FILE: render_html(rows, skipped, truth)})
    return verifications
