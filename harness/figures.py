"""The run report's figures: Figure 3, and per model Figure 2 and the Appendix E heatmaps, and the
effective-robustness chart across models; each as PNG (what report.md shows) with PDF and SVG beside it.

Kept apart from harness/report.py so that writing the report's text and results never imports
matplotlib: focus-eval draws the figures after its results are out (see report.write_run_report).
Figures are drawn on matplotlib's Agg canvas through `Figure` objects, never pyplot, so no window
opens and no global figure state is left behind.

Sized for a paper: a column (3.5 in) or the text width (7 in), every text at least FONT_SIZE points at that
size. A figure carries no "Figure N" title: its caption lives in report.md, under the image, as in a paper.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from focus_common.ownership import Written
from focus_tools import schema
from harness import runfolder
from harness.run_results import (
    DASH,
    FIGURE3_FILE,
    ROBUSTNESS_FILE,
    VECTOR_FORMATS,
    ModelResult,
    figure2_file,
    heatmaps_file,
    ordered,
    robustness_fit,
)

COLUMN_WIDTH, TEXT_WIDTH = 3.5, 7.0  # inches: a paper's column, and its full text width
FONT_SIZE = 8  # points, at those widths: the smallest text any figure holds
# Every text of a figure in FONT_SIZE points (nothing "small"); fonts embedded as TrueType, which journals accept.
STYLE = {**{key: FONT_SIZE for key in ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize",
                                       "ytick.labelsize", "legend.fontsize", "legend.title_fontsize",
                                       "figure.titlesize")},
         "pdf.fonttype": 42, "axes.linewidth": 0.6, "lines.linewidth": 1.2}
_COMMON_COLORMAP, _UNCOMMON_COLORMAP = matplotlib.colormaps["Blues"], matplotlib.colormaps["Oranges"]
_GAP_CELL_COLOR = "#e6e6e6"
_NO_IMAGE_COLOR = "0.45"
_DPI = 200  # the PNG: 700 pixels a column wide; print uses the PDF or SVG


def drawn_figures(results: Sequence[ModelResult]) -> Iterator[tuple[str, Figure]]:
    """Each figure with its PNG's file name, drawn in STYLE: Figure 3 over all models, the effective-robustness
    chart (three models or more), then per model Figure 2 and the Appendix E heatmaps, in the report's order."""
    for name, draw in _drawings(ordered(results)):
        with matplotlib.rc_context(STYLE):
            figure = draw()
            figure.draw_without_rendering()  # ticks and layout made now, in the style
        # The layout, once made, holds: each of the three files would otherwise make it again.
        figure.set_layout_engine("none")
        yield name, figure


