"""A synthetic release in the exact public layout, drawn from the published Table 1 (the real
images cannot be downloaded by the tests or the demo)."""

from __future__ import annotations

import io
import os
import sqlite3
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import PIL.Image

from focus_tools.schema import (
    ANNOTATIONS_DB,
    ATTRIBUTE_NAMES,
    CLASS_NAMES,
    LOCATION_NAMES,
    PARTITION_NAMES,
    TIME_NAMES,
    PAPER_UNCOMMON_TABLE,
    WEATHER_NAMES,
    Annotation,
    FocusDataError,
    load_uncommon_table,
    partition_ids,
    uncommon_masks,
)
from focus_common import outputs
from focus_tools.published import PUBLISHED_TABLE1
from focus_tools.release import MAX_ROWS


def _table1_probabilities() -> dict[str, np.ndarray]:
    """Per-class distributions of time and weather, and per-class location frequencies, from Table 1."""
    probabilities = {}
    for attribute in ("time", "weather"):
        counts = np.array([PUBLISHED_TABLE1[attribute][v] for v in ATTRIBUTE_NAMES[attribute]], dtype=float).T
        probabilities[attribute] = counts / counts.sum(axis=1, keepdims=True)
    class_totals = np.array([PUBLISHED_TABLE1["time"][v] for v in TIME_NAMES], dtype=float).sum(axis=0)
    locations = np.array([PUBLISHED_TABLE1["locations"][v] for v in LOCATION_NAMES[:-1]], dtype=float).T
    probabilities["locations"] = np.minimum(locations / class_totals[:, None], 0.95)
    probabilities["class"] = class_totals / class_totals.sum()
    return probabilities


def sample_annotations(num_images: int, seed: int = 0) -> list[Annotation]:
    """Annotations drawn from Table 1's per-class distributions; every partition occurs when num_images >= 8."""
    rng = np.random.default_rng(seed)
    p = _table1_probabilities()
    draws = max(4 * num_images, 20_000)  # enough candidates that even P(t,w,l) (0.15%) turns up
    labels = rng.choice(len(CLASS_NAMES), size=draws, p=p["class"])
    times = (rng.random(draws)[:, None] > np.cumsum(p["time"][labels], axis=1)).sum(axis=1)
    weathers = (rng.random(draws)[:, None] > np.cumsum(p["weather"][labels], axis=1)).sum(axis=1)
    has_location = rng.random((draws, len(LOCATION_NAMES) - 1)) < p["locations"][labels]
    humans = rng.random(draws) < 0.3
    masks = uncommon_masks(load_uncommon_table())
    partition = partition_ids(masks["time"][labels, times], masks["weather"][labels, weathers],
                              (has_location & masks["locations"][labels, :-1]).any(axis=1))
    # One candidate of each partition first, then the rest in draw order.
    firsts = [int(np.flatnonzero(partition == k)[0]) for k in range(len(PARTITION_NAMES)) if (partition == k).any()]
    order = firsts + [i for i in range(draws) if i not in set(firsts)]
    chosen = sorted(order[:num_images])
    counters: dict[str, int] = {}
    annotations = []
    for i in chosen:
        class_name = CLASS_NAMES[labels[i]]
        locations = tuple(name for name, present in zip(LOCATION_NAMES, has_location[i]) if present) or ("none",)
        setting = next(
            (v for v in locations if v in PAPER_UNCOMMON_TABLE["locations"][class_name]),
            WEATHER_NAMES[weathers[i]] if masks["weather"][labels[i], weathers[i]] else
            ("night" if TIME_NAMES[times[i]] == "night" else locations[0]),
        )
        query = f"{class_name}-{setting.replace(' ', '-')}"
        counters[query] = counters.get(query, 0) + 1
        annotations.append(Annotation(f"{query}/{counters[query]}.jpg", class_name, TIME_NAMES[times[i]],
                                      WEATHER_NAMES[weathers[i]], locations, bool(humans[i])))
    return annotations


