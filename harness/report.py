"""The run report: the paper's tables (Markdown) and figures (PNG) over every model of a run.

Everything here reads the metric's output (metrics.json, see
metrics/focus_generalization/README.md) and lays it out; no number is recomputed. Accuracies and
gaps are fractions in metrics.json and percent in the report, rounded to ACCURACY_DECIMALS and
GAP_DECIMALS, so a reader can check every cell against metrics.json.

    python -m harness.report RUN_DIR      # (re)write RUN_DIR/report.md and RUN_DIR/figures/
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import matplotlib
import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch

import focus_dataset
from focus_tools import command
from harness import paper
from harness import results as results_table
from harness.leaderboard import statistics
from harness.runfolder import (
    CONFIG_FILE,
    FAILED_FILE,
    FIGURES_DIR,
    METRICS_FILE,
    REPORT_FILE,
    RUN_FILE,
    model_slug,
    preprocessing_summary,
    read_json,
)

ACCURACY_DECIMALS = 2  # as Table 4
GAP_DECIMALS = 1
DASH = "—"  # any value that is undefined (no image) or not published

# Table 3's columns, then the two overall gaps: A(P0) - A(P1 u P2 u P3), and A(P0) - A(P1 u P2), which
# is what the paper's published overall gaps measure (footnote 2 leaves P3 out).
GAP_COLUMNS = {"G_t": "G_t (time)", "G_w": "G_w (weather)", "G_l": "G_l (locations)",
               "gap_overall": "overall gap (P1 ∪ P2 ∪ P3)", "gap_overall_paper": "overall gap as published (P1 ∪ P2)"}
# Table 4's columns, plus P(t,w,l) which the paper leaves out.
TABLE4_COLUMNS = list(focus_dataset.PARTITION_NAMES)
# Figure 3 and Figure 2: partitions by number of uncommon attributes.
COUNT_PARTITIONS = ["P0", *focus_dataset.PARTITION_GROUPS]

FIGURE3_FILE = "figure3_partitions.png"
ROBUSTNESS_FILE = "effective_robustness.png"
UNCOMMON_PARTITIONS = list(focus_dataset.PARTITION_GROUPS)  # P1, P2, P3
_COMMON_COLORMAP, _UNCOMMON_COLORMAP = matplotlib.colormaps["Blues"], matplotlib.colormaps["Oranges"]
_GAP_CELL_COLOR = "#e6e6e6"
_DPI = 120


@dataclasses.dataclass
class ModelResult:
    """One model of a run: its metrics.json, its config.json and what the report needs besides.

    `paper_name` is the paper's name for the model ("ResNet50"), to show the published numbers
    beside ours; `n_failed` counts the images that failed to decode and are left out of the metrics.
    """

    name: str
    metrics: dict[str, Any]
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    paper_name: str | None = None
    n_failed: int = 0

    @property
    def weights(self) -> str | None:
        """Where the weights came from: "hub-cache", "checkpoint:<path>", "random-init" or None."""
        return self.config.get("weights")

    @property
    def random_init(self) -> bool:
        """True for a model with random, untrained weights (--random-init)."""
        return bool(self.config.get("random_init")) or self.weights == "random-init"

    @property
    def row(self) -> dict[str, Any]:
        """The model's row of the results table (harness.results)."""
        return results_table.result_row(self.config | {"model": self.name}, self.metrics, self.n_failed)

    @property
    def label(self) -> str:
        """The model's name in legends and titles, with random weights said plainly."""
        return f"{self.name} (random weights)" if self.random_init else self.name


def figure2_file(model_name: str) -> str:
    return f"figure2_{model_slug(model_name)}.png"


def heatmaps_file(model_name: str) -> str:
    return f"heatmaps_{model_slug(model_name)}.png"


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------

