"""`focus-dataset convert`: a release (folder or focus.zip) into a Hub-ready dataset folder."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from focus_dataset import (FocusDataError, focus_info, generate_examples, load_uncommon_table,
                           validate_uncommon_table)
from focus_tools.card import render_card
from focus_tools.parquet import read_annotation_columns, write_parquet_shards
from focus_tools.release import Release, read_annotations
from focus_tools.statistics import closest_published_version, dataset_fingerprint

REPORT_NAME = "conversion_report.json"


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
        report.update(num_images=annotations.num_rows, fingerprint=dataset_fingerprint(annotations),
                      published_version=closest_published_version(annotations))
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
