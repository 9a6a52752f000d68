"""FOCUS: Familiar Objects in Common and Uncommon Settings, as a typed Hugging Face dataset.

This module owns the data and its schema: the label lists in the paper's order, the paper's
uncommon-settings table, partitions, the `datasets` builder that reads the public release, and the
`focus-dataset` command line (convert, sample, validate).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from queue import Queue
from typing import Any

import datasets
import huggingface_hub
import numpy as np
import PIL.Image
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from datasets.utils.py_utils import convert_file_size_to_int

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

# Published statistics (Kattakinda & Feizi 2022). Table 1: images per class (columns in
# CLASS_NAMES order) for each attribute value; a multi-location image counts once per location.
PUBLISHED_TABLE1 = {
    "time": {
        "day": [1217, 2798, 1740, 1731, 2109, 2766, 2260, 1838, 1096, 2526],
        "night": [66, 304, 136, 167, 84, 66, 56, 57, 201, 58],
        "none": [32, 266, 99, 33, 997, 566, 88, 44, 370, 131],
    },
    "weather": {
        "cloudy": [189, 400, 314, 377, 79, 195, 248, 175, 18, 187],
        "foggy": [22, 115, 47, 106, 6, 44, 90, 55, 3, 48],
        "partly cloudy": [161, 363, 340, 307, 98, 184, 282, 159, 50, 170],
        "raining": [16, 161, 27, 10, 15, 11, 14, 3, 3, 21],
        "snowing": [13, 66, 3, 5, 29, 49, 49, 53, 0, 39],
        "sunny": [662, 1252, 850, 837, 768, 1266, 1183, 880, 503, 1297],
        "none": [252, 1011, 394, 289, 2195, 1649, 538, 614, 1090, 953],
    },
    "locations": {
        "forest": [185, 473, 179, 75, 90, 262, 519, 835, 117, 434],
        "grass": [355, 738, 397, 97, 532, 874, 1171, 1254, 293, 578],
        "indoors": [37, 311, 119, 3, 1451, 897, 76, 12, 37, 41],
        "rocks": [57, 119, 52, 67, 130, 114, 83, 86, 265, 192],
        "sand": [305, 596, 247, 181, 137, 451, 625, 186, 162, 315],
        "street": [702, 1811, 331, 96, 376, 386, 235, 74, 32, 124],
        "snow": [113, 308, 129, 157, 140, 357, 222, 306, 8, 192],
        "water": [65, 225, 354, 1728, 102, 433, 331, 135, 404, 611],
        "none": [90, 188, 673, 64, 524, 342, 245, 93, 555, 804],
    },
}
# Table 2: partition sizes. P1, P2 and P3 group the partitions by number of uncommon attributes.
# As published, P0 + P1 + P2 + P3 = 23904, two more than the total (which Table 1 confirms).
PUBLISHED_TABLE2 = {
    "total": 23902, "P0": 16692,
    "P1": 6530, "P(t)": 752, "P(w)": 597, "P(l)": 5181,
    "P2": 647, "P(t,w)": 51, "P(w,l)": 440, "P(t,l)": 156,
    "P3": 35, "P(t,w,l)": 35,
}
PARTITION_GROUPS = {
    "P1": ["P(t)", "P(w)", "P(l)"],
    "P2": ["P(t,w)", "P(w,l)", "P(t,l)"],
    "P3": ["P(t,w,l)"],
}


class FocusDataError(ValueError):
    """Bad input: an annotation, an image, an archive member or a file that cannot be used."""


# --------------------------------------------------------------------------------------------
# Uncommon settings
# --------------------------------------------------------------------------------------------

def load_uncommon_table(path: str | os.PathLike | None = None) -> dict[str, dict[str, list[str]]]:
    """The uncommon-settings table: the paper's default, or a user's JSON/YAML file of that shape.

    The file maps each attribute ("time", "weather", "locations") to a mapping from every class
    name to the list of that attribute's values that are uncommon for it.

    >>> load_uncommon_table()["locations"]["ship"][:3]
    ['forest', 'grass', 'indoors']
    """
    if path is None:
        return validate_uncommon_table(UNCOMMON, source="the paper's table")
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise FocusDataError(f"{path}: cannot read the uncommon table: {err.strerror}") from err
    try:
        table = yaml.safe_load(text)  # YAML is a superset of JSON: one parser reads both
    except yaml.YAMLError as err:
        raise FocusDataError(f"{path}: not valid JSON or YAML: {err}") from err
    return validate_uncommon_table(table, source=str(path))


def validate_uncommon_table(table: Any, source: str = "uncommon table") -> dict[str, dict[str, list[str]]]:
    """Check an uncommon table's shape and names; return it with values in the paper's order."""
    if not isinstance(table, dict):
        raise FocusDataError(
            f"{source}: expected a mapping with keys {list(UNCOMMON_ATTRIBUTES)}, got {type(table).__name__}"
        )
    unknown = sorted(set(table) - set(UNCOMMON_ATTRIBUTES))
    missing = [a for a in UNCOMMON_ATTRIBUTES if a not in table]
    if unknown or missing:
        raise FocusDataError(
            f"{source}: attributes must be exactly {list(UNCOMMON_ATTRIBUTES)}; "
            f"missing {missing}, unknown {unknown}"
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
                f"missing {missing_classes}, unknown {unknown_classes}"
            )
        names = ATTRIBUTE_NAMES[attribute]
        normalised[attribute] = {}
        for class_name in CLASS_NAMES:
            values = per_class[class_name] or []
            if isinstance(values, str) or not isinstance(values, list):
                raise FocusDataError(
                    f"{source}: '{attribute}.{class_name}' must be a list of values, got {values!r}"
                )
            for value in values:
                if value not in names or value == "none":
                    raise FocusDataError(
                        f"{source}: '{attribute}.{class_name}' has unknown value {value!r}; "
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


# --------------------------------------------------------------------------------------------
# Annotation rows of the public release
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Annotation:
    """One row of annotations.db, parsed and checked."""

    file_name: str  # release path without the leading "/"
    category: str
    time: str
    weather: str
    locations: tuple[str, ...]
    humans: bool


def parse_locations(value: Any) -> tuple[tuple[str, ...], list[str]]:
    """Split a release `locations` string; return (names in the paper's order, problems).

    >>> parse_locations("grass, water")
    (('grass', 'water'), [])
    >>> parse_locations("water,grass")[1]
    ["malformed locations 'water,grass': items must be joined by ', '"]
    """
    if not isinstance(value, str) or not value.strip():
        return (), [f"malformed locations {value!r}: expected names joined by ', ' or 'none'"]
    problems = []
    items = value.split(", ")
    if any("," in item or item != item.strip() or not item for item in items):
        problems.append(f"malformed locations {value!r}: items must be joined by ', '")
        items = [item.strip() for item in value.split(",") if item.strip()]
    unknown = [item for item in items if item not in LOCATION_NAMES]
    if unknown:
        problems.append(f"unknown location {unknown[0]!r} in {value!r}; expected some of {LOCATION_NAMES}")
    if len(set(items)) != len(items):
        problems.append(f"malformed locations {value!r}: a location is repeated")
    if "none" in items and len(items) > 1:
        problems.append(f"malformed locations {value!r}: 'none' cannot be combined with other locations")
    return tuple(name for name in LOCATION_NAMES if name in items), problems


def parse_annotation(row: tuple) -> tuple[Annotation | None, list[str]]:
    """Check one release row (file_name, category, time, weather, locations, humans)."""
    file_name, category, time_, weather, locations, humans = row
    problems = []
    if not isinstance(file_name, str) or not file_name.strip("/"):
        problems.append(f"file_name {file_name!r} is empty")
        file_name = ""
    else:
        parts = file_name.lstrip("/").split("/")
        if ".." in parts or "" in parts or "\\" in file_name or len(parts) < 2:
            problems.append(
                f"file_name {file_name!r} must be '/<query folder>/<image>' inside the release, without '..'"
            )
    for column, value, names in (("category", category, CLASS_NAMES), ("time", time_, TIME_NAMES),
                                 ("weather", weather, WEATHER_NAMES)):
        if value not in names:
            problems.append(f"unknown {column} {value!r}; expected one of {names}")
    parsed_locations, location_problems = parse_locations(locations)
    problems += location_problems
    if humans not in ("yes", "no"):
        problems.append(f"humans must be 'yes' or 'no', got {humans!r}")
    if problems:
        return None, problems
    return Annotation(file_name.lstrip("/"), category, time_, weather, parsed_locations, humans == "yes"), []


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


# --------------------------------------------------------------------------------------------
# The public release: a folder or focus.zip holding annotations.db and the images
# --------------------------------------------------------------------------------------------

ANNOTATIONS_DB = "annotations.db"
# Web photos average ~100 KB: row groups of 100 images keep writer memory flat.
ROWS_PER_GROUP = 100
_ANNOTATION_COLUMNS = "file_name, category, time, weather, locations, humans"
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}


class Release:
    """Read access to a FOCUS release, unpacked or as a zip, without extracting anything.

    Use as a context manager: ``with Release(path) as release: release.rows(), release.read(name)``.
    """

    def __init__(self, source: str | os.PathLike):
        self.source = Path(source)
        self._zip: zipfile.ZipFile | None = None
        self._root: Path | None = None
        self._prefix = ""
        self._db: sqlite3.Connection | None = None

    def __enter__(self) -> "Release":
        if self.source.is_dir():
            self._root = self._find_root(self.source)
            self._db = sqlite3.connect(f"file:{self._root / ANNOTATIONS_DB}?mode=ro", uri=True)
        elif zipfile.is_zipfile(self.source):
            self._zip = zipfile.ZipFile(self.source)
            self._prefix = self._find_prefix(self._zip)
            self._db = sqlite3.connect(":memory:")
            # sqlite cannot read from inside an archive: load the (small) database into memory.
            self._db.deserialize(self._zip.read(self._prefix + ANNOTATIONS_DB))
        elif self.source.exists():
            raise FocusDataError(
                f"{self.source}: not a FOCUS release; expected the folder holding {ANNOTATIONS_DB} "
                f"and the images, or focus.zip"
            )
        else:
            raise FocusDataError(f"{self.source}: no such file or folder; expected a FOCUS release folder or focus.zip")
        self._check_schema()
        return self

    def __exit__(self, *exc) -> None:
        if self._db is not None:
            self._db.close()
        if self._zip is not None:
            self._zip.close()

    @staticmethod
    def _find_root(folder: Path) -> Path:
        if (folder / ANNOTATIONS_DB).is_file():
            return folder
        # focus.zip unpacks to one folder: accept the folder it was unpacked into as well.
        inner = [child for child in folder.iterdir() if (child / ANNOTATIONS_DB).is_file()]
        if len(inner) == 1:
            return inner[0]
        raise FocusDataError(
            f"{folder}: no {ANNOTATIONS_DB}; expected {folder / ANNOTATIONS_DB} (the folder that "
            f"focus.zip unpacks to holds it beside the image folders)"
        )

    def _find_prefix(self, archive: zipfile.ZipFile) -> str:
        names = archive.namelist()
        for name in names:
            parts = PurePosixPath(name).parts
            if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise FocusDataError(
                    f"{self.source}: refusing archive member {name!r}: absolute paths and '..' are not allowed"
                )
        candidates = sorted((n for n in names if PurePosixPath(n).name == ANNOTATIONS_DB), key=len)
        if not candidates:
            raise FocusDataError(
                f"{self.source}: no {ANNOTATIONS_DB} in the archive; expected it at the top or in the "
                f"one folder the archive unpacks to (e.g. focus/{ANNOTATIONS_DB})"
            )
        return candidates[0][: -len(ANNOTATIONS_DB)]

    def _check_schema(self) -> None:
        try:
            columns = [r[1] for r in self._db.execute("PRAGMA table_info(annotations)")]
        except sqlite3.DatabaseError as err:
            raise FocusDataError(f"{self.source}: {ANNOTATIONS_DB} is not a SQLite database: {err}") from err
        expected = [c.strip() for c in _ANNOTATION_COLUMNS.split(",")]
        missing = [c for c in expected if c not in columns]
        if missing:
            raise FocusDataError(
                f"{self.source}: {ANNOTATIONS_DB} needs a table 'annotations' with columns {expected}; "
                f"missing {missing}"
            )

    def rows(self) -> Iterator[tuple]:
        """Annotation rows (file_name, category, time, weather, locations, humans) by file_name."""
        yield from self._db.execute(f"SELECT {_ANNOTATION_COLUMNS} FROM annotations ORDER BY file_name")

    def num_rows(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM annotations").fetchone()[0]

    def read(self, file_name: str) -> bytes | None:
        """The image file's bytes (file_name without the leading "/"), or None when it is missing."""
        if self._zip is not None:
            try:
                return self._zip.read(self._prefix + file_name)
            except KeyError:
                return None
        try:
            return (self._root / file_name).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def image_names(self) -> list[str]:
        """Every image file in the release (relative names), whether annotated or not."""
        if self._zip is not None:
            return sorted(
                name[len(self._prefix):] for name in self._zip.namelist()
                if name.startswith(self._prefix) and PurePosixPath(name).suffix.lower() in _IMAGE_SUFFIXES
            )
        names = []
        for folder, _, files in os.walk(self._root):
            relative = Path(folder).relative_to(self._root).as_posix()
            names += [name if relative == "." else f"{relative}/{name}" for name in files
                      if os.path.splitext(name)[1].lower() in _IMAGE_SUFFIXES]
        return sorted(names)


def check_image_bytes(data: bytes | None) -> str | None:
    """A cheap check of an image file (header and end marker, no full decode): the problem, or None."""
    if data is None:
        return "missing"
    if not data:
        return "empty file"
    # Fast path for the common formats: their signatures and end markers, without PIL.
    if data.startswith(b"\xff\xd8\xff"):
        return None if b"\xff\xd9" in data[-4096:] else "truncated: no JPEG end marker"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None if b"IEND" in data[-4096:] else "truncated: no PNG end chunk"
    try:
        PIL.Image.open(io.BytesIO(data)).close()
    except (PIL.UnidentifiedImageError, OSError, ValueError) as err:
        return f"undecodable: {err}"
    return None


def decode_problem(data: bytes | None) -> str | None:
    """A full decode of an image file, truncation not tolerated: the problem, or None."""
    problem = check_image_bytes(data)
    if problem is not None:
        return problem
    try:
        with PIL.Image.open(io.BytesIO(data)) as image:
            image.load()
    except (OSError, ValueError, SyntaxError) as err:
        return f"undecodable: {err}"
    return None


def read_annotations(release: Release, skip_invalid: bool = False) -> tuple[list[Annotation], list[dict]]:
    """Every row of the release checked before anything is written.

    A bad row raises FocusDataError naming the row and the value, unless skip_invalid, in which
    case it is left out and described in the returned list of skipped rows.
    """
    annotations, skipped, seen = [], [], set()
    for row_number, row in enumerate(release.rows(), start=1):
        annotation, problems = parse_annotation(row)
        if annotation is not None and annotation.file_name in seen:
            annotation, problems = None, [f"duplicate file_name {row[0]!r}"]
        if problems:
            if not skip_invalid:
                raise FocusDataError(
                    f"{release.source}: annotations row {row_number} (file_name {row[0]!r}): "
                    + "; ".join(problems) + ". Fix the row, or pass --skip-invalid to leave such rows out."
                )
            skipped.append({"row": row_number, "file_name": row[0], "problems": problems})
            continue
        seen.add(annotation.file_name)
        annotations.append(annotation)
    if not annotations:
        raise FocusDataError(f"{release.source}: {ANNOTATIONS_DB} holds no usable annotation rows")
    return annotations, skipped


# --------------------------------------------------------------------------------------------
# The datasets builder
# --------------------------------------------------------------------------------------------

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
    with Release(source) as release:
        annotations, skipped = read_annotations(release, skip_invalid=skip_invalid)
        report["skipped_rows"] = skipped
        annotated = {a.file_name for a in annotations}
        report["images_without_rows"] = [n for n in release.image_names() if n not in annotated]
        report["image_problems"] = []
        for index, annotation in enumerate(annotations):
            data = release.read(annotation.file_name)
            problem = check_image_bytes(data)
            if problem is not None:
                # The row stays (its annotation is good); readers see the problem when decoding.
                logger.warning("%s: image %s: %s", release.source, annotation.file_name, problem)
                report["image_problems"].append({"file_name": annotation.file_name, "problem": problem})
            example = annotate(annotation, table)
            example["image"] = None if data is None else {"bytes": data, "path": annotation.file_name}
            yield index, example


# --------------------------------------------------------------------------------------------
# Statistics: the paper's Table 1 and Table 2, computed from the typed columns
# --------------------------------------------------------------------------------------------

def _column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy()


def _flat_locations(table: pa.Table, column: str = "locations") -> tuple[np.ndarray, np.ndarray]:
    """(row index, location id) of every location occurrence of a list column."""
    locations = table.column(column).combine_chunks()
    return (pc.list_parent_indices(locations).to_numpy(zero_copy_only=False),
            pc.list_flatten(locations).to_numpy(zero_copy_only=False))


def table1_counts(table: pa.Table) -> dict[str, np.ndarray]:
    """Images per class × value for each attribute (Table 1); one count per location occurrence."""
    label = _column(table, "label")
    counts = {}
    for attribute in ("time", "weather"):
        values = _column(table, attribute)
        width = len(ATTRIBUTE_NAMES[attribute])
        counts[attribute] = np.bincount(label * width + values, minlength=len(CLASS_NAMES) * width).reshape(
            len(CLASS_NAMES), width)
    rows, location_ids = _flat_locations(table)
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
    rows, location_ids = _flat_locations(table, "uncommon_locations")
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


def read_annotation_columns(converted: str | os.PathLike) -> pa.Table:
    """The annotation columns of a converted folder's shards, read without touching the images."""
    columns = [name for name in focus_features() if name != "image"]
    return pa.concat_tables(pq.read_table(shard, columns=columns) for shard in converted_shards(Path(converted)))


def annotation_table(dataset: datasets.Dataset) -> pa.Table:
    """The dataset's columns except the images, as one Arrow table (no image is decoded or copied)."""
    columns = [name for name in dataset.column_names if name != "image"]
    return dataset.with_format("arrow", columns=columns)[:]


# --------------------------------------------------------------------------------------------
# Conversion to a Hub-ready dataset repository
# --------------------------------------------------------------------------------------------

CARD_TEMPLATE = Path(__file__).with_name("dataset_card.md")
REPORT_NAME = "conversion_report.json"


def _size_category(n: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return name
    return "n>1M"


def render_card(info: datasets.DatasetInfo, table: pa.Table, uncommon: dict, report: dict, num_bytes: int) -> str:
    """The dataset card: YAML metadata for the Hub plus statistics computed from the data.

    The split sizes matter beyond display: `datasets` names a local folder's cache after its YAML
    metadata, so two conversions must not share it unless they hold the same data.
    """
    info.splits = datasets.SplitDict({"test": datasets.SplitInfo("test", num_bytes=num_bytes,
                                                                 num_examples=table.num_rows)})
    info.download_size = info.dataset_size = num_bytes
    card_data = huggingface_hub.DatasetCardData(
        pretty_name="FOCUS: Familiar Objects in Common and Uncommon Settings",
        license=_LICENSE,
        task_categories=["image-classification"],
        size_categories=[_size_category(table.num_rows)],
        language=["en"],
        tags=["distribution-shift", "robustness", "cifar-10-classes"],
        configs=[{"config_name": "default", "data_files": [{"split": "test", "path": "data/test-*"}]}],
    )
    info.config_name = "default"
    datasets.info.DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)
    counts, sizes = table1_counts(table), table2_counts(table)
    card = huggingface_hub.DatasetCard.from_template(
        card_data,
        template_path=str(CARD_TEMPLATE),
        num_images=table.num_rows,
        fingerprint=dataset_fingerprint(table),
        table1=format_table1(counts, uncommon_masks(uncommon)),
        table2=format_table2(sizes),
        uncommon_table=format_uncommon_table(uncommon),
        uncommon_is_default=uncommon == load_uncommon_table(),
        report=report,
        citation=_CITATION.strip(),
        class_names=CLASS_NAMES, time_names=TIME_NAMES, weather_names=WEATHER_NAMES,
        location_names=LOCATION_NAMES, partition_names=PARTITION_NAMES,
    )
    return str(card)


def format_uncommon_table(table: dict) -> str:
    lines = ["| class | uncommon time | uncommon weather | uncommon locations |", "|---|---|---|---|"]
    for class_name in CLASS_NAMES:
        cells = [", ".join(table[a][class_name]) or "—" for a in UNCOMMON_ATTRIBUTES]
        lines.append(f"| {class_name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def convert(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    uncommon: str | os.PathLike | dict | None = None,
    max_shard_size: str | int | None = None,
    skip_invalid: bool = False,
    overwrite: bool = False,
) -> dict:
    """Convert a release (folder or focus.zip) into a Hub-ready dataset folder; return its report.

    The examples are FocusBuilder's own (generate_examples), written to Parquet by pyarrow in row
    groups, so memory stays flat and the time stays close to reading the files.

    OUTPUT gets `data/test-XXXXX-of-YYYYY.parquet`, a README.md dataset card and
    conversion_report.json. It appears only when the conversion has succeeded.
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise FocusDataError(f"{output}: is a file; OUTPUT must be a folder (new, or with --overwrite an old one)")
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise FocusDataError(f"{output}: already exists and is not empty; choose another OUTPUT or pass --overwrite")
    table = validate_uncommon_table(uncommon) if isinstance(uncommon, dict) else load_uncommon_table(uncommon)
    # Check every annotation before anything is written.
    with Release(source) as release:
        read_annotations(release, skip_invalid=skip_invalid)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        report: dict[str, Any] = {}
        examples = (example for _, example in generate_examples(source, table, report, skip_invalid=skip_invalid))
        shards = write_parquet_shards(examples, staging / "data", max_shard_size=max_shard_size)
        annotations = read_annotation_columns(staging)
        report.update(num_images=annotations.num_rows, fingerprint=dataset_fingerprint(annotations))
        (staging / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
        (staging / "README.md").write_text(render_card(focus_info(), annotations, table, report,
                                                            num_bytes=sum(p.stat().st_size for p in shards)))
        # The old folder steps aside before the new one takes its name, and goes only after.
        retired = staging.with_name(staging.name + ".old")
        if output.exists():
            os.replace(output, retired)
        os.replace(staging, output)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def encode_batch(examples: list[dict[str, Any]], features: datasets.Features) -> pa.RecordBatch:
    """Examples with label names as one typed Arrow batch (names to ids with Arrow compute, not per row)."""
    arrays = []
    for name, feature in features.items():
        values = [example[name] for example in examples]
        if isinstance(feature, datasets.ClassLabel):
            array = pc.index_in(pa.array(values, pa.string()), value_set=pa.array(feature.names))
        elif isinstance(feature, datasets.List):
            flat = pa.array([v for row in values for v in row], pa.string())
            offsets = pa.array(np.concatenate([[0], np.cumsum([len(row) for row in values])]), pa.int32())
            array = pa.ListArray.from_arrays(offsets, pc.index_in(flat, value_set=pa.array(feature.feature.names)))
        else:
            array = pa.array(values)
        arrays.append(array)
    schema = features.arrow_schema
    return pa.RecordBatch.from_arrays([a.cast(f.type) for a, f in zip(arrays, schema)], schema=schema)


def _encoded_batches(examples: Iterable[dict[str, Any]], features: datasets.Features,
                     rows_per_group: int) -> Iterator[pa.RecordBatch]:
    batch: list[dict[str, Any]] = []
    for example in examples:
        batch.append(example)
        if len(batch) == rows_per_group:
            yield encode_batch(batch, features)
            batch = []
    if batch:
        yield encode_batch(batch, features)


def _write_in_background(batches: Iterable[pa.RecordBatch], write: Callable[[pa.RecordBatch], None],
                         depth: int = 2) -> None:
    """Write each batch in a background thread while this thread makes the next one.

    Parquet writes without the GIL, so reading and encoding the next row group overlaps with
    writing this one. The batches (and the file bytes in them) are made in the calling thread, and
    at most `depth` wait: memory stays flat. An error on either side is raised here.
    """
    queue: Queue = Queue(maxsize=depth)
    failures: list[BaseException] = []

    def consume() -> None:
        try:
            while (batch := queue.get()) is not None:
                write(batch)
        except BaseException as err:  # noqa: BLE001 - raised in the calling thread
            failures.append(err)
            while queue.get() is not None:  # keep taking, so that the producer never blocks
                pass

    writer = threading.Thread(target=consume, daemon=True)
    writer.start()
    try:
        for batch in batches:
            if failures:
                break
            queue.put(batch)
    finally:
        queue.put(None)
        writer.join()
    if failures:
        raise failures[0]


def write_parquet_shards(
    examples: Iterable[dict[str, Any]],
    folder: Path,
    *,
    max_shard_size: str | int | None = None,
    rows_per_group: int | None = None,
) -> list[Path]:
    """Stream examples into `folder/test-XXXXX-of-YYYYY.parquet`, a row group at a time.

    The schema carries the `datasets` features (ClassLabel names, Image), so plain load_dataset
    reads the shards typed. Image bytes are stored as they are, uncompressed and without dictionary
    or statistics: compressing JPEG gains nothing and would cost more than reading the files.
    """
    features = focus_features()
    rows_per_group = rows_per_group or ROWS_PER_GROUP
    limit = convert_file_size_to_int(max_shard_size or datasets.config.MAX_SHARD_SIZE)
    folder.mkdir(parents=True)
    compression = {name: "none" if name == "image" else "zstd" for name in features}
    # Dictionaries and min/max statistics over image bytes would hash and scan every file again.
    small_columns = [name for name in features if name != "image"]
    shards: list[Path] = []
    writer: pq.ParquetWriter | None = None
    written = 0

    def write(batch: pa.RecordBatch) -> None:
        nonlocal writer, written
        if writer is None or written >= limit:
            if writer is not None:
                writer.close()
            shards.append(folder / f"shard-{len(shards):05d}.parquet")
            writer = pq.ParquetWriter(shards[-1], features.arrow_schema, compression=compression,
                                      use_dictionary=small_columns, write_statistics=small_columns)
            written = 0
        writer.write_batch(batch, row_group_size=rows_per_group)
        written += batch.nbytes
        # Arrow's allocator keeps freed buffers for reuse per thread; with the writer in its own
        # thread that cache would grow with the release. Hand it back after each row group.
        pa.default_memory_pool().release_unused()

    _write_in_background(_encoded_batches(examples, features, rows_per_group), write)
    if writer is None:
        write(encode_batch([], features))
    writer.close()
    named = [folder / f"test-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
    for shard, name in zip(shards, named):
        shard.rename(name)
    return named


def push_to_hub(output: str | os.PathLike, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Upload a converted folder as a Hub dataset repository; return the commit URL."""
    api = huggingface_hub.HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=str(output),
                             commit_message="Upload FOCUS converted by focus-dataset")
    return str(info)


