"""Shared fixtures: small synthetic releases in the public layout, and their conversions."""

import functools
import struct
import zlib
import shutil
import sqlite3
from pathlib import Path

import pyarrow as pa
import pytest

import focus_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def sample_release(tmp_path_factory) -> Path:
    """A 48-image release folder in which every partition occurs."""
    return focus_dataset.write_sample_release(tmp_path_factory.mktemp("release") / "focus", 48, seed=7)


@pytest.fixture(scope="session")
def sample_zip(tmp_path_factory) -> Path:
    """The same release as focus.zip (one top-level folder, as the public archive)."""
    return focus_dataset.write_sample_release(tmp_path_factory.mktemp("zip") / "focus.zip", 48, seed=7,
                                              as_zip=True)


@pytest.fixture(scope="session")
def converted(tmp_path_factory, sample_release) -> Path:
    output = tmp_path_factory.mktemp("converted") / "focus"
    focus_dataset.convert(sample_release, output)
    return output


@pytest.fixture
def release_copy(tmp_path, sample_release) -> Path:
    """A writable copy of the sample release, for tests that damage it."""
    return Path(shutil.copytree(sample_release, tmp_path / "focus"))


def execute(release: Path, sql: str, *params) -> None:
    with sqlite3.connect(release / focus_dataset.ANNOTATIONS_DB) as db:
        db.execute(sql, params)
    db.close()


def first_file_name(release: Path) -> str:
    with sqlite3.connect(release / focus_dataset.ANNOTATIONS_DB) as db:
        (name,) = db.execute("SELECT file_name FROM annotations ORDER BY file_name LIMIT 1").fetchone()
    db.close()
    return name


@functools.cache
def published_version_table(version: int) -> pa.Table:
    """Annotation columns of made-up images whose Table 1 is exactly a published version's."""
    table1 = focus_dataset.PUBLISHED_VERSIONS[version]["table1"]
    annotations = []
    for class_id, class_name in enumerate(focus_dataset.CLASS_NAMES):
        values = {attribute: [name for name in names for _ in range(table1[attribute][name][class_id])]
                  for attribute, names in focus_dataset.ATTRIBUTE_NAMES.items()}
        num_images = len(values["time"])
        # Location occurrences dealt round-robin: a location never lands twice on one image.
        locations = [values["locations"][i::num_images] for i in range(num_images)]
        annotations += [focus_dataset.Annotation(f"{class_name}-x/{i}.jpg", class_name, values["time"][i],
                                                 values["weather"][i], tuple(locations[i]), False)
                        for i in range(num_images)]
    return focus_dataset.annotations_table(annotations, focus_dataset.load_uncommon_table())


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG file whose header declares width × height pixels (a decompression bomb for PIL)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1)))
            + chunk(b"IEND", b""))
