"""FOCUS: Familiar Objects in Common and Uncommon Settings, as a typed Hugging Face dataset.

The dataset script: the label lists in the paper's order, the paper's uncommon-settings table and
its partitions, the features, the `datasets` builder that reads the public release, and loading
with the original loader's filters. The tools around it (reading a release safely, conversion to
Parquet, statistics, validation, the sample generator and the `focus-dataset` command line) live in
the `focus_tools` package. Their public names can be used from here as well (`focus_dataset.convert`,
`focus_dataset.validate`, ...): they are imported on first use, so importing this module stays cheap.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

logger = logging.getLogger("focus_dataset")

# `datasets` patches the module that defines a builder (its open, os.path, pathlib, pyarrow readers)
# so that loading scripts can stream remote files. FocusBuilder reads a local release only, and the
# patch would slow every path operation in this module for the rest of the process: opt out.
_patched_for_streaming = True

_CITATION = """\
@InProceedings{pmlr-v162-kattakinda22a,
  title = {{FOCUS}: Familiar Objects in Common and Uncommon Settings},
  author = {Kattakinda, Priyatham and Feizi, Soheil},
  booktitle = {Proceedings of the 39th International Conference on Machine Learning},
  pages = {10825--10847}, year = {2022}, volume = {162},
  series = {Proceedings of Machine Learning Research}, publisher = {PMLR}
}
"""

# Label lists in the paper's order; ids are positions. "none" means ambiguous or not
# determinable (for locations also "none of these places").
CLASS_NAMES = ["truck", "car", "plane", "ship", "cat", "dog", "horse", "deer", "frog", "bird"]
TIME_NAMES = ["day", "night", "none"]
WEATHER_NAMES = ["cloudy", "foggy", "partly cloudy", "raining", "snowing", "sunny", "none"]
LOCATION_NAMES = ["forest", "grass", "indoors", "rocks", "sand", "street", "snow", "water", "none"]
ATTRIBUTE_NAMES = {"time": TIME_NAMES, "weather": WEATHER_NAMES, "locations": LOCATION_NAMES}

# Partitions (Section 3): an image is in P^A where A is the set of its uncommon attributes
# (t = time, w = weather, l = locations). P0 holds the images with no uncommon attribute.
PARTITION_NAMES = ["P0", "P(t)", "P(w)", "P(l)", "P(t,w)", "P(w,l)", "P(t,l)", "P(t,w,l)"]

# The paper's default uncommon settings (Section 3, Table 7). The paper calls the choice
# subjective: users may supply their own table of the same shape (see load_uncommon_table).
UNCOMMON = {
    "time": {name: ["night"] for name in CLASS_NAMES if name != "frog"} | {"frog": []},
    "weather": {name: ["foggy", "raining", "snowing"] for name in CLASS_NAMES},
    "locations": {
        "truck": ["indoors", "rocks", "snow", "water"],
        "car": ["indoors", "rocks", "snow", "water"],
        "plane": ["forest", "indoors", "rocks", "sand", "snow", "water"],
        "ship": ["forest", "grass", "indoors", "rocks", "sand", "street", "snow"],
        "cat": ["forest", "rocks", "sand", "snow", "water"],
        "dog": ["forest", "rocks", "snow"],
        "horse": ["indoors", "rocks", "street", "snow", "water"],
        "deer": ["indoors", "rocks", "sand", "street", "snow", "water"],
        "frog": ["indoors", "street", "snow"],
        "bird": ["indoors", "street", "snow"],
    },
}
UNCOMMON_ATTRIBUTES = ("time", "weather", "locations")

_DESCRIPTION = """\
FOCUS (Familiar Objects in Common and Uncommon Settings) holds about 24K web photos of the ten
CIFAR-10 object classes, each annotated with time of day, weather and a set of locations. Every
(class, setting) pair is marked common or uncommon, and each image falls in a partition by how many
of its attributes are uncommon. It measures how much image classifiers lose when a familiar object
appears in an unfamiliar setting.
"""

_HOMEPAGE = "https://github.com/priyathamkat/focus"
# The release states no licence of its own; the photos are web images.
_LICENSE = "unknown"

_MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download focus.zip from the FOCUS release (see the paper's repository, github.com/priyathamkat/focus)
and pass its path, or the folder it unpacks to, as `data_dir`. No file is downloaded for you.
"""

_MAX_UNCOMMON_TABLE_BYTES = 2**20

# The release: a folder (or focus.zip) holding this SQLite database beside the image folders.
ANNOTATIONS_DB = "annotations.db"
# Web photos average ~100 KB: row groups of 100 images keep writer memory flat.
ROWS_PER_GROUP = 100

