"""Tests of harness/figures.py: figures sized for a paper, every text readable at that size, no burnt-in figure
numbers, Figure 2's 0% bars, missing partitions and whiskers, labelled effective-robustness points."""

import copy
import re

import matplotlib.text
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.container import BarContainer
from matplotlib.colors import to_rgba

from focus_tools import schema
from harness import figures, run_results
from harness.run_results import ModelResult
from test_report import _metrics


@pytest.fixture(scope="module")
def results() -> list[ModelResult]:
    """Three models (so the effective-robustness chart is drawn), one with a name too long for a column."""
    return [
        ModelResult("resnet50.tv_in1k", _metrics(0.7, seed=1), {"model": "resnet50.tv_in1k"}),
        ModelResult("test_resnet", _metrics(0.2, seed=2), {"model": "test_resnet", "random_init": True}),
        ModelResult("hf-hub:timm/vit_base_patch16_clip_224.openai_ft_in12k_in1k", _metrics(0.85, seed=3),
                    {"model": "hf-hub:timm/vit_base_patch16_clip_224.openai_ft_in12k_in1k"}),
    ]


@pytest.fixture(scope="module")
def drawn(results) -> dict:
    return dict(figures.drawn_figures(results))


def _texts(figure) -> list[matplotlib.text.Text]:
    return [text for text in figure.findobj(matplotlib.text.Text) if text.get_visible() and text.get_text().strip()]


def test_every_figure_is_a_column_or_the_text_wide_with_every_text_at_least_8_pt(drawn, results):
    wide = {run_results.figure2_file(r.name) for r in results} | {run_results.heatmaps_file(r.name) for r in results}
    assert len(drawn) == 2 + 2 * len(results)  # Figure 3, effective robustness, two a model
    for name, figure in drawn.items():
        width, height = figure.get_size_inches()
        assert width == (figures.TEXT_WIDTH if name in wide else figures.COLUMN_WIDTH), name
        assert 1.5 < height < 9, name  # fits on a page
        sizes = {text.get_text(): text.get_fontsize() for text in _texts(figure)}
        assert len(sizes) > 10, name
        assert min(sizes.values()) >= 8, (name, {t: s for t, s in sizes.items() if s < 8})


def test_nothing_drawn_runs_off_the_figure(drawn):
    for name, figure in drawn.items():
        box = figure.get_tightbbox(FigureCanvasAgg(figure).get_renderer())  # in inches
        width, height = figure.get_size_inches()
        assert box.x0 >= -0.01 and box.y0 >= -0.01 and box.x1 <= width + 0.01 and box.y1 <= height + 0.01, name


def test_no_figure_carries_a_figure_number_its_caption_is_in_the_report(drawn):
    for name, figure in drawn.items():
        assert not [t.get_text() for t in _texts(figure) if re.search(r"Figure \d|Appendix|no bar", t.get_text())]
        assert not figure.texts and not any(axes.get_title() for axes in figure.axes if len(figure.axes) == 1), name


def test_heatmap_cells_give_accuracy_and_occurrences_at_8_pt(drawn, results):
    figure = drawn[run_results.heatmaps_file(results[0].name)]
    heatmap = results[0].metrics["heatmaps"]["weather"]
    cells = [t for t in _texts(figure) if re.fullmatch(r"\d+%\nn=\d+", t.get_text())]
    assert len(cells) == sum(total > 0 for row in heatmap["total"] for total in row) + sum(
        total > 0 for h in results[0].metrics["heatmaps"].values() if h is not heatmap for row in h["total"]
        for total in row)
    assert {t.get_fontsize() for t in cells} == {figures.FONT_SIZE}
    assert [axes.get_title(loc="left") for axes in figure.axes] == list(results[0].metrics["heatmaps"])


@pytest.fixture(scope="module")
def zero_and_empty() -> ModelResult:
    """A model with 0% on truck's P1 images (there are some), and no image at all in P3."""
    metrics = copy.deepcopy(_metrics(0.7, seed=1))
    record = metrics["per_class"]["truck"]["P1"]
    assert record["n"] > 0 and metrics["partitions"]["P3"]["n"] == 0
    record.update(accuracy=0.0, correct=0, ci_low=0.0, ci_high=0.3)
    return ModelResult("m", metrics, {"model": "m"})


