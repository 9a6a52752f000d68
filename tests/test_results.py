"""Tests of harness/results.py (results.csv, results.json, the printed table, the tables' cells) and
harness/run_results.py (the run's order, weights named, figure file names)."""

import csv
import doctest
import io
import json

import pytest

from harness import results as results_table
from harness import run_results
from harness.run_results import ModelResult
from harness.scoring import load_metric_module
from test_report import _metrics

wilson_interval = load_metric_module().wilson_interval


@pytest.fixture(scope="module")
def models() -> list[ModelResult]:
    return [
        ModelResult("b_model", _metrics(0.6, seed=1), {"model": "b_model", "weights": "hub-cache",
                                                       "images_per_second": 123.45, "num_params": 25_000_000}),
        ModelResult("a_model", _metrics(0.8, seed=2), {"model": "a_model", "weights": "checkpoint:/x/y/a.pth"}),
    ]


def _csv_rows(models) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(results_table.results_csv(results_table.sort_rows(
        [model.row for model in models])))))


def test_results_csv_gives_every_estimate_in_percent_with_its_interval_and_unit(models):
    rows = _csv_rows(models)
    assert [row["model"] for row in rows] == ["a_model", "b_model"]  # best top-1 first
    for row, model in zip(rows, sorted(models, key=lambda m: -m.metrics["top1"])):
        metrics = model.metrics
        for name in results_table.PARTITIONS:
            record = metrics["partitions"][name]
            for key, column in (("accuracy", name), ("ci_low", f"{name}_ci_low"), ("ci_high", f"{name}_ci_high")):
                expected = "" if record[key] is None else f"{100 * record[key]:.2f}"
                assert row[f"{column} (%)"] == expected, (name, key)
        for name in ("G_t", "gap_overall_paper"):
            for key, column in (("value", name), ("ci_low", f"{name}_ci_low"), ("ci_high", f"{name}_ci_high")):
                assert row[f"{column} (pp)"] == f"{100 * metrics[name][key]:.2f}", (name, key)
    assert rows[1]["images_per_second (img/s)"] == "123.45" and rows[1]["num_params"] == "25000000"


def test_top1_and_top5_get_wilson_intervals_at_the_metrics_confidence(models):
    model = models[0]
    row = model.row
    n, confidence = model.metrics["n"], model.metrics["config"]["confidence"]
    for name in ("top1", "top5"):
        low, high = wilson_interval(round(model.metrics[name] * n), n, confidence)
        assert (row[f"{name}_ci_low"], row[f"{name}_ci_high"]) == pytest.approx((low, high))
        assert row[f"{name}_ci_low"] < row[name] < row[f"{name}_ci_high"]


def test_negative_gaps_stay_numbers_in_a_spreadsheet(models):
    row = models[0].row | {"G_t": -0.0512, "G_t_ci_low": -0.2}
    (written,) = csv.DictReader(io.StringIO(results_table.results_csv([row])))
    assert written["G_t (pp)"] == "-5.12" and written["G_t_ci_low (pp)"] == "-20.00"  # no leading apostrophe


def test_undefined_estimates_are_empty_cells(models):
    row = models[0].row | {"top5": None, "top5_ci_low": None, "top5_ci_high": None}
    (written,) = csv.DictReader(io.StringIO(results_table.results_csv([row])))
    assert written["top5 (%)"] == written["top5_ci_low (%)"] == written["top5_ci_high (%)"] == ""
    assert models[0].metrics["partitions"]["P3"]["n"] == 0  # the fixture's empty partition
    assert _csv_rows(models)[0]["P3 (%)"] == ""


def test_results_json_keeps_fractions_and_says_its_units(models):
    rows = results_table.sort_rows([model.row for model in models])
    saved = json.loads(results_table.results_json(rows))
    assert saved["columns"] == results_table.COLUMNS
    assert saved["rows"][0]["top1"] == models[1].metrics["top1"]  # a fraction, as metrics.json
    assert saved["units"]["top1"] == "fraction (results.csv: %)"
    assert saved["units"]["G_t_ci_high"] == "difference of fractions (results.csv: pp)"
    assert saved["units"]["images_per_second"] == "images per second"
    assert set(saved["units"]) == set(results_table.PERCENT_COLUMNS) | {"images_per_second"}


def test_the_csv_header_names_each_columns_unit():
    header = next(csv.reader(io.StringIO(results_table.results_csv([]))))
    assert header[:2] == ["model", "paper_name"]
    assert {"top1 (%)", "top1_ci_low (%)", "P(t,w,l)_ci_high (%)", "G_l (pp)", "gap_overall_ci_low (pp)",
            "effective_robustness (pp)", "images_per_second (img/s)", "n_images"} <= set(header)
    units = {name: header[results_table.COLUMNS.index(name)].removeprefix(name)
             for name in results_table.ESTIMATE_COLUMNS}
    assert set(units.values()) == {" (%)", " (pp)"}  # every estimate says its unit


def test_the_printed_table_sets_text_flush_left_and_numbers_flush_right(models):
    rows = results_table.sort_rows([model.row | {"input_size": [3, 224, 224], "preprocess": "paper"}
                                    for model in models])
    header, first, _ = results_table.format_results(rows).splitlines()
    at = header.index("input")
    assert first[at:].startswith("224x224")  # flush left under its header
    top1 = header.index("top1") + len("top1")
    assert first[:top1].endswith(f"{100 * rows[0]['top1']:.2f}")  # flush right under its header


def test_models_are_ordered_best_top1_first_then_by_name(models):
    tied = ModelResult("0_tied", models[1].metrics, {"model": "0_tied"})
    none = ModelResult("no_top1", dict(models[0].metrics, top1=None), {"model": "no_top1"})
    assert [m.name for m in run_results.ordered([none, *models, tied])] == ["0_tied", "a_model", "b_model",
                                                                            "no_top1"]


@pytest.mark.parametrize("module", [results_table, run_results])
def test_doctests_pass(module):
    assert doctest.testmod(module).failed == 0