def sample_image(rng: np.random.Generator, size_range: tuple[int, int] = (48, 320)) -> bytes:
    """A JPEG of random size and mode (mostly RGB, some grayscale and CMYK): smooth colour plus noise."""
    width, height = (int(v) for v in rng.integers(size_range[0], size_range[1] + 1, size=2))
    # Texture drawn at a quarter of the size and upsampled: photo-like file sizes, cheap to make.
    small = (max(height // 4, 2), max(width // 4, 2))
    ramp = np.linspace(0.0, 1.0, small[1])[None, :, None] * np.linspace(0.0, 1.0, small[0])[:, None, None]
    start, end = rng.random(3) * 255, rng.random(3) * 255
    pixels = start + (end - start) * ramp + rng.normal(0, 24, size=(*small, 3))
    image = PIL.Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").resize((width, height))
    mode = rng.choice(["RGB", "L", "CMYK"], p=[0.9, 0.05, 0.05])
    if mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _release_row(annotation: Annotation) -> tuple:
    # The release joins location names sorted alphabetically ("grass, water").
    return ("/" + annotation.file_name, annotation.category, annotation.time, annotation.weather,
            ", ".join(sorted(annotation.locations)), "yes" if annotation.humans else "no")


def write_annotations_db(path: Path, rows: Iterable[tuple]) -> None:
    """annotations.db with the release's schema."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE annotations(file_name TEXT PRIMARY KEY, category TEXT, time TEXT, "
                   "weather TEXT, locations TEXT, humans TEXT)")
        db.executemany("INSERT INTO annotations VALUES (?, ?, ?, ?, ?, ?)", rows)
    db.close()


def write_sample_release(
    output: str | os.PathLike,
    num_images: int,
    *,
    seed: int = 0,
    as_zip: bool = False,
    size_range: tuple[int, int] = (48, 320),
) -> Path:
    """A synthetic release in the public layout: a folder, or with as_zip a zip holding one folder. It appears
    whole or not at all (written under a staged name, then renamed), at most MAX_ROWS images."""
    if not 1 <= num_images <= MAX_ROWS:
        raise FocusDataError(f"num_images must be from 1 to {MAX_ROWS:,} (a release's most rows), got {num_images:,}")
    output = Path(output)
    if output.exists() and (output.is_file() or any(output.iterdir())):
        raise FocusDataError(f"{output}: already exists; the sample release needs a new path")
    annotations = sample_annotations(num_images, seed)
    rng = np.random.default_rng(seed + 1)
    # Rows go in shuffled, as in a database filled by a crawler; readers must sort them.
    rows = [_release_row(a) for a in annotations]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    images = ((annotation.file_name, sample_image(rng, size_range)) for annotation in annotations)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        if as_zip:
            outputs.replace_with(output, lambda staged: _write_zip(staged, output.stem, rows, images))
        else:
            with outputs.staged_folder(output, holder="focus-dataset sample", what="sample",
                                       error=FocusDataError) as staged:
                _write_folder(staged.folder, rows, images)
                staged.commit(owns=lambda folder, path: False)  # only an empty folder can be in the way
    except OSError as err:
        raise FocusDataError(f"{output}: cannot write the sample release here: {err.strerror or err}") from err
    return output


def _write_zip(output: Path, top: str, rows: list[tuple], images: Iterable[tuple[str, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        db_path = Path(scratch) / ANNOTATIONS_DB
        write_annotations_db(db_path, rows)
        with zipfile.ZipFile(output, "x", compression=zipfile.ZIP_STORED) as archive:
            archive.write(db_path, f"{top}/{ANNOTATIONS_DB}")
            for file_name, data in images:
                archive.writestr(f"{top}/{file_name}", data)


def _write_folder(output: Path, rows: list[tuple], images: Iterable[tuple[str, bytes]]) -> None:
    output.mkdir(parents=True, exist_ok=True)
    write_annotations_db(output / ANNOTATIONS_DB, rows)
    for file_name, data in images:
        path = output / file_name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
