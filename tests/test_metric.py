"""Tests of metrics/focus_generalization: the FOCUS evaluate metric."""

import ast
import doctest
import importlib
import io
import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from harness import scoring
from focus_tools import schema
from harness.scoring import load_metric_module

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
METRIC_DIR = REPO_ROOT / "metrics" / "focus_generalization"
METRIC_FILE = METRIC_DIR / "focus_generalization.py"
MATH_FILE = METRIC_DIR / "focus_metrics.py"


metric = load_metric_module()
compute = metric.compute_focus_metrics
TRUCK, CAR = 0, 1
DAY, NIGHT, NO_TIME = 0, 1, 2
RAINING, SUNNY, NO_WEATHER = 3, 5, 6
GRASS, STREET, SNOW, WATER, NO_LOCATION = 1, 5, 6, 7, 8

# Four cars (the metric card's example): P0, P(l), P(t), P(w,l); the second one is in the street
# (common) and in snow (uncommon), so G_l differs between the two gap units.
FOUR_CARS = {
    "predictions": [CAR, CAR, TRUCK, -1],
    "references": [CAR, CAR, CAR, CAR],
    "time": [DAY, DAY, NIGHT, DAY],
    "weather": [SUNNY, SUNNY, SUNNY, RAINING],
    "locations": [[STREET], [STREET, SNOW], [STREET], [SNOW]],
    "uncommon_time": [False, False, True, False],
    "uncommon_weather": [False, False, False, True],
    "uncommon_locations": [[], [SNOW], [], [SNOW]],
}
PARTITIONS = ["P0", "P1", "P2", "P3", "P(t)", "P(w)", "P(l)", "P(t,w)", "P(w,l)", "P(t,l)", "P(t,w,l)"]
Z95 = 1.959963984540054


def _images(rows):
    """Inputs from (prediction, reference, time, weather, locations, uncommon time, weather, locations)."""
    columns = list(zip(*rows))
    return dict(zip(FOUR_CARS, (list(column) for column in columns)))


def _random_inputs(n, seed, accuracy=0.7):
    """Consistent random inputs: flags follow the paper's uncommon table."""
    rng = np.random.default_rng(seed)
    references = rng.integers(10, size=n)
    times = rng.integers(3, size=n)
    weathers = rng.integers(7, size=n)
    locations = [
        sorted(rng.choice(8, size=k, replace=False).tolist()) or [NO_LOCATION]
        for k in rng.integers(4, size=n)
    ]
    masks = schema.uncommon_masks(schema.load_uncommon_table())

    def uncommon(attribute, class_id, value_id):
        return bool(masks[attribute][class_id, value_id])

    return {
        "predictions": np.where(rng.random(n) < accuracy, references, rng.integers(-1, 10, size=n)).tolist(),
        "references": references.tolist(),
        "time": times.tolist(),
        "weather": weathers.tolist(),
        "locations": locations,
        "uncommon_time": [uncommon("time", c, t) for c, t in zip(references, times)],
        "uncommon_weather": [uncommon("weather", c, w) for c, w in zip(references, weathers)],
        "uncommon_locations": [
            [place for place in places if uncommon("locations", c, place)]
            for c, places in zip(references, locations)
        ],
    }


@pytest.fixture(scope="module")
def loaded_metric():
    evaluate = pytest.importorskip("evaluate")
    return evaluate.load(str(METRIC_DIR))


# The module stands alone -------------------------------------------------------------------------


def test_label_lists_partitions_and_gap_names_match_the_schema():
    assert metric.CLASS_NAMES == schema.CLASS_NAMES
    assert metric.TIME_NAMES == schema.TIME_NAMES
    assert metric.WEATHER_NAMES == schema.WEATHER_NAMES
    assert metric.LOCATION_NAMES == schema.LOCATION_NAMES
    assert metric.PARTITION_NAMES == schema.PARTITION_NAMES
    assert metric.ATTRIBUTE_NAMES == schema.ATTRIBUTE_NAMES
    assert metric.PARTITIONS == schema.PARTITIONS
    assert metric.GAP_NAMES == schema.GAP_NAMES and metric.OVERALL_GAPS == schema.OVERALL_GAPS


def _imports(path):
    imported = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            assert len(node.names) == 1, f"{path.name} line {node.lineno} imports several modules"
            imported.append(node.names[0].name)
        elif isinstance(node, ast.ImportFrom):
            imported.append("." * node.level + (node.module or ""))
    return set(imported)