# --------------------------------------------------------------------------------------------
# Loading and filtering
# --------------------------------------------------------------------------------------------

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
        raise ValueError(f"{argument}: unknown name {unknown[0]!r}; expected some of {names}")
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
        raise ValueError(f"locations_match must be 'any' or 'all', got {locations_match!r}")
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
            keep &= np.isin(_column(table, column), ids)
    if wanted_locations is not None:
        rows, location_ids = _flat_locations(table)
        hits = np.bincount(rows[np.isin(location_ids, wanted_locations)], minlength=table.num_rows)
        needed = 1 if locations_match == "any" else len(np.unique(wanted_locations))
        keep &= hits >= needed
    if humans is not None:
        keep &= _column(table, "humans") == bool(humans)
    return dataset.select(np.flatnonzero(keep))


# --------------------------------------------------------------------------------------------
# A synthetic release in the exact public layout (the real images cannot be downloaded here)
# --------------------------------------------------------------------------------------------

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
            (v for v in locations if v in UNCOMMON["locations"][class_name]),
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
    """A synthetic release in the public layout: a folder, or with as_zip a zip holding one folder."""
    if num_images < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}")
    output = Path(output)
    if output.exists() and (output.is_file() or any(output.iterdir())):
        raise FocusDataError(f"{output}: already exists; the sample release needs a new path")
    annotations = sample_annotations(num_images, seed)
    rng = np.random.default_rng(seed + 1)
    # Rows go in shuffled, as in a database filled by a crawler; readers must sort them.
    rows = [_release_row(a) for a in annotations]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    output.parent.mkdir(parents=True, exist_ok=True)
    if as_zip:
        with tempfile.TemporaryDirectory() as scratch:
            db_path = Path(scratch) / ANNOTATIONS_DB
            write_annotations_db(db_path, rows)
            top = output.stem
            with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_STORED) as archive:
                archive.write(db_path, f"{top}/{ANNOTATIONS_DB}")
                for annotation in annotations:
                    archive.writestr(f"{top}/{annotation.file_name}", sample_image(rng, size_range))
        return output
    output.mkdir(parents=True, exist_ok=True)
    write_annotations_db(output / ANNOTATIONS_DB, rows)
    for annotation in annotations:
        path = output / annotation.file_name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(sample_image(rng, size_range))
    return output


