"""The run report's figures (PNG): Figure 3, and per model Figure 2 and the Appendix E heatmaps, and the
effective-robustness chart across models.

Kept apart from harness/report.py so that writing the report's text and results never imports
matplotlib: focus-eval draws the figures after its results are out (see report.write_run_report).
Figures are drawn on matplotlib's Agg canvas through `Figure` objects, never pyplot, so no window
opens and no global figure state is left behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib
import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from focus_tools import schema
from harness import runfolder
from harness.run_results import (
    DASH,
    FIGURE3_FILE,
    ROBUSTNESS_FILE,
    ModelResult,
    figure2_file,
    heatmaps_file,
    robustness_fit,
)

_COMMON_COLORMAP, _UNCOMMON_COLORMAP = matplotlib.colormaps["Blues"], matplotlib.colormaps["Oranges"]
_GAP_CELL_COLOR = "#e6e6e6"
_DPI = 120


def write_figures(results: Sequence[ModelResult], out_dir: str | Path) -> list[Path]:
    """Figure 3 over all models, the effective-robustness chart (three models or more), then per model
    Figure 2 and the Appendix E heatmaps, as PNG files in `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [_save(_figure3(results), out_dir / FIGURE3_FILE)]
    fit = robustness_fit(results)
    if fit is not None:
        labels = {result.name: result.label for result in results}
        paths.append(_save(_effective_robustness_figure(fit, labels), out_dir / ROBUSTNESS_FILE))
    for result in results:
        paths.append(_save(_figure2(result), out_dir / figure2_file(result.name)))
        paths.append(_save(_heatmaps(result), out_dir / heatmaps_file(result.name)))
    return paths


def _effective_robustness_figure(fit: dict[str, Any], labels: dict[str, str]) -> Figure:
    """Uncommon against common accuracy on logit axes, the fitted line, and each model's distance to it."""
    figure = Figure(figsize=(6.5, 5), layout="constrained")
    axes = figure.add_subplot()
    common, uncommon = np.clip(fit["common"], 1e-3, 1 - 1e-3), np.clip(fit["uncommon"], 1e-3, 1 - 1e-3)
    low, high = min(common.min(), uncommon.min()) * 0.8, 1 - (1 - max(common.max(), uncommon.max())) * 0.8
    line = np.linspace(low, high, 200)
    logit = np.log(line / (1 - line))
    axes.plot(line, 1 / (1 + np.exp(-(fit["intercept"] + fit["slope"] * logit))), color="grey",
              label=f"fit: logit(uncommon) = {fit['slope']:.2f} logit(common) {fit['intercept']:+.2f}")
    axes.plot(line, line, color="grey", linestyle=":", label="no loss (y = x)")
    for name, x, y, robustness in zip(fit["models"], common, uncommon, fit["effective_robustness"]):
        axes.scatter(x, y, zorder=3)
        axes.annotate(f"{labels.get(name, name)} ({100 * robustness:+.1f})", (x, y), fontsize=7,
                      xytext=(4, 4), textcoords="offset points")
    axes.set_xscale("logit")
    axes.set_yscale("logit")
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99) if low <= t <= high]
    axes.set_xticks(ticks, [f"{100 * t:g}%" for t in ticks])
    axes.set_yticks(ticks, [f"{100 * t:g}%" for t in ticks])
    axes.minorticks_off()
    axes.set_xlabel("accuracy on common settings, P0 (logit scale)")
    axes.set_ylabel("accuracy on uncommon settings, P1 ∪ P2 ∪ P3 (logit scale)")
    axes.set_title("Effective robustness: distance to the fit in points")
    axes.legend(fontsize="small", loc="upper left")
    return figure


def _save(figure: Figure, path: Path) -> Path:
    return runfolder.save_figure(figure, path, dpi=_DPI)


def _accuracy_bars(records: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy in percent (NaN where undefined) and the Wilson interval as error bar lengths."""
    def column(key: str) -> np.ndarray:
        return np.array([np.nan if record[key] is None else 100 * record[key] for record in records])

    accuracy, low, high = column("accuracy"), column("ci_low"), column("ci_high")
    # Clipped because rounding can put a bound a hair on the wrong side, and matplotlib rejects
    # negative error bars.
    return accuracy, np.clip(np.stack([accuracy - low, high - accuracy]), 0, None)


def _figure3(results: Sequence[ModelResult]) -> Figure:
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.add_subplot()
    x = np.arange(len(schema.COUNT_PARTITIONS))
    # Models are shifted a little sideways so that their error bars do not hide each other.
    offsets = np.linspace(-0.08, 0.08, len(results)) if len(results) > 1 else [0.0]
    for result, offset in zip(results, offsets):
        accuracy, error = _accuracy_bars([result.metrics["partitions"][name] for name in schema.COUNT_PARTITIONS])
        axes.errorbar(x + offset, accuracy, yerr=error, marker="o", capsize=3, label=result.label)
    axes.set_xticks(x, schema.COUNT_PARTITIONS)
    axes.set_xlabel("partition (number of uncommon attributes)")
    axes.set_ylim(0, 105)
    axes.set_ylabel("top-1 accuracy (%)")
    axes.set_title("Figure 3: accuracy against partition (error bars: Wilson intervals)")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize="small", loc="best")
    return figure


def _figure2(result: ModelResult) -> Figure:
    per_class = result.metrics["per_class"]
    classes = list(per_class)
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    axes = figure.add_subplot()
    x = np.arange(len(classes))
    width = 0.8 / len(schema.COUNT_PARTITIONS)
    colors = matplotlib.colormaps["plasma"](np.linspace(0.05, 0.8, len(schema.COUNT_PARTITIONS)))
    for j, (name, color) in enumerate(zip(schema.COUNT_PARTITIONS, colors)):
        accuracy, error = _accuracy_bars([per_class[class_name][name] for class_name in classes])
        # A partition with no image of a class gets no bar rather than a zero-height one.
        shown = ~np.isnan(accuracy)
        axes.bar(x[shown] + (j - (len(schema.COUNT_PARTITIONS) - 1) / 2) * width, accuracy[shown], width,
                 yerr=error[:, shown], capsize=2, color=color, label=name, error_kw={"elinewidth": 0.8})
    axes.set_xticks(x, classes)
    axes.set_ylim(0, 105)
    axes.set_ylabel("top-1 accuracy (%)")
    axes.set_title(f"Figure 2: class-wise accuracy per partition, {result.label}; no bar: no image")
    axes.grid(axis="y", alpha=0.3)
    # Explicit handles: a partition with no bar at all would otherwise get a default colour. Outside
    # the axes, so that no bar hides behind it.
    figure.legend(handles=[Patch(color=color, label=name) for name, color in zip(schema.COUNT_PARTITIONS, colors)],
                  loc="outside lower center", ncols=len(schema.COUNT_PARTITIONS), fontsize="small")
    return figure


def _heatmaps(result: ModelResult) -> Figure:
    heatmaps = result.metrics["heatmaps"]
    widths = [len(heatmap["values"]) + 1 for heatmap in heatmaps.values()]  # + the gap column
    figure = Figure(figsize=(0.8 * sum(widths) + 1.5, 5.8), layout="constrained")
    panels = figure.subplots(1, len(heatmaps), gridspec_kw={"width_ratios": widths})
    for i, (axes, (attribute, heatmap)) in enumerate(zip(panels, heatmaps.items())):
        _draw_heatmap(axes, attribute, heatmap, class_labels=i == 0)
    figure.suptitle(
        f"Appendix E heatmaps, {result.label}: accuracy per class and setting "
        "(shade and text: accuracy %, n occurrences; blank: none)"
    )
    figure.legend(
        handles=[Patch(color=_COMMON_COLORMAP(0.6), label="common"),
                 Patch(color=_UNCOMMON_COLORMAP(0.6), label="uncommon"),
                 Patch(color=_GAP_CELL_COLOR, label="gap: the class's G (%), common − uncommon")],
        loc="outside lower center", ncols=3, fontsize="small",
    )
    return figure


def _draw_heatmap(axes, attribute: str, heatmap: dict[str, Any], class_labels: bool) -> None:
    """One class x value table: blue common, orange uncommon, darker for higher accuracy; the gap column last.

    Cell labels are left out of the layout: they sit inside the axes, and measuring hundreds of them
    took a third of the drawing time.
    """
    classes, values = heatmap["classes"], heatmap["values"]
    colors = np.ones((len(classes), len(values) + 1, 4))
    for row in range(len(classes)):
        for column in range(len(values)):
            accuracy, total = heatmap["accuracy"][row][column], heatmap["total"][row][column]
            if total == 0:
                continue
            colormap = _UNCOMMON_COLORMAP if heatmap["uncommon"][row][column] else _COMMON_COLORMAP
            shade = 0.15 + 0.7 * accuracy
            colors[row, column] = colormap(shade)
            axes.text(column, row, f"{100 * accuracy:.0f}%\nn={total}", ha="center", va="center", fontsize=6.5,
                      color="white" if shade > 0.6 else "black", in_layout=False)
        colors[row, -1] = to_rgba(_GAP_CELL_COLOR)
        gap = heatmap["gap"][row]
        axes.text(len(values), row, DASH if gap is None else f"{100 * gap:+.0f}", ha="center", va="center",
                  fontsize=7, in_layout=False)
    axes.imshow(colors, aspect="auto")
    axes.set_xticks(np.arange(len(values) + 1), [*values, "gap"], rotation=35, ha="right")
    axes.set_yticks(np.arange(len(classes)), classes if class_labels else [])
    axes.set_xticks(np.arange(len(values) + 2) - 0.5, minor=True)
    axes.set_yticks(np.arange(len(classes) + 1) - 0.5, minor=True)
    axes.grid(which="minor", color="white", linewidth=1)
    axes.tick_params(which="minor", length=0)
    axes.set_title(attribute)
