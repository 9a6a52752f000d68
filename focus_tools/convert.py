"""`focus-dataset convert`: a release (folder or focus.zip) into a Hub-ready dataset folder.

OUTPUT is built beside itself, in a hidden staging folder that this process locks while it exists
(focus_common.outputs.staged_folder, as pack's), and takes OUTPUT's name only when complete; an earlier
conversion there loses only the files convert wrote (its manifests, focus_common.ownership, say which). A staging folder that no live process holds (a
conversion killed outright) is removed by the next conversion into the same OUTPUT; a live one makes the
next conversion stop and name its holder.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from focus_common.inputs import read_json
from focus_common.messages import quote
from focus_tools.schema import FocusDataError, focus_info, load_uncommon_table, validate_uncommon_table
from focus_common import outputs
from focus_common.locks import LOCK_FILE
from focus_common.ownership import MANIFEST, Written, is_written
from focus_tools.card import render_card
from focus_tools.parquet import SHARD_PATTERN, annotation_columns, shard_size_limit, write_parquet_shards
from focus_tools.release import Release, problem_text, release_annotations
from focus_tools.statistics import closest_published_version, dataset_fingerprint

REPORT_NAME = "conversion_report.json"
CARD_NAME = "README.md"


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

    The examples are FocusBuilder's own (the values of annotate, the images and problems of
    read_image), written to Parquet by pyarrow a row group at a time, so memory stays flat and the
    time stays close to reading and writing the files.

    OUTPUT gets `data/test-XXXXX-of-YYYYY.parquet`, a README.md dataset card and
    conversion_report.json. It appears only when the conversion has succeeded. With `overwrite`, an
    earlier conversion (a folder holding only what convert writes) is replaced; nothing else is.
    """
    output = Path(output)
    check_output(source, output, overwrite=overwrite)
    max_shard_bytes = shard_size_limit(max_shard_size)
    uncommon_table = _uncommon_table(uncommon)
    report: dict[str, Any] = {}
    with Release(source) as release:
        report["release_images"] = _names_digest(release.image_names())
        # Every annotation is checked before anything is written.
        columns = annotation_columns(release_annotations(release, report, skip_invalid=skip_invalid),
                                     uncommon_table)
        with outputs.staged_folder(output, holder="focus-dataset convert", what="conversion",
                                   error=FocusDataError) as staged:
            staging = staged.folder
            try:
                shards = write_parquet_shards(release, columns, report, staging / "data",
                                              max_shard_size=max_shard_bytes)
            except OSError as err:  # a full disk: nothing was written in OUTPUT's place, the staging folder goes
                raise FocusDataError(f"{output}: cannot be written ({err.strerror or problem_text(err)})") from None
            annotations = pa.Table.from_batches([columns])
            report.update(num_images=annotations.num_rows, fingerprint=dataset_fingerprint(annotations),
                          published_version=closest_published_version(annotations))
            (staging / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
            (staging / CARD_NAME).write_text(render_card(focus_info(), annotations, uncommon_table, report,
                                                         num_bytes=sum(p.stat().st_size for p in shards)))
            # What convert wrote, recorded at the root: a later --overwrite deletes these and nothing else.
            Written(staging).record(*shards, staging / REPORT_NAME, staging / CARD_NAME)
            # OUTPUT may have appeared or changed while converting (another conversion, a user): again.
            check_output(source, output, overwrite=overwrite)
            staged.commit(owns=lambda folder, path: is_written(path, folder))
    return report


def holds_conversion_of(source: str | os.PathLike, output: str | os.PathLike,
                        uncommon: str | os.PathLike | dict | None = None, *, skip_invalid: bool = False) -> bool:
    """Whether OUTPUT is an intact earlier conversion of this release: every file convert wrote there
    unchanged and nothing else, the same annotations under the same uncommon table (the dataset
    fingerprint) and the same image files (their names). Converting again would write the same dataset,
    so `convert --push-to-hub` pushes it as it is."""
    output = Path(output)
    report_path = output / REPORT_NAME
    if not _is(output, stat.S_ISDIR) or not _is(report_path, stat.S_ISREG) or _not_written_by_convert(output):
        return False
    try:
        report = read_json(report_path, f"{REPORT_NAME} written by focus-dataset convert")
    except ValueError:
        return False
    if not isinstance(report, dict) or "release_images" not in report:  # older conversions did not record them
        return False
    with Release(source) as release:
        if _names_digest(release.image_names()) != report["release_images"]:
            return False
        columns = annotation_columns(release_annotations(release, {}, skip_invalid=skip_invalid),
                                     _uncommon_table(uncommon))
    return dataset_fingerprint(pa.Table.from_batches([columns])) == report.get("fingerprint")


def _uncommon_table(uncommon: str | os.PathLike | dict | None) -> dict:
    return validate_uncommon_table(uncommon) if isinstance(uncommon, dict) else load_uncommon_table(uncommon)


def _names_digest(names: list[str]) -> str:
    """A short hash of a release's image file names (what was there to convert)."""
    return hashlib.sha256("\n".join(names).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def check_output(source: str | os.PathLike, output: Path, *, overwrite: bool) -> None:
    """Refuse an OUTPUT that convert may not write: a link, a file, the release or a folder around or
    inside it, and (unless overwrite, and then unless it is an earlier conversion) a non-empty folder."""
    if output.is_symlink():
        raise FocusDataError(f"{output}: is a symbolic link; give the folder it points to as OUTPUT, or another one")
    if output.exists() and not output.is_dir():
        raise FocusDataError(f"{output}: is a file; OUTPUT must be a folder (new, or with --overwrite an old one)")
    release, target = Path(source).resolve(), output.resolve()
    if target == release:
        raise FocusDataError(f"OUTPUT {output} is the release being converted; choose another folder")
    if target in release.parents:
        raise FocusDataError(f"OUTPUT {output} holds the release being converted; choose another folder")
    if release in target.parents:
        raise FocusDataError(f"OUTPUT {output} is inside the release being converted; choose a folder outside it")
    if not output.exists() or not any(output.iterdir()):
        return
    if not overwrite:
        raise FocusDataError(f"{output}: already exists and is not empty; choose another OUTPUT or pass --overwrite "
                             "to replace an earlier conversion")
    strangers = _not_written_by_convert(output)
    if strangers:
        raise FocusDataError(
            f"{output}: not a folder that focus-dataset convert wrote (it holds {quote(strangers, limit=200)}, which "
            f"convert did not write or someone changed since); --overwrite replaces only an earlier conversion. "
            "Choose another OUTPUT, or empty the folder yourself"
        )


def _not_written_by_convert(folder: Path) -> list[str]:
    """The entries of a folder that convert did not write: everything its manifests (focus_common.ownership) do
    not record as written there and unchanged since (a conversion by an older toolkit recorded nothing)."""
    strangers = []
    for parent, prefix in ((folder, ""), (folder / "data", "data/")):
        if not _is(parent, stat.S_ISDIR):
            continue
        for name in sorted(os.listdir(parent)):
            if name.startswith((MANIFEST, LOCK_FILE)) or (parent == folder and name == "data"):
                continue
            if not is_written(parent / name, folder):
                strangers.append(prefix + name)
    return strangers


def _is(path: Path, kind: Callable[[int], bool]) -> bool:
    """Whether path itself is of that kind (stat.S_ISDIR, ...): a link is a link, not its target."""
    try:
        return kind(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False