def test_metric_module_imports_one_library_per_line_and_nothing_from_the_project():
    assert _imports(METRIC_FILE) == {"datasets", "evaluate", ".focus_metrics"}
    assert _imports(MATH_FILE) == {"itertools", "numbers", "statistics", "typing", "numpy"}


def test_the_harness_computes_the_metric_without_importing_evaluate():
    script = ("import sys, numpy as np, pyarrow as pa; import harness.run; from harness import scoring; "
              "scoring.compute_metrics(pa.table({'prediction': [0], 'label': [0], 'time': [0], 'weather': [5], "
              "'locations': [[5]], 'uncommon_time': [False], 'uncommon_weather': [False], 'uncommon_locations': [[]], "
              "'correct': [True], 'top5_correct': [True]}), n_bootstrap=0); "
              "print(sorted(name for name in ('evaluate', 'transformers') if name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


# Hand-computed results ---------------------------------------------------------------------------


def test_output_has_the_documented_keys():
    results = compute(**FOUR_CARS, n_bootstrap=10, seed=0)
    assert list(results) == [
        "accuracy",
        "n",
        "correct",
        "partitions",
        "gap_overall",
        "gap_overall_paper",
        "G_t",
        "G_w",
        "G_l",
        "per_class",
        "heatmaps",
        "config",
    ]
    assert list(results["partitions"]) == PARTITIONS
    assert all(
        list(record) == ["accuracy", "n", "correct", "ci_low", "ci_high"]
        for record in results["partitions"].values()
    )
    assert all(
        list(results[gap]) == ["value", "ci_low", "ci_high"]
        for gap in ["gap_overall", "gap_overall_paper", "G_t", "G_w", "G_l"]
    )
    assert list(results["per_class"]) == schema.CLASS_NAMES
    assert list(results["per_class"]["car"]) == ["P0", "P1", "P2", "P3", "G_t", "G_w", "G_l"]
    assert list(results["heatmaps"]) == ["time", "weather", "locations"]
    assert list(results["heatmaps"]["time"]) == [
        "classes",
        "values",
        "correct",
        "total",
        "accuracy",
        "uncommon",
        "gap",
    ]
    assert results["config"] == {"gap_unit": "occurrence", "confidence": 0.95, "n_bootstrap": 10, "seed": 0}


def test_prediction_minus_one_counts_as_wrong():
    results = compute(**FOUR_CARS, n_bootstrap=0)
    assert (results["accuracy"], results["n"], results["correct"]) == (0.5, 4, 2)


def test_partitions_count_uncommon_attributes():
    partitions = compute(**FOUR_CARS, n_bootstrap=0)["partitions"]
    counts = {name: (record["n"], record["correct"]) for name, record in partitions.items()}
    assert counts == {
        "P0": (1, 1), "P1": (2, 1), "P2": (1, 0), "P3": (0, 0),
        "P(t)": (1, 0), "P(w)": (0, 0), "P(l)": (1, 1),
        "P(t,w)": (0, 0), "P(w,l)": (1, 0), "P(t,l)": (0, 0), "P(t,w,l)": (0, 0),
    }  # fmt: skip
    assert partitions["P1"]["accuracy"] == 0.5
    assert partitions["P2"]["accuracy"] == 0.0


def test_empty_partition_has_n_zero_and_null_accuracy_and_interval():
    assert compute(**FOUR_CARS, n_bootstrap=0)["partitions"]["P3"] == {
        "accuracy": None,
        "n": 0,
        "correct": 0,
        "ci_low": None,
        "ci_high": None,
    }


def test_three_uncommon_attributes_put_an_image_in_p3_and_p_t_w_l():
    inputs = _images([(CAR, CAR, NIGHT, RAINING, [SNOW], True, True, [SNOW])])
    partitions = compute(**inputs, n_bootstrap=0)["partitions"]
    assert partitions["P3"]["n"] == partitions["P(t,w,l)"]["n"] == 1
    assert partitions["P0"]["n"] == partitions["P1"]["n"] == partitions["P2"]["n"] == 0


def test_partition_interval_is_the_wilson_score_interval():
    # 5 of 10: the textbook Wilson interval (0.2366, 0.7634); 0 of 10: [0, z^2 / (n + z^2)].
    half_right = _images(
        [(CAR if i < 5 else TRUCK, CAR, DAY, SUNNY, [STREET], False, False, []) for i in range(10)]
    )
    record = compute(**half_right, n_bootstrap=0)["partitions"]["P0"]
    assert (record["ci_low"], record["ci_high"]) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    all_wrong = _images([(TRUCK, CAR, DAY, SUNNY, [STREET], False, False, [])] * 10)
    record = compute(**all_wrong, n_bootstrap=0)["partitions"]["P0"]
    assert record["ci_low"] == 0.0
    assert record["ci_high"] == pytest.approx(Z95**2 / (10 + Z95**2))


def test_higher_confidence_gives_wider_intervals():
    inputs = _random_inputs(300, seed=1)
    narrow = compute(**inputs, confidence=0.8, seed=0)
    wide = compute(**inputs, confidence=0.99, seed=0)
    for name in ["P0", "P1"]:
        assert wide["partitions"][name]["ci_low"] < narrow["partitions"][name]["ci_low"]
        assert wide["partitions"][name]["ci_high"] > narrow["partitions"][name]["ci_high"]
    assert wide["gap_overall"]["ci_low"] < narrow["gap_overall"]["ci_low"]
    assert wide["gap_overall"]["ci_high"] > narrow["gap_overall"]["ci_high"]


def test_gaps_by_occurrence_count_a_multi_location_image_once_per_location():
    results = compute(**FOUR_CARS, n_bootstrap=0)
    assert results["gap_overall"]["value"] == pytest.approx(1 - 1 / 3)  # P0: 1/1, P1-P3: 1/3
    assert results["G_t"]["value"] == pytest.approx(2 / 3 - 0)  # day: 2/3, night: 0/1
    assert results["G_w"]["value"] == pytest.approx(2 / 3 - 0)  # sunny: 2/3, raining: 0/1
    assert results["G_l"]["value"] == pytest.approx(2 / 3 - 1 / 2)  # street: 2/3, snow: 1/2


def test_gaps_by_image_count_a_mixed_image_once_as_uncommon():
    by_image = compute(**FOUR_CARS, gap_unit="image", n_bootstrap=0)
    by_occurrence = compute(**FOUR_CARS, gap_unit="occurrence", n_bootstrap=0)
    assert by_image["G_l"]["value"] == pytest.approx(1 / 2 - 1 / 2)  # C(l): cars 1, 3; UC(l): cars 2, 4
    assert by_image["per_class"]["car"]["G_l"] == pytest.approx(0.0)
    for name in ["gap_overall", "G_t", "G_w"]:
        assert by_image[name] == by_occurrence[name]
    assert by_image["heatmaps"]["locations"]["total"] == by_occurrence["heatmaps"]["locations"]["total"]


def test_image_unit_leaves_out_images_with_only_none_locations():
    inputs = _images(
        [
            (CAR, CAR, DAY, SUNNY, [STREET], False, False, []),
            (TRUCK, CAR, DAY, SUNNY, [NO_LOCATION], False, False, []),
            (TRUCK, CAR, DAY, SUNNY, [], False, False, []),
            (TRUCK, CAR, DAY, SUNNY, [SNOW], False, False, [SNOW]),
        ]
    )
    for gap_unit in ["image", "occurrence"]:
        assert compute(**inputs, gap_unit=gap_unit, n_bootstrap=0)["G_l"]["value"] == 1.0


def test_images_with_several_common_locations_weigh_more_by_occurrence():
    inputs = _images(
        [
            (CAR, CAR, DAY, SUNNY, [GRASS, STREET], False, False, []),
            (TRUCK, CAR, DAY, SUNNY, [STREET], False, False, []),
            (TRUCK, CAR, DAY, SUNNY, [SNOW], False, False, [SNOW]),
        ]
    )
    assert compute(**inputs, n_bootstrap=0)["G_l"]["value"] == pytest.approx(2 / 3)
    assert compute(**inputs, gap_unit="image", n_bootstrap=0)["G_l"]["value"] == pytest.approx(1 / 2)


def test_gap_is_null_when_a_group_is_empty():
    inputs = _images([(CAR, CAR, NO_TIME, NO_WEATHER, [STREET], False, False, [])])
    results = compute(**inputs, seed=0)
    for name in ["gap_overall", "G_t", "G_w", "G_l"]:
        assert results[name] == {"value": None, "ci_low": None, "ci_high": None}


def test_per_class_results_hand_computed():
    per_class = compute(**FOUR_CARS, n_bootstrap=0)["per_class"]
    car = per_class["car"]
    assert [(car[name]["n"], car[name]["correct"]) for name in ["P0", "P1", "P2", "P3"]] == [
        (1, 1),
        (2, 1),
        (1, 0),
        (0, 0),
    ]
    assert (car["G_t"], car["G_w"], car["G_l"]) == pytest.approx((2 / 3, 2 / 3, 1 / 6))
    truck = per_class["truck"]
    assert truck["P0"]["n"] == 0 and truck["P0"]["accuracy"] is None
    assert (truck["G_t"], truck["G_w"], truck["G_l"]) == (None, None, None)


def test_per_class_results_follow_the_true_class():
    inputs = _images(
        [
            (CAR, TRUCK, DAY, SUNNY, [STREET], False, False, []),
            (TRUCK, TRUCK, NIGHT, SUNNY, [STREET], True, False, []),
            (CAR, CAR, DAY, SUNNY, [STREET], False, False, []),
        ]
    )
    per_class = compute(**inputs, n_bootstrap=0)["per_class"]
    assert per_class["truck"]["G_t"] == -1.0
    assert per_class["car"]["P0"]["accuracy"] == 1.0 and per_class["car"]["G_t"] is None


def test_location_heatmap_counts_once_per_location_and_leaves_out_none():
    inputs = dict(
        FOUR_CARS,
        locations=[[STREET], [STREET, SNOW], [STREET], [NO_LOCATION]],
        uncommon_locations=[[], [SNOW], [], []],
    )
    heatmap = compute(**inputs, n_bootstrap=0)["heatmaps"]["locations"]
    assert heatmap["values"] == ["forest", "grass", "indoors", "rocks", "sand", "street", "snow", "water"]
    assert heatmap["total"][CAR] == [0, 0, 0, 0, 0, 3, 1, 0]
    assert heatmap["correct"][CAR] == [0, 0, 0, 0, 0, 2, 1, 0]
    assert heatmap["accuracy"][CAR][5:7] == [2 / 3, 1.0]
    assert heatmap["uncommon"][CAR] == [False] * 6 + [True, False]


def test_time_and_weather_heatmaps_hand_computed():
    heatmaps = compute(**FOUR_CARS, n_bootstrap=0)["heatmaps"]
    assert heatmaps["time"]["values"] == ["day", "night"]
    assert heatmaps["time"]["total"][CAR] == [3, 1]
    assert heatmaps["time"]["correct"][CAR] == [2, 0]
    assert heatmaps["time"]["uncommon"][CAR] == [False, True]
    assert heatmaps["weather"]["values"] == [
        "cloudy",
        "foggy",
        "partly cloudy",
        "raining",
        "snowing",
        "sunny",
    ]
    assert heatmaps["weather"]["total"][CAR] == [0, 0, 0, 1, 0, 3]
    assert heatmaps["weather"]["uncommon"][CAR] == [False, False, False, True, False, False]


def test_heatmap_cells_without_images_are_empty_and_not_marked_uncommon():
    heatmap = compute(**FOUR_CARS, n_bootstrap=0)["heatmaps"]["time"]
    assert heatmap["total"][TRUCK] == [0, 0]
    assert heatmap["accuracy"][TRUCK] == [None, None]
    assert heatmap["uncommon"][TRUCK] == [False, False]


def test_heatmap_gap_column_is_the_per_class_gap():
    for gap_unit in ["occurrence", "image"]:
        results = compute(**_random_inputs(200, seed=2), gap_unit=gap_unit, n_bootstrap=0)
        for attribute, gap in [("time", "G_t"), ("weather", "G_w"), ("locations", "G_l")]:
            assert results["heatmaps"][attribute]["gap"] == [
                results["per_class"][name][gap] for name in schema.CLASS_NAMES
            ]


def test_occurrence_gap_is_common_cells_minus_uncommon_cells_of_the_heatmap():
    results = compute(**_random_inputs(500, seed=3), n_bootstrap=0)
    for attribute, gap in [("time", "G_t"), ("weather", "G_w"), ("locations", "G_l")]:
        heatmap = results["heatmaps"][attribute]
        uncommon = np.array(heatmap["uncommon"])
        correct, total = np.array(heatmap["correct"]), np.array(heatmap["total"])
        expected = (
            correct[~uncommon].sum() / total[~uncommon].sum()
            - correct[uncommon].sum() / total[uncommon].sum()
        )
        assert results[gap]["value"] == pytest.approx(expected)


# Properties ---------------------------------------------------------------------------------------


def test_all_correct_predictions_give_every_gap_zero():
    inputs = _random_inputs(300, seed=4)
    inputs["predictions"] = inputs["references"]
    for gap_unit in ["occurrence", "image"]:
        results = compute(**inputs, gap_unit=gap_unit, n_bootstrap=200, seed=0)
        for name in ["gap_overall", "gap_overall_paper", "G_t", "G_w", "G_l"]:
            assert results[name] == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}
        for record in results["per_class"].values():
            assert all(record[name] in (0.0, None) for name in ["G_t", "G_w", "G_l"])


