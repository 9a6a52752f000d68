"""Reading a FOCUS release, a folder or focus.zip, without extracting it: its annotation rows,
checked and parsed, and its image files' bytes, checked cheaply or decoded in full.

A release comes from the web, so it is read defensively. In a folder, only regular files inside it
are read: a symbolic link, a FIFO, a device or a folder where a file should be is refused and
named, never opened for reading. In a zip, members' declared sizes and compression ratios are
checked before anything is read, and members are read with a bound. Files and members larger than
a generous limit are refused, and so are images that declare more pixels than PIL decodes.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sqlite3
import stat
import struct
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import PIL.Image

from focus_common.messages import quote
from focus_tools.schema import (
    ANNOTATIONS_DB,
    CLASS_NAMES,
    LOCATION_NAMES,
    TIME_NAMES,
    WEATHER_NAMES,
    Annotation,
    FocusDataError,
)

logger = logging.getLogger("focus_dataset")
_ANNOTATION_COLUMNS = ("file_name", "category", "time", "weather", "locations", "humans")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")

# Limits far above any real FOCUS file (web photos of a few hundred KB, a database of a few MB):
# they only stop a hostile or broken release from exhausting memory.
MAX_IMAGE_BYTES = 64 * 2**20
MAX_DATABASE_BYTES = 256 * 2**20
MAX_FILE_NAME_LENGTH = 1024
MAX_ROWS = 1_000_000
# Deflate reaches about 1030:1 on zeros; JPEGs barely compress and a database about 10:1.
MAX_COMPRESSION_RATIO = 100
_RATIO_CHECKED_ABOVE = 2**20


class UnreadableFile(FocusDataError):
    """A file of the release that is not read: missing, not a regular file inside the release, or too large."""


class ReleaseFile:
    """A file of the release that Release.open checked and opened: its `size`, and one read of exactly
    that many bytes, as bytes or into a caller's buffer. A context manager; closing it closes the file."""

    size: int

    def read(self) -> bytes:
        raise NotImplementedError

    def read_into(self, view: memoryview) -> None:
        """The file's bytes into view, a writable byte view of len(view) == size."""
        view[:] = self.read()

    def close(self) -> None:
        pass

    def __enter__(self) -> ReleaseFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _FolderFile(ReleaseFile):
    """A regular file of a release folder, opened without following links and checked with fstat."""

    def __init__(self, fd: int, size: int):
        self._fd, self.size = fd, size

    def read(self) -> bytes:
        # One byte more than its size (not the limit: no buffer of the limit's size), so that a file
        # that grew since fstat shows; a regular file gives fewer bytes than asked only at its end.
        chunks, done = [], 0
        try:
            while True:
                chunks.append(os.read(self._fd, self.size + 1 - done))
                done += len(chunks[-1])
                if not chunks[-1] or done >= self.size:  # short of its size, a read may be partial
                    break
        except OSError as err:
            raise UnreadableFile(f"cannot be read: {err.strerror}") from None
        self._check_length(done)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def read_into(self, view: memoryview) -> None:
        spare = bytearray(1)  # the byte after the view, as read() asks one more
        done = 0
        try:
            while True:
                got = os.readv(self._fd, [view[done:], spare])
                done += got
                if not got or done >= self.size:
                    break
        except OSError as err:
            raise UnreadableFile(f"cannot be read: {err.strerror}") from None
        self._check_length(done)

    def _check_length(self, length: int) -> None:
        if length != self.size:
            raise UnreadableFile("changed while read: refused")

    def close(self) -> None:
        os.close(self._fd)


class _ArchiveMember(ReleaseFile):
    """An archive member whose declared size and compression ratio were checked."""

    def __init__(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo):
        self._archive, self._info, self.size = archive, info, info.file_size

    def read(self) -> bytes:
        try:
            with self._archive.open(self._info) as member:
                data = member.read(self.size + 1)
        except Exception as err:  # noqa: BLE001 - zipfile and its decompressors raise many kinds on bad data
            raise UnreadableFile(f"corrupt archive member: {problem_text(err)}") from None
        if len(data) != self.size:
            raise UnreadableFile(f"corrupt archive member: {len(data):,} bytes, {self.size:,} declared")
        return data