# Table 2 groups the partitions by number of uncommon attributes.
PARTITION_GROUPS = {
    "P1": ["P(t)", "P(w)", "P(l)"],
    "P2": ["P(t,w)", "P(w,l)", "P(t,l)"],
    "P3": ["P(t,w,l)"],
}


class FocusDataError(ValueError):
    """Bad input: an annotation, an image, an archive member or a file that cannot be used."""


def quote(value: Any, limit: int = 80) -> str:
    """A user's value as messages quote it: its repr, clipped, since a value may be megabytes long.

    >>> quote("night")
    "'night'"
    >>> quote("x" * 100_000, limit=5)
    "'xxxxx'… (100,000 characters)"
    """
    if isinstance(value, (str, bytes)) and len(value) > limit:
        unit = "characters" if isinstance(value, str) else "bytes"
        return f"{value[:limit]!r}… ({len(value):,} {unit})"
    text = repr(value)
    return text if len(text) <= limit + 2 else text[: limit + 2] + "…"


def load_uncommon_table(path: str | os.PathLike | None = None) -> dict[str, dict[str, list[str]]]:
    """The uncommon-settings table: the paper's default, or a user's JSON/YAML file of that shape.

    The file maps each attribute ("time", "weather", "locations") to a mapping from every class
    name to the list of that attribute's values that are uncommon for it.

    >>> load_uncommon_table()["locations"]["ship"][:3]
    ['forest', 'grass', 'indoors']
    """
    if path is None:
        return validate_uncommon_table(UNCOMMON, source="the paper's table")
    from focus_common.inputs import read_small_text

    try:
        text = read_small_text(path, "a JSON or YAML uncommon table", _MAX_UNCOMMON_TABLE_BYTES)
    except ValueError as err:
        raise FocusDataError(str(err)) from None
    try:
        table = yaml.safe_load(text)  # YAML is a superset of JSON: one parser reads both
    except yaml.YAMLError as err:
        raise FocusDataError(f"{path}: not valid JSON or YAML: {str(err)[:500]}") from err
    return validate_uncommon_table(table, source=str(path))


def validate_uncommon_table(table: Any, source: str = "uncommon table") -> dict[str, dict[str, list[str]]]:
    """Check an uncommon table's shape and names; return it with values in the paper's order."""
    if not isinstance(table, dict):
        raise FocusDataError(
            f"{source}: expected a mapping with keys {list(UNCOMMON_ATTRIBUTES)}, got {type(table).__name__}"
        )
    unknown = sorted(set(map(str, table)) - set(UNCOMMON_ATTRIBUTES))
    missing = [a for a in UNCOMMON_ATTRIBUTES if a not in table]
    if unknown or missing:
        raise FocusDataError(
            f"{source}: attributes must be exactly {list(UNCOMMON_ATTRIBUTES)}; "
            f"missing {missing}, unknown {quote(unknown, limit=200)}"
        )
    normalised: dict[str, dict[str, list[str]]] = {}
    for attribute in UNCOMMON_ATTRIBUTES:
        per_class = table[attribute]
        if not isinstance(per_class, dict):
            raise FocusDataError(f"{source}: '{attribute}' must map class names to lists of values")
        unknown_classes = sorted(set(map(str, per_class)) - set(CLASS_NAMES))
        missing_classes = [c for c in CLASS_NAMES if c not in per_class]
        if unknown_classes or missing_classes:
            raise FocusDataError(
                f"{source}: '{attribute}' must list every class {CLASS_NAMES}; "
                f"missing {missing_classes}, unknown {quote(unknown_classes, limit=200)}"
            )
        names = ATTRIBUTE_NAMES[attribute]
        normalised[attribute] = {}
        for class_name in CLASS_NAMES:
            values = per_class[class_name] or []
            if isinstance(values, str) or not isinstance(values, list):
                raise FocusDataError(
                    f"{source}: '{attribute}.{class_name}' must be a list of values, got {quote(values)}"
                )
            for value in values:
                if value not in names or value == "none":
                    raise FocusDataError(
                        f"{source}: '{attribute}.{class_name}' has unknown value {quote(value)}; "
                        f"expected some of {names[:-1]}"
                    )
            normalised[attribute][class_name] = [v for v in names if v in values]
    return normalised