def test_predictions_right_exactly_on_common_images_give_gap_overall_one():
    inputs = _random_inputs(300, seed=5)
    flags = zip(inputs["uncommon_time"], inputs["uncommon_weather"], inputs["uncommon_locations"])
    common = [not (time or weather or locations) for time, weather, locations in flags]
    inputs["predictions"] = [
        reference if is_common else -1 for reference, is_common in zip(inputs["references"], common)
    ]
    results = compute(**inputs, seed=0)
    assert results["gap_overall"] == {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0}
    assert results["partitions"]["P0"]["accuracy"] == 1.0


def test_gap_overall_paper_leaves_p3_out_and_gap_overall_keeps_it():
    # P0 right; P(t) right, P(w) wrong (P1: 1 of 2); P(t,w) wrong (P2); P(t,w,l) twice wrong (P3).
    inputs = _images([
        (CAR, CAR, DAY, SUNNY, [STREET], False, False, []),
        (CAR, CAR, NIGHT, SUNNY, [STREET], True, False, []),
        (TRUCK, CAR, DAY, RAINING, [STREET], False, True, []),
        (TRUCK, CAR, NIGHT, RAINING, [STREET], True, True, []),
        (TRUCK, CAR, NIGHT, RAINING, [SNOW], True, True, [SNOW]),
        (TRUCK, CAR, NIGHT, RAINING, [SNOW], True, True, [SNOW]),
    ])
    results = compute(**inputs, n_bootstrap=0)
    assert results["gap_overall_paper"]["value"] == pytest.approx(1 - 1 / 3)
    assert results["gap_overall"]["value"] == pytest.approx(1 - 1 / 5)


