"""What a command leaves in a model's folder so that a rerun resumes: part files, their config, the merged result.

focus-eval's predictions and focus-probe's features are made the same way, by one resumable per-model pass
(`Resumable`): the config that says how the output is made is checked against an earlier one (other settings
are refused; `--no-resume` starts afresh), the rows still missing are found from the part files, the pass
writes new part files as it goes (harness.passes), and the parts are merged once complete. One rule holds
for every merge: an image in the parts twice is an error naming the image and the folder, never dropped.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from accelerate import Accelerator

from focus_common.ownership import remove_written
from harness import runfolder
from harness.distributed import run_shared

logger = logging.getLogger(__name__)
SHOWN_NAMES = 3  # image names quoted in a message


def read_parts(parts_dir: Path, schema: pa.Schema) -> pa.Table:
    """Every complete part file of a folder, in the order written."""
    parts = sorted(parts_dir.glob("part-*.parquet"))
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(pq.read_table(p, schema=schema) for p in parts)


def write_part(parts_dir: Path, rows: pa.Table) -> None:
    """One more part file, renamed into place only when complete (a kill leaves no partial part)."""
    parts_dir.mkdir(parents=True, exist_ok=True)
    number = len(list(parts_dir.glob("part-*.parquet")))
    runfolder.write_parquet(parts_dir / f"part-{number:05d}.parquet", rows)


def pending_rows(file_names: Sequence[str], parts_dir: Path, schema: pa.Schema) -> list[int]:
    """Rows whose file_name has no row in the part files yet (all of them when there are none)."""
    done = set(read_parts(parts_dir, schema).column("file_name").to_pylist())
    return [row for row, file_name in enumerate(file_names) if file_name not in done]


def rerun_advice(num_rows: int, num_images: int) -> str:
    """What to do when merged part files hold `num_rows` rows for `num_images` images.

    Fewer: the missing images are computed by a rerun. More: the parts hold images the data does not,
    and a rerun would merge them again, so only starting afresh helps.
    """
    return "rerun to resume" if num_rows < num_images else "rerun with --no-resume"


def merged(parts: pa.Table, folder: Path, num_images: int, *, what: str) -> pa.Table:
    """The part rows of one model, by file_name: every image once. An image twice, or another count of images,
    is an error that names the folder (and the images), saying what `what` the parts hold ("predictions")."""
    counts = pc.value_counts(parts.column("file_name")).to_pylist()
    repeated = sorted(c["values"] for c in counts if c["counts"] > 1)
    if repeated:
        raise RuntimeError(f"{folder}: {len(repeated)} image(s) have {what} twice or more in its part files, e.g. "
                           f"{repeated[:SHOWN_NAMES]}; rerun with --no-resume")
    if parts.num_rows != num_images:
        raise RuntimeError(f"{folder}: {what} for {parts.num_rows} of {num_images} images; "
                           f"{rerun_advice(parts.num_rows, num_images)}")
    return parts.sort_by("file_name")


def check_config(config_path: Path, config: dict[str, Any], identity_keys: Sequence[str], *, holds: str,
                 stale: Sequence[Path], resume: bool, is_main: bool) -> None:
    """Keep earlier results only when `config_path` says they were made with the same settings.

    Results without their config are stale: nothing says how they were made, so the main process
    deletes `stale` (files and folders) and they are made again, as with resume=False; it deletes only files
    the toolkit recorded as written (focus_common.ownership), and anything else stops the command. Every
    process of a distributed run calls this and reads the same files, so that all raise alike (one
    raising alone would leave the others at a barrier); only the main process deletes.
    """
    if resume and config_path.is_file():
        try:
            previous = runfolder.read_json(config_path)
        except ValueError as err:
            raise ValueError(f"{config_path} cannot be read ({err}). Pass --no-resume to start afresh.") from err
        differing = [key for key in identity_keys if previous.get(key) != config.get(key)]
        if differing:
            details = "; ".join(f"{key}: cached {previous.get(key)!r}, now {config.get(key)!r}" for key in differing)
            raise ValueError(f"{config_path.parent} holds {holds} made with other settings ({details}). "
                             f"Pass --no-resume to discard them, or choose another --output.")
        return
    if not is_main:
        return
    found = [path for path in stale if os.path.lexists(path)]
    if resume and found:
        logger.warning("%s: %s without %s (how they were made): stale, making them again", config_path.parent,
                       ", ".join(path.name for path in found), config_path.name)
    # Only what the toolkit wrote is deleted (its manifests say what): a user's file in the way stops the command.
    remove_written([*stale, config_path])


@dataclasses.dataclass(frozen=True)
class Resumable:
    """One model's output made by a resumable pass: how it is made (config), its parts, and what marks it done.

    focus-eval: config.json, parts/, done when metrics.json exists; focus-probe: features.json,
    features-parts/, done when features.parquet exists. `owned` are the other files the command writes in
    the folder, deleted with the parts when they are stale.
    """

    folder: Path
    config_name: str
    parts_name: str
    done_name: str
    schema: pa.Schema
    identity_keys: tuple[str, ...]
    holds: str
    owned: tuple[str, ...] = ()

    @property
    def config_path(self) -> Path:
        return self.folder / self.config_name

    @property
    def parts_dir(self) -> Path:
        return self.folder / self.parts_name

    @property
    def done_path(self) -> Path:
        return self.folder / self.done_name

    def check(self, accelerator: Accelerator, config: dict[str, Any], resume: bool) -> None:
        """Refuse earlier results made otherwise (on every process alike); the main process deletes stale ones."""
        run_shared(accelerator, lambda: self.check_config(config, resume, accelerator.is_main_process))

    def check_config(self, config: dict[str, Any], resume: bool, is_main: bool) -> None:
        """check_config (module level) for this output: its parts, its results and what it owns are stale together."""
        stale = [self.done_path, self.parts_dir, *(self.folder / name for name in self.owned)]
        check_config(self.config_path, config, self.identity_keys, holds=self.holds, stale=stale, resume=resume,
                     is_main=is_main)

    def start(self, accelerator: Accelerator, config: dict[str, Any], file_names: Sequence[str],
              started: str) -> list[int]:
        """The rows still to make; the config written (keeping an earlier start of the same output)."""
        pending = pending_rows(file_names, self.parts_dir, self.schema)

        def write() -> None:
            previous = runfolder.read_json(self.config_path) if len(pending) < len(file_names) else {}
            config["started"] = previous.get("started", started)
            runfolder.write_json(self.config_path, config)
        run_shared(accelerator, write, main_only=True)
        return pending

    def merge(self, parts: pa.Table, num_images: int) -> pa.Table:
        """The complete parts by file_name (see `merged`)."""
        return merged(parts, self.folder, num_images, what=self.holds)
