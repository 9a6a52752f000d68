"""FOCUS: Familiar Objects in Common and Uncommon Settings, as a typed Hugging Face dataset.

The dataset script: the label lists in the paper's order, the paper's uncommon-settings table, the
features, the `datasets` builder that reads the public release, and loading with the original loader's
filters. The labels, the uncommon table and the features are the project's schema (focus_tools/schema.py);
the builder reads a release through focus_tools.release and the loader checks a converted folder's shards
through focus_tools.parquet. The other tools (conversion, statistics, validation, the sample generator and
the `focus-dataset` command line) live in the focus_tools package and are imported from there.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa

from focus_common import network
from focus_common.messages import quote
from focus_tools.parquet import converted_shards, first_damaged_shard, open_shard
from focus_tools.release import Release, read_image, release_annotations
from focus_tools.schema import (  # noqa: F401 - the labels and features a dataset script's users expect here
    ANNOTATIONS_DB,
    ATTRIBUTE_NAMES,
    CLASS_NAMES,
    LOCATION_NAMES,
    PAPER_UNCOMMON_TABLE,
    PARTITION_GROUPS,
    PARTITION_NAMES,
    ROWS_PER_GROUP,
    TIME_NAMES,
    WEATHER_NAMES,
    FocusDataError,
    annotate,
    focus_features,
    focus_info,
    load_uncommon_table,
    location_occurrences,
    validate_uncommon_table,
)

logger = logging.getLogger("focus_dataset")

# `datasets` patches the module that defines a builder (its open, os.path, pathlib, pyarrow readers)
# so that loading scripts can stream remote files. FocusBuilder reads a local release only, and the
# patch would slow every path operation in this module for the rest of the process: opt out.
_patched_for_streaming = True

_MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download focus.zip from the FOCUS release (see the paper's repository, github.com/priyathamkat/focus)
and pass its path, or the folder it unpacks to, as `data_dir`. No file is downloaded for you.
"""


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
        uncommon_table = (validate_uncommon_table(self.config.uncommon) if self.config.uncommon
                          else load_uncommon_table())
        return [datasets.SplitGenerator(name=datasets.Split.TEST,
                                        gen_kwargs={"source": source, "uncommon_table": uncommon_table})]

    def _generate_examples(self, source, uncommon_table):
        for index, example in generate_examples(source, uncommon_table, self.report,
                                                skip_invalid=self.config.skip_invalid):
            yield index, example


def generate_examples(source: str | os.PathLike, uncommon_table: dict, report: dict[str, list], *,
                      skip_invalid: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row index, example) for every annotated image of a release, by file_name; problems go to `report`."""
    with Release(source) as release:
        annotations = release_annotations(release, report, skip_invalid=skip_invalid)
        for index, annotation in enumerate(annotations):
            data = read_image(release, annotation.file_name, report)
            example = annotate(annotation, uncommon_table)
            example["image"] = None if data is None else {"bytes": data, "path": annotation.file_name}
            yield index, example


def annotation_table(dataset: datasets.Dataset) -> pa.Table:
    """The dataset's columns except the images, as one Arrow table (no image is decoded or copied)."""
    columns = [name for name in dataset.column_names if name != "image"]
    return dataset.with_format("arrow", columns=columns)[:]


# A Hub repo id: a name, or namespace/name, of letters, digits, '-', '_' and '.' (huggingface_hub's rule, simplified).
HUB_ID = re.compile(r"(?!.*(--|\.\.))[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?")
# What names a file, not a Hub repo.
_FILE_SUFFIXES = (".zip", ".parquet", ".arrow", ".db", ".json", ".jsonl", ".csv", ".tar", ".gz", ".txt")
_EXPECTED = "expected a folder written by `focus-dataset convert`, the release folder or focus.zip, or a Hub dataset id"


