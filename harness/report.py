"""The run report: the paper's tables (Markdown, and Tables 3-4 as LaTeX) and figures over every model of a run.

Everything here reads the metric's output (metrics.json, see
metrics/focus_generalization/README.md) and lays it out; no number is recomputed. Accuracies and
gaps are fractions in metrics.json and percent in the report, rounded to ACCURACY_DECIMALS and
GAP_DECIMALS, so a reader can check every cell against metrics.json.

    python -m harness.report RUN_DIR      # (re)write RUN_DIR/report.md, table3.tex, table4.tex and figures/
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple, Sequence


from focus_tools import schema
from focus_common import commands as command
from focus_common.locks import folder_lock
from focus_common.messages import markdown_code, markdown_text
from focus_common.ownership import Written
from harness import paper
from harness.settings import FIGURE_MODES
from harness import results as results_table
from harness.results import Cell, Table, latex_table, markdown_table
from harness.run_results import (
    DASH,
    FIGURE3_FILE,
    ROBUSTNESS_FILE,
    ModelResult,
    figure2_file,
    heatmaps_file,
    load_results,
    ordered,
    robustness_fit,
    vector_files,
)
from harness.runfolder import FAILED_FILE, FIGURES_DIR, REPO_ROOT, REPORT_FILE, RUN_FILE, read_json, write_text

ACCURACY_DECIMALS = 2  # as Table 4
GAP_DECIMALS = 1

# Table 3's columns, then the two overall gaps: A(P0) - A(P1 u P2 u P3), and A(P0) - A(P1 u P2), which
# is what the paper's published overall gaps measure (footnote 2 leaves P3 out).
GAP_COLUMNS = {**{gap: f"{gap} ({attribute})" for attribute, gap in schema.GAP_NAMES.items()},
               "gap_overall": "overall gap (P1 ∪ P2 ∪ P3)",
               "gap_overall_paper": "overall gap as published (P1 ∪ P2)"}
# Table 4's columns, plus P(t,w,l) which the paper leaves out.
TABLE4_COLUMNS = list(schema.PARTITION_NAMES)
# Tables 3 and 4 as LaTeX, beside report.md.
TABLE3_TEX, TABLE4_TEX = "table3.tex", "table4.tex"


def render_report(
    results: Sequence[ModelResult],
    *,
    title: str = "FOCUS evaluation report",
    run_info: dict[str, Any] | None = None,
    figures_dir: str | None = None,
    latex: bool = False,
) -> str:
    """The report as Markdown: dataset and weights, Table 3, Table 4, P0-P3 and, optionally, figures.

    Every table and figure lists the models in one order, results.csv's (run_results.ordered): best top-1
    first, the paper's row under its model. `run_info` is run.json's content (its data, dataset_fingerprint
    and num_images are used when present); `figures_dir`, relative to the report, links the figures that
    `write_figures` wrote; `latex` links Tables 3 and 4 as LaTeX files beside the report (write_report).
    """
    if not results:
        raise ValueError("render_report needs at least one ModelResult, got none: evaluate a model first.")
    for result in results:
        if result.paper_name is not None:
            paper.published(result.paper_name)  # raises on a name the paper does not have
    results = ordered(results)
    rows, fit = results_rows(results)
    sections = [
        f"# {title}",
        _header(results, run_info or {}),
        "## Results\n\nOne row per model, best top-1 first, the order of every table and figure below (as in "
        "results.csv; accuracies and gaps in %, gaps smaller is better).\n\n" + results_table.markdown_results(rows),
        "## Models\n\n" + markdown_table(_models_table(results)),
        "## Table 3: generalization gaps (%)\n\n"
        "G_a = accuracy on images whose attribute a has a common value − accuracy where it is uncommon "
        "(Equation 1), for time, weather and locations. Two overall gaps: A(P0) − A(P1 ∪ P2 ∪ P3), every image "
        "with an uncommon attribute, and A(P0) − A(P1 ∪ P2), the definition behind the paper's published "
        "overall gaps (its footnote 2 leaves P3 out), which is the one to compare with them. "
        + _frog_note(results) + "Smaller is better." + _latex_link(TABLE3_TEX, latex) + "\n\n"
        + markdown_table(gap_table(results)),
        "## Table 4: top-1 accuracy per partition (%)\n\n"
        "P^A holds the images whose uncommon attributes are exactly A (t time, w weather, l locations); "
        "P0 has none." + _latex_link(TABLE4_TEX, latex) + "\n\n"
        + markdown_table(partition_table(results, TABLE4_COLUMNS)),
        "## Accuracy by number of uncommon attributes (%, Figure 3)\n\n"
        "P1, P2, P3: images with one, two, three uncommon attributes.\n\n"
        + markdown_table(partition_table(results, schema.COUNT_PARTITIONS, with_paper=False)),
    ]
    if fit is not None:
        sections.append(_robustness_section(fit, figures_dir))
    if figures_dir is not None:
        sections.append(_figures_section(results, figures_dir))
    return "\n\n".join(sections) + "\n"


def results_rows(results: Sequence[ModelResult]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The results table's rows (best top-1 first), their effective robustness filled in, and its fit (over the
    models in the same order)."""
    fit = robustness_fit(ordered(results))
    robustness = dict(zip(fit["models"], fit["effective_robustness"])) if fit else {}
    rows = [result.row | {"effective_robustness": robustness.get(result.name)} for result in results]
    return results_table.sort_rows(rows), fit