def test_gap_overall_paper_is_null_without_images_in_p1_or_p2():
    inputs = _images([
        (CAR, CAR, DAY, SUNNY, [STREET], False, False, []),
        (CAR, CAR, NIGHT, RAINING, [SNOW], True, True, [SNOW]),
    ])
    results = compute(**inputs, n_bootstrap=20, seed=0)
    assert results["gap_overall_paper"] == {"value": None, "ci_low": None, "ci_high": None}
    assert results["gap_overall"]["value"] == 0.0


def test_frog_time_gap_is_undefined_because_no_time_is_uncommon_for_frog():
    inputs = _random_inputs(600, seed=12)
    frog = schema.CLASS_NAMES.index("frog")
    assert frog in inputs["references"]
    results = compute(**inputs, n_bootstrap=0)
    assert results["per_class"]["frog"]["G_t"] is None
    assert results["heatmaps"]["time"]["gap"][frog] is None
    assert results["G_t"]["value"] is not None


def test_intervals_are_reproducible_with_a_seed_and_contain_the_point_estimate():
    inputs = _random_inputs(400, seed=6, accuracy=0.6)
    first = compute(**inputs, seed=7)
    assert compute(**inputs, seed=7) == first
    assert compute(**inputs, seed=8) != first
    for name in ["gap_overall", "gap_overall_paper", "G_t", "G_w", "G_l"]:
        assert first[name]["ci_low"] <= first[name]["value"] <= first[name]["ci_high"]
        assert first[name]["ci_low"] < first[name]["ci_high"]
    for record in first["partitions"].values():
        if record["n"]:
            assert record["ci_low"] <= record["accuracy"] <= record["ci_high"]


