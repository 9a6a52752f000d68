"""`focus-dataset convert`: a release (folder or focus.zip) into a Hub-ready dataset folder.

OUTPUT is written beside itself, in a hidden folder `.OUTPUT.partial-XXXXXXXX` that this process
locks while it exists, and takes OUTPUT's name only when complete. A partial folder whose lock no
live process holds (a conversion killed by a signal) is removed by the next conversion into the
same OUTPUT; a live one makes the next conversion stop and name its pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from focus_dataset import FocusDataError, focus_info, load_uncommon_table, quote, validate_uncommon_table
from focus_tools import outputs
from focus_tools.card import render_card
from focus_tools.parquet import SHARD_PATTERN, annotation_columns, shard_size_limit, write_parquet_shards
from focus_tools.release import Release, release_annotations
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
    table = validate_uncommon_table(uncommon) if isinstance(uncommon, dict) else load_uncommon_table(uncommon)
    report: dict[str, Any] = {}
    with Release(source) as release:
        # Every annotation is checked before anything is written.
        columns = annotation_columns(release_annotations(release, report, skip_invalid=skip_invalid), table)
        with staging_folder(output) as staging:
            shards = write_parquet_shards(release, columns, report, staging / "data", max_shard_size=max_shard_bytes)
            annotations = pa.Table.from_batches([columns])
            report.update(num_images=annotations.num_rows, fingerprint=dataset_fingerprint(annotations),
                          published_version=closest_published_version(annotations))
            (staging / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
            (staging / CARD_NAME).write_text(render_card(focus_info(), annotations, table, report,
                                                         num_bytes=sum(p.stat().st_size for p in shards)))
            # OUTPUT may have appeared or changed while converting (another conversion, a user): again.
            check_output(source, output, overwrite=overwrite)
            (staging / outputs.LOCK_NAME).unlink()  # the lock itself stays held until the folder is in place
            # The old folder steps aside before the new one takes its name, and goes only after.
            retired = staging.with_name(staging.name + ".old")
            if output.exists():
                os.replace(output, retired)
            os.replace(staging, output)
            shutil.rmtree(retired, ignore_errors=True)
    return report


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
            f"{output}: not a folder that focus-dataset convert wrote (it holds {quote(strangers, limit=200)}); "
            f"--overwrite replaces only an earlier conversion ({CARD_NAME}, {REPORT_NAME}, data/*.parquet). "
            "Choose another OUTPUT, or empty the folder yourself"
        )


def _not_written_by_convert(folder: Path) -> list[str]:
    """The entries of a folder that convert would not have written: all of them when the folder
    holds no conversion (no report or no shard), links and other files where convert writes files."""
    entries = sorted(os.listdir(folder))
    data = folder / "data"
    shards = sorted(os.listdir(data)) if _is(data, stat.S_ISDIR) else []
    if REPORT_NAME not in entries or not shards:
        return entries
    strangers = [name for name in entries
                 if name != "data" and not (name in (CARD_NAME, REPORT_NAME) and _is(folder / name, stat.S_ISREG))]
    return strangers + [f"data/{name}" for name in shards
                        if not (SHARD_PATTERN.fullmatch(name) and _is(data / name, stat.S_ISREG))]


def _is(path: Path, kind: Callable[[int], bool]) -> bool:
    """Whether path itself is of that kind (stat.S_ISDIR, ...): a link is a link, not its target."""
    try:
        return kind(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def staging_folder(output: Path) -> Iterator[Path]:
    """A new hidden folder beside OUTPUT, locked by this process, removed on any failure (Ctrl-C too).

    Its mode is what a plain mkdir gives under the user's umask (mkdtemp's 0700 would keep a shared
    dataset folder from its readers).
    """
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_partials(output)
        staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    except OSError as err:
        raise FocusDataError(f"{output}: cannot write OUTPUT here: {err.strerror}") from err
    try:
        with outputs.holding_lock(staging):
            for partial in _partial_folders(output):
                owner = outputs.live_owner(partial) if partial != staging else None
                if owner is not None:
                    raise FocusDataError(f"another conversion into {output} is running (pid {owner}), writing "
                                         f"{partial.name}; wait for it to finish, or choose another OUTPUT")
            staging.chmod(0o777 & ~_umask())
            yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _partial_folders(output: Path) -> list[Path]:
    """The partial folders of conversions into OUTPUT: `.OUTPUT.partial-XXXXXXXX`, and `.old` ones mid-swap."""
    pattern = re.compile(rf"\.{re.escape(output.name)}\.partial-[A-Za-z0-9_]+(\.old)?")
    return [output.parent / name for name in sorted(os.listdir(output.parent))
            if pattern.fullmatch(name) and _is(output.parent / name, stat.S_ISDIR)]


def _remove_stale_partials(output: Path) -> None:
    """Remove the partial folders that conversions into OUTPUT killed by a signal left behind."""
    outputs.remove_stale(_partial_folders(output))


def _umask() -> int:
    # Python has no getter: set and restore (convert runs no other thread at this point).
    umask = os.umask(0)
    os.umask(umask)
    return umask