def render_report(
    results: Sequence[ModelResult],
    *,
    title: str = "FOCUS evaluation report",
    run_info: dict[str, Any] | None = None,
    figures_dir: str | None = None,
) -> str:
    """The report as Markdown: dataset and weights, Table 3, Table 4, P0-P3 and, optionally, figures.

    `run_info` is run.json's content (its data, dataset_fingerprint and num_images are used when
    present); `figures_dir`, relative to the report, links the figures that `write_figures` wrote.
    """
    if not results:
        raise ValueError("render_report needs at least one ModelResult, got none: evaluate a model first.")
    for result in results:
        if result.paper_name is not None:
            paper.published(result.paper_name)  # raises on a name the paper does not have
    rows, fit = results_rows(results)
    sections = [
        f"# {title}",
        _header(results, run_info or {}),
        "## Results\n\nOne row per model, best top-1 first (as in results.csv; accuracies and gaps in %, gaps "
        "smaller is better).\n\n" + results_table.markdown_results(rows),
        "## Models\n\n" + _models_table(results),
        "## Table 3: generalization gaps (%)\n\n"
        "G_a = accuracy on images whose attribute a has a common value − accuracy where it is uncommon "
        "(Equation 1), for time, weather and locations. Two overall gaps: A(P0) − A(P1 ∪ P2 ∪ P3), every image "
        "with an uncommon attribute, and A(P0) − A(P1 ∪ P2), the definition behind the paper's published "
        "overall gaps (its footnote 2 leaves P3 out), which is the one to compare with them. Frog has no "
        "uncommon time in the paper's table, so its own G_t is undefined (— in its heatmap) and G_t pools "
        "the other nine classes. Smaller is better.\n\n" + _gap_table(results),
        "## Table 4: top-1 accuracy per partition (%)\n\n"
        "P^A holds the images whose uncommon attributes are exactly A (t time, w weather, l locations); "
        "P0 has none.\n\n" + _partition_table(results, TABLE4_COLUMNS),
        "## Accuracy by number of uncommon attributes (%, Figure 3)\n\n"
        "P1, P2, P3: images with one, two, three uncommon attributes.\n\n"
        + _partition_table(results, COUNT_PARTITIONS, with_paper=False),
    ]
    if fit is not None:
        sections.append(_robustness_section(fit, figures_dir))
    if figures_dir is not None:
        sections.append(_figures_section(results, figures_dir))
    return "\n\n".join(sections) + "\n"