def _latex_link(name: str, latex: bool) -> str:
    return f" As LaTeX (booktabs): [{name}]({name})." if latex else ""


def _robustness_section(fit: dict[str, Any], figures_dir: str | None) -> str:
    table = Table(["model", "P0 (%)", "P1 ∪ P2 ∪ P3 (%)", "effective robustness (points)"], [
        [Cell(name, "model"), Cell(f"{100 * common:.2f}"), Cell(f"{100 * uncommon:.2f}"), Cell(f"{100 * er:+.2f}")]
        for name, common, uncommon, er in zip(fit["models"], fit["common"], fit["uncommon"],
                                              fit["effective_robustness"])], "lrrr")
    lines = [
        "## Effective robustness",
        "",
        "Accuracy on uncommon settings (P1 ∪ P2 ∪ P3) against accuracy on common ones (P0), both logit-scaled, "
        f"with a line fitted in logit space over the {fit['n']} models (Taori et al. 2020): logit(uncommon) = "
        f"{fit['slope']:.3f} × logit(common) {fit['intercept']:+.3f}. A model's effective robustness is its "
        "uncommon accuracy minus the line's at its common accuracy (points; positive: more robust than its "
        "common accuracy predicts). The fit's inputs and coefficients are in results.json.",
        "",
        markdown_table(table),
    ]
    if figures_dir is not None:
        lines += ["", _figure(figures_dir, ROBUSTNESS_FILE, "Effective robustness",
                              "Accuracy on uncommon settings (P1 ∪ P2 ∪ P3) against accuracy on common ones (P0), "
                              "logit axes, one labelled point per model; solid: the fit above, dotted: y = x (no "
                              "accuracy lost); the vertical distance from a point to the fit is its effective "
                              "robustness.")]
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
        "accuracy, and the smallest gap, which means the least accuracy lost in uncommon settings. A best value "
        "that two or more models share as shown is a tie, and none of them is bold. "
        f"{DASH}: undefined (no image in the group) or not published."
    )
    if any(result.paper_name for result in results):
        stated = _names(paper.OVERALL_GAP, quote=False)
        lines.append(
            "Rows labelled *paper* give the published numbers (Kattakinda & Feizi, ICML 2022, Tables 3 and 4, "
            f"in percent as printed) for the model above them; the paper states the overall gap only for {stated}, "
            "as A(P0) − A(P1 ∪ P2). " + _paper_version_note(run_info.get("version"))
        )
    failed = [f"{markdown_code(result.name)} {result.n_failed}" for result in results if result.n_failed]
    if failed:
        lines.append(
            f"Images that failed to decode, left out of the metrics: {', '.join(failed)} (listed in the "
            f"model's {FAILED_FILE})."
        )
    return "\n\n".join(lines)