# Every well-formed `locations` string with its names in the paper's order ("grass, water", "none").
_LOCATIONS_IN_ORDER = {", ".join(names): names for names in
                       [("none",)] + [tuple(name for i, name in enumerate(LOCATION_NAMES[:-1]) if subset >> i & 1)
                                      for subset in range(1, 2 ** (len(LOCATION_NAMES) - 1))]}


def parse_locations(value: Any) -> tuple[tuple[str, ...], list[str]]:
    """Split a release `locations` string; return (names in the paper's order, problems).

    >>> parse_locations("grass, water")
    (('grass', 'water'), [])
    >>> parse_locations("water,grass")[1]
    ["malformed locations 'water,grass': items must be joined by ', '"]
    """
    if not isinstance(value, str) or not value.strip():
        return (), [f"malformed locations {quote(value)}: expected names joined by ', ' or 'none'"]
    if value in _LOCATIONS_IN_ORDER:  # nearly every row: no need to take it apart
        return _LOCATIONS_IN_ORDER[value], []
    problems = []
    items = value.split(", ")
    if any("," in item or item != item.strip() or not item for item in items):
        problems.append(f"malformed locations {quote(value)}: items must be joined by ', '")
        items = [item.strip() for item in value.split(",") if item.strip()]
    unknown = [item for item in items if item not in LOCATION_NAMES]
    if unknown:
        problems.append(f"unknown location {quote(unknown[0])} in {quote(value)}; expected some of {LOCATION_NAMES}")
    if len(set(items)) != len(items):
        problems.append(f"malformed locations {quote(value)}: a location is repeated")
    if "none" in items and len(items) > 1:
        problems.append(f"malformed locations {quote(value)}: 'none' cannot be combined with other locations")
    return tuple(name for name in LOCATION_NAMES if name in items), problems


def file_name_problems(file_name: Any) -> list[str]:
    """What is wrong with a release file_name ('/<query folder>/<image>', inside the release)."""
    if not isinstance(file_name, str) or not file_name.strip("/"):
        return [f"file_name {quote(file_name)} is empty"]
    if len(file_name) > MAX_FILE_NAME_LENGTH:
        return [f"file_name {quote(file_name)} is {len(file_name):,} characters long, more than "
                f"{MAX_FILE_NAME_LENGTH:,}"]
    if _CONTROL_CHARACTERS.search(file_name):
        return [f"file_name {quote(file_name)} must not hold control characters"]
    parts = file_name.lstrip("/").split("/")
    if ".." in parts or "." in parts or "" in parts or "\\" in file_name or len(parts) < 2:
        return [f"file_name {quote(file_name)} must be '/<query folder>/<image>' inside the release, without '..'"]
    return []


def parse_annotation(row: tuple) -> tuple[Annotation | None, list[str]]:
    """Check one release row (file_name, category, time, weather, locations, humans)."""
    # Release.rows gives a value that is not UTF-8 text as its bytes: such a row is not read further.
    not_text = [f"{column} {quote(value)} is not UTF-8 text" for column, value in zip(_ANNOTATION_COLUMNS, row)
                if isinstance(value, bytes)]
    if not_text:
        return None, not_text
    file_name, category, time_, weather, locations, humans = row
    problems = file_name_problems(file_name)
    for column, value, names in (("category", category, CLASS_NAMES), ("time", time_, TIME_NAMES),
                                 ("weather", weather, WEATHER_NAMES)):
        if value not in names:
            problems.append(f"unknown {column} {quote(value)}; expected one of {names}")
    parsed_locations, location_problems = parse_locations(locations)
    problems += location_problems
    if humans not in ("yes", "no"):
        problems.append(f"humans must be 'yes' or 'no', got {quote(humans)}")
    if problems:
        return None, problems
    return Annotation(file_name.lstrip("/"), category, time_, weather, parsed_locations, humans == "yes"), []


