"""Reading a FOCUS release, a folder or focus.zip, without extracting it: its annotation rows,
checked and parsed, and its image files' bytes, checked cheaply or decoded in full."""

from __future__ import annotations

import io
import os
import sqlite3
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import PIL.Image

from focus_dataset import (ANNOTATIONS_DB, CLASS_NAMES, LOCATION_NAMES, TIME_NAMES, WEATHER_NAMES, Annotation,
                           FocusDataError)

_ANNOTATION_COLUMNS = "file_name, category, time, weather, locations, humans"
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}


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