# --------------------------------------------------------------------------------------------
# Validation of a release or a converted dataset
# --------------------------------------------------------------------------------------------

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
    def check(name):
        return name, decode_problem(read(name))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return [(name, problem) for name, problem in pool.map(check, names) if problem is not None]


def annotations_table(annotations: list[Annotation], table: dict) -> pa.Table:
    """The typed annotation columns (no images) of parsed release rows."""
    rows = [annotate(a, table) for a in annotations]
    features = focus_features()
    del features["image"]
    return datasets.Dataset.from_list(rows, features=features).with_format("arrow")[:]


def validate_release(path: str | os.PathLike) -> ValidationResult:
    result = ValidationResult()
    with Release(path) as release:
        annotations, seen, file_names = [], set(), []
        for row_number, row in enumerate(release.rows(), start=1):
            annotation, problems = parse_annotation(row)
            if annotation is not None and annotation.file_name in seen:
                problems = [f"duplicate file_name {row[0]!r}"]
            for problem in problems:
                result.errors.append(f"{release.source}: row {row_number} (file_name {row[0]!r}): {problem}")
            if isinstance(row[4], str) and ", ".join(sorted(row[4].split(", "))) != row[4]:
                result.warnings.append(f"{release.source}: row {row_number}: locations {row[4]!r} are not sorted")
            if isinstance(row[0], str):
                file_names.append(row[0].lstrip("/"))
                seen.add(row[0].lstrip("/"))
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