def _frog_note(results: Sequence[ModelResult]) -> str:
    """Why frog's own G_t is undefined, when it is for every model (the paper's uncommon table gives frog
    no uncommon time; a user's table may)."""
    frog_time_gaps = [result.metrics.get("per_class", {}).get("frog", {}).get("G_t") for result in results]
    if results and all(gap is None for gap in frog_time_gaps):
        return (f"No frog image has an uncommon time (the paper's table has none for frog), so frog's own G_t "
                f"is undefined ({DASH} in its heatmap) and G_t pools the other nine classes. ")
    return ""


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
        f"Dataset: FOCUS, fingerprint {markdown_code(fingerprint or DASH)}, "
        f"{DASH if images is None else f'{images:,}'} images"
    )
    if run_info.get("data"):
        line += f", from {markdown_code(run_info['data'])}"
    line += "."
    subset = run_info.get("subset")
    if subset:
        drawn = "" if subset["how"] == "first" else f", drawn with seed {subset['seed']}"
        line += (f" A subset: --limit {subset['limit']} --subset {subset['how']} ({subset['how']} images by "
                 f"file_name{drawn}).")
    version = run_info.get("version")
    if version:
        line += (f" Closest published version of the release (by Table 1): the {version['version']:,}-image "
                 f"version, {version['description']}; Table 1 differs from it in {version['table1_differences']} "
                 f"cell(s), Table 2 in {version['table2_differences']}.")
    if len({value for value in fingerprints.values() if value is not None}) > 1:
        listed = ", ".join(f"{markdown_code(name)} {markdown_code(value)}" for name, value in fingerprints.items())
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
        text = ("The models differ in settings: "
                + "; ".join(f"{markdown_code(n)}: {d}" for n, d in described.items()) + ".")
    if any(config["gap_unit"] != "occurrence" for config in configs.values()):
        text += " The paper's Table 3 counts occurrences (an image once per location)."
    return text


def _model_cell(result: ModelResult) -> Cell:
    return Cell(result.name, "random model" if result.random_init else "model")


def _models_table(results: Sequence[ModelResult]) -> Table:
    top1 = _best(results, [result.metrics.get("top1") for result in results], ACCURACY_DECIMALS, smallest=False)
    top5 = _best(results, [result.metrics.get("top5") for result in results], ACCURACY_DECIMALS, smallest=False)
    rows = []
    for i, result in enumerate(results):
        if result.random_init:
            weights = "**random (untrained)**"
        else:
            weights = DASH if result.weights is None else markdown_code(result.weights_name)
            if result.config.get("sha256"):
                weights += f" sha256 {markdown_code(str(result.config['sha256'])[:12])}"
        preprocessing = result.preprocessing
        rows.append([
            _model_cell(result),
            Cell(weights, "markdown"),
            Cell(DASH if preprocessing is None else preprocessing.summary()),
            Cell(result.paper_name or DASH),
            Cell(str(result.metrics["n"])),
            Cell(str(result.n_failed)),
            _number(result.metrics.get("top1"), ACCURACY_DECIMALS, bold=i in top1),
            _number(result.metrics.get("top5"), ACCURACY_DECIMALS, bold=i in top5),
        ])
    header = ["model", "weights", "preprocessing", "paper model", "images scored",
              "failed to decode (left out of the metrics)", "top-1 (%)", "top-5 (%)"]
    return Table(header, rows, "llllrrrr")