def write_figures(results: Sequence[ModelResult], out_dir: str | Path) -> list[Path]:
    """The figures as PNG, PDF and SVG files in `out_dir`; returns the PNGs' paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [_save(figure, out_dir / name) for name, figure in drawn_figures(results)]


def _drawings(results: list[ModelResult]) -> Iterator[tuple[str, Callable[[], Figure]]]:
    yield FIGURE3_FILE, lambda: _figure3(results)
    fit = robustness_fit(results)
    if fit is not None:
        labels = {result.name: result.label for result in results}
        yield ROBUSTNESS_FILE, lambda: _effective_robustness_figure(fit, labels)
    for result in results:
        yield figure2_file(result.name), lambda result=result: _figure2(result)
        yield heatmaps_file(result.name), lambda result=result: _heatmaps(result)


def _save(figure: Figure, path: Path) -> Path:
    """The PNG, and its vector versions beside it, each written whole (as runfolder.save_figure writes PNGs)."""
    with matplotlib.rc_context(STYLE):
        runfolder.save_figure(figure, path, dpi=_DPI)
        written = Written(path.parent)
        for kind in VECTOR_FORMATS:
            written.replace(path.with_suffix(f".{kind}"), lambda staged, kind=kind: figure.savefig(staged, format=kind))
    return path


def _wrapped(label: str, width: int) -> str:
    """A label on lines of `width` characters at most: a long model name would run off a column-wide figure."""
    return "\n".join(textwrap.wrap(label, width, break_on_hyphens=False)) or label


def _effective_robustness_figure(fit: dict[str, Any], labels: dict[str, str]) -> Figure:
    """Uncommon against common accuracy on logit axes, the fitted line, and each model labelled with its distance to
    it."""
    figure = Figure(figsize=(COLUMN_WIDTH, COLUMN_WIDTH), layout="constrained")
    axes = figure.add_subplot()
    common, uncommon = np.clip(fit["common"], 1e-3, 1 - 1e-3), np.clip(fit["uncommon"], 1e-3, 1 - 1e-3)
    low, high = min(common.min(), uncommon.min()) * 0.8, 1 - (1 - max(common.max(), uncommon.max())) * 0.8
    line = np.linspace(low, high, 200)
    logit = np.log(line / (1 - line))
    axes.plot(line, 1 / (1 + np.exp(-(fit["intercept"] + fit["slope"] * logit))), color="grey", label="fit")
    axes.plot(line, line, color="grey", linestyle=":", label="y = x")
    middle = np.log(np.sqrt(low * high) / np.sqrt((1 - low) * (1 - high)))  # the middle of the logit axis
    for name, x, y, robustness in zip(fit["models"], common, uncommon, fit["effective_robustness"]):
        axes.scatter(x, y, s=14, zorder=3)
        # Labels point inwards, so that they stay inside the axes: below and right of a point in the left half,
        # above and left in the right half, away from the rising line either way.
        right = np.log(x / (1 - x)) < middle
        axes.annotate(f"{_wrapped(labels.get(name, name), 24)} ({100 * robustness:+.1f})", (x, y),
                      xytext=(4, -3) if right else (-4, 3), textcoords="offset points",
                      ha="left" if right else "right", va="top" if right else "bottom", linespacing=1.0,
                      bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    axes.set_xscale("logit")
    axes.set_yscale("logit")
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99) if low <= t <= high]
    axes.set_xticks(ticks, [f"{100 * t:g}%" for t in ticks])
    axes.set_yticks(ticks, [f"{100 * t:g}%" for t in ticks])
    axes.minorticks_off()
    axes.set_xlabel("accuracy, common settings (P0)")
    axes.set_ylabel("accuracy, uncommon settings (P1 ∪ P2 ∪ P3)")
    axes.legend(loc="upper left", handlelength=1.5, borderaxespad=0.3)
    return figure


def _accuracy_bars(records: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy in percent (NaN where undefined) and the Wilson interval as error bar lengths."""
    def column(key: str) -> np.ndarray:
        return np.array([np.nan if record[key] is None else 100 * record[key] for record in records])

    accuracy, low, high = column("accuracy"), column("ci_low"), column("ci_high")
    # Clipped because rounding can put a bound a hair on the wrong side, and matplotlib rejects
    # negative error bars.
    return accuracy, np.clip(np.stack([accuracy - low, high - accuracy]), 0, None)


def _figure3(results: Sequence[ModelResult]) -> Figure:
    rows = len(results) if any(len(result.label) > 30 for result in results) else (len(results) + 1) // 2
    figure = Figure(figsize=(COLUMN_WIDTH, 2.4 + 0.3 * rows), layout="constrained")
    axes = figure.add_subplot()
    x = np.arange(len(schema.COUNT_PARTITIONS))
    # Models are shifted a little sideways so that their error bars do not hide each other.
    offsets = np.linspace(-0.08, 0.08, len(results)) if len(results) > 1 else [0.0]
    for result, offset in zip(results, offsets):
        accuracy, error = _accuracy_bars([result.metrics["partitions"][name] for name in schema.COUNT_PARTITIONS])
        axes.errorbar(x + offset, accuracy, yerr=error, marker="o", markersize=3, capsize=2, elinewidth=0.8,
                      label=_wrapped(result.label, 40))
    axes.set_xticks(x, schema.COUNT_PARTITIONS)
    axes.set_xlabel("partition (number of uncommon attributes)")
    axes.set_ylim(0, 105)
    axes.set_ylabel("top-1 accuracy (%)")
    axes.grid(axis="y", alpha=0.3)
    figure.legend(loc="outside lower center", ncols=1 if rows == len(results) else 2)
    return figure