def converted_shards(path: Path) -> list[Path]:
    return sorted((path / "data").glob("*.parquet")) if (path / "data").is_dir() else []


def validate_converted(path: str | os.PathLike) -> ValidationResult:
    result = ValidationResult()
    path = Path(path)
    shards = converted_shards(path)
    if not shards:
        result.errors.append(f"{path}: no data/*.parquet shards; expected the output of `focus-dataset convert`")
        return result
    dataset = datasets.Dataset.from_parquet([str(s) for s in shards])
    expected = focus_features()
    for name, feature in expected.items():
        if name not in dataset.features:
            result.errors.append(f"{path}: column {name!r} is missing")
        elif dataset.features[name] != feature:
            result.errors.append(f"{path}: column {name!r} has type {dataset.features[name]}, expected {feature}")
    if result.errors:
        return result
    table = annotation_table(dataset)
    file_names = table.column("file_name").to_pylist()
    counts = Counter(file_names)
    result.errors += [f"{path}: duplicate file_name {name!r} ({n} rows)" for name, n in counts.items() if n > 1]
    if file_names != sorted(file_names):
        result.errors.append(f"{path}: rows are not ordered by file_name")
    flags = {f: _column(table, f) for f in ("uncommon_time", "uncommon_weather", "uncommon_location")}
    expected_partition = partition_ids(flags["uncommon_time"], flags["uncommon_weather"], flags["uncommon_location"])
    num_uncommon = sum(f.astype(int) for f in flags.values())
    uncommon_lengths = pc.list_value_length(table.column("uncommon_locations")).to_numpy()
    for row in np.flatnonzero((expected_partition != _column(table, "partition"))
                              | (num_uncommon != _column(table, "num_uncommon"))
                              | ((uncommon_lengths > 0) != flags["uncommon_location"]))[:20]:
        result.errors.append(f"{path}: row {row} ({file_names[row]}): partition, num_uncommon and the uncommon "
                             "flags disagree")
    images = dataset.cast_column("image", datasets.Image(decode=False)).select_columns(["image"])
    by_name = dict(zip(file_names, range(len(file_names))))
    def read(name):
        image = images[by_name[name]]["image"]
        return None if image is None else image["bytes"]
    for name, problem in _decode_problems(file_names, read):
        result.errors.append(f"{path}: image {name}: {problem}")
    result.table = table
    return result


