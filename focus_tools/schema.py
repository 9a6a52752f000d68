"""The FOCUS schema: the ground every other module of the project stands on (it imports only focus_common).

Kattakinda & Feizi, "FOCUS: Familiar Objects in Common and Uncommon Settings", ICML 2022. The label lists in
the paper's order, the paper's uncommon-settings table and how a user's replaces it, the partitions and the
gaps as data, the public release's layout, one annotation row, and the typed features of the dataset.
focus_dataset.py (the dataset script a Hugging Face user opens) takes its labels and features from here;
the metric (metrics/focus_generalization) keeps a copy of the lists, pinned equal by a test, because it must
stand alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from focus_common.inputs import read_small_text
from focus_common.messages import BadInput, quote

CITATION = """\
@InProceedings{pmlr-v162-kattakinda22a,
  title = {{FOCUS}: Familiar Objects in Common and Uncommon Settings},
  author = {Kattakinda, Priyatham and Feizi, Soheil},
  booktitle = {Proceedings of the 39th International Conference on Machine Learning},
  pages = {10825--10847}, year = {2022}, volume = {162},
  series = {Proceedings of Machine Learning Research}, publisher = {PMLR}
}
"""

DESCRIPTION = """\
FOCUS (Familiar Objects in Common and Uncommon Settings) holds about 24K web photos of the ten
CIFAR-10 object classes, each annotated with time of day, weather and a set of locations. Every
(class, setting) pair is marked common or uncommon, and each image falls in a partition by how many
of its attributes are uncommon. It measures how much image classifiers lose when a familiar object
appears in an unfamiliar setting.
"""

HOMEPAGE = "https://github.com/priyathamkat/focus"
# The release states no licence of its own; the photos are web images.
LICENSE = "unknown"

# Label lists in the paper's order; ids are positions. "none" means ambiguous or not
# determinable (for locations also "none of these places").
CLASS_NAMES = ["truck", "car", "plane", "ship", "cat", "dog", "horse", "deer", "frog", "bird"]
TIME_NAMES = ["day", "night", "none"]
WEATHER_NAMES = ["cloudy", "foggy", "partly cloudy", "raining", "snowing", "sunny", "none"]
LOCATION_NAMES = ["forest", "grass", "indoors", "rocks", "sand", "street", "snow", "water", "none"]
ATTRIBUTE_NAMES = {"time": TIME_NAMES, "weather": WEATHER_NAMES, "locations": LOCATION_NAMES}
UNCOMMON_ATTRIBUTES = ("time", "weather", "locations")

# Partitions (Section 3): an image is in P^A where A is the set of its uncommon attributes (t = time,
# w = weather, l = locations), given here as which of (time, weather, locations) are uncommon. P0 holds
# the images with no uncommon attribute.
PARTITIONS: dict[str, tuple[bool, bool, bool]] = {
    "P0": (False, False, False),
    "P(t)": (True, False, False),
    "P(w)": (False, True, False),
    "P(l)": (False, False, True),
    "P(t,w)": (True, True, False),
    "P(w,l)": (False, True, True),
    "P(t,l)": (True, False, True),
    "P(t,w,l)": (True, True, True),
}
PARTITION_NAMES = list(PARTITIONS)
# Table 2 groups the partitions by their number of uncommon attributes: P1, P2, P3 (and P0 alone).
PARTITION_GROUPS = {f"P{count}": [name for name, flags in PARTITIONS.items() if sum(flags) == count]
                    for count in (1, 2, 3)}
COUNT_PARTITIONS = ["P0", *PARTITION_GROUPS]
# Equation 1: G_a, the generalization gap of attribute a; and the two overall gaps, A(P0) - A(P1 u P2 u P3)
# (the definition in the text) and A(P0) - A(P1 u P2) (what the published headline numbers measure).
GAP_NAMES = {"time": "G_t", "weather": "G_w", "locations": "G_l"}
OVERALL_GAPS = ("gap_overall", "gap_overall_paper")
GAPS = [*GAP_NAMES.values(), *OVERALL_GAPS]

# The paper's default uncommon settings (Section 3, Table 7). The paper calls the choice subjective: users
# may supply their own table of the same shape (load_uncommon_table).
PAPER_UNCOMMON_TABLE = {
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
_MAX_UNCOMMON_TABLE_BYTES = 2**20

# The public release: a folder (or focus.zip) holding this SQLite database beside the image folders.
ANNOTATIONS_DB = "annotations.db"
# Web photos average ~100 KB: row groups of 100 images keep writer memory flat.
ROWS_PER_GROUP = 100


class FocusDataError(BadInput):
    """Bad input: an annotation, an image, an archive member or a file that cannot be used."""


def load_uncommon_table(path: str | os.PathLike | None = None) -> dict[str, dict[str, list[str]]]:
    """The uncommon-settings table: the paper's default, or a user's JSON/YAML file of that shape.

    The file maps each attribute ("time", "weather", "locations") to a mapping from every class
    name to the list of that attribute's values that are uncommon for it.

    >>> load_uncommon_table()["locations"]["ship"][:3]
    ['forest', 'grass', 'indoors']
    """
    if path is None:
        return validate_uncommon_table(PAPER_UNCOMMON_TABLE, source="the paper's table")
    try:
        text = read_small_text(path, "a JSON or YAML uncommon table", _MAX_UNCOMMON_TABLE_BYTES)
    except ValueError as err:
        raise FocusDataError(str(err)) from None
    try:
        uncommon_table = yaml.safe_load(text)  # YAML is a superset of JSON: one parser reads both
    except yaml.YAMLError as err:
        raise FocusDataError(f"{path}: not valid JSON or YAML: {_yaml_problem(err)}") from None
    return validate_uncommon_table(uncommon_table, source=str(path))


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's error in one line: what is wrong and where (its own text spans lines and draws a caret)."""
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return " ".join(f"{problem}{where}".split())[:300]