def test_bootstrap_resamples_images_so_their_locations_stay_together():
    # Every image is in a common and an uncommon location: any resample of images leaves the
    # occurrence G_l at exactly 0, which resampling occurrences would not.
    inputs = _images(
        [(CAR if i % 3 else TRUCK, CAR, DAY, SUNNY, [STREET, SNOW], False, False, [SNOW]) for i in range(30)]
    )
    assert compute(**inputs, seed=0)["G_l"] == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}


def test_bootstrap_interval_agrees_with_resampling_image_indices():
    inputs = _random_inputs(400, seed=9, accuracy=0.6)
    interval = compute(**inputs, n_bootstrap=4000, seed=0)["G_l"]
    correct = np.equal(inputs["predictions"], inputs["references"])
    n_uncommon = np.array([len(places) for places in inputs["uncommon_locations"]])
    n_common = np.array([len(set(places) - {NO_LOCATION}) for places in inputs["locations"]]) - n_uncommon
    rows = np.random.default_rng(1).integers(400, size=(4000, 400))  # 4000 resamples of image indices

    def accuracy(weights):
        return (correct * weights)[rows].sum(axis=1) / weights[rows].sum(axis=1)

    gaps = accuracy(n_common) - accuracy(n_uncommon)
    assert (interval["ci_low"], interval["ci_high"]) == pytest.approx(
        tuple(np.quantile(gaps, [0.025, 0.975])), abs=0.01
    )