def validate(path: str | os.PathLike) -> ValidationResult:
    """Check a release (folder or zip) or a converted dataset folder."""
    path = Path(path)
    if path.is_dir() and converted_shards(path):
        return validate_converted(path)
    return validate_release(path)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def summary(table: pa.Table, masks: dict[str, np.ndarray]) -> str:
    """Counts and the paper's Tables 1 and 2 for a table of annotation columns."""
    return "\n\n".join([
        f"FOCUS: {table.num_rows} images, fingerprint {dataset_fingerprint(table)}",
        "Table 1: images per class and attribute value (* = uncommon for the class)\n"
        + format_table1(table1_counts(table), masks),
        "Table 2: partition sizes\n" + format_table2(table2_counts(table)),
    ])


def _cmd_convert(args) -> int:
    report = convert(args.source, args.output, uncommon=args.uncommon, max_shard_size=args.max_shard_size,
                     skip_invalid=args.skip_invalid, overwrite=args.overwrite)
    table = read_annotation_columns(args.output)
    print(f"wrote {args.output} ({len(converted_shards(Path(args.output)))} shard(s))")
    print(summary(table, uncommon_masks_from_data(table)))
    problems = len(report["skipped_rows"]) + len(report["image_problems"]) + len(report["images_without_rows"])
    if problems:
        print(f"\n{problems} problem(s) recorded in {Path(args.output) / REPORT_NAME}: "
              f"{len(report['skipped_rows'])} skipped row(s), {len(report['image_problems'])} image problem(s), "
              f"{len(report['images_without_rows'])} image(s) without a row")
    if args.push_to_hub:
        print(push_to_hub(args.output, args.push_to_hub, private=args.private))
    return 0