class Release:
    """Read access to a FOCUS release, unpacked or as a zip, without extracting anything.

    Use as a context manager: ``with Release(path) as release: release.rows(), release.read(name)``.
    The path given may be a symbolic link (it is the user's choice); nothing inside the release may.
    """

    def __init__(self, source: str | os.PathLike):
        self.source = Path(source)
        self._zip: zipfile.ZipFile | None = None
        self._root: Path | None = None
        self._root_fd: int | None = None
        self._prefix = ""
        self._db: sqlite3.Connection | None = None

    def __enter__(self) -> "Release":
        try:
            mode = os.stat(self.source).st_mode
        except FileNotFoundError:
            raise FocusDataError(
                f"{self.source}: no such file or folder; expected a FOCUS release folder or focus.zip") from None
        except OSError as err:
            raise FocusDataError(f"{self.source}: cannot read: {err.strerror}") from err
        try:
            # Only a regular file is probed as a zip: opening a FIFO would wait for a writer forever.
            if stat.S_ISDIR(mode):
                self._open_folder()
            elif stat.S_ISREG(mode) and zipfile.is_zipfile(self.source):
                self._open_zip()
            else:
                raise FocusDataError(
                    f"{self.source}: not a FOCUS release; expected the folder holding {ANNOTATIONS_DB} "
                    f"and the images, or focus.zip"
                )
            self._check_schema()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._db is not None:
            self._db.close()
        if self._zip is not None:
            self._zip.close()
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None

    def _open_folder(self) -> None:
        self._root = self._find_root(self.source)
        self._root_fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with self._open_file(ANNOTATIONS_DB, MAX_DATABASE_BYTES, ANNOTATIONS_DB) as file:
                database = file.read()
        except UnreadableFile as err:
            raise FocusDataError(f"{self._root / ANNOTATIONS_DB}: {err}") from None
        self._load_database(database)

    @staticmethod
    def _find_root(folder: Path) -> Path:
        if os.path.lexists(folder / ANNOTATIONS_DB):
            return folder
        # focus.zip unpacks to one folder: accept the folder it was unpacked into as well.
        inner = sorted(child for child in folder.iterdir() if os.path.lexists(child / ANNOTATIONS_DB))
        for child in inner:
            if child.is_symlink():
                raise FocusDataError(f"{child}: a symbolic link, not a folder: refused; give the release folder itself")
        if len(inner) == 1:
            return inner[0]
        if len(inner) > 1:
            raise FocusDataError(f"{folder}: two releases: {inner[0] / ANNOTATIONS_DB} and "
                                 f"{inner[1] / ANNOTATIONS_DB}; "
                                 "give the folder of the one to convert")
        raise FocusDataError(
            f"{folder}: no {ANNOTATIONS_DB}; expected {folder / ANNOTATIONS_DB} (the folder that "
            f"focus.zip unpacks to holds it beside the image folders)"
        )

    def _open_zip(self) -> None:
        self._zip = zipfile.ZipFile(self.source)
        self._prefix = self._find_prefix(self._zip)
        try:
            with self._open_member(self._zip.getinfo(self._prefix + ANNOTATIONS_DB), MAX_DATABASE_BYTES,
                                   ANNOTATIONS_DB) as file:
                database = file.read()
        except UnreadableFile as err:
            raise FocusDataError(f"{self.source}: {self._prefix}{ANNOTATIONS_DB}: {err}") from None
        self._load_database(database)

    def _find_prefix(self, archive: zipfile.ZipFile) -> str:
        names = archive.namelist()
        for name in names:
            parts = PurePosixPath(name).parts
            if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise FocusDataError(
                    f"{self.source}: refusing archive member {quote(name)}: absolute paths and '..' are not allowed"
                )
        candidates = sorted((n for n in names if PurePosixPath(n).name == ANNOTATIONS_DB), key=lambda n: (len(n), n))
        if not candidates:
            raise FocusDataError(
                f"{self.source}: no {ANNOTATIONS_DB} in the archive; expected it at the top or in the "
                f"one folder the archive unpacks to (e.g. focus/{ANNOTATIONS_DB})"
            )
        if len(candidates) > 1:
            raise FocusDataError(f"{self.source}: two {ANNOTATIONS_DB}: {quote(candidates[0])} and "
                                 f"{quote(candidates[1])}; an archive must hold one release")
        return candidates[0][: -len(ANNOTATIONS_DB)]

    def _load_database(self, data: bytes) -> None:
        # The database is read like any other file of the release (checked, bounded), then handed to
        # sqlite in memory: sqlite never opens a path of the release itself.
        self._db = sqlite3.connect(":memory:")
        try:
            self._db.deserialize(data)
        except sqlite3.DatabaseError as err:
            raise FocusDataError(f"{self.source}: {ANNOTATIONS_DB} is not a SQLite database: {err}") from err
        # A value that is not UTF-8 stays bytes, a problem of its row and field (parse_annotation)
        # rather than an error of the whole query.
        self._db.text_factory = _text

    def _check_schema(self) -> None:
        try:
            kinds = [kind for (kind,) in self._db.execute("SELECT type FROM sqlite_master WHERE name = 'annotations'")]
            columns = [row[1] for row in self._db.execute("PRAGMA table_info(annotations)")]
        except sqlite3.DatabaseError as err:
            raise FocusDataError(f"{self.source}: {ANNOTATIONS_DB} is not a SQLite database: {err}") from err
        # A view could compute rows without end (a recursive one): the release stores a table.
        if kinds and kinds != ["table"]:
            raise FocusDataError(f"{self.source}: {ANNOTATIONS_DB}: 'annotations' is a {quote(kinds[0])}, not a "
                                 "table: refused")
        missing = [c for c in _ANNOTATION_COLUMNS if c not in columns]
        if missing:
            raise FocusDataError(
                f"{self.source}: {ANNOTATIONS_DB} needs a table 'annotations' with columns "
                f"{list(_ANNOTATION_COLUMNS)}; missing {missing}"
            )
        num_rows = self.num_rows()
        if num_rows > MAX_ROWS:
            raise FocusDataError(f"{self.source}: {ANNOTATIONS_DB} holds {num_rows:,} rows, more than {MAX_ROWS:,} "
                                 "(FOCUS has about 24,000): refused")

    def rows(self) -> Iterator[tuple]:
        """Annotation rows (file_name, category, time, weather, locations, humans) by file_name.

        A value that is not UTF-8 text comes as its bytes (parse_annotation names it).
        """
        query = f"SELECT {', '.join(_ANNOTATION_COLUMNS)} FROM annotations ORDER BY file_name"
        try:
            yield from self._db.execute(query)
        except sqlite3.DatabaseError as err:
            raise FocusDataError(f"{self.source}: {ANNOTATIONS_DB} cannot be read: {err}") from err

    def num_rows(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM annotations").fetchone()[0]

    def read(self, file_name: str) -> bytes:
        """The bytes of an image file (file_name without the leading "/").

        Raises UnreadableFile, whose text is the problem ("missing", "a symbolic link, not a
        regular file: refused", ...), for a file that is not read.
        """
        with self.open(file_name) as file:
            return file.read()

    def open(self, file_name: str) -> ReleaseFile:
        """An image file, checked and opened for one read of its size: into bytes or a caller's buffer.

        Raises UnreadableFile, as read() does, for a file that is not opened.
        """
        if file_name_problems(file_name):
            raise UnreadableFile("outside the release or not a valid path in it: refused")
        if self._zip is None:
            return self._open_file(file_name, MAX_IMAGE_BYTES, "an image file")
        try:
            info = self._zip.getinfo(self._prefix + file_name)
        except KeyError:
            raise UnreadableFile("missing") from None
        return self._open_member(info, MAX_IMAGE_BYTES, "an image file")

    def _open_file(self, file_name: str, limit: int, what: str) -> ReleaseFile:
        """A regular file inside the release folder: each folder on its way opened without following
        links, the file checked with lstat before it is opened and with fstat after."""
        *folders, name = file_name.split("/")
        opened: list[int] = []
        folder_fd = self._root_fd
        try:
            for folder in folders:
                mode = os.stat(folder, dir_fd=folder_fd, follow_symlinks=False).st_mode
                if stat.S_ISLNK(mode):
                    raise UnreadableFile("in a folder that is a symbolic link: refused")
                folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder_fd)
                opened.append(folder_fd)
            _check_regular(os.stat(name, dir_fd=folder_fd, follow_symlinks=False), limit, what)
            # O_NOFOLLOW and O_NONBLOCK: a link or a FIFO swapped in since the lstat is neither
            # followed nor waited on; fstat then checks what was opened.
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder_fd)
            try:
                status = os.fstat(fd)
                _check_regular(status, limit, what)
            except BaseException:
                os.close(fd)
                raise
            return _FolderFile(fd, status.st_size)
        except (FileNotFoundError, NotADirectoryError):
            raise UnreadableFile("missing") from None
        except UnreadableFile:
            raise
        except OSError as err:
            raise UnreadableFile(f"cannot be read: {err.strerror}") from None
        finally:
            for fd in opened:
                os.close(fd)

    def _open_member(self, info: zipfile.ZipInfo, limit: int, what: str) -> ReleaseFile:
        """An archive member, its declared size and compression ratio checked before it is read."""
        mode = info.external_attr >> 16
        if info.is_dir():
            raise UnreadableFile("a folder, not a regular file: refused")
        if stat.S_ISLNK(mode):
            raise UnreadableFile("a symbolic link, not a regular file: refused")
        if info.file_size > limit:
            raise UnreadableFile(f"archive member declares {_size(info.file_size)}, more than the {_size(limit)} "
                                   f"limit for {what}: refused")
        if info.file_size > _RATIO_CHECKED_ABOVE and info.file_size > MAX_COMPRESSION_RATIO * info.compress_size:
            raise UnreadableFile(f"archive member compressed {info.file_size // max(info.compress_size, 1):,}:1, "
                                   f"more than the {MAX_COMPRESSION_RATIO}:1 limit: refused")
        return _ArchiveMember(self._zip, info)

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