def validate_uncommon_table(uncommon_table: Any, source: str = "uncommon table") -> dict[str, dict[str, list[str]]]:
    """Check an uncommon table's shape and names; return it with values in the paper's order."""
    if not isinstance(uncommon_table, dict):
        raise FocusDataError(f"{source}: expected a mapping with keys {list(UNCOMMON_ATTRIBUTES)}, got "
                             f"{type(uncommon_table).__name__}")
    unknown = sorted(set(map(str, uncommon_table)) - set(UNCOMMON_ATTRIBUTES))
    missing = [a for a in UNCOMMON_ATTRIBUTES if a not in uncommon_table]
    if unknown or missing:
        raise FocusDataError(
            f"{source}: attributes must be exactly {list(UNCOMMON_ATTRIBUTES)}; "
            f"missing {missing}, unknown {quote(unknown, limit=200)}"
        )
    return {attribute: _uncommon_values(uncommon_table[attribute], attribute, source)
            for attribute in UNCOMMON_ATTRIBUTES}


def _uncommon_values(per_class: Any, attribute: str, source: str) -> dict[str, list[str]]:
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
    normalised = {}
    for class_name in CLASS_NAMES:
        values = per_class[class_name] or []
        if isinstance(values, str) or not isinstance(values, list):
            raise FocusDataError(f"{source}: '{attribute}.{class_name}' must be a list of values, got {quote(values)}")
        for value in values:
            if value not in names or value == "none":
                raise FocusDataError(f"{source}: '{attribute}.{class_name}' has unknown value {quote(value)}; "
                                     f"expected some of {names[:-1]}")
        normalised[class_name] = [v for v in names if v in values]
    return normalised


def uncommon_masks(uncommon_table: dict[str, dict[str, list[str]]]) -> dict[str, np.ndarray]:
    """Boolean class × value matrices: mask[attribute][class_id, value_id] is True when uncommon."""
    masks = {}
    for attribute, names in ATTRIBUTE_NAMES.items():
        mask = np.zeros((len(CLASS_NAMES), len(names)), dtype=bool)
        for class_id, class_name in enumerate(CLASS_NAMES):
            for value in uncommon_table[attribute][class_name]:
                mask[class_id, names.index(value)] = True
        masks[attribute] = mask
    return masks


# code = 4*t + 2*w + l  ->  partition id in PARTITION_NAMES order
_PARTITION_OF_CODE = np.zeros(8, dtype=np.int64)
for _id, (_t, _w, _l) in enumerate(PARTITIONS.values()):
    _PARTITION_OF_CODE[4 * _t + 2 * _w + _l] = _id


def partition_ids(uncommon_time: np.ndarray, uncommon_weather: np.ndarray, uncommon_location: np.ndarray) -> np.ndarray:
    """Partition id (index into PARTITION_NAMES) of each image from its three uncommon flags.

    >>> partition_ids(np.array([0, 1, 1]), np.array([0, 0, 1]), np.array([0, 1, 1])).tolist()
    [0, 6, 7]
    """
    code = (np.asarray(uncommon_time, dtype=np.int64) * 4 + np.asarray(uncommon_weather, dtype=np.int64) * 2
            + np.asarray(uncommon_location, dtype=np.int64))
    return _PARTITION_OF_CODE[code]


@dataclass(frozen=True)
class Annotation:
    """One row of annotations.db, parsed and checked (focus_tools.release.parse_annotation)."""

    file_name: str  # release path without the leading "/"
    category: str
    time: str
    weather: str
    locations: tuple[str, ...]
    humans: bool


def annotate(annotation: Annotation, uncommon_table: dict[str, dict[str, list[str]]]) -> dict[str, Any]:
    """The derived columns of one image: its uncommon flags, uncommon locations and partition."""
    uncommon_time = annotation.time in uncommon_table["time"][annotation.category]
    uncommon_weather = annotation.weather in uncommon_table["weather"][annotation.category]
    uncommon_locations = [l for l in annotation.locations if l in uncommon_table["locations"][annotation.category]]
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


def focus_features() -> "datasets.Features":
    """The typed columns of FOCUS."""
    import datasets  # imported where it is needed: a command's --help must not wait for it

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


def focus_info() -> "datasets.DatasetInfo":
    """The dataset's description, citation, homepage, licence and features, as the builder and the card give them."""
    import datasets

    return datasets.DatasetInfo(description=DESCRIPTION, features=focus_features(), homepage=HOMEPAGE,
                                license=LICENSE, citation=CITATION)


def location_occurrences(annotations: pa.Table, column: str = "locations") -> tuple[np.ndarray, np.ndarray]:
    """(row index, location id) of every location occurrence of a list column."""
    locations = annotations.column(column).combine_chunks()
    return (pc.list_parent_indices(locations).to_numpy(zero_copy_only=False),
            pc.list_flatten(locations).to_numpy(zero_copy_only=False))
