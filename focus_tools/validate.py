"""`focus-dataset validate`: every check of a release (folder or zip) or of a converted folder, with
every image decoded in full."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from focus_common.messages import quote
from focus_tools.schema import Annotation, focus_features, load_uncommon_table, partition_ids
from focus_tools.parquet import annotation_columns, converted_shards, image_batches, open_shard, read_annotation_columns
from focus_tools.release import UnreadableFile, Release, decode_problem, file_name_problems, parse_annotation
from focus_tools.statistics import (closest_published_version, compare_with_published, dataset_fingerprint,
                                    table1_counts, table2_counts)


@dataclass
class ValidationResult:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    table: pa.Table | None = None  # the annotation columns that were checked

    @property
    def ok(self) -> bool:
        return not self.errors


def _decode_problems(names: list[str], read: Callable[[str], bytes | None]) -> list[tuple[str, str]]:
    """Full decode of every image, in threads (PIL releases the GIL while decoding)."""
    def check(name: str) -> tuple[str, str | None]:
        try:
            return name, decode_problem(read(name))
        except UnreadableFile as err:  # missing, or refused unread
            return name, str(err)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return [(name, problem) for name, problem in pool.map(check, names) if problem is not None]


def annotations_table(annotations: list[Annotation], uncommon_table: dict) -> pa.Table:
    """The typed annotation columns (no images) of parsed release rows."""
    return pa.Table.from_batches([annotation_columns(annotations, uncommon_table)])


def validate_release(path: str | os.PathLike) -> ValidationResult:
    result = ValidationResult()
    with Release(path) as release:
        annotations, seen, file_names = [], set(), []
        for row_number, row in enumerate(release.rows(), start=1):
            annotation, problems = parse_annotation(row)
            if annotation is not None and annotation.file_name in seen:
                problems = [f"duplicate file_name {quote(row[0])}"]
            for problem in problems:
                result.errors.append(f"{release.source}: row {row_number} (file_name {quote(row[0])}): {problem}")
            if isinstance(row[4], str) and ", ".join(sorted(row[4].split(", "))) != row[4]:
                result.warnings.append(f"{release.source}: row {row_number}: locations {quote(row[4])} are not sorted")
            if isinstance(row[0], str):
                seen.add(row[0].lstrip("/"))
                # A row's image is read only where its file_name names a file inside the release.
                if not file_name_problems(row[0]):
                    file_names.append(row[0].lstrip("/"))
            if annotation is not None and not problems:
                annotations.append(annotation)
        for name, problem in _decode_problems(file_names, release.read):
            kind = "row without image" if problem == "missing" else "image"
            result.errors.append(f"{release.source}: {kind} {name}: {problem}")
        for name in release.image_names():
            if name not in seen:
                result.errors.append(f"{release.source}: image without row: {name}")
    if annotations:
        result.table = annotations_table(annotations, load_uncommon_table())
    return result


def validate_converted(path: str | os.PathLike) -> ValidationResult:
    """Check a converted folder's shards, read with pyarrow a row group at a time (no datasets cache)."""
    result = ValidationResult()
    path = Path(path)
    shards = converted_shards(path)
    if not shards:
        result.errors.append(f"{path}: no data/*.parquet shards; expected the output of `focus-dataset convert`")
        return result
    files = [open_shard(shard) for shard in shards]
    features = datasets.Features.from_arrow_schema(files[0].schema_arrow)
    for name, feature in focus_features().items():
        if name not in features:
            result.errors.append(f"{path}: column {name!r} is missing")
        elif features[name] != feature:
            result.errors.append(f"{path}: column {name!r} has type {features[name]}, expected {feature}")
    result.errors += [f"{shard}: its columns differ from those of {shards[0].name}"
                      for shard, file in zip(shards[1:], files[1:]) if file.schema_arrow != files[0].schema_arrow]
    if result.errors:
        return result
    table = read_annotation_columns(path)
    file_names = table.column("file_name").to_pylist()
    # Names are checked as a release's are, so that every message below quotes a bounded name.
    result.errors += [f"{path}: row {row}: {problem}" for row, name in enumerate(file_names)
                      for problem in file_name_problems(name)]
    if result.errors:
        return result
    counts = Counter(file_names)
    result.errors += [f"{path}: duplicate file_name {quote(name)} ({n} rows)" for name, n in counts.items() if n > 1]
    if file_names != sorted(file_names):
        result.errors.append(f"{path}: rows are not ordered by file_name")
    flags = {f: table.column(f).to_numpy() for f in ("uncommon_time", "uncommon_weather", "uncommon_location")}
    expected_partition = partition_ids(flags["uncommon_time"], flags["uncommon_weather"], flags["uncommon_location"])
    num_uncommon = sum(f.astype(int) for f in flags.values())
    uncommon_lengths = pc.list_value_length(table.column("uncommon_locations")).to_numpy()
    for row in np.flatnonzero((expected_partition != table.column("partition").to_numpy())
                              | (num_uncommon != table.column("num_uncommon").to_numpy())
                              | ((uncommon_lengths > 0) != flags["uncommon_location"]))[:20]:
        result.errors.append(f"{path}: row {row} ({quote(file_names[row])}): partition, num_uncommon and the "
                             "uncommon flags disagree")
    for images in image_batches(shards):
        for name, problem in _decode_problems(list(images), images.get):
            result.errors.append(f"{path}: image {name}: {problem}")
    result.table = table
    return result


def validate(path: str | os.PathLike) -> ValidationResult:
    """Check a release (folder or zip) or a converted dataset folder."""
    path = Path(path)
    if path.is_dir() and converted_shards(path):
        return validate_converted(path)
    return validate_release(path)


def validation_report(result: ValidationResult) -> dict[str, Any]:
    """What validate found, as one JSON-ready object.

    "version" names the published version the data is closest to (its number of images;
    focus_tools.statistics.closest_version gives the rule), "table1_differences" and
    "table2_differences" count the cells that differ from that version's tables, "differences" lists
    them. Differences are information about the data, not errors: only "errors" make it unusable.
    """
    report: dict[str, Any] = {"version": None, "description": None, "tables_3_and_4": None, "num_images": 0,
                              "table1_differences": None, "table2_differences": None}
    if result.table is not None and result.table.num_rows:
        report.update(closest_published_version(result.table))
        report["fingerprint"] = dataset_fingerprint(result.table)
        report["differences"] = compare_with_published(table1_counts(result.table), table2_counts(result.table),
                                                       report["version"])
    return report | {"errors": result.errors, "warnings": result.warnings}
