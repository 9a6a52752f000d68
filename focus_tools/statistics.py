"""Statistics of FOCUS computed from its typed columns: the paper's Tables 1 and 2, their
comparison with the published tables, and the content fingerprint of the annotations."""

from __future__ import annotations

import hashlib

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from focus_dataset import (ATTRIBUTE_NAMES, CLASS_NAMES, LOCATION_NAMES, PARTITION_GROUPS, PARTITION_NAMES,
                           focus_features, location_occurrences)
from focus_tools.published import PUBLISHED_TABLE1, PUBLISHED_TABLE2


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


def compare_with_published(counts: dict[str, np.ndarray], sizes: dict[str, int]) -> list[str]:
    """Differences between these statistics and the paper's Tables 1 and 2, one line per cell."""
    lines = []
    for name, published in PUBLISHED_TABLE2.items():
        if sizes[name] != published:
            lines.append(f"Table 2 {name}: {sizes[name]} (published {published}, {sizes[name] - published:+d})")
    for attribute, names in ATTRIBUTE_NAMES.items():
        for value_id, value in enumerate(names):
            for class_id, class_name in enumerate(CLASS_NAMES):
                ours = int(counts[attribute][class_id, value_id])
                published = PUBLISHED_TABLE1[attribute][value][class_id]
                if ours != published:
                    lines.append(f"Table 1 {attribute}={value} {class_name}: {ours} "
                                 f"(published {published}, {ours - published:+d})")
    return lines


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