def gap_table(results: Sequence[ModelResult]) -> Table:
    """Table 3: each model's gaps with their intervals, the paper's row under its model."""
    best = {
        column: _best(results, [result.metrics[column]["value"] for result in results], GAP_DECIMALS, smallest=True)
        for column in GAP_COLUMNS
    }
    rows = []
    for i, result in enumerate(results):
        rows.append([_model_cell(result)] + [
            _estimate(result.metrics[column], "value", GAP_DECIMALS, bold=i in best[column]) for column in GAP_COLUMNS
        ])
        if result.paper_name:
            rows.append(_paper_row(result.paper_name, GAP_COLUMNS))
    return Table(["model", *GAP_COLUMNS.values()], rows, "l" + "r" * len(GAP_COLUMNS))


def partition_table(results: Sequence[ModelResult], columns: Sequence[str], with_paper: bool = True) -> Table:
    """Table 4 (or P0-P3): each model's accuracies with their intervals and images, the paper's row under its
    model."""
    best = {
        column: _best(results, [result.metrics["partitions"][column]["accuracy"] for result in results],
                      ACCURACY_DECIMALS, smallest=False)
        for column in columns
    }
    rows = []
    for i, result in enumerate(results):
        partitions = result.metrics["partitions"]
        rows.append([_model_cell(result)] + [
            _estimate(partitions[column], "accuracy", ACCURACY_DECIMALS, bold=i in best[column])._replace(
                n=partitions[column]["n"])
            for column in columns
        ])
        if with_paper and result.paper_name:
            rows.append(_paper_row(result.paper_name, columns))
    return Table(["model", *columns], rows, "l" + "r" * len(columns))


def _figure(figures_dir: str, png: str, alt: str, caption: str) -> str:
    """A figure as report.md shows it: the PNG, its caption beneath, and its vector files named."""
    vectors = ", ".join(f"[{name.rsplit('.', 1)[1].upper()}]({figures_dir}/{name})" for name in vector_files(png))
    return f"![{alt}]({figures_dir}/{png})\n\n{caption} Vector versions: {vectors}."


def _figures_section(results: Sequence[ModelResult], figures_dir: str) -> str:
    lines = [
        "## Figures",
        "",
        _figure(figures_dir, FIGURE3_FILE, "Figure 3: top-1 accuracy against partition, one line per model",
                "**Figure 3.** Top-1 accuracy (%) against the partition, P0 (no uncommon attribute) to P3 (three), "
                "one line per model; error bars: Wilson intervals."),
    ]
    for result in results:
        name = markdown_text(result.label)
        lines += [
            "",
            f"### {name}",
            "",
            _figure(figures_dir, figure2_file(result.name), f"Figure 2: class-wise accuracy per partition, {name}",
                    f"**Figure 2**, {name}. Class-wise top-1 accuracy (%) per partition, with Wilson intervals. "
                    "A flat bar on the axis is 0% (the class has images in that partition, none right); a grey × "
                    "means the class has no image in that partition."),
            "",
            _figure(figures_dir, heatmaps_file(result.name), f"Appendix E heatmaps: accuracy per class and "
                    f"setting, {name}",
                    f"**Appendix E heatmaps**, {name}. Accuracy per class (columns) and setting (rows), for time, "
                    "weather and locations: blue common settings, orange uncommon ones, darker for higher accuracy; "
                    "each cell gives the accuracy (%) and its n occurrences, a blank cell none. The last row of "
                    "each panel is the class's gap G (points), common − uncommon."),
        ]
    return "\n".join(lines)


def _paper_row(paper_name: str, columns: Sequence[str]) -> list[Cell]:
    printed = paper.printed(paper_name)
    return [Cell(paper_name, "paper label")] + [
        Cell(DASH) if printed.get(column) is None else Cell(printed[column], "paper") for column in columns
    ]


def _best(results: Sequence[ModelResult], values: Sequence[float | None], decimals: int, smallest: bool) -> set[int]:
    """The row holding the best value as shown, among models with trained weights, since a random model's small
    gap is noise; none when fewer than two such values exist, or when two or more rows share the best (a tie:
    ties at 0.00 are common on small or synthetic data, and bold on all of them would single out none)."""
    shown = [
        None if value is None or result.random_init else round(100 * value, decimals)
        for result, value in zip(results, values)
    ]
    present = [value for value in shown if value is not None]
    if len(present) < 2:
        return set()
    target = min(present) if smallest else max(present)
    best = {i for i, value in enumerate(shown) if value == target}
    return best if len(best) == 1 else set()


