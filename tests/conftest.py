"""Shared fixtures: small synthetic releases in the public layout, and their conversions."""

import shutil
import sqlite3
from pathlib import Path

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
