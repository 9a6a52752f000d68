"""Statistics of FOCUS computed from its typed columns: the paper's Tables 1 and 2, their
comparison with the published tables, and the content fingerprint of the annotations."""

from __future__ import annotations

import hashlib
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from focus_tools.schema import (
    ATTRIBUTE_NAMES,
    CLASS_NAMES,
    LOCATION_NAMES,
    PARTITION_GROUPS,
    PARTITION_NAMES,
    focus_features,
    location_occurrences,
)
from focus_tools.published import PUBLISHED_TABLE2, PUBLISHED_VERSIONS


def _column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy()


def table1_counts(table: pa.Table) -> dict[str, np.ndarray]:
    """Images per class × value for each attribute (Table 1); one count per location occurrence."""
    label = _column(table, "label")
    counts = {}
    for attribute in ("time", "weather"):
        values = _column(table, attribute)
        width = len(ATTRIBUTE_NAMES[attribute])
        counts[attribute] = np.bincount(label * width + values, minlength=len(CLASS_NAMES) * width).reshape(
            len(CLASS_NAMES), width)
    rows, location_ids = location_occurrences(table)
    width = len(LOCATION_NAMES)
    counts["locations"] = np.bincount(label[rows] * width + location_ids,
                                      minlength=len(CLASS_NAMES) * width).reshape(len(CLASS_NAMES), width)
    return counts


def table2_counts(table: pa.Table) -> dict[str, int]:
    """Partition sizes (Table 2), with the P1/P2/P3 groups and the total."""
    per_partition = np.bincount(_column(table, "partition"), minlength=len(PARTITION_NAMES))
    sizes = {"total": int(table.num_rows)}
    sizes.update({name: int(per_partition[i]) for i, name in enumerate(PARTITION_NAMES)})
    for group, members in PARTITION_GROUPS.items():
        sizes[group] = sum(sizes[m] for m in members)
    return {key: sizes[key] for key in PUBLISHED_TABLE2}


def uncommon_masks_from_data(table: pa.Table) -> dict[str, np.ndarray]:
    """Class × value uncommon masks as recorded in a converted dataset's own flags."""
    label = _column(table, "label")
    masks = {}
    for attribute, flag in (("time", "uncommon_time"), ("weather", "uncommon_weather")):
        mask = np.zeros((len(CLASS_NAMES), len(ATTRIBUTE_NAMES[attribute])), dtype=bool)
        flagged = _column(table, flag)
        mask[label[flagged], _column(table, attribute)[flagged]] = True
        masks[attribute] = mask
    rows, location_ids = location_occurrences(table, "uncommon_locations")
    mask = np.zeros((len(CLASS_NAMES), len(LOCATION_NAMES)), dtype=bool)
    mask[label[rows], location_ids] = True
    masks["locations"] = mask
    return masks


