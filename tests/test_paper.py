"""Tests of harness/paper.py: the published overall gaps follow from Tables 2 and 4 under gap_overall_paper."""

import pytest

from focus_tools import published
from focus_tools import schema
from harness import paper
from harness.scoring import load_metric_module

compute_focus_metrics = load_metric_module().compute_focus_metrics
CAR = schema.CLASS_NAMES.index("car")
# A car's common and uncommon value of each attribute in the paper's table.
VALUES = {
    "time": (schema.TIME_NAMES.index("day"), schema.TIME_NAMES.index("night")),
    "weather": (schema.WEATHER_NAMES.index("sunny"), schema.WEATHER_NAMES.index("raining")),
    "locations": (schema.LOCATION_NAMES.index("street"), schema.LOCATION_NAMES.index("snow")),
}
SMALLER_PARTITIONS = ["P(t)", "P(w)", "P(l)", "P(t,w)", "P(w,l)", "P(t,l)"]  # P1 and P2


def published_overall_gap(paper_name: str) -> float:
    """A(P0) − A(P1 ∪ P2) in percent from Table 2's sizes and Table 4's accuracies (the paper's footnote 2)."""
    sizes, accuracy = published.PUBLISHED_TABLE2, paper.TABLE4[paper_name]
    uncommon = sum(sizes[p] * accuracy[p] for p in SMALLER_PARTITIONS) / sum(sizes[p] for p in SMALLER_PARTITIONS)
    return accuracy["P0"] - uncommon


def images_like_the_paper(paper_name: str, p3_correct: int) -> dict:
    """Metric inputs with Table 2's partition sizes and Table 4's accuracies, as whole images.

    Every image is a car; its uncommon attributes are those its partition names. P(t,w,l) is not in
    Table 4, so its number of correct images is a parameter.
    """
    sizes, accuracy = published.PUBLISHED_TABLE2, paper.TABLE4[paper_name]
    correct_counts = {p: round(accuracy[p] * sizes[p] / 100) for p in ["P0", *SMALLER_PARTITIONS]}
    correct_counts["P(t,w,l)"] = p3_correct
    inputs = {name: [] for name in ("predictions", "references", "time", "weather", "locations", "uncommon_time",
                                    "uncommon_weather", "uncommon_locations")}
    for partition, correct in correct_counts.items():
        letters = set(partition[2:-1].split(",")) if partition != "P0" else set()
        flags = {"time": "t" in letters, "weather": "w" in letters, "locations": "l" in letters}
        value = {attribute: VALUES[attribute][flags[attribute]] for attribute in VALUES}
        n = sizes[partition]
        inputs["predictions"] += [CAR] * correct + [-1] * (n - correct)
        inputs["references"] += [CAR] * n
        inputs["time"] += [value["time"]] * n
        inputs["weather"] += [value["weather"]] * n
        inputs["locations"] += [[value["locations"]]] * n
        inputs["uncommon_time"] += [flags["time"]] * n
        inputs["uncommon_weather"] += [flags["weather"]] * n
        inputs["uncommon_locations"] += [[value["locations"]] if flags["locations"] else []] * n
    return inputs


@pytest.mark.parametrize("paper_name", list(paper.OVERALL_GAP_PRINTED))
def test_tables_2_and_4_give_the_published_overall_gap_without_p3(paper_name):
    printed = paper.OVERALL_GAP_PRINTED[paper_name]
    decimals = len(printed.partition(".")[2])
    derived = published_overall_gap(paper_name)
    assert f"{derived:.{decimals}f}" == printed
    assert f"{derived:.2f}" == {"Wide-ResNet50-2": "24.16", "EfficientNet-b7": "21.00"}[paper_name]


@pytest.mark.parametrize("paper_name", list(paper.OVERALL_GAP_PRINTED))
def test_metric_gap_overall_paper_on_images_like_the_paper_matches_the_published_gap(paper_name):
    sizes = published.PUBLISHED_TABLE2
    results = compute_focus_metrics(**images_like_the_paper(paper_name, p3_correct=0), n_bootstrap=0)
    assert results["partitions"]["P0"]["n"] == sizes["P0"]
    assert results["partitions"]["P1"]["n"] + results["partitions"]["P2"]["n"] == sum(
        sizes[p] for p in SMALLER_PARTITIONS)
    # Table 4 prints accuracies to 0.01%: the nearest whole numbers of correct images are off by at
    # most half an image per partition, which bounds how far the metric's gap can be from the
    # derivation over the printed accuracies.
    slack = 100 * (0.5 / sizes["P0"] + 0.5 * len(SMALLER_PARTITIONS) / sum(sizes[p] for p in SMALLER_PARTITIONS))
    value = 100 * results["gap_overall_paper"]["value"]
    assert value == pytest.approx(published_overall_gap(paper_name), abs=slack)
    assert value == pytest.approx(paper.OVERALL_GAP[paper_name], abs=slack + 0.05)


def test_gap_overall_paper_does_not_depend_on_p3_and_gap_overall_does():
    none_of_p3 = compute_focus_metrics(**images_like_the_paper("Wide-ResNet50-2", p3_correct=0), n_bootstrap=0)
    all_of_p3 = compute_focus_metrics(**images_like_the_paper("Wide-ResNet50-2", p3_correct=35), n_bootstrap=0)
    assert none_of_p3["gap_overall_paper"] == all_of_p3["gap_overall_paper"]
    uncommon = sum(none_of_p3["partitions"][p]["n"] for p in ("P1", "P2", "P3"))
    assert none_of_p3["gap_overall"]["value"] - all_of_p3["gap_overall"]["value"] == pytest.approx(35 / uncommon)