def data_source(path: str | os.PathLike) -> str:
    """What `path` names: "release" (a folder with annotations.db, or a zip), "folder" (a converted dataset) or
    "hub" (a dataset id to look up), asked before anything is loaded.

    Something that looks like a path (it exists, starts with '/', '.' or '~', holds more than one '/' or a
    backslash, ends like a file) is taken as one: a missing one is "no such file or folder", not a Hub
    lookup. A Hub id is looked up only when the Hub can be reached -- asked at once
    (focus_common.network), not after huggingface_hub's five retries -- or, with HF_HUB_OFFLINE set, in
    the datasets cache.
    """
    text = os.fspath(path)
    if os.path.lexists(text):
        if is_release(text):
            return "release"
        if os.path.isdir(text):
            return "folder"
        kind = "a symbolic link to nothing" if not os.path.exists(text) else "a file that is not focus.zip"
        raise FocusDataError(f"{text}: {kind}; {_EXPECTED}")
    looks_like_path = (text.startswith(("/", ".", "~")) or "\\" in text or text.count("/") > 1
                       or text.lower().endswith(_FILE_SUFFIXES) or not HUB_ID.fullmatch(text))
    if looks_like_path:
        raise FocusDataError(f"{text}: no such file or folder; {_EXPECTED}")
    if not network.hub_offline() and (why := network.hub_unreachable()) is not None:
        raise FocusDataError(f"{text}: no such folder here, and the Hugging Face Hub cannot be reached ({why}) to "
                             f"look for a dataset of that id; {network.OFFLINE_ADVICE}")
    return "hub"


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
    if data_source(path) == "release":
        uncommon_table = load_uncommon_table(uncommon)
        builder = FocusBuilder(cache_dir=cache_dir, data_dir=str(Path(path).resolve()), uncommon=uncommon_table)
        builder.download_and_prepare()
        dataset = builder.as_dataset(split="test")
    else:
        if uncommon is not None:
            raise FocusDataError(
                f"{path}: a converted dataset has its uncommon flags already; pass --uncommon when converting"
            )
        if Path(path).is_dir():  # data_source: "folder"
            # A damaged shard is named here, not deep inside datasets' generation.
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
        try:
            dataset = datasets.load_dataset(str(path), split="test", cache_dir=cache_dir)
        except datasets.exceptions.DatasetGenerationError as err:
            raise FocusDataError(_generation_problem(Path(path), err)) from err
        except (datasets.exceptions.DatasetNotFoundError, ConnectionError) as err:
            if network.hub_offline():
                raise FocusDataError(f"{path}: no such folder here, and no dataset of that id in the datasets cache "
                                     "(HF_HUB_OFFLINE is set: the Hub is not asked)") from None
            if isinstance(err, ConnectionError):
                raise FocusDataError(f"{path}: no such folder here, and the Hugging Face Hub could not be reached "
                                     f"({str(err)[:300]}); {network.OFFLINE_ADVICE}") from None
            raise FocusDataError(f"{path}: no such folder here, and no dataset of that id on the Hugging Face Hub (a "
                                 "private or gated one needs `hf auth login`)") from None
    return filter_focus(dataset, categories=categories, times=times, weathers=weathers,
                        locations=locations, locations_match=locations_match, humans=humans)


def _generation_problem(path: Path, err: Exception) -> str:
    """What made `datasets` fail to prepare a folder or Hub dataset: the damaged shard when one is found."""
    damaged = first_damaged_shard(converted_shards(path)) if path.is_dir() else None
    if damaged is not None:
        shard, problem = damaged
        return f"{shard}: its data cannot be read ({problem}); convert the release again"
    cause = err.__cause__ or err
    return f"{path}: the dataset cannot be prepared ({type(cause).__name__}: {str(cause)[:300]})"


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
    annotations = annotation_table(dataset)
    keep = np.ones(annotations.num_rows, dtype=bool)
    for column, ids in wanted.items():
        if ids is not None:
            keep &= np.isin(annotations.column(column).to_numpy(), ids)
    if wanted_locations is not None:
        rows, location_ids = location_occurrences(annotations)
        hits = np.bincount(rows[np.isin(location_ids, wanted_locations)], minlength=annotations.num_rows)
        needed = 1 if locations_match == "any" else len(np.unique(wanted_locations))
        keep &= hits >= needed
    if humans is not None:
        keep &= annotations.column("humans").to_numpy() == bool(humans)
    return dataset.select(np.flatnonzero(keep))