def results_rows(results: Sequence[ModelResult]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The results table's rows (best top-1 first), their effective robustness filled in, and its fit."""
    fit = effective_robustness(results)
    robustness = dict(zip(fit["models"], fit["effective_robustness"])) if fit else {}
    rows = [result.row | {"effective_robustness": robustness.get(result.name)} for result in results]
    return results_table.sort_rows(rows), fit


def _robustness_section(fit: dict[str, Any], figures_dir: str | None) -> str:
    lines = [
        "## Effective robustness",
        "",
        "Accuracy on uncommon settings (P1 ∪ P2 ∪ P3) against accuracy on common ones (P0), both logit-scaled, "
        f"with a line fitted in logit space over the {fit['n']} models (Taori et al. 2020): logit(uncommon) = "
        f"{fit['slope']:.3f} × logit(common) {fit['intercept']:+.3f}. A model's effective robustness is its "
        "uncommon accuracy minus the line's at its common accuracy (points; positive: more robust than its "
        "common accuracy predicts). The fit's inputs and coefficients are in results.json.",
        "",
        "| model | P0 (%) | P1 ∪ P2 ∪ P3 (%) | effective robustness (points) |",
        "|---|--:|--:|--:|",
    ]
    lines += [f"| `{name}` | {100 * common:.2f} | {100 * uncommon:.2f} | {100 * robustness:+.2f} |"
              for name, common, uncommon, robustness in zip(fit["models"], fit["common"], fit["uncommon"],
                                                             fit["effective_robustness"])]
    if figures_dir is not None:
        lines += ["", f"![Effective robustness: uncommon against common accuracy, logit axes]({figures_dir}/"
                      f"{ROBUSTNESS_FILE})"]
    return "\n".join(lines)


def _header(results: Sequence[ModelResult], run_info: dict[str, Any]) -> str:
    lines = [_dataset_line(results, run_info)]
    random = [result.name for result in results if result.random_init]
    if random:
        lines.append(
            f"**Random weights: {_names(random)}.** "
            f"{'This model was' if len(random) == 1 else 'These models were'} built with random, untrained "
            "weights (--random-init); the numbers test the pipeline and say nothing about the architecture."
        )
    else:
        lines.append("Weights: every model has trained weights (none is random).")
    lines.append(_settings_line(results))
    lines.append(
        "Bold marks the best value of a column among our models with trained weights (when two or more have "
        "one): the highest "
        f"accuracy, and the smallest gap, which means the least accuracy lost in uncommon settings. {DASH}: "
        "undefined (no image in the group) or not published."
    )
    if any(result.paper_name for result in results):
        stated = _names(paper.OVERALL_GAP, quote=False)
        lines.append(
            "Rows labelled *paper* give the published numbers (Kattakinda & Feizi, ICML 2022, Tables 3 and 4, "
            f"in percent as printed) for the model above them; the paper states the overall gap only for {stated}, "
            "as A(P0) − A(P1 ∪ P2). " + _paper_version_note(run_info.get("version"))
        )
    failed = [f"`{result.name}` {result.n_failed}" for result in results if result.n_failed]
    if failed:
        lines.append(
            f"Images that failed to decode, left out of the metrics: {', '.join(failed)} (listed in the "
            f"model's {FAILED_FILE})."
        )
    return "\n\n".join(lines)


def _dataset_line(results: Sequence[ModelResult], run_info: dict[str, Any]) -> str:
    fingerprints = {result.name: result.config.get("dataset_fingerprint") for result in results}
    fingerprint = run_info.get("dataset_fingerprint")
    if fingerprint is None and len(set(fingerprints.values())) == 1:
        fingerprint = next(iter(fingerprints.values()))
    images = run_info.get("num_images")
    if images is None:
        seen = {result.metrics["n"] + result.n_failed for result in results}
        images = seen.pop() if len(seen) == 1 else None
    line = (
        f"Dataset: FOCUS, fingerprint `{fingerprint or DASH}`, "
        f"{DASH if images is None else f'{images:,}'} images"
    )
    if run_info.get("data"):
        line += f", from `{run_info['data']}`"
    line += "."
    subset = run_info.get("subset")
    if subset:
        drawn = "" if subset["how"] == "first" else f", drawn with seed {subset['seed']}"
        line += (f" A subset: --limit {subset['limit']} --subset {subset['how']} ({subset['how']} images by "
                 f"file_name{drawn}).")
    version = run_info.get("version")
    if version:
        line += (f" Closest published version of the release (by Table 1): the {version['version']:,}-image "
                 f"version ({version['description']}); Table 1 differs from it in {version['table1_differences']} "
                 f"cell(s), Table 2 in {version['table2_differences']}.")
    if len({value for value in fingerprints.values() if value is not None}) > 1:
        listed = ", ".join(f"`{name}` `{value}`" for name, value in fingerprints.items())
        line += f" **The models were scored on different data** ({listed}): their rows do not compare."
    return line


def _paper_version_note(version: dict[str, Any] | None) -> str:
    """Which data the paper's Tables 3 and 4 come from, and whether this run's data is that."""
    measured = f"They were measured on the {paper.MEASURED_ON:,}-image version of FOCUS"
    if version is None:
        return measured + "; this run did not record which version its data is."
    if version["version"] == paper.MEASURED_ON and not version["table1_differences"]:
        return measured + ", which is this run's data: the rows compare."
    if version["version"] == paper.MEASURED_ON:
        return (measured + f"; this run's data is closest to it but differs in {version['table1_differences']} "
                f"Table 1 cell(s) (a subset, a filter or another release): **the rows are a reference, not a "
                f"like-for-like comparison.**")
    return (measured + f"; this run's data is closest to the {version['version']:,}-image version: **the rows are a "
            f"reference, not a like-for-like comparison.**")


def _settings_line(results: Sequence[ModelResult]) -> str:
    """How the intervals and G_l were computed (the metric's config), said once when all models agree."""
    configs = {result.name: result.metrics["config"] for result in results}

    def describe(config: dict[str, Any]) -> str:
        return (
            f"{config['confidence']:.0%} intervals: Wilson score for accuracies, bootstrap percentile "
            f"({config['n_bootstrap']} replicates) for gaps; G_l counts {config['gap_unit']}s"
        )

    described = {name: describe(config) for name, config in configs.items()}
    if len(set(described.values())) == 1:
        text = next(iter(described.values())) + "."
    else:
        text = "The models differ in settings: " + "; ".join(f"`{n}`: {d}" for n, d in described.items()) + "."
    if any(config["gap_unit"] != "occurrence" for config in configs.values()):
        text += " The paper's Table 3 counts occurrences (an image once per location)."
    return text


def _models_table(results: Sequence[ModelResult]) -> str:
    top1 = _best(results, [result.metrics.get("top1") for result in results], ACCURACY_DECIMALS, smallest=False)
    top5 = _best(results, [result.metrics.get("top5") for result in results], ACCURACY_DECIMALS, smallest=False)
    rows = []
    for i, result in enumerate(results):
        if result.random_init:
            weights = "**random (untrained)**"
        else:
            weights = DASH if result.weights is None else f"`{result.weights}`"
            if result.config.get("sha256"):
                weights += f" sha256 `{result.config['sha256'][:12]}`"
        preprocessing = result.config.get("preprocessing")
        rows.append([
            _row_label(result),
            weights,
            DASH if preprocessing is None else preprocessing_summary(preprocessing),
            result.paper_name or DASH,
            str(result.metrics["n"]),
            str(result.n_failed),
            _percent(result.metrics.get("top1"), ACCURACY_DECIMALS, bold=i in top1),
            _percent(result.metrics.get("top5"), ACCURACY_DECIMALS, bold=i in top5),
        ])
    header = ["model", "weights", "preprocessing", "paper model", "images scored",
              "failed to decode (left out of the metrics)", "top-1 (%)", "top-5 (%)"]
    return _table(header, rows)


def _gap_table(results: Sequence[ModelResult]) -> str:
    best = {
        column: _best(results, [result.metrics[column]["value"] for result in results], GAP_DECIMALS, smallest=True)
        for column in GAP_COLUMNS
    }
    rows = []
    for i, result in enumerate(results):
        rows.append([_row_label(result)] + [
            _estimate(result.metrics[column], "value", GAP_DECIMALS, bold=i in best[column])
            for column in GAP_COLUMNS
        ])
        if result.paper_name:
            rows.append(_paper_row(result.paper_name, GAP_COLUMNS))
    return _table(["model", *GAP_COLUMNS.values()], rows)


def _partition_table(results: Sequence[ModelResult], columns: Sequence[str], with_paper: bool = True) -> str:
    best = {
        column: _best(results, [result.metrics["partitions"][column]["accuracy"] for result in results],
                      ACCURACY_DECIMALS, smallest=False)
        for column in columns
    }
    rows = []
    for i, result in enumerate(results):
        partitions = result.metrics["partitions"]
        rows.append([_row_label(result)] + [
            _estimate(partitions[column], "accuracy", ACCURACY_DECIMALS, bold=i in best[column])
            + f" (n={partitions[column]['n']})"
            for column in columns
        ])
        if with_paper and result.paper_name:
            rows.append(_paper_row(result.paper_name, columns))
    return _table(["model", *columns], rows)


def _figures_section(results: Sequence[ModelResult], figures_dir: str) -> str:
    lines = [
        "## Figures",
        "",
        f"![Figure 3: top-1 accuracy against partition, one line per model]({figures_dir}/{FIGURE3_FILE})",
    ]
    for result in results:
        lines += [
            "",
            f"### {result.label}",
            "",
            f"![Figure 2: class-wise accuracy per partition, {result.name}]({figures_dir}/{figure2_file(result.name)})",
            "",
            f"![Appendix E heatmaps: accuracy per class and setting, blue common, orange uncommon, {result.name}]"
            f"({figures_dir}/{heatmaps_file(result.name)})",
        ]
    return "\n".join(lines)


def _row_label(result: ModelResult) -> str:
    return f"`{result.name}` **random weights**" if result.random_init else f"`{result.name}`"


def _paper_row(paper_name: str, columns: Sequence[str]) -> list[str]:
    published = paper.published(paper_name)
    return [f"*paper* ({paper_name})"] + [
        DASH if published.get(column) is None else f"*{published[column]:g}*" for column in columns
    ]


def _best(results: Sequence[ModelResult], values: Sequence[float | None], decimals: int, smallest: bool) -> set[int]:
    """Rows holding the best value as shown (ties after rounding all count), among models with trained
    weights, since a random model's small gap is noise; none when fewer than two such values exist."""
    shown = [
        None if value is None or result.random_init else round(100 * value, decimals)
        for result, value in zip(results, values)
    ]
    present = [value for value in shown if value is not None]
    if len(present) < 2:
        return set()
    target = min(present) if smallest else max(present)
    return {i for i, value in enumerate(shown) if value == target}


def _percent(value: float | None, decimals: int, bold: bool = False) -> str:
    if value is None:
        return DASH
    text = f"{100 * value:.{decimals}f}"
    return f"**{text}**" if bold else text


def _estimate(record: dict[str, Any], key: str, decimals: int, bold: bool = False) -> str:
    """'value [ci_low, ci_high]' in percent, or a dash when the value is undefined."""
    if record[key] is None:
        return DASH
    return (
        f"{_percent(record[key], decimals, bold)} "
        f"[{_percent(record['ci_low'], decimals)}, {_percent(record['ci_high'], decimals)}]"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _names(names: Sequence[str], quote: bool = True) -> str:
    quoted = [f"`{name}`" if quote else name for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

def write_figures(results: Sequence[ModelResult], out_dir: str | Path) -> list[Path]:
    """Figure 3 over all models, then per model Figure 2 and the Appendix E heatmaps, as PNG files.

    Figures are drawn on matplotlib's Agg canvas through `Figure` objects, never pyplot, so no
    window opens and no global figure state is left behind.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [_save(_figure3(results), out_dir / FIGURE3_FILE)]
    fit = effective_robustness(results)
    if fit is not None:
        labels = {result.name: result.label for result in results}
        paths.append(_save(_effective_robustness_figure(fit, labels), out_dir / ROBUSTNESS_FILE))
    for result in results:
        paths.append(_save(_figure2(result), out_dir / figure2_file(result.name)))
        paths.append(_save(_heatmaps(result), out_dir / heatmaps_file(result.name)))
    return paths


def effective_robustness(results: Sequence[ModelResult]) -> dict[str, Any] | None:
    """The effective-robustness fit across a run's models (Taori et al. 2020), or None with fewer than three.

    Accuracy on uncommon settings (P1 ∪ P2 ∪ P3) against accuracy on common ones (P0), a line fitted
    in logit space over the models (harness.leaderboard.statistics.effective_robustness); each
    model's effective robustness is its vertical distance to the line, in accuracy. Models with either
    accuracy undefined are left out. Returns the fit with the models' names, in results' order.
    """
    names, common, uncommon = [], [], []
    for result in results:
        partitions = result.metrics["partitions"]
        n = sum(partitions[name]["n"] for name in UNCOMMON_PARTITIONS)
        if partitions["P0"]["accuracy"] is None or not n:
            continue
        names.append(result.name)
        common.append(partitions["P0"]["accuracy"])
        uncommon.append(sum(partitions[name]["correct"] for name in UNCOMMON_PARTITIONS) / n)
    if len(names) < statistics.MIN_FIT_MODELS or len(set(common)) < 2:
        return None
    return {"models": names, **statistics.effective_robustness(np.array(common), np.array(uncommon))}


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
    figure.savefig(path, dpi=_DPI)
    return path


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
    x = np.arange(len(COUNT_PARTITIONS))
    # Models are shifted a little sideways so that their error bars do not hide each other.
    offsets = np.linspace(-0.08, 0.08, len(results)) if len(results) > 1 else [0.0]
    for result, offset in zip(results, offsets):
        accuracy, error = _accuracy_bars([result.metrics["partitions"][name] for name in COUNT_PARTITIONS])
        axes.errorbar(x + offset, accuracy, yerr=error, marker="o", capsize=3, label=result.label)
    axes.set_xticks(x, COUNT_PARTITIONS)
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
    width = 0.8 / len(COUNT_PARTITIONS)
    colors = matplotlib.colormaps["plasma"](np.linspace(0.05, 0.8, len(COUNT_PARTITIONS)))
    for j, (name, color) in enumerate(zip(COUNT_PARTITIONS, colors)):
        accuracy, error = _accuracy_bars([per_class[class_name][name] for class_name in classes])
        # A partition with no image of a class gets no bar rather than a zero-height one.
        shown = ~np.isnan(accuracy)
        axes.bar(x[shown] + (j - (len(COUNT_PARTITIONS) - 1) / 2) * width, accuracy[shown], width,
                 yerr=error[:, shown], capsize=2, color=color, label=name, error_kw={"elinewidth": 0.8})
    axes.set_xticks(x, classes)
    axes.set_ylim(0, 105)
    axes.set_ylabel("top-1 accuracy (%)")
    axes.set_title(f"Figure 2: class-wise accuracy per partition, {result.label}; no bar: no image")
    axes.grid(axis="y", alpha=0.3)
    # Explicit handles: a partition with no bar at all would otherwise get a default colour. Outside
    # the axes, so that no bar hides behind it.
    figure.legend(handles=[Patch(color=color, label=name) for name, color in zip(COUNT_PARTITIONS, colors)],
                  loc="outside lower center", ncols=len(COUNT_PARTITIONS), fontsize="small")
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


# --------------------------------------------------------------------------------------------
# Run folder
# --------------------------------------------------------------------------------------------

def load_results(run_dir: str | Path) -> list[ModelResult]:
    """The models of a run folder that have a metrics.json: run.json's models, in its order (all without one)."""
    run_dir = Path(run_dir)
    folders = {path.parent.name: path.parent for path in run_dir.glob(f"*/{METRICS_FILE}")}
    if not folders:
        raise ValueError(
            f"No model results in {run_dir}: no */{METRICS_FILE} found. Point to a run folder the harness "
            "has finished at least one model in."
        )
    run_file = run_dir / RUN_FILE
    if not run_file.exists():
        return [_load_model(folders[slug]) for slug in sorted(folders)]
    # run.json lists the models of the run: a folder of some other or abandoned run is not reported.
    listed = read_json(run_file).get("models", [])
    return [_load_model(folders[model_slug(name)]) for name in listed if model_slug(name) in folders]


def _load_model(folder: Path) -> ModelResult:
    config_file, failed_file = folder / CONFIG_FILE, folder / FAILED_FILE
    config = read_json(config_file) if config_file.exists() else {}
    return ModelResult(
        name=config.get("model", folder.name),
        metrics=read_json(folder / METRICS_FILE),
        config=config,
        paper_name=config.get("paper_name"),
        n_failed=len(read_json(failed_file)) if failed_file.exists() else 0,
    )


def write_report(run_dir: str | Path, results: Sequence[ModelResult], run_info: dict[str, Any] | None = None) -> Path:
    """Write RUN_DIR/report.md and RUN_DIR/figures/*.png; return the report's path.

    `run_info` defaults to RUN_DIR/run.json when that exists.
    """
    run_dir = Path(run_dir)
    if run_info is None and (run_dir / RUN_FILE).exists():
        run_info = read_json(run_dir / RUN_FILE)
    write_figures(results, run_dir / FIGURES_DIR)
    path = run_dir / REPORT_FILE
    path.write_text(render_report(results, run_info=run_info, figures_dir=FIGURES_DIR))
    return path


class WrittenReport(NamedTuple):
    """What write_run_report wrote: report.md's path and text, and the results table as printed."""

    path: Path
    markdown: str
    table: str


def write_run_report(run_dir: str | Path) -> WrittenReport:
    """A run folder's report.md, figures, results.csv and results.json, from what the folder holds."""
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    run_info = read_json(run_dir / RUN_FILE) if (run_dir / RUN_FILE).exists() else None
    rows, fit = results_rows(results)
    _write_text(run_dir / results_table.RESULTS_CSV, results_table.results_csv(rows))
    _write_text(run_dir / results_table.RESULTS_JSON, results_table.results_json(rows, fit))
    path = write_report(run_dir, results, run_info)
    return WrittenReport(path, path.read_text(), results_table.format_results(rows))


def _write_text(path: Path, text: str) -> None:
    """Written to a temporary name beside it, then renamed: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    command.set_up_logging()
    parser = command.parser("focus-report", "Redraw a FOCUS run's report.md, figures and results table from its "
                                            "metrics (nothing is evaluated again).")
    parser.add_argument("run_positional", nargs="?", metavar="RUN", help="the same as --run")
    parser.add_argument("--run", help="a run folder written by focus-eval")
    args = parser.parse_args(argv)
    run_dir = command.one_of(parser, args.run_positional, args.run, "RUN or --run")
    try:
        written = write_run_report(run_dir)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(written.markdown)
    print(written.table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