def _cmd_sample(args) -> int:
    output = write_sample_release(args.output, args.num_images, seed=args.seed, as_zip=args.zip)
    print(f"wrote a sample release of {args.num_images} images to {output}")
    return 0


def _cmd_validate(args) -> int:
    result = validate(args.path)
    for warning in result.warnings[: args.max_lines]:
        print(f"warning: {warning}")
    for error in result.errors[: args.max_lines]:
        print(f"error: {error}")
    hidden = max(0, len(result.errors) - args.max_lines) + max(0, len(result.warnings) - args.max_lines)
    if hidden:
        print(f"... and {hidden} more")
    if result.table is not None and result.table.num_rows:
        print(summary(result.table, uncommon_masks_from_data(result.table)))
        differences = compare_with_published(table1_counts(result.table), table2_counts(result.table))
        print(f"\nDifferences from the published Tables 1 and 2: {len(differences)} cell(s)")
        for line in differences[: args.max_lines]:
            print(f"  {line}")
        if len(differences) > args.max_lines:
            print(f"  ... and {len(differences) - args.max_lines} more")
    print(f"\n{len(result.errors)} error(s), {len(result.warnings)} warning(s)")
    return 0 if result.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="focus-dataset", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    convert_parser = commands.add_parser("convert", help="release folder or focus.zip -> Hub-ready Parquet dataset")
    convert_parser.add_argument("source", help="the release folder (holding annotations.db) or focus.zip")
    convert_parser.add_argument("output", help="the dataset folder to write (data/*.parquet and README.md)")
    convert_parser.add_argument("--uncommon", metavar="FILE", help="JSON or YAML uncommon table (default: the paper's)")
    convert_parser.add_argument("--max-shard-size", metavar="SIZE", help="largest Parquet shard, e.g. 500MB")
    convert_parser.add_argument("--skip-invalid", action="store_true",
                                help="leave out bad annotation rows (listed in the report) instead of stopping")
    convert_parser.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    convert_parser.add_argument("--push-to-hub", metavar="REPO_ID", help="then upload OUTPUT as a Hub dataset")
    convert_parser.add_argument("--private", action="store_true", help="with --push-to-hub: a private repository")
    convert_parser.set_defaults(func=_cmd_convert)

    sample_parser = commands.add_parser("sample", help="write a synthetic release in the public layout")
    sample_parser.add_argument("output", help="the release folder to write (with --zip: the zip file)")
    sample_parser.add_argument("--num-images", type=int, required=True)
    sample_parser.add_argument("--seed", type=int, default=0)
    sample_parser.add_argument("--zip", action="store_true", help="write focus.zip-style archive instead of a folder")
    sample_parser.set_defaults(func=_cmd_sample)

    validate_parser = commands.add_parser("validate", help="check a release or a converted dataset")
    validate_parser.add_argument("path", help="release folder, focus.zip, or converted dataset folder")
    validate_parser.add_argument("--max-lines", type=int, default=50, help="lines to print per kind of finding")
    validate_parser.set_defaults(func=_cmd_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    datasets.logging.set_verbosity_warning()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FocusDataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