def _figure2_axes(result: ModelResult):
    (axes,) = next(figure for name, figure in figures.drawn_figures([result]) if name.startswith("figure2_")).axes
    return axes


def _bars(axes) -> dict[str, BarContainer]:
    """Figure 2's bars by partition (a partition without any image has none)."""
    return {container.get_label(): container for container in axes.containers if isinstance(container, BarContainer)}


def test_figure2_draws_a_zero_accuracy_as_a_flat_bar_in_its_partitions_colour(zero_and_empty):
    axes = _figure2_axes(zero_and_empty)
    p1_colour = _bars(axes)["P1"].patches[0].get_edgecolor()
    flat = [c for c in axes.collections if isinstance(c, LineCollection) and c.get_gid() == "zero-accuracy"]
    segments = [(segment, tuple(c.get_color()[0])) for c in flat for segment in c.get_segments()]
    assert len(segments) == sum(r[name]["accuracy"] == 0 for r in zero_and_empty.metrics["per_class"].values()
                                for name in schema.COUNT_PARTITIONS)
    truck = [colour for segment, colour in segments if segment[0][0] < 0.5 and segment[1][0] > -0.5]
    assert truck and truck[0] == pytest.approx(p1_colour)
    assert all(segment[0][1] == segment[1][1] == 0 for segment, _ in segments)  # on the axis


def test_figure2_marks_a_partition_without_images_with_a_grey_cross(zero_and_empty):
    axes = _figure2_axes(zero_and_empty)
    crosses = [line for line in axes.lines if line.get_gid() == "no-image"]
    classes = list(zero_and_empty.metrics["per_class"])
    empty = sum(record[name]["n"] == 0 for record in zero_and_empty.metrics["per_class"].values()
                for name in schema.COUNT_PARTITIONS)
    assert sum(len(line.get_xdata()) for line in crosses) == empty >= len(classes)  # P3 for every class
    assert {line.get_marker() for line in crosses} == {"x"} and {line.get_color() for line in crosses} == {
        figures._NO_IMAGE_COLOR}
    assert not _bars(axes)["P3"].patches  # no bar where there is no image
    legend = [text.get_text() for text in axes.figure.legends[0].get_texts()]
    assert legend == [*schema.COUNT_PARTITIONS, "0% (flat bar)", "no image"]


def test_figure2_whiskers_take_their_bars_colour(zero_and_empty):
    axes = _figure2_axes(zero_and_empty)
    for container in [bars for bars in _bars(axes).values() if bars.patches]:
        edge = container.patches[0].get_edgecolor()
        (whiskers,) = container.errorbar.lines[2]
        assert np.allclose(whiskers.get_color(), edge)
        face = container.patches[0].get_facecolor()
        assert face[3] < 1 and np.allclose(face[:3], to_rgba(edge)[:3])  # lighter than the whisker inside it


def test_effective_robustness_points_are_labelled_with_their_models(drawn, results):
    figure = drawn[run_results.ROBUSTNESS_FILE]
    (axes,) = figure.axes
    labels = [" ".join(text.get_text().split("\n")) for text in axes.texts]
    fit = run_results.robustness_fit(run_results.ordered(results))
    for result, robustness in zip(run_results.ordered(results), fit["effective_robustness"]):
        assert any(label.replace(" ", "").startswith(result.label.replace(" ", "")) and
                   label.endswith(f"({100 * robustness:+.1f})") for label in labels), (result.label, labels)
    assert [t.get_text() for t in axes.get_xticklabels() if t.get_text()][0].endswith("%")


def test_figures_are_drawn_in_the_reports_order(drawn, results):
    names = list(drawn)
    expected = [r.name for r in run_results.ordered(results)]
    assert [name for name in names if name.startswith("figure2_")] == [run_results.figure2_file(n) for n in expected]
    legend = [" ".join(t.get_text().split("\n")) for t in drawn[run_results.FIGURE3_FILE].legends[0].get_texts()]
    assert [label.replace(" ", "") for label in legend] == [
        next(r.label for r in results if r.name == name).replace(" ", "") for name in expected]