def test_n_bootstrap_zero_turns_the_gap_intervals_off():
    results = compute(**FOUR_CARS, n_bootstrap=0)
    assert all(
        results[name]["ci_low"] is None and results[name]["ci_high"] is None
        for name in ["gap_overall", "G_t", "G_w", "G_l"]
    )
    assert results["partitions"]["P0"]["ci_low"] is not None


def test_json_output_has_no_nan_or_infinity():
    tiny = _images([(CAR, CAR, NO_TIME, NO_WEATHER, [NO_LOCATION], False, False, [])])
    for inputs in [tiny, FOUR_CARS, _random_inputs(100, seed=10)]:
        results = compute(**inputs, n_bootstrap=50, seed=0)
        assert json.loads(json.dumps(results, allow_nan=False)) == results


def test_numpy_inputs_give_the_same_results_as_lists():
    arrays = {
        name: np.asarray(column) if name not in ("locations", "uncommon_locations") else column
        for name, column in FOUR_CARS.items()
    }
    assert compute(**arrays, seed=0) == compute(**FOUR_CARS, seed=0)


def test_format_summary_shows_gaps_and_partitions():
    summary = metric.format_summary(compute(**FOUR_CARS, n_bootstrap=0))
    assert (
        summary.splitlines()[0] == "FOCUS: accuracy 50.00% on 4 images (gap_unit=occurrence, 95% intervals)"
    )
    assert re.search(r"^G_l\s+16\.67%\s+n/a$", summary, flags=re.MULTILINE)
    assert re.search(r"^P3\s+n/a\s+0\s+n/a$", summary, flags=re.MULTILINE)


# The evaluate module -------------------------------------------------------------------------------


def test_evaluate_load_add_batch_and_plain_import_give_identical_results(loaded_metric):
    inputs = _random_inputs(50, seed=11)
    direct = compute(**inputs, gap_unit="image", seed=3)
    assert loaded_metric.compute(**inputs, gap_unit="image", seed=3) == direct
    for start in range(0, 50, 16):
        loaded_metric.add_batch(**{name: column[start : start + 16] for name, column in inputs.items()})
    assert loaded_metric.compute(gap_unit="image", seed=3) == direct


def test_evaluate_declares_typed_features(loaded_metric):
    features = loaded_metric.info.features
    assert features["predictions"].dtype == "int64"
    assert features["uncommon_time"].dtype == "bool"
    assert features["locations"].feature.dtype == "int64"
    assert features["uncommon_locations"].feature.dtype == "int64"


def _run_doctests(text, name, path, globs):
    """Run the >>> examples of `text` as one doctest; return how many ran."""
    runner, report = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS), io.StringIO()
    runner.run(doctest.DocTestParser().get_doctest(text, globs, name, str(path), 0), out=report.write)
    assert runner.failures == 0, report.getvalue()
    return runner.tries


def test_metric_card_examples_run_as_doctests(loaded_metric, monkeypatch):
    # The card ends each example with a blank line, so doctest reads it as the whole file would.
    monkeypatch.chdir(REPO_ROOT)
    card = METRIC_DIR / "README.md"
    assert _run_doctests(card.read_text(), "README.md", card, {}) >= 15


