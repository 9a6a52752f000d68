"""Tests of harness/models/failures.py and of the files a model is read from: whatever a loader raises is that model's
failure (a ModelLoadError naming the spec, the file and the original error); configs, models files and specs that
cannot be used are refused with messages naming them."""

import json
import pickle
import re
import struct

import pytest
import safetensors
import timm
import torch

from harness import models
from harness.models import ModelLoadError, create_model

from conftest import tiny_clip_folder, tiny_timm_folder, tiny_vit_folder

pytest.importorskip("open_clip")
pytest.importorskip("transformers")


# --------------------------------------------------------------------------- any exception is the model's failure


@pytest.mark.parametrize("error", [KeyError("architecture"), TypeError("unhashable type: 'list'"),
                                   AttributeError("'NoneType' object has no attribute 'shape'"),
                                   safetensors.SafetensorError("invalid header"),
                                   pickle.UnpicklingError("invalid load key"), MemoryError()])
def test_any_exception_of_a_library_is_a_model_load_error_naming_the_model_and_file(monkeypatch, tmp_path, error):
    path = tmp_path / "weights.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), path)

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(timm, "create_model", broken)
    with pytest.raises(ModelLoadError) as raised:
        create_model("test_resnet", checkpoint=path)
    assert str(raised.value) == (
        f"test_resnet: cannot be built from {path} ({type(error).__name__}: {error}). The file is damaged, or not one "
        f"this library reads: fetch or save it again, or name other weights.")
    assert isinstance(raised.value, ValueError) and raised.value.__cause__ is error


def test_the_harness_own_errors_pass_unchanged(monkeypatch):
    with pytest.raises(models.UnknownModelError, match=r"Unknown timm model 'resnet-50'"):
        create_model("resnet-50")


def test_a_weights_file_that_is_no_pickle_is_a_model_load_error_naming_it(tmp_path):
    tiny_timm_folder(tmp_path / "saved")
    (tmp_path / "saved" / "model.safetensors").unlink()
    (tmp_path / "saved" / "pytorch_model.bin").write_bytes(b"not a pickle at all")
    with pytest.raises(ModelLoadError, match=rf"local-dir:.*saved: cannot be built from .*saved/pytorch_model.bin "
                                             rf"\(RuntimeError: weights_only=True blocked loading"):
        create_model(f"local-dir:{tmp_path / 'saved'}")


def test_a_config_value_of_the_wrong_type_is_a_model_load_error_naming_the_config(tmp_path):
    tiny_timm_folder(tmp_path / "saved")
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    config["model_args"]["layers"] = "deep"
    (tmp_path / "saved" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=rf"local-dir:.*saved: cannot be built from .*saved/config.json "
                                             rf"\(TypeError: "):
        create_model(f"local-dir:{tmp_path / 'saved'}")


def test_safetensors_that_pass_the_header_check_but_not_safetensors_are_a_model_load_error(tmp_path):
    tiny_timm_folder(tmp_path / "saved")
    header = json.dumps({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                         "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()  # overlapping
    (tmp_path / "saved" / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    with pytest.raises(ModelLoadError, match=r"saved: cannot be built from .*model.safetensors \(SafetensorError: "):
        create_model(f"local-dir:{tmp_path / 'saved'}")


# ------------------------------------------------------------------------------------------- config files


def _timm(folder):
    tiny_timm_folder(folder)
    return f"local-dir:{folder}", folder / "config.json", "a timm model config"


def _clip(folder):
    tiny_clip_folder(folder)
    return f"open_clip:local-dir:{folder}", folder / "open_clip_config.json", "an open_clip model config"


def _transformers(folder):
    tiny_vit_folder(folder)
    return f"transformers:{folder}", folder / "config.json", "a transformers model config"


@pytest.mark.parametrize("make", [_timm, _clip, _transformers])
@pytest.mark.parametrize(("content", "message"), [
    (b"{not json", "{config} is damaged: not valid JSON"),
    (b"\xff\xfe{}", "{config}: not UTF-8 text (byte 0); expected {what}"),
    (b"[1, 2]", "{config}: holds a JSON list, not an object. Expected {what}"),
])
def test_a_config_that_is_not_a_json_object_is_named(tmp_path, make, content, message):
    spec, config, what = make(tmp_path / "model")
    config.write_bytes(content)
    with pytest.raises(ValueError) as raised:
        create_model(spec)
    assert message.format(config=config, what=what) in str(raised.value)


def test_a_timm_config_without_its_architecture_is_named(tmp_path):
    spec, config, _ = _timm(tmp_path / "model")
    config.write_text(json.dumps({"num_classes": 1000}))
    with pytest.raises(ValueError, match=r"config.json: has no 'architecture'\. Expected a timm model config "
                                         r"\(config.json, as timm.models.save_for_hf writes it\)"):
        create_model(spec)


# ------------------------------------------------------------------------------------- specs and models files


@pytest.mark.parametrize("spec", ["local-dir:", "hf-hub:", "open_clip:local-dir:", "open_clip:hf-hub:"])
def test_a_folder_or_repo_prefix_without_a_name_is_refused(spec):
    with pytest.raises(ValueError, match=rf"--models '{spec}': name a model after '{spec}'"):
        create_model(spec)


def test_a_folder_name_with_a_bracket_is_not_a_wildcard(tmp_path):
    folder = tmp_path / "run[1]"
    tiny_timm_folder(folder)
    spec = f"local-dir:{folder}"
    assert models.expand_specs([spec, f"open_clip:local-dir:{tmp_path}/clip[*]"]) == [
        spec, f"open_clip:local-dir:{tmp_path}/clip[*]"]
    assert create_model(spec)[1].weights == "local-dir"
    assert models.expand_specs(["torchvision:resnet1?"]) == ["torchvision:resnet18"]


def test_a_models_file_may_start_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "models.txt"
    path.write_text("\ufeffresnet50.tv_in1k\ntest_resnet\n", encoding="utf-8")
    assert models.read_models_file(path) == ["resnet50.tv_in1k", "test_resnet"]


@pytest.mark.parametrize(("text", "line", "character"), [
    ("resnet50\u2028test_resnet\n", 1, "U+2028 (LINE SEPARATOR)"),
    ("test_resnet\nresnet\u200b50\n", 2, "U+200B (ZERO WIDTH SPACE)"),
    ("test_resnet\n\ufeffresnet50\n", 2, "U+FEFF (ZERO WIDTH NO-BREAK SPACE)"),
    ("res\x85net50\n", 1, "U+0085 (unnamed)"),
])
def test_an_invisible_character_in_a_models_file_is_refused_naming_the_line(tmp_path, text, line, character):
    path = tmp_path / "models.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=rf"models.txt, line {line}: .* holds the invisible character "
                                         rf"{re.escape(character)}; write the spec without it"):
        models.read_models_file(path)