def _number(value: float | None, decimals: int, bold: bool = False) -> Cell:
    if value is None:
        return Cell(DASH)
    return Cell(f"{100 * value:.{decimals}f}", "best" if bold else "")


def _estimate(record: dict[str, Any], key: str, decimals: int, bold: bool = False) -> Cell:
    """The value in percent with its interval '[ci_low, ci_high]', or a dash when the value is undefined."""
    cell = _number(record[key], decimals, bold)
    if record[key] is None:
        return cell
    bounds = (_number(record[bound], decimals).value for bound in ("ci_low", "ci_high"))
    return cell._replace(interval="[{}, {}]".format(*bounds))


def _names(names: Sequence[str], quote: bool = True) -> str:
    quoted = [markdown_code(name) if quote else markdown_text(name) for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def write_figures(results: Sequence[ModelResult], out_dir: str | Path) -> list[Path]:
    """The report's figures as PNG, PDF and SVG files (harness/figures.py, which imports matplotlib only now)."""
    from harness import figures

    return figures.write_figures(results, out_dir)


def latex_tables(results: Sequence[ModelResult]) -> dict[str, str]:
    """Tables 3 and 4 as LaTeX files' text, by file name, the models in the report's order."""
    results = ordered(results)
    confidences = {result.metrics["config"]["confidence"] for result in results}
    level = f"{confidences.pop():.0%} " if len(confidences) == 1 else ""
    marks = ("Bold: a column's single best among the models with trained weights; italic: the published numbers "
             "(Kattakinda & Feizi, ICML 2022).")
    gaps = ("Generalization gaps (%): accuracy on common minus uncommon settings of time, weather and locations "
            "(G_t, G_w, G_l, Equation 1), and the overall gaps A(P0) − A(P1 ∪ P2 ∪ P3) and A(P0) − A(P1 ∪ P2), "
            f"the one the paper published; smaller is better. Beneath each value its {level}bootstrap interval. ")
    accuracies = ("Top-1 accuracy (%) per partition: P0 holds the images with no uncommon attribute, P(t) to "
                  "P(t,w,l) those whose uncommon attributes are exactly the ones named (t time, w weather, l "
                  f"locations); n: images. Beneath each value its {level}Wilson interval. ")
    return {TABLE3_TEX: latex_table(gap_table(results), gaps + marks, "tab:focus-gaps"),
            TABLE4_TEX: latex_table(partition_table(results, TABLE4_COLUMNS), accuracies + marks,
                                    "tab:focus-partitions")}


def write_report(run_dir: str | Path, results: Sequence[ModelResult], run_info: dict[str, Any] | None = None, *,
                 figures: str = "now") -> Path:
    """Write RUN_DIR/report.md, Tables 3 and 4 as LaTeX beside it (table3.tex, table4.tex), and RUN_DIR/figures/
    with figures="now"; return the report's path.

    report.md links the figures unless figures="none" ("background": another process draws them).
    `run_info` defaults to RUN_DIR/run.json when that exists.
    """
    run_dir = Path(run_dir)
    if run_info is None and (run_dir / RUN_FILE).exists():
        run_info = read_json(run_dir / RUN_FILE)
    if figures == "now":
        draw_figures(run_dir, results)
    for name, text in latex_tables(results).items():
        write_text(run_dir / name, text)
    path = run_dir / REPORT_FILE
    write_text(path, render_report(results, run_info=run_info, latex=True,
                                   figures_dir=None if figures == "none" else FIGURES_DIR))
    return path


class WrittenReport(NamedTuple):
    """What write_run_report wrote: report.md's path and text, the results table as printed, and the process
    drawing the figures in the background (None when they are drawn already, or not at all)."""

    path: Path
    markdown: str
    table: str
    figures_process: subprocess.Popen | None = None


FIGURES_LOG = "figures.log"


def write_run_report(run_dir: str | Path, figures: str = "now") -> WrittenReport:
    """A run folder's report.md, results.csv and results.json, from what the folder holds, and its figures.

    `figures`: "now" draws them before returning; "background" leaves them to a process of their own
    (`focus-report --figures-only`), so that the results are out without waiting for matplotlib (its
    output goes to RUN/figures.log); "none" draws none and report.md links none. Written holding the run
    folder's lock: a focus-eval writing run.json or its own report waits, and is waited for.
    """
    if figures not in FIGURE_MODES:
        raise ValueError(f"--figures must be one of {list(FIGURE_MODES)}, got {figures!r}")
    run_dir = Path(run_dir)
    with folder_lock(run_dir, "a report writer (focus-eval or focus-report)", wait=True):
        return _write_run_report(run_dir, figures)


def _write_run_report(run_dir: Path, figures: str) -> WrittenReport:
    results = load_results(run_dir)
    run_info = read_json(run_dir / RUN_FILE) if (run_dir / RUN_FILE).exists() else None
    rows, fit = results_rows(results)
    write_text(run_dir / results_table.RESULTS_CSV, results_table.results_csv(rows))
    write_text(run_dir / results_table.RESULTS_JSON, results_table.results_json(rows, fit))
    path = write_report(run_dir, results, run_info, figures=figures)
    process = draw_figures_in_background(run_dir) if figures == "background" else None
    return WrittenReport(path, path.read_text(), results_table.format_results(rows), process)


def draw_figures_in_background(run_dir: Path) -> subprocess.Popen:
    """Start `focus-report --figures-only` on the run folder in a session of its own; it outlives the command.

    Called holding the run folder's lock (write_run_report), under which its log, RUN/figures.log, is recorded.
    """
    # The log is a fresh file (never written through a link), the drawer's own; the process finds this checkout's
    # harness whatever its working folder.
    written = Written(run_dir)
    written.replace(run_dir / FIGURES_LOG, "# focus-report --figures-only: the background figure drawer's log\n")
    written.record(run_dir / FIGURES_LOG, growing=True)
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                                             os.environ.get("PYTHONPATH")])))
    with open(run_dir / FIGURES_LOG, "ab") as output:
        return subprocess.Popen([sys.executable, "-m", "harness.report", "--figures-only", "--run",
                                 str(run_dir.resolve())], stdin=subprocess.DEVNULL, stdout=output,
                                stderr=subprocess.STDOUT, start_new_session=True, env=environment)