def _text(value: bytes) -> str | bytes:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


def _check_regular(status: os.stat_result, limit: int, what: str) -> None:
    mode = status.st_mode
    if not stat.S_ISREG(mode):
        kind = ("a symbolic link" if stat.S_ISLNK(mode) else "a folder" if stat.S_ISDIR(mode)
                else "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device")
        raise UnreadableFile(f"{kind}, not a regular file: refused")
    if status.st_size > limit:
        raise UnreadableFile(f"{_size(status.st_size)}, more than the {_size(limit)} limit for {what}: refused")


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 2**20:,.0f} MB" if num_bytes >= 2**20 else f"{num_bytes:,} bytes"


def problem_text(err: BaseException) -> str:
    """An exception as a problem in a report: one line, without object addresses, so that reports are
    reproducible (PIL names its BytesIO, `<_io.BytesIO object at 0x...>`), and clipped.

    >>> problem_text(OSError("cannot identify image file <_io.BytesIO object at 0x7f00aa>"))
    'cannot identify image file'
    """
    text = " ".join(re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", str(err)).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:200] + "…"


def _jpeg_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, read without PIL."""
    at = 2
    while at + 9 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
        elif 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
            at += 2
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            height, width = struct.unpack(">HH", data[at + 5: at + 9])
            return width, height
        else:
            at += 2 + int.from_bytes(data[at + 2: at + 4], "big")
    return None


def _pixel_problem(size: tuple[int, int] | None) -> str | None:
    """The problem of an image that declares more pixels than PIL decodes (PIL.Image.MAX_IMAGE_PIXELS,
    beyond which PIL warns of, and at twice which it refuses, a decompression bomb), or None."""
    limit = PIL.Image.MAX_IMAGE_PIXELS
    if size is None or limit is None or size[0] * size[1] <= limit:
        return None
    return f"declares {size[0]}×{size[1]} pixels, more than the {limit:,} that PIL decodes (a decompression bomb)"


def check_image_bytes(data: bytes | memoryview | None) -> str | None:
    """A cheap check of an image file (header, size and end marker, no full decode): the problem, or None.

    `data` is the file's bytes, or a byte view of them (read into a row group's buffer).
    """
    if data is None:
        return "missing"
    if not data:
        return "empty file"
    # Fast path for the common formats: their signatures, sizes and end markers, without PIL.
    # The end marker may have a few bytes after it: it is looked for in the last 4 KB, at the very end first.
    if data[:3] == b"\xff\xd8\xff":
        if data[-2:] != b"\xff\xd9" and b"\xff\xd9" not in bytes(data[-4096:]):
            return "truncated: no JPEG end marker"
        return _pixel_problem(_jpeg_size(data))
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        if data[-8:-4] != b"IEND" and b"IEND" not in bytes(data[-4096:]):
            return "truncated: no PNG end chunk"
        return _pixel_problem(struct.unpack(">II", data[16:24]) if len(data) >= 24 else None)
    try:
        with PIL.Image.open(io.BytesIO(data)) as image:
            return _pixel_problem(image.size)
    except Exception as err:  # noqa: BLE001 - PIL's format plugins raise many kinds on malformed files
        return f"undecodable: {problem_text(err)}"


def decode_problem(data: bytes | None) -> str | None:
    """A full decode of an image file, truncation not tolerated: the problem, or None."""
    problem = check_image_bytes(data)
    if problem is not None:
        return problem
    try:
        with PIL.Image.open(io.BytesIO(data)) as image:
            image.load()
    except Exception as err:  # noqa: BLE001 - PIL's format plugins raise many kinds on malformed files
        return f"undecodable: {problem_text(err)}"
    return None


def _reported(value: Any) -> Any:
    """A row's file_name as the conversion report records it: as it is, unless too long or not text."""
    return value if isinstance(value, str) and len(value) <= MAX_FILE_NAME_LENGTH else quote(value)