def uncommon_masks(table: dict[str, dict[str, list[str]]]) -> dict[str, np.ndarray]:
    """Boolean class × value matrices: mask[attribute][class_id, value_id] is True when uncommon."""
    masks = {}
    for attribute, names in ATTRIBUTE_NAMES.items():
        mask = np.zeros((len(CLASS_NAMES), len(names)), dtype=bool)
        for class_id, class_name in enumerate(CLASS_NAMES):
            for value in table[attribute][class_name]:
                mask[class_id, names.index(value)] = True
        masks[attribute] = mask
    return masks


def partition_ids(uncommon_time: np.ndarray, uncommon_weather: np.ndarray, uncommon_location: np.ndarray) -> np.ndarray:
    """Partition id (index into PARTITION_NAMES) of each image from its three uncommon flags.

    >>> partition_ids(np.array([0, 1, 1]), np.array([0, 0, 1]), np.array([0, 1, 1])).tolist()
    [0, 6, 7]
    """
    code = (np.asarray(uncommon_time, dtype=np.int64) * 4 + np.asarray(uncommon_weather, dtype=np.int64) * 2
            + np.asarray(uncommon_location, dtype=np.int64))
    return _PARTITION_OF_CODE[code]


# code = 4*t + 2*w + l  ->  partition id in PARTITION_NAMES order
_PARTITION_OF_CODE = np.array([
    PARTITION_NAMES.index(name)
    for name in ["P0", "P(l)", "P(w)", "P(w,l)", "P(t)", "P(t,l)", "P(t,w)", "P(t,w,l)"]
])


@dataclass(frozen=True)
class Annotation:
    """One row of annotations.db, parsed and checked (focus_tools.release.parse_annotation)."""

    file_name: str  # release path without the leading "/"
    category: str
    time: str
    weather: str
    locations: tuple[str, ...]
    humans: bool


def annotate(annotation: Annotation, table: dict[str, dict[str, list[str]]]) -> dict[str, Any]:
    """The derived columns of one image: its uncommon flags, uncommon locations and partition."""
    uncommon_time = annotation.time in table["time"][annotation.category]
    uncommon_weather = annotation.weather in table["weather"][annotation.category]
    uncommon_locations = [l for l in annotation.locations if l in table["locations"][annotation.category]]
    partition = int(partition_ids(uncommon_time, uncommon_weather, bool(uncommon_locations)))
    return {
        "file_name": annotation.file_name,
        "query": annotation.file_name.split("/", 1)[0],
        "label": annotation.category,
        "time": annotation.time,
        "weather": annotation.weather,
        "locations": list(annotation.locations),
        "humans": annotation.humans,
        "uncommon_time": uncommon_time,
        "uncommon_weather": uncommon_weather,
        "uncommon_location": bool(uncommon_locations),
        "uncommon_locations": uncommon_locations,
        "num_uncommon": int(uncommon_time) + int(uncommon_weather) + int(bool(uncommon_locations)),
        "partition": PARTITION_NAMES[partition],
    }


def focus_features() -> datasets.Features:
    """The typed columns of FOCUS."""
    return datasets.Features({
        "image": datasets.Image(),
        "file_name": datasets.Value("string"),
        "query": datasets.Value("string"),
        "label": datasets.ClassLabel(names=CLASS_NAMES),
        "time": datasets.ClassLabel(names=TIME_NAMES),
        "weather": datasets.ClassLabel(names=WEATHER_NAMES),
        "locations": datasets.List(datasets.ClassLabel(names=LOCATION_NAMES)),
        "humans": datasets.Value("bool"),
        "uncommon_time": datasets.Value("bool"),
        "uncommon_weather": datasets.Value("bool"),
        "uncommon_location": datasets.Value("bool"),
        "uncommon_locations": datasets.List(datasets.ClassLabel(names=LOCATION_NAMES)),
        "num_uncommon": datasets.Value("int8"),
        "partition": datasets.ClassLabel(names=PARTITION_NAMES),
    })


def focus_info() -> datasets.DatasetInfo:
    return datasets.DatasetInfo(description=_DESCRIPTION, features=focus_features(), homepage=_HOMEPAGE,
                                license=_LICENSE, citation=_CITATION)


@dataclass
class FocusConfig(datasets.BuilderConfig):
    """`data_dir` is the release (folder or focus.zip); `uncommon` an optional table (see load_uncommon_table)."""

    uncommon: dict | None = None
    skip_invalid: bool = False