def format_table1(counts: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> str:
    """Table 1 as Markdown; uncommon (class, value) cells are marked with an asterisk."""
    lines = ["| attribute | value | " + " | ".join(CLASS_NAMES) + " |",
             "|---|---|" + "---:|" * len(CLASS_NAMES)]
    for attribute, names in ATTRIBUTE_NAMES.items():
        for value_id, value in enumerate(names):
            cells = [f"{counts[attribute][c, value_id]}{'*' if masks[attribute][c, value_id] else ''}"
                     for c in range(len(CLASS_NAMES))]
            lines.append(f"| {attribute} | {value} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_table2(sizes: dict[str, int]) -> str:
    """Table 2 (partition sizes) as Markdown."""
    lines = ["| partition | images |", "|---|---:|"]
    lines += [f"| {name} | {count} |" for name, count in sizes.items()]
    return "\n".join(lines)


def published_counts(version: int) -> dict[str, np.ndarray]:
    """A published version's Table 1 as class × value arrays, the layout of table1_counts."""
    table1 = PUBLISHED_VERSIONS[version]["table1"]
    return {attribute: np.array([table1[attribute][value] for value in names]).T
            for attribute, names in ATTRIBUTE_NAMES.items()}


def closest_version(counts: dict[str, np.ndarray]) -> int:
    """The published version (its number of images) whose Table 1 is nearest to these counts.

    The rule: each Table 1 is taken as shares, every cell divided by its table's number of images,
    and the version with the smallest sum of absolute differences of shares (L1) wins; ties go to
    the version listed first. Shares rather than counts, so that a sample or a subset of a version
    is nearest to that version, not to the one with the fewest images.

    >>> closest_version(published_counts(20815)), closest_version(published_counts(23902))
    (20815, 23902)
    """
    def shares(table1: dict[str, np.ndarray]) -> np.ndarray:
        cells = np.concatenate([table1[attribute].ravel() for attribute in ATTRIBUTE_NAMES])
        return cells / max(int(table1["time"].sum()), 1)  # every image has exactly one time value

    ours = shares(counts)
    distances = {version: np.abs(ours - shares(published_counts(version))).sum() for version in PUBLISHED_VERSIONS}
    return min(distances, key=distances.get)


def table1_differences(counts: dict[str, np.ndarray], version: int) -> list[str]:
    """The Table 1 cells that differ from a published version's, one line per cell."""
    published_table1 = PUBLISHED_VERSIONS[version]["table1"]
    lines = []
    for attribute, names in ATTRIBUTE_NAMES.items():
        for value_id, value in enumerate(names):
            for class_id, class_name in enumerate(CLASS_NAMES):
                ours = int(counts[attribute][class_id, value_id])
                published = published_table1[attribute][value][class_id]
                if ours != published:
                    lines.append(f"Table 1 {attribute}={value} {class_name}: {ours} "
                                 f"(published {published}, {ours - published:+d})")
    return lines


def table2_differences(sizes: dict[str, int], version: int) -> list[str]:
    """The Table 2 cells that differ from a published version's (none where it published no Table 2)."""
    published_table2 = PUBLISHED_VERSIONS[version]["table2"] or {}
    return [f"Table 2 {name}: {sizes[name]} (published {published}, {sizes[name] - published:+d})"
            for name, published in published_table2.items() if sizes[name] != published]


def compare_with_published(counts: dict[str, np.ndarray], sizes: dict[str, int], version: int | None = None
                           ) -> list[str]:
    """Differences from a published version's Tables 1 and 2 (by default the closest), one line per cell."""
    version = closest_version(counts) if version is None else version
    return table2_differences(sizes, version) + table1_differences(counts, version)


def closest_published_version(table: pa.Table) -> dict[str, Any]:
    """The published version of FOCUS that data is closest to (closest_version's rule), and how close.

    `table` holds the annotation columns (focus_dataset.annotation_table, read_annotation_columns).
    Returns {"version": the version's number of images (e.g. 20815), "description": where it was
    published, "tables_3_and_4": whether the paper's Tables 3 and 4 were measured on it,
    "num_images": the data's rows, "table1_differences" and "table2_differences": the numbers of
    Table 1 and Table 2 cells that differ from that version's}.
    """
    counts = table1_counts(table)
    version = closest_version(counts)
    published = PUBLISHED_VERSIONS[version]
    return {
        "version": version,
        "description": published["description"],
        "tables_3_and_4": published["tables_3_and_4"],
        "num_images": table.num_rows,
        "table1_differences": len(table1_differences(counts, version)),
        "table2_differences": len(table2_differences(table2_counts(table), version)),
    }


def dataset_fingerprint(table: pa.Table) -> str:
    """A content hash of the annotations (file names, labels, attributes, flags, partitions), in row order.

    It identifies the ground truth that predictions are scored against, whatever the sharding, the
    reader or the folder the data sits in. Values are hashed in an explicit encoding (little-endian
    integers, UTF-8, lengths before each list or string), not Arrow's, so the fingerprint does not
    change with the pyarrow version. Image bytes are not part of it.
    """
    features = focus_features()
    del features["image"]
    digest = hashlib.sha256()
    for name, feature in features.items():
        column = table.column(name).combine_chunks()
        digest.update(name.encode())
        if isinstance(feature, datasets.List):
            digest.update(pc.list_value_length(column).to_numpy(zero_copy_only=False).astype("<i8").tobytes())
            column = pc.list_flatten(column)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            values = column.to_pylist()
            digest.update(np.array([len(v.encode()) for v in values], dtype="<i8").tobytes())
            digest.update("".join(values).encode())
        else:
            digest.update(column.to_numpy(zero_copy_only=False).astype("<i8").tobytes())
    return digest.hexdigest()[:16]


def summary(table: pa.Table, masks: dict[str, np.ndarray]) -> str:
    """Counts and the paper's Tables 1 and 2 for a table of annotation columns."""
    return "\n\n".join([
        f"FOCUS: {table.num_rows} images, fingerprint {dataset_fingerprint(table)}",
        "Table 1: images per class and attribute value (* = uncommon for the class)\n"
        + format_table1(table1_counts(table), masks),
        "Table 2: partition sizes\n" + format_table2(table2_counts(table)),
    ])