def draw_figures(run_dir: str | Path, results: Sequence[ModelResult] | None = None) -> list[Path]:
    """The run's figures (of `results`, by default the run's), drawn holding the figures folder's lock: two
    drawers take turns."""
    figures_dir = Path(run_dir) / FIGURES_DIR
    figures_dir.mkdir(parents=True, exist_ok=True)
    with folder_lock(figures_dir, "a figure drawer (focus-report)", wait=True):
        return write_figures(load_results(run_dir) if results is None else results, figures_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = command.parser("focus-report", "Redraw a FOCUS run's report.md, figures and results table from its "
                                            "metrics (nothing is evaluated again).")
    parser.add_argument("run_positional", nargs="?", metavar="RUN", help="the same as --run")
    parser.add_argument("--run", help="a run folder written by focus-eval (default: the RUN positional)")
    parser.add_argument("--figures-only", action="store_true",
                        help="draw the figures only (what focus-eval leaves to a background process)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run_dir = command.one_of(parser, args.run_positional, args.run, "RUN or --run")
    return command.run_command(lambda: redraw(run_dir, args.figures_only))


def redraw(run_dir: str, figures_only: bool) -> int:
    if figures_only:
        paths = draw_figures(run_dir)
        print(f"drew {len(paths)} figure(s) in {Path(run_dir) / FIGURES_DIR}")
        return 0
    written = write_run_report(run_dir)
    print(written.markdown)
    print(written.table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