def _figure2(result: ModelResult) -> Figure:
    """Bars per class and partition, lighter than their whiskers; a 0% bar is a flat line on the axis, and a
    partition with no image of the class is a grey cross, so that neither reads as the other."""
    per_class = result.metrics["per_class"]
    classes = list(per_class)
    figure = Figure(figsize=(TEXT_WIDTH, 2.6), layout="constrained")
    axes = figure.add_subplot()
    x = np.arange(len(classes))
    width = 0.8 / len(schema.COUNT_PARTITIONS)
    colors = matplotlib.colormaps["plasma"](np.linspace(0.05, 0.8, len(schema.COUNT_PARTITIONS)))
    for j, (name, color) in enumerate(zip(schema.COUNT_PARTITIONS, colors)):
        accuracy, error = _accuracy_bars([per_class[class_name][name] for class_name in classes])
        at = x + (j - (len(schema.COUNT_PARTITIONS) - 1) / 2) * width
        shown = ~np.isnan(accuracy)
        axes.bar(at[shown], accuracy[shown], width, yerr=error[:, shown], color=to_rgba(color, 0.6), label=name,
                 edgecolor=color, linewidth=0.6, error_kw={"elinewidth": 0.8, "ecolor": color, "capsize": 1.5})
        zero = shown & (accuracy == 0)
        axes.hlines(np.zeros(zero.sum()), at[zero] - width / 2, at[zero] + width / 2, colors=[color], linewidth=2.5,
                    clip_on=False, zorder=3, gid="zero-accuracy")
        axes.plot(at[~shown], np.full((~shown).sum(), 3.0), linestyle="none", marker="x", markersize=4,
                  color=_NO_IMAGE_COLOR, gid="no-image")
    axes.set_xticks(x, classes)
    axes.set_xlim(-0.5, len(classes) - 0.5)
    axes.set_ylim(0, 105)
    axes.set_ylabel("top-1 accuracy (%)")
    axes.grid(axis="y", alpha=0.3)
    # Explicit handles: a partition with no bar at all would otherwise get a default colour. Outside
    # the axes, so that no bar hides behind it.
    handles = [Patch(facecolor=to_rgba(color, 0.6), edgecolor=color, label=name)
               for name, color in zip(schema.COUNT_PARTITIONS, colors)]
    handles += [Line2D([], [], color="0.3", linewidth=2.5, label="0% (flat bar)"),
                Line2D([], [], linestyle="none", marker="x", markersize=4, color=_NO_IMAGE_COLOR, label="no image")]
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), handlelength=1.5)
    return figure


def _heatmaps(result: ModelResult) -> Figure:
    """One panel per attribute, stacked: a column per class, a row per value and the class's gap last."""
    heatmaps = result.metrics["heatmaps"]
    heights = [len(heatmap["values"]) + 1 for heatmap in heatmaps.values()]  # + the gap row
    figure = Figure(figsize=(TEXT_WIDTH, 0.3 * sum(heights) + 1.4), layout="constrained")
    panels = figure.subplots(len(heatmaps), 1, sharex=True, gridspec_kw={"height_ratios": heights})
    for axes, (attribute, heatmap) in zip(panels, heatmaps.items()):
        _draw_heatmap(axes, attribute, heatmap)
    figure.legend(
        handles=[Patch(color=_COMMON_COLORMAP(0.6), label="common"),
                 Patch(color=_UNCOMMON_COLORMAP(0.6), label="uncommon"),
                 Patch(color=_GAP_CELL_COLOR, label="gap: the class's G (points), common − uncommon")],
        loc="outside lower center", ncols=3,
    )
    return figure


def _draw_heatmap(axes, attribute: str, heatmap: dict[str, Any]) -> None:
    """One value x class table: blue common, orange uncommon, darker for higher accuracy; the gap row last.

    Cell labels are left out of the layout: they sit inside the axes, and measuring hundreds of them
    took a third of the drawing time.
    """
    classes, values = heatmap["classes"], heatmap["values"]
    colors = np.ones((len(values) + 1, len(classes), 4))
    for column in range(len(classes)):
        for row in range(len(values)):
            accuracy, total = heatmap["accuracy"][column][row], heatmap["total"][column][row]
            if total == 0:
                continue
            colormap = _UNCOMMON_COLORMAP if heatmap["uncommon"][column][row] else _COMMON_COLORMAP
            shade = 0.15 + 0.7 * accuracy
            colors[row, column] = colormap(shade)
            axes.text(column, row, f"{100 * accuracy:.0f}%\nn={total}", ha="center", va="center", linespacing=1.0,
                      color="white" if shade > 0.6 else "black", in_layout=False)
        colors[-1, column] = to_rgba(_GAP_CELL_COLOR)
        gap = heatmap["gap"][column]
        axes.text(column, len(values), DASH if gap is None else f"{100 * gap:+.0f}", ha="center", va="center",
                  in_layout=False)
    axes.imshow(colors, aspect="auto", interpolation="nearest")
    axes.set_yticks(np.arange(len(values) + 1), [*values, "gap"])
    axes.set_xticks(np.arange(len(classes)), classes)
    axes.set_xticks(np.arange(len(classes) + 1) - 0.5, minor=True)
    axes.set_yticks(np.arange(len(values) + 2) - 0.5, minor=True)
    axes.grid(which="minor", color="white", linewidth=1)
    axes.tick_params(which="minor", length=0)
    axes.tick_params(which="major", length=2)
    axes.set_title(attribute, loc="left", pad=2)