def test_module_docstring_examples_run_as_doctests(loaded_metric, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    module = importlib.import_module(type(loaded_metric).__module__)
    assert _run_doctests(module._KWARGS_DESCRIPTION, "_KWARGS_DESCRIPTION", METRIC_FILE, {}) >= 4
    assert _run_doctests(compute.__doc__, "compute_focus_metrics", MATH_FILE, vars(metric).copy()) >= 2


# Bad input ------------------------------------------------------------------------------------------


def _with(**changes):
    return dict(FOUR_CARS, **changes)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (_with(time=[DAY, DAY, NIGHT]), r"predictions has 4 rows and time has 3"),
        (_with(uncommon_locations=[[]] * 5), r"predictions has 4 rows and uncommon_locations has 5"),
        ({name: [] for name in FOUR_CARS}, r"No images to evaluate"),
        (
            _with(predictions=[CAR, 10, CAR, CAR]),
            r"predictions\[1\] holds 10, but predictions ids run from -1 to 9",
        ),
        (_with(predictions=[CAR, CAR, -2, CAR]), r"predictions\[2\] holds -2"),
        (
            _with(references=[-1, CAR, CAR, CAR]),
            r"references\[0\] holds -1, but references ids run from 0 to 9",
        ),
        (_with(time=[DAY, DAY, DAY, 3]), r"time\[3\] holds 3, but time ids run from 0 to 2"),
        (_with(weather=[SUNNY, 7, SUNNY, SUNNY]), r"weather\[1\] holds 7, but weather ids run from 0 to 6"),
        (
            _with(locations=[[STREET], [STREET, SNOW], [9], [SNOW]]),
            r"locations\[2\] holds 9, but locations ids run from 0 to 8",
        ),
        (_with(uncommon_locations=[[], [SNOW], [], [-1]]), r"uncommon_locations\[3\] holds -1"),
        (
            _with(locations=[[STREET], [SNOW, STREET, SNOW], [STREET], [SNOW]]),
            r"locations\[1\] lists 6 \('snow'\) twice",
        ),
        (
            _with(uncommon_locations=[[], [SNOW], [], [WATER]]),
            r"uncommon_locations\[3\] holds 7 \('water'\), which is not among the image's locations \[6\]",
        ),
        (
            _with(time=[NO_TIME, DAY, NIGHT, DAY], uncommon_time=[True, False, True, False]),
            r"uncommon_time\[0\] marks time 2 \('none'\) uncommon",
        ),
        (
            _with(
                locations=[[STREET], [STREET, SNOW], [STREET], [NO_LOCATION]],
                uncommon_locations=[[], [SNOW], [], [NO_LOCATION]],
            ),
            r"uncommon_locations\[3\] marks locations 8 \('none'\) uncommon",
        ),
        (
            _with(uncommon_time=[False, False, True, False], time=[DAY, NIGHT, NIGHT, DAY]),
            r"uncommon_time\[2\] marks time 'night' uncommon for class 'car', but row 1 \(same class and "
            r"value\) does not",
        ),
        (
            _with(uncommon_locations=[[], [SNOW], [], []]),
            r"uncommon_locations\[1\] marks locations 'snow' uncommon for class 'car', but row 3 .* does not",
        ),
        (
            _with(predictions=["car", "car", "truck", "car"]),
            r"predictions\[0\] is 'car', but predictions must hold integer ids",
        ),
        (
            _with(predictions=[[0.1] * 10] * 4),
            r"predictions must hold one id per image \(a flat list\), got an array of shape \(4, 10\)",
        ),
        (
            _with(uncommon_weather=[0, 2, 0, 1]),
            r"uncommon_weather\[1\] is 2, but uncommon_weather must hold booleans",
        ),
        (
            _with(uncommon_time=[False, None, True, False]),
            r"uncommon_time\[1\] is None, but uncommon_time must hold",
        ),
        (
            _with(references=np.array([1.0, 1.0, 1.5, 1.0])),
            r"references\[2\] is 1\.5, but references must hold integer ids",
        ),
        (
            _with(predictions=[1, 1, float("nan"), 1]),
            r"predictions\[2\] is nan, but predictions must hold integer ids",
        ),
        (
            _with(predictions=[1, 2**70, 0, 1]),
            r"predictions\[1\] is 1180591620717411303424, but predictions must hold integer ids",
        ),
        (
            _with(predictions=[1, True, 0, 1]),
            r"predictions\[1\] is True, but predictions must hold integer ids",
        ),
        (
            _with(locations=[[STREET], [STREET, 6.5], [STREET], [SNOW]]),
            r"locations\[1\] holds 6\.5, but locations must hold integer location ids",
        ),
        (
            _with(locations=[STREET, [STREET, SNOW], [STREET], [SNOW]]),
            r"locations\[0\] is 5, but each row of locations must be a list",
        ),
        (
            _with(locations=[[STREET], [STREET, "snow"], [STREET], [SNOW]]),
            r"locations\[1\] holds 'snow', but locations must hold integer location ids",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_bad_input_raises_value_error_naming_field_row_and_value(inputs, message):
    with pytest.raises(ValueError, match=message):
        compute(**inputs, n_bootstrap=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"gap_unit": "images"}, r"gap_unit must be one of \('occurrence', 'image'\), got 'images'"),
        (
            {"confidence": 95},
            r"confidence must be a number strictly between 0 and 1 \(e\.g\. 0\.95\), got 95",
        ),
        ({"confidence": 1.0}, r"confidence must be .* got 1\.0"),
        ({"confidence": 0}, r"confidence must be .* got 0"),
        ({"n_bootstrap": -1}, r"n_bootstrap must be a non-negative integer .* got -1"),
        ({"n_bootstrap": 1.5}, r"n_bootstrap must be a non-negative integer .* got 1\.5"),
        ({"seed": "0"}, r"seed must be an integer or None, got '0'"),
    ],
)
def test_bad_option_raises_value_error_naming_it(options, message):
    with pytest.raises(ValueError, match=message):
        compute(**FOUR_CARS, **options)