class FocusBuilder(datasets.GeneratorBasedBuilder):
    """FOCUS from its public release, as one split `test` ordered by file_name."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = FocusConfig
    BUILDER_CONFIGS = [FocusConfig(name="default", version=VERSION, description="All FOCUS images.")]
    DEFAULT_CONFIG_NAME = "default"
    DEFAULT_WRITER_BATCH_SIZE = ROWS_PER_GROUP

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("dataset_name", "focus")
        super().__init__(*args, **kwargs)
        self.report: dict[str, list] = {"skipped_rows": [], "image_problems": [], "images_without_rows": []}

    @property
    def manual_download_instructions(self) -> str:
        return _MANUAL_DOWNLOAD_INSTRUCTIONS

    def _info(self) -> datasets.DatasetInfo:
        return focus_info()

    def _split_generators(self, dl_manager):
        if not self.config.data_dir:
            raise FocusDataError(f"no FOCUS release given. {_MANUAL_DOWNLOAD_INSTRUCTIONS}")
        source = dl_manager.manual_dir or self.config.data_dir
        table = validate_uncommon_table(self.config.uncommon) if self.config.uncommon else load_uncommon_table()
        return [datasets.SplitGenerator(name=datasets.Split.TEST, gen_kwargs={"source": source, "table": table})]

    def _generate_examples(self, source, table):
        for index, example in generate_examples(source, table, self.report, skip_invalid=self.config.skip_invalid):
            yield index, example


def generate_examples(source: str | os.PathLike, table: dict, report: dict[str, list], *,
                      skip_invalid: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row index, example) for every annotated image of a release, by file_name; problems go to `report`."""
    # The release reader imports the label lists from this module: imported on use, not at the top.
    from focus_tools.release import Release, read_image, release_annotations

    with Release(source) as release:
        annotations = release_annotations(release, report, skip_invalid=skip_invalid)
        for index, annotation in enumerate(annotations):
            data = read_image(release, annotation.file_name, report)
            example = annotate(annotation, table)
            example["image"] = None if data is None else {"bytes": data, "path": annotation.file_name}
            yield index, example


def location_occurrences(table: pa.Table, column: str = "locations") -> tuple[np.ndarray, np.ndarray]:
    """(row index, location id) of every location occurrence of a list column."""
    locations = table.column(column).combine_chunks()
    return (pc.list_parent_indices(locations).to_numpy(zero_copy_only=False),
            pc.list_flatten(locations).to_numpy(zero_copy_only=False))


def annotation_table(dataset: datasets.Dataset) -> pa.Table:
    """The dataset's columns except the images, as one Arrow table (no image is decoded or copied)."""
    columns = [name for name in dataset.column_names if name != "image"]
    return dataset.with_format("arrow", columns=columns)[:]


def is_release(path: str | os.PathLike) -> bool:
    """True for a raw release (a folder with annotations.db, or a zip); False for a converted dataset."""
    path = Path(path)
    if path.is_file():
        return zipfile.is_zipfile(path)
    if path.is_dir():
        return (path / ANNOTATIONS_DB).is_file() or any((c / ANNOTATIONS_DB).is_file() for c in path.iterdir())
    return False


def load_focus(
    path: str | os.PathLike,
    *,
    categories: Sequence[str] | None = None,
    times: Sequence[str] | None = None,
    weathers: Sequence[str] | None = None,
    locations: Sequence[str] | None = None,
    locations_match: str = "any",
    humans: bool | None = None,
    uncommon: str | os.PathLike | None = None,
    cache_dir: str | None = None,
) -> datasets.Dataset:
    """FOCUS as a `datasets.Dataset`, optionally filtered like the original loader.

    `path` is a converted folder, a Hub dataset repo id, or a raw release (folder or focus.zip),
    which is built into the `datasets` cache first. Filters take label names; `locations_match`
    says whether an image needs "any" or "all" of `locations`.
    """
    if Path(path).exists() and is_release(path):
        table = load_uncommon_table(uncommon)
        builder = FocusBuilder(cache_dir=cache_dir, data_dir=str(Path(path).resolve()), uncommon=table)
        builder.download_and_prepare()
        dataset = builder.as_dataset(split="test")
    else:
        if uncommon is not None:
            raise FocusDataError(
                f"{path}: a converted dataset has its uncommon flags already; pass --uncommon when converting"
            )
        if Path(path).is_dir():
            # A damaged shard is named here, not deep inside datasets' generation.
            from focus_tools.parquet import converted_shards, open_shard

            shards = converted_shards(Path(path))
            if not shards:
                # datasets would read whatever Parquet, JSON or CSV files the folder holds (a run
                # folder's predictions, say) as if they were FOCUS.
                found = "a focus-eval run folder" if (Path(path) / "run.json").is_file() else "no FOCUS dataset"
                raise FocusDataError(
                    f"{path}: {found}: it holds no data/*.parquet shards and no {ANNOTATIONS_DB}. Pass a folder "
                    f"written by `focus-dataset convert`, the release folder or focus.zip, or a Hub dataset id"
                )
            for shard in shards:
                open_shard(shard)
        dataset = datasets.load_dataset(str(path), split="test", cache_dir=cache_dir)
    return filter_focus(dataset, categories=categories, times=times, weathers=weathers,
                        locations=locations, locations_match=locations_match, humans=humans)


