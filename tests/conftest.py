"""Shared fixtures: small synthetic releases in the public layout, and their conversions."""

import functools
import json
import shutil
import sqlite3
import struct
import zlib
from pathlib import Path

import pyarrow as pa
import pytest

from focus_tools import convert, published, sample, schema, validate

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def sample_release(tmp_path_factory) -> Path:
    """A 48-image release folder in which every partition occurs."""
    return sample.write_sample_release(tmp_path_factory.mktemp("release") / "focus", 48, seed=7)


@pytest.fixture(scope="session")
def sample_zip(tmp_path_factory) -> Path:
    """The same release as focus.zip (one top-level folder, as the public archive)."""
    return sample.write_sample_release(tmp_path_factory.mktemp("zip") / "focus.zip", 48, seed=7,
                                              as_zip=True)


@pytest.fixture(scope="session")
def converted(tmp_path_factory, sample_release) -> Path:
    output = tmp_path_factory.mktemp("converted") / "focus"
    convert.convert(sample_release, output)
    return output


@pytest.fixture
def release_copy(tmp_path, sample_release) -> Path:
    """A writable copy of the sample release, for tests that damage it."""
    return Path(shutil.copytree(sample_release, tmp_path / "focus"))


def execute(release: Path, sql: str, *params) -> None:
    with sqlite3.connect(release / schema.ANNOTATIONS_DB) as db:
        db.execute(sql, params)
    db.close()


def first_file_name(release: Path) -> str:
    with sqlite3.connect(release / schema.ANNOTATIONS_DB) as db:
        (name,) = db.execute("SELECT file_name FROM annotations ORDER BY file_name LIMIT 1").fetchone()
    db.close()
    return name


@functools.cache
def published_version_annotations(version: int) -> list[schema.Annotation]:
    """Made-up images whose Table 1 is exactly a published version's."""
    table1 = published.PUBLISHED_VERSIONS[version]["table1"]
    annotations = []
    for class_id, class_name in enumerate(schema.CLASS_NAMES):
        values = {attribute: [name for name in names for _ in range(table1[attribute][name][class_id])]
                  for attribute, names in schema.ATTRIBUTE_NAMES.items()}
        num_images = len(values["time"])
        # "none" stands alone, as in a release; the other location occurrences are dealt round-robin to the
        # other images, so a location never lands twice on one image.
        placed = [name for name in values["locations"] if name != "none"]
        alone = values["locations"].count("none")
        dealt = num_images - alone
        locations = [("none",)] * alone + [tuple(placed[i::dealt]) for i in range(dealt)]
        annotations += [schema.Annotation(f"{class_name}-x/{i}.jpg", class_name, values["time"][i],
                                                 values["weather"][i], tuple(locations[i]), False)
                        for i in range(num_images)]
    return annotations


def published_version_table(version: int) -> pa.Table:
    """Annotation columns of made-up images whose Table 1 is exactly a published version's."""
    return validate.annotations_table(published_version_annotations(version), schema.load_uncommon_table())


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG file whose header declares width × height pixels (a decompression bomb for PIL)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1)))
            + chunk(b"IEND", b""))


# Tiny random-weights models of each source, saved the way their libraries save them (harness.models' tests).

HUB_COMMIT = "0" * 40


@pytest.fixture
def offline_cache(monkeypatch, tmp_path):
    """An empty Hugging Face cache and torchvision cache, offline, that nothing may download into."""
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def refuse(*args, **kwargs):
        raise AssertionError(f"tried to download {args}")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    return tmp_path / "hf" / "hub"


def hub_snapshot(cache: Path, repo_id: str, source: Path) -> None:
    """A repo in the Hugging Face cache layout (refs/main -> snapshots/<commit>/files), from a folder."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(HUB_COMMIT)
    shutil.copytree(source, repo / "snapshots" / HUB_COMMIT)


def tiny_timm_folder(path: Path):
    """timm's test_resnet saved by timm.models.save_for_hf (config.json + model.safetensors)."""
    import timm

    model = timm.create_model("test_resnet")
    timm.models.save_for_hf(model, path, safe_serialization=True)
    return model


def tiny_clip_folder(path: Path):
    """A CLIP model of a few thousand parameters in open_clip's folder layout (open_clip_config.json + weights)."""
    import open_clip
    import safetensors.torch

    path.mkdir(parents=True)
    config = {"model_cfg": {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32,
                                                            "patch_size": 8, "head_width": 16},
                            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2,
                                         "layers": 1}},
              "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                                 "std": [0.26862954, 0.26130258, 0.27577711], "interpolation": "bicubic",
                                 "resize_mode": "shortest"}}
    (path / "open_clip_config.json").write_text(json.dumps(config))
    model = open_clip.create_model(f"local-dir:{path}", load_weights=False).eval()
    safetensors.torch.save_file(model.state_dict(), path / "open_clip_model.safetensors")
    return model


def tiny_vit_folder(path: Path, labels=None, processor=None):
    """A transformers ViT classifier saved with save_pretrained, with its image processor (1000 labels by default)."""
    import transformers

    config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                                    num_attention_heads=2, intermediate_size=37,
                                    **({"num_labels": 1000} if labels is None else
                                       {"id2label": dict(enumerate(labels)),
                                        "label2id": {name: i for i, name in enumerate(labels)}}))
    model = transformers.ViTForImageClassification(config).eval()
    model.save_pretrained(path)
    (processor or transformers.ViTImageProcessor(size={"height": 32, "width": 32})).save_pretrained(path)
    return model