def test_evaluate_compute_passes_bad_input_errors_through(loaded_metric):
    with pytest.raises(ValueError, match=r"uncommon_locations\[3\] holds 7 \('water'\)"):
        loaded_metric.compute(**_with(uncommon_locations=[[], [SNOW], [], [WATER]]), n_bootstrap=0)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        # evaluate's int64 feature would truncate 2.7 to 2 and score it as a correct "plane".
        (_with(predictions=[2.7, 1, 0, 1], references=[2, 1, 1, 1]), r"predictions\[0\] is 2\.7, but predictions must"),
        # ... overflow with "Python int too large to convert to C long" on 2**70 ...
        (_with(predictions=[1, 2**70, 0, 1]), r"predictions\[1\] is 1180591620717411303424, but"),
        # ... and name element 0 for a NaN elsewhere.
        (_with(predictions=[1, 1, 0, float("nan")]), r"predictions\[3\] is nan, but predictions must"),
        (_with(uncommon_weather=[0, 2, 0, 1]), r"uncommon_weather\[1\] is 2, but uncommon_weather must hold booleans"),
        (_with(locations=[[STREET], [STREET, 6.5], [STREET], [SNOW]]), r"locations\[1\] holds 6\.5"),
    ],
    ids=["fraction", "too large", "NaN", "flag 2", "fractional location"],
)
def test_evaluate_compute_checks_values_before_encoding_them(loaded_metric, inputs, message):
    with pytest.raises(ValueError, match=message):
        loaded_metric.compute(**inputs, n_bootstrap=0)


def test_evaluate_add_and_add_batch_check_values_before_encoding_them(loaded_metric):
    with pytest.raises(ValueError, match=r"predictions\[0\] is 2\.5, but predictions must hold integer ids"):
        loaded_metric.add(prediction=2.5, reference=1, time=DAY, weather=SUNNY, locations=[STREET],
                          uncommon_time=False, uncommon_weather=False, uncommon_locations=[])
    with pytest.raises(ValueError, match=r"predictions\[1\] is 1\.5"):
        loaded_metric.add_batch(**_with(predictions=[1, 1.5, 0, 1]))


def test_whole_number_floats_are_ids_as_numpy_and_torch_arrays_hold_them():
    as_floats = compute(**_with(predictions=np.array([1.0, 1.0, 0.0, -1.0])), n_bootstrap=0)
    assert as_floats == compute(**FOUR_CARS, n_bootstrap=0)


# With the dataset ------------------------------------------------------------------------------------


def test_converted_dataset_columns_feed_the_metric_and_partitions_agree(converted):
    pq = pytest.importorskip("pyarrow.parquet")
    columns = pq.read_table(sorted(converted.rglob("*.parquet"))).to_pydict()
    inputs = {name: columns[name] for name in FOUR_CARS if name not in ("predictions", "references")}
    results = compute(predictions=columns["label"], references=columns["label"], **inputs, seed=0)
    sizes = np.bincount(columns["partition"], minlength=len(schema.PARTITION_NAMES))
    assert [results["partitions"][name]["n"] for name in schema.PARTITION_NAMES] == sizes.tolist()
    assert results["gap_overall"]["value"] == 0.0
    masks = schema.uncommon_masks(schema.PAPER_UNCOMMON_TABLE)
    for attribute, heatmap in results["heatmaps"].items():
        seen = np.array(heatmap["total"]) > 0
        values = [schema.ATTRIBUTE_NAMES[attribute].index(name) for name in heatmap["values"]]
        table = masks[attribute][:, values]
        assert np.array_equal(np.array(heatmap["uncommon"])[seen], table[seen])