def read_annotations(release: Release, skip_invalid: bool = False) -> tuple[list[Annotation], list[dict]]:
    """Every row of the release checked before anything is written.

    A bad row raises FocusDataError naming the row and the value, unless skip_invalid, in which
    case it is left out and described in the returned list of skipped rows.
    """
    annotations, skipped, seen = [], [], set()
    for row_number, row in enumerate(release.rows(), start=1):
        annotation, problems = parse_annotation(row)
        if annotation is not None and annotation.file_name in seen:
            annotation, problems = None, [f"duplicate file_name {quote(row[0])}"]
        if problems:
            if not skip_invalid:
                raise FocusDataError(
                    f"{release.source}: annotations row {row_number} (file_name {quote(row[0])}): "
                    + "; ".join(problems) + ". Fix the row, or pass --skip-invalid to leave such rows out."
                )
            skipped.append({"row": row_number, "file_name": _reported(row[0]), "problems": problems})
            continue
        seen.add(annotation.file_name)
        annotations.append(annotation)
    if not annotations:
        raise FocusDataError(f"{release.source}: {ANNOTATIONS_DB} holds no usable annotation rows")
    return annotations, skipped


def release_annotations(release: Release, report: dict[str, list], *, skip_invalid: bool = False) -> list[Annotation]:
    """The release's annotations, every row checked (read_annotations). The rows skipped and the image
    files that no row names go to `report`, which then collects the image problems (read_image)."""
    annotations, report["skipped_rows"] = read_annotations(release, skip_invalid=skip_invalid)
    annotated = {a.file_name for a in annotations}
    report["images_without_rows"] = [n for n in release.image_names() if n not in annotated]
    report["image_problems"] = []
    return annotations


def read_image(release: Release, file_name: str, report: dict[str, list],
               into: Callable[[int], memoryview] | None = None) -> bytes | memoryview | None:
    """An image file's bytes, checked cheaply (check_image_bytes), or None when it is not read.

    With `into`, the bytes are read into the view that into(size) returns, and that view is returned:
    convert reads each file straight into its row group's buffer. A problem is logged and added to
    report["image_problems"]; the row stays (its annotation is good), and readers see the problem
    when decoding.
    """
    try:
        with release.open(file_name) as file:
            if into is None:
                data = file.read()
            else:
                data = into(file.size)
                file.read_into(data)
        problem = check_image_bytes(data)
    except UnreadableFile as err:  # missing, or refused unread
        data, problem = None, str(err)
    if problem is not None:
        logger.warning("%s: image %s: %s", release.source, file_name, problem)
        report["image_problems"].append({"file_name": file_name, "problem": problem})
    return data