def _label_ids(values: Sequence[str] | None, names: list[str], argument: str) -> np.ndarray | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    unknown = [v for v in values if v not in names]
    if unknown:
        raise ValueError(f"{argument}: unknown name {quote(unknown[0])}; expected some of {names}")
    return np.array([names.index(v) for v in values], dtype=np.int64)


def filter_focus(
    dataset: datasets.Dataset,
    *,
    categories: Sequence[str] | None = None,
    times: Sequence[str] | None = None,
    weathers: Sequence[str] | None = None,
    locations: Sequence[str] | None = None,
    locations_match: str = "any",
    humans: bool | None = None,
) -> datasets.Dataset:
    """Rows matching every given filter, computed on the Arrow columns (no image is decoded)."""
    if locations_match not in ("any", "all"):
        raise ValueError(f"locations_match must be 'any' or 'all', got {quote(locations_match)}")
    wanted = {
        "label": _label_ids(categories, CLASS_NAMES, "categories"),
        "time": _label_ids(times, TIME_NAMES, "times"),
        "weather": _label_ids(weathers, WEATHER_NAMES, "weathers"),
    }
    wanted_locations = _label_ids(locations, LOCATION_NAMES, "locations")
    if all(v is None for v in wanted.values()) and wanted_locations is None and humans is None:
        return dataset
    table = annotation_table(dataset)
    keep = np.ones(table.num_rows, dtype=bool)
    for column, ids in wanted.items():
        if ids is not None:
            keep &= np.isin(table.column(column).to_numpy(), ids)
    if wanted_locations is not None:
        rows, location_ids = location_occurrences(table)
        hits = np.bincount(rows[np.isin(location_ids, wanted_locations)], minlength=table.num_rows)
        needed = 1 if locations_match == "any" else len(np.unique(wanted_locations))
        keep &= hits >= needed
    if humans is not None:
        keep &= table.column("humans").to_numpy() == bool(humans)
    return dataset.select(np.flatnonzero(keep))


# The tools' public names, importable from this module as before the split. PEP 562: looked up on
# first use, so `import focus_dataset` loads neither the conversion nor the validation machinery.
_TOOLS = {
    "focus_tools.release": ["Release", "ReleaseFile", "UnreadableFile", "parse_locations", "parse_annotation",
                            "file_name_problems", "read_annotations", "release_annotations", "read_image",
                            "check_image_bytes", "decode_problem", "problem_text",
                            "MAX_IMAGE_BYTES", "MAX_DATABASE_BYTES", "MAX_FILE_NAME_LENGTH", "MAX_ROWS",
                            "MAX_COMPRESSION_RATIO"],
    "focus_tools.published": ["PUBLISHED_VERSIONS", "PUBLISHED_TABLE1", "PUBLISHED_TABLE2"],
    "focus_tools.statistics": ["table1_counts", "table2_counts", "uncommon_masks_from_data", "format_table1",
                               "format_table2", "published_counts", "closest_version", "closest_published_version",
                               "table1_differences", "table2_differences", "compare_with_published",
                               "dataset_fingerprint", "summary"],
    "focus_tools.parquet": ["SHARD_PATTERN", "converted_shards", "open_shard", "read_annotation_columns",
                            "image_batches", "encode_batch", "annotation_columns", "shard_size_limit",
                            "write_parquet_shards"],
    "focus_tools.card": ["CARD_TEMPLATE", "render_card", "format_uncommon_table"],
    "focus_tools.convert": ["REPORT_NAME", "CARD_NAME", "convert", "check_output", "staging_folder"],
    "focus_tools.hub": ["check_hub_access", "push_to_hub", "hub_problem"],
    "focus_tools.validate": ["ValidationResult", "annotations_table", "validate", "validate_release",
                             "validate_converted", "validation_report"],
    "focus_tools.sample": ["sample_annotations", "sample_image", "write_annotations_db", "write_sample_release"],
    "focus_tools.cli": ["build_parser", "main"],
}
_MODULE_OF = {name: module for module, names in _TOOLS.items() for name in names}


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULE_OF[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULE_OF])


if __name__ == "__main__":
    from focus_tools.cli import main

    sys.exit(main())
