"""pack: one model of a harness run folder becomes a submission folder.

The submission is built beside its output, in a hidden staging folder that this process locks while it
exists (focus_common.outputs.staged_folder, as convert's): the submission is staged in it, verified, then
takes OUTPUT's name, and an earlier submission there steps aside and loses only the files pack and push
write. A staging folder that no live process holds (a pack killed outright) is removed by the next pack
into the same OUTPUT; a live one makes the next pack stop and name its holder.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from harness import runfolder, scoring
from focus_common import inputs, outputs
from focus_common.inputs import read_small_text
from harness.leaderboard.errors import LeaderboardError, SubmissionError
from harness.leaderboard.strict import SUBMISSION_SCHEMA, Limits, _shown, kind_of, read_json_strict
from harness.leaderboard.submission import (
    FAILED_COUNT, METRICS_FILE, MODEL_INDEX_FILE, PREDICTIONS_FILE, SCHEMA_VERSION, SUBMISSION_FILE, SUBMITTED_FILES,
    file_records, submission_id,
)
from harness.leaderboard.verification import _examples, compare_claims, recompute_metrics, verify


def _weights(config: dict) -> dict:
    """{source, sha256} from a run's config, which records `weights` (the source) and `sha256`.

    A checkpoint's source keeps only the file name: the folder it sat in says nothing about the weights.

    >>> _weights({"weights": "checkpoint:/home/me/lite0.pth", "sha256": "ab"})
    {'source': 'checkpoint:lite0.pth', 'sha256': 'ab'}
    """
    source = config.get("weights")
    if isinstance(source, str) and source.startswith("checkpoint:"):
        source = "checkpoint:" + Path(source.removeprefix("checkpoint:")).name
    return {"source": source, "sha256": config.get("sha256")}


# The settings of timm's data config that a run made before the harness recorded its preprocessing kept.
_DATA_CONFIG_SETTINGS = ("input_size", "crop_pct", "crop_mode", "interpolation", "mean", "std")


def _preprocessing(config: dict) -> dict | None:
    """The run's preprocessing record; for a run that predates it, timm's data config, then the only one.

    >>> _preprocessing({"data_config": {"input_size": [3, 224, 224], "interpolation": "bicubic", "crop_pct": 0.875}})
    {'protocol': 'timm', 'custom': False, 'input_size': [3, 224, 224], 'crop_pct': 0.875, 'interpolation': 'bicubic'}
    """
    if "preprocessing" in config:
        return config["preprocessing"]
    data_config = config.get("data_config")
    if not isinstance(data_config, dict):
        return None
    return {"protocol": "timm", "custom": False} | {key: data_config[key] for key in _DATA_CONFIG_SETTINGS
                                                     if key in data_config}


def _models_of_run(run_dir: Path) -> list[str]:
    """The models a run folder names in run.json (none when it has no readable run.json)."""
    record = _run_record(run_dir)
    models = record.get("models") if isinstance(record, dict) else None
    return [m for m in models if isinstance(m, str)] if isinstance(models, list) else []


def _run_record(run_dir: Path) -> dict | None:
    path = run_dir / runfolder.RUN_FILE
    if not path.is_file():
        if not run_dir.is_dir():
            kind = kind_of(run_dir)
            raise LeaderboardError(f"{run_dir}: " + ("no such folder" if kind == "missing" else f"{kind}, not a folder")
                                   + "; pass a focus-eval run folder")
        raise LeaderboardError(f"{run_dir}: no {runfolder.RUN_FILE}; pass a focus-eval run folder")
    return _read_run_json(path)


def _check_whole_dataset(run_dir: Path) -> None:
    """A submission is scored on every image of the dataset: a run on a subset (--limit, a filter) is refused here,
    not by verify later."""
    record = _run_record(run_dir)
    selection = record.get("selection") if isinstance(record, dict) else None
    if not isinstance(selection, dict):
        return
    chosen = [f"--limit {selection['limit']}"] if selection.get("limit") is not None else []
    chosen += [f"--{name} {' '.join(map(str, selection[name]))}" if isinstance(selection[name], list)
               else f"--{name} {selection[name]}"
               for name in ("categories", "times", "weathers", "locations", "humans") if selection.get(name) is not None]
    if chosen:
        raise LeaderboardError(f"{run_dir}: the run evaluated a subset ({' '.join(chosen)}); a submission is scored "
                               f"on every image of the dataset: run focus-eval again without them")


def submission_metadata(config: dict, claimed: dict, num_images: int, *, now: datetime | None = None) -> dict:
    """submission.json from the run's config.json and metrics.json (the files block is added by pack)."""
    metric_config = claimed.get("config") if isinstance(claimed.get("config"), dict) else {}
    metadata = {
        "schema_version": SCHEMA_VERSION,
        "model": config.get("model"),
        "paper_name": config.get("paper_name"),
        "weights": _weights(config),
        "random_init": config.get("random_init"),
        "num_params": config.get("num_params"),
        "input_size": config.get("input_size"),
        "data_config": config.get("data_config"),
        "preprocessing": _preprocessing(config),
        "precision": config.get("precision"),
        "label_space": config.get("label_space"),
        "mapping": config.get("mapping"),
        "harness_version": config.get("harness_version"),
        "versions": config.get("versions"),
        "dataset": {"fingerprint": config.get("dataset_fingerprint"), "num_images": num_images},
        "metric": {key: metric_config.get(key) for key in ("gap_unit", "confidence", "n_bootstrap", "seed")},
        "evaluated": {"started": config.get("started"), "finished": config.get("finished")},
        "submitted": (now or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
    }
    # Optional fields the run did not record are left out rather than written as null.
    return {key: value for key, value in metadata.items()
            if value is not None or key not in ("paper_name", "data_config", "versions")}


def pack(
    run_dir: str | os.PathLike,
    model: str | None = None,
    output: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    now: datetime | None = None,
) -> Path:
    """Write a submission folder for one model of a run (`model` may be left out when the run has one); return
    its path.

    It appears only when complete and when every check that needs no dataset passes.
    """
    run_dir = Path(run_dir)
    models = _models_of_run(run_dir)
    if model is None:
        if len(models) != 1:
            raise LeaderboardError(f"{run_dir}: the run holds {len(models)} models ({', '.join(models) or 'none'}); "
                                   f"name the one to submit with --model")
        model = models[0]
    _check_whole_dataset(run_dir)
    folder = runfolder.model_dir(run_dir, model)
    if not folder.is_dir():
        available = sorted(p.name for p in run_dir.iterdir() if (p / runfolder.CONFIG_FILE).is_file()) \
            if run_dir.is_dir() else []
        raise LeaderboardError(f"{run_dir}: no model {model!r} (folder {folder.name}); the run holds "
                               f"{available or 'no model'}. Pass --model with a model of this run.")
    for name in (runfolder.CONFIG_FILE, runfolder.PREDICTIONS_FILE, runfolder.METRICS_FILE):
        if not (folder / name).is_file():
            raise LeaderboardError(f"{folder}: no {name}; the model's evaluation has not finished (run the "
                                   f"harness again: it resumes)")
    failed_file = folder / runfolder.FAILED_FILE
    failed = _read_run_json(failed_file) if failed_file.is_file() else []
    config = _read_run_json(folder / runfolder.CONFIG_FILE)
    claimed = _read_run_json(folder / runfolder.METRICS_FILE)
    try:
        predictions = pq.read_table(folder / runfolder.PREDICTIONS_FILE, columns=SUBMISSION_SCHEMA.names)
    except (pa.ArrowException, OSError) as err:
        raise LeaderboardError(f"{folder / runfolder.PREDICTIONS_FILE}: cannot be read ({err}); is this a finished "
                               f"harness run?") from err
    if failed or (isinstance(claimed, dict) and claimed.get(FAILED_COUNT)):
        raise LeaderboardError(f"{folder}: {len(failed) or claimed.get(FAILED_COUNT)} image(s) could not be decoded "
                               f"in this run ({runfolder.FAILED_FILE}); a submission needs a prediction for every "
                               f"image of the dataset")
    if not isinstance(config, dict) or not isinstance(claimed, dict):
        raise LeaderboardError(f"{folder}: {runfolder.CONFIG_FILE} and {runfolder.METRICS_FILE} must each hold "
                               f"a JSON object; is this a harness run folder?")
    claimed = {key: value for key, value in claimed.items() if key != FAILED_COUNT}
    stale = _stale_claims(folder, claimed)
    if stale:
        raise LeaderboardError(f"{folder}: {runfolder.METRICS_FILE} does not match {runfolder.PREDICTIONS_FILE} "
                               f"(was the run changed after it finished?):\n" + "\n".join(f"  - {p}" for p in stale))
    metadata = submission_metadata(config, claimed, predictions.num_rows, now=now)
    if output is None:
        output = Path("submissions") / (submission_id(metadata) if _has_id_fields(metadata)
                                        else runfolder.model_slug(model))
    output = Path(output)
    _check_output(output, run_dir, overwrite)
    with outputs.staged_folder(output, holder="focus-leaderboard pack", what="pack", error=LeaderboardError) as staged:
        staging = staged.folder
        try:
            pq.write_table(predictions.cast(SUBMISSION_SCHEMA).sort_by("file_name"), staging / PREDICTIONS_FILE,
                           compression="zstd")
            # A submission holds its files alone: pack's record of them is submission.json's "files".
            outputs.write_atomic(staging / METRICS_FILE, runfolder.json_text(claimed))
            metadata["files"] = file_records(staging)
            outputs.write_atomic(staging / SUBMISSION_FILE, runfolder.json_text(metadata))
        except OSError as err:  # a full disk: the staging folder goes, OUTPUT is as it was
            raise LeaderboardError(f"{output}: cannot write the submission ({err.strerror or err}); nothing was "
                                   f"written") from None
        problems = verify(staging, None, now=now).problems
        if problems:
            raise LeaderboardError(f"{folder}: the run does not make a valid submission:\n" +
                                   "\n".join(f"  - {problem}" for problem in problems))
        staged.commit(owns=_packed_here)
    return output


def _read_run_json(path: Path) -> Any:
    """A JSON file of the run, read strictly; a problem names the file."""
    try:
        return read_json_strict(path, Limits.json_bytes)
    except SubmissionError as err:
        raise LeaderboardError(f"{path.parent}{os.sep}{err}") from err


# What pack writes into a submission folder, and push beside it: --overwrite replaces a folder holding
# only these, and deletes nothing else.
PACKED_FILES = (*SUBMITTED_FILES, MODEL_INDEX_FILE)


def _check_output(output: Path, run_dir: Path, overwrite: bool) -> None:
    """Refuse an output that is, holds or lies in the run folder, and one in the way unless pack wrote it."""
    resolved, run = output.resolve(), run_dir.resolve()
    if resolved == run or run in resolved.parents or resolved in run.parents:
        relation = "is" if resolved == run else "lies inside" if run in resolved.parents else "holds"
        raise LeaderboardError(f"{output}: {relation} the run folder {run_dir}; write the submission outside the run "
                               f"(--overwrite never replaces the run, a folder holding it or one inside it)")
    if output.is_symlink():
        raise LeaderboardError(f"{output}: is a symbolic link; pack writes a folder of its own there only when "
                               f"nothing is in the way (choose another --output)")
    if not output.exists() or (output.is_dir() and not any(output.iterdir())):
        return
    if not overwrite:
        raise LeaderboardError(f"{output}: already exists; choose another --output or pass --overwrite")
    if not is_packed_submission(output):
        held = sorted(p.name for p in output.iterdir()) if output.is_dir() else []
        holds = f" (it holds {_examples(held)})" if held else ""
        raise LeaderboardError(f"{output}: not a submission folder that pack wrote{holds}; --overwrite replaces only "
                               f"those. Choose another --output")


def _packed_here(folder: Path, path: Path) -> bool:
    """Whether `path`, in the earlier submission `folder` that pack is replacing, is a file pack or push wrote there:
    one its submission.json records with the same size and SHA-256, or push's model-index block."""
    if path.parent != folder or not path.is_file() or path.is_symlink():
        return False
    if path.name == MODEL_INDEX_FILE:
        try:
            return "model-index" in (yaml.safe_load(read_small_text(path, "a model-index block", 2**20)) or {})
        except (ValueError, yaml.YAMLError, TypeError):
            return False
    try:
        records = read_json_strict(folder / SUBMISSION_FILE, Limits.json_bytes).get("files", {})
    except (SubmissionError, AttributeError):
        return False
    record = records.get(path.name) if isinstance(records, dict) else None
    if path.name == SUBMISSION_FILE:
        return True  # it is what says which files are pack's; it was read as a submission's just now
    return isinstance(record, dict) and record.get("size") == path.stat().st_size and \
        record.get("sha256") == inputs.sha256_file(path)


def is_packed_submission(folder: Path) -> bool:
    """Whether `folder` is one that pack wrote: submission.json and nothing but pack's and push's plain files."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    entries = list(folder.iterdir())
    return (any(p.name == SUBMISSION_FILE for p in entries)
            and all(p.name in PACKED_FILES and p.is_file() and not p.is_symlink() for p in entries))


def _stale_claims(folder: Path, claimed: dict) -> list[str]:
    """Where the run's metrics.json differs from its own predictions (labels included), recomputed."""
    metric = claimed.get("config")
    if not isinstance(metric, dict) or not {"gap_unit", "confidence", "n_bootstrap", "seed"} <= metric.keys():
        return [f"{METRICS_FILE} $.config: {_shown(metric)} does not record gap_unit, confidence, n_bootstrap and "
                f"seed, so its intervals cannot be recomputed"]
    try:
        recomputed = recompute_metrics(scoring.read_predictions(folder / runfolder.PREDICTIONS_FILE), metric)
    except (ValueError, TypeError, pa.ArrowException) as err:
        return [f"{runfolder.PREDICTIONS_FILE}: cannot recompute the metrics ({err})"]
    return [f"{METRICS_FILE} {problem}" for problem in compare_claims(claimed, recomputed)]


def _has_id_fields(metadata: dict) -> bool:
    return (isinstance(metadata.get("model"), str) and isinstance(metadata.get("precision"), str)
            and isinstance(metadata["weights"]["sha256"], str))
