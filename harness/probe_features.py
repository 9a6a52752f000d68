"""Penultimate features for focus-probe, made by the resumable per-model pass (harness.artifacts.Resumable).

    <model>/features.parquet     penultimate features per image (file_name, features: float32[d])
    <model>/features.json        what they were computed from: dataset fingerprint, weights sha256, ...
    <model>/features-parts/      features written as they come (a killed run resumes from them)

Cached features (or parts) are reused only when features.json says they come from the same data and
weights; without a features.json nothing says where they come from, so they are recomputed.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from accelerate import Accelerator
from torch import nn

from harness import passes, preprocess, runfolder, transforms
from harness.artifacts import Resumable
from harness.distributed import run_shared
from harness.runfolder import library_versions, now
from harness.models.info import ModelInfo

logger = logging.getLogger("focus-probe")

FEATURES_FILE = "features.parquet"
FEATURES_CONFIG_FILE = "features.json"
FEATURES_PARTS_DIR = "features-parts"
POOLING = "forward_features + forward_head(pre_logits=True)"
# Settings that change the features: cached features are reused only when all of these match.
FEATURE_IDENTITY_KEYS = ("model", "sha256", "dataset_fingerprint", "num_images", "preprocessing", "precision",
                         "pooling")


def weights_sha256(model: nn.Module, info: ModelInfo) -> str:
    """The weights file's SHA-256, or for random weights the SHA-256 of the state dict's tensors."""
    if info.sha256:
        return info.sha256
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def features_schema(dim: int) -> pa.Schema:
    """file_name and the features (null for an image that cannot be decoded)."""
    return pa.schema([("file_name", pa.string()), ("features", pa.list_(pa.float32(), dim))])


def feature_rows(file_names: list[str], features: np.ndarray, ok: np.ndarray) -> pa.Table:
    dim = features.shape[1]
    flat = pa.array(features.astype(np.float32, copy=False).reshape(-1))
    column = pa.FixedSizeListArray.from_arrays(flat, dim, mask=pa.array(~ok))
    return pa.table({"file_name": pa.array(file_names, pa.string()), "features": column}, schema=features_schema(dim))


def features_matrix(table: pa.Table) -> np.ndarray:
    """The features column as a (rows, dim) float32 array."""
    column = table.column("features").combine_chunks()
    return column.flatten().to_numpy().reshape(len(column), column.type.list_size)


def feature_resumable(model_dir: Path, dim: int) -> Resumable:
    """focus-probe's output in a model's folder: features.json, features-parts/, done with features.parquet."""
    return Resumable(model_dir, FEATURES_CONFIG_FILE, FEATURES_PARTS_DIR, FEATURES_FILE, features_schema(dim),
                     FEATURE_IDENTITY_KEYS, "features")


def feature_step(model: nn.Module, preprocessing: preprocess.Preprocessing, name: str) -> passes.Step:
    """The model on a batch: its pooled penultimate features, float32."""
    dim = model.num_features

    def step(batch: passes.Batch) -> dict[str, torch.Tensor]:
        images = transforms.normalize(batch.images, preprocessing)
        features = model.forward_head(model.forward_features(images), pre_logits=True)
        if features.ndim != 2 or features.shape[1] != dim:
            raise ValueError(f"{name}: forward_head(pre_logits=True) gave shape {tuple(features.shape)}, "
                             f"expected (batch, {dim}); this architecture has no pooled penultimate features")
        return {"features": features.float()}
    return step


def extract_features(accelerator: Accelerator, dataset: datasets.Dataset, annotations: pa.Table, fingerprint: str,
                     model: nn.Module, info: ModelInfo, sha256: str, preprocessing: preprocess.Preprocessing,
                     model_dir: Path, *, precision: str, resume: bool = True, batch_size: int = 64, workers: int = 0,
                     save_every: int = 1024, quiet: bool = False) -> pa.Table:
    """Penultimate features of every decodable image (file_name order), from the cache when it matches; `model_dir`
    exists (and is locked, see harness.probing.probe_model)."""
    dim = model.num_features
    config = {
        "model": info.model, "weights": info.weights, "sha256": sha256, "random_init": info.random_init,
        "pooling": POOLING, "dim": dim, "preprocessing": preprocessing.to_dict(), "precision": precision,
        "dataset_fingerprint": fingerprint, "num_images": annotations.num_rows,
        "num_processes": accelerator.num_processes, "versions": library_versions(),
    }
    resumable = feature_resumable(model_dir, dim)
    resumable.check(accelerator, config, resume)
    if resumable.done_path.exists():
        logger.info("%s: features from the cache %s", info.model, resumable.done_path)
        return pq.read_table(resumable.done_path)
    file_names = annotations.column("file_name").to_pylist()
    pending = resumable.start(accelerator, config, file_names, now())
    logger.info("%s: %d-d features, preprocessing %s, %d of %d images to go", info.model, dim,
                preprocessing.summary(), len(pending), len(file_names))

    def to_rows(gathered: dict[str, np.ndarray]) -> pa.Table:
        # Checked before the rows reach a part file: NaN features must never be cached.
        passes.check_finite(np.isfinite(gathered["features"]).all(axis=1), gathered, file_names, info.model,
                            "features")
        for i in gathered["index"][~gathered["ok"]]:
            logger.warning("%s: %s cannot be decoded; left out of the probes", info.model, file_names[i])
        return feature_rows([file_names[i] for i in gathered["index"]], gathered["features"], gathered["ok"])

    result = passes.run_pass(
        accelerator, dataset, pending, transforms.geometry_transform(preprocessing), preprocessing.input_size,
        feature_step(model.to(accelerator.device), preprocessing, info.model), to_rows, schema=resumable.schema,
        parts_dir=resumable.parts_dir, save_every=save_every, batch_size=batch_size, workers=workers,
        desc=f"{info.model} features", quiet=quiet)

    def finish() -> None:
        parts = resumable.merge(result.rows, len(file_names))
        valid = parts.filter(parts.column("features").is_valid())
        runfolder.write_parquet(resumable.done_path, valid)
        failed_images = sorted(set(file_names) - set(valid.column("file_name").to_pylist()))
        config.update(finished=now(), seconds=round(result.seconds, 1), failed_images=failed_images)
        runfolder.write_json(resumable.config_path, config)
    run_shared(accelerator, finish, main_only=True)
    return pq.read_table(resumable.done_path)
