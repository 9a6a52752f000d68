"""focus-probe's report: probes.md (Table 5 with every cell's n and interval, Table 6), probes.json and the heatmap."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from focus_tools import schema
from harness.probe_cells import MIN_SPLIT_IMAGES, PROBE_LOCATIONS
from harness.probe_features import POOLING

PROBES_MD = "probes.md"
PROBES_JSON = "probes.json"
PROBES_HEATMAP = "probes_heatmap.png"
ACCURACY_DECIMALS = 1  # percent, in probes.md
COSINE_DECIMALS = 2  # as Table 6


def format_percent(value: float) -> str:
    return f"{100 * value:.{ACCURACY_DECIMALS}f}"


def accuracy_grid(cells: list[dict[str, Any]]) -> np.ndarray:
    """Table 5 as a (classes, locations) array of accuracies, NaN where too small."""
    grid = np.full((len(schema.CLASS_NAMES), len(PROBE_LOCATIONS)), np.nan)
    for cell in cells:
        if cell["status"] == "trained":
            row = schema.CLASS_NAMES.index(cell["class"])
            grid[row, PROBE_LOCATIONS.index(cell["location"])] = cell["accuracy"]
    return grid


def cell_text(cell: dict[str, Any] | None) -> str:
    """A Table 5 cell: the accuracy in percent, in parentheses when small, — when too small (or absent).

    >>> [cell_text(c) for c in ({"status": "trained", "small": False, "accuracy": 0.75},
    ...                         {"status": "trained", "small": True, "accuracy": 0.5}, {"status": "too small"})]
    ['75.0', '(50.0)', '—']
    """
    if cell is None or cell["status"] != "trained":
        return "—"
    return f"({format_percent(cell['accuracy'])})" if cell["small"] else format_percent(cell["accuracy"])


def cell_status(cell: dict[str, Any]) -> str:
    return "trained (small)" if cell.get("small") else cell["status"]


def text_grid(cells: list[dict[str, Any]]) -> list[list[str]]:
    """Table 5's cells as text, (classes x locations)."""
    by_pair = {(cell["class"], cell["location"]): cell for cell in cells}
    return [[cell_text(by_pair.get((class_name, location))) for location in PROBE_LOCATIONS]
            for class_name in schema.CLASS_NAMES]


def format_probes(cells: list[dict[str, Any]], header: dict[str, Any]) -> str:
    """probes.md: Table 5 (grid and per-cell n and interval) and Table 6."""
    lines = [f"# Feature probes: {header['model']}", "",
             f"Weights: {header['weights']}. Features: {header['dim']}-d, {POOLING}, of {header['num_images']} "
             f"images (dataset fingerprint {header['dataset_fingerprint']}).",
             f"Probes: logistic regression (C={header['C']}) per class and location, as many images with the "
             f"location as without, {header['test_size']:.0%} held out, seed {header['seed']}; chance is 50%. "
             f"Every cell with at least {MIN_SPLIT_IMAGES} images on each side (one to train, one to test) is "
             f"trained; those with fewer than {header['min_images']} on a side are small, shown in parentheses: "
             f"read them with their interval. Cells that cannot be split are not trained (—).", ""]
    if header.get("random_init"):
        lines += ["**Random weights**: these numbers say nothing about the model.", ""]
    lines += ["## Table 5: probe test accuracy (%)", "",
              "| class | " + " | ".join(PROBE_LOCATIONS) + " |", "|---" * (len(PROBE_LOCATIONS) + 1) + "|"]
    for class_name, values in zip(schema.CLASS_NAMES, text_grid(cells)):
        lines.append(f"| {class_name} | " + " | ".join(values) + " |")
    lines += ["", "## Every cell", "",
              "| class | location | with | without | status | n_train | n_test | accuracy (%) "
              "| 95% interval (Wilson) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for cell in cells:
        if cell["status"] == "trained":
            low, high = cell["interval"]
            numbers = (f"{cell['n_train']} | {cell['n_test']} | {format_percent(cell['accuracy'])} | "
                       f"{format_percent(low)}–{format_percent(high)}")
        else:
            numbers = "— | — | — | —"
        lines.append(f"| {cell['class']} | {cell['location']} | {cell['n_with']} | {cell['n_without']} | "
                     f"{cell_status(cell)} | {numbers} |")
    similar = [cell for cell in cells if "similar_classes" in cell]
    lines += ["", "## Table 6: classes closest to each probe", "",
              "Cosine similarity between the probe's weights with its bias and each row of the model's "
              "classifier with its bias.", ""]
    if similar:
        lines += ["| class | location | most similar classes (cosine) |", "|---|---|---|"]
        for cell in similar:
            names = ", ".join(f"{c['name']} {c['cosine']:.{COSINE_DECIMALS}f}" for c in cell["similar_classes"])
            lines.append(f"| {cell['class']} | {cell['location']}{' (small)' if cell['small'] else ''} | {names} |")
    else:
        lines.append(header.get("table6_note") or "No trained probe among the chosen pairs.")
    return "\n".join(lines) + "\n"


def probes_json(cells: list[dict[str, Any]], header: dict[str, Any]) -> dict[str, Any]:
    """probes.json content: the header and every cell (probe weights left out: they are large)."""
    return {**header, "cells": [{k: v for k, v in cell.items() if k != "weights"} for cell in cells]}


def plot_heatmap(cells: list[dict[str, Any]], title: str) -> Figure:
    """Table 5 as a class x location heatmap; small cells hatched, their values in parentheses; too small grey."""
    grid = accuracy_grid(cells)
    figure = Figure(figsize=(1.0 + 0.8 * len(PROBE_LOCATIONS), 1.2 + 0.45 * len(schema.CLASS_NAMES)),
                    layout="constrained")
    axes = figure.subplots()
    axes.set_facecolor("#e6e6e6")
    # Centred on chance (50%): above chance red, below blue.
    image = axes.imshow(np.ma.masked_invalid(100 * grid), cmap="coolwarm", vmin=0, vmax=100, aspect="auto")
    for row, values in enumerate(text_grid(cells)):
        for column, text in enumerate(values):
            axes.text(column, row, text, ha="center", va="center", fontsize=8)
    for cell in cells:
        if cell.get("small"):
            xy = (PROBE_LOCATIONS.index(cell["location"]) - 0.5, schema.CLASS_NAMES.index(cell["class"]) - 0.5)
            axes.add_patch(Rectangle(xy, 1, 1, fill=False, hatch="///", edgecolor="#555555", linewidth=0))
    axes.set_xticks(range(len(PROBE_LOCATIONS)), PROBE_LOCATIONS, rotation=45, ha="right")
    axes.set_yticks(range(len(schema.CLASS_NAMES)), schema.CLASS_NAMES)
    axes.set_title(title, fontsize=10)
    figure.colorbar(image, ax=axes, label="probe test accuracy (%)")
    return figure
