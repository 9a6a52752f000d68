"""Tests of harness/models' sources on tiny random-weights models saved offline: timm hf-hub: and local-dir:,
torchvision's weights API, open_clip zero-shot heads, transformers classifiers; specs, wildcards, models files."""

import json
import os

import pytest
import timm
import torch
import torchvision

from focus_tools.schema import CLASS_NAMES
from harness import models
from harness.models import WeightsNotFoundError, create_model, hf_transformers, torchvision_models
from harness.models.open_clip_models import read_prompts
from harness.models.timm_models import UnknownModelError
from focus_common.inputs import sha256_file

from conftest import HUB_COMMIT, hub_snapshot, tiny_clip_folder, tiny_timm_folder, tiny_vit_folder

open_clip = pytest.importorskip("open_clip")
transformers = pytest.importorskip("transformers")
CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ------------------------------------------------------------------------------------------ timm


def test_hf_hub_timm_model_loads_from_the_cache_offline(offline_cache, tmp_path):
    saved = tiny_timm_folder(tmp_path / "saved")
    hub_snapshot(offline_cache, "test-org/tiny-resnet", tmp_path / "saved")
    model, info = create_model("hf-hub:test-org/tiny-resnet")
    assert all(torch.equal(v, saved.state_dict()[k]) for k, v in model.state_dict().items())
    assert info.source == "timm" and info.weights == "hub-cache"
    assert info.sha256 == sha256_file(tmp_path / "saved" / "model.safetensors")
    assert info.data_config["input_size"] == (3, 160, 160)


def test_missing_hf_hub_repo_offline_says_how_to_fetch_it(offline_cache):
    with pytest.raises(WeightsNotFoundError) as raised:
        create_model("hf-hub:test-org/missing")
    assert "HF_HUB_OFFLINE is set" in str(raised.value)
    assert "`hf download test-org/missing`" in str(raised.value)


def test_local_dir_and_a_save_for_hf_folder_as_checkpoint(tmp_path):
    saved = tiny_timm_folder(tmp_path / "saved")
    model, info = create_model(f"local-dir:{tmp_path / 'saved'}")
    assert info.weights == "local-dir" and info.weights_file == str(tmp_path / "saved" / "model.safetensors")
    as_checkpoint, info = create_model("test_resnet", checkpoint=tmp_path / "saved")
    assert all(torch.equal(v, saved.state_dict()[k]) for k, v in as_checkpoint.state_dict().items())
    assert info.weights == f"checkpoint:{tmp_path / 'saved'}"
    assert info.weights_file == str(tmp_path / "saved" / "model.safetensors")


def test_local_dir_without_config_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json does not exist; local-dir: takes a folder saved by"):
        create_model(f"local-dir:{tmp_path}")


def test_checkpoint_folder_without_weights_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Checkpoint folder .* holds none of \['model.safetensors'"):
        create_model("test_resnet", checkpoint=tmp_path)


# ----------------------------------------------------------------------------------- torchvision


def cache_torchvision_weights(monkeypatch, model, weights):
    """The model's weights in torchvision's cache, named as torchvision names its files: by the start of their
    SHA-256 (made-up weights cannot take the real file's name, whose hash they do not have)."""
    real = torchvision_models.weights_path(weights)
    real.parent.mkdir(parents=True)
    staged = real.parent / "staged.pth"
    torch.save(model.state_dict(), staged)
    path = staged.rename(real.with_name(f"{real.stem.rpartition('-')[0]}-{sha256_file(staged)[:8]}.pth"))
    monkeypatch.setattr(torchvision_models, "weights_path", lambda _: path)
    return path


def test_torchvision_weights_load_from_torchvisions_cache(offline_cache, monkeypatch):
    weights = torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1
    reference = torchvision.models.mobilenet_v3_small()
    path = cache_torchvision_weights(monkeypatch, reference, weights)
    model, info = create_model("torchvision:mobilenet_v3_small/IMAGENET1K_V1")
    assert info.weights == "torchvision:MobileNet_V3_Small_Weights.IMAGENET1K_V1"
    assert info.weights_file == str(path) and info.sha256 == sha256_file(path)
    assert info.data_config == {"input_size": (3, 224, 224), "interpolation": "bilinear",
                                   "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
                                   "crop_pct": 224 / 256, "crop_mode": "center"}
    images = torch.randn(2, 3, 224, 224)
    assert torch.equal(model(images), reference.eval()(images))
    # timm's feature interface: the input of the last linear layer (1024-d for this model).
    assert model.forward_features(images).shape == (2, 1024) and model.num_features == 1024
    assert model.get_classifier() is reference.classifier[3] or model.get_classifier().out_features == 1000


def test_missing_torchvision_weights_offline_name_the_file_and_the_cache(offline_cache):
    with pytest.raises(WeightsNotFoundError) as raised:
        create_model("torchvision:mobilenet_v3_small")
    message = str(raised.value)
    assert "MobileNet_V3_Small_Weights.IMAGENET1K_V1 for 'torchvision:mobilenet_v3_small' not found" in message
    assert str(offline_cache.parents[1] / "torch" / "hub" / "checkpoints") in message
    assert "https://download.pytorch.org/models/mobilenet_v3_small-047dcff4.pth" in message


def test_unknown_torchvision_names_and_weights_list_what_exists():
    with pytest.raises(UnknownModelError, match=r"Unknown torchvision classification model 'resnet05'\. Close names: "
                                                r"resnet50"):
        models.check_model_name("torchvision:resnet05")
    with pytest.raises(UnknownModelError, match=r"no weights 'V3' for 'resnet50'; its weights are \['IMAGENET1K_V1', "
                                                r"'IMAGENET1K_V2'\]"):
        models.check_model_name("torchvision:resnet50/V3")


# ------------------------------------------------------------------------------------- open_clip


def test_clip_zero_shot_head_is_the_normalised_mean_of_the_prompt_embeddings(offline_cache, tmp_path):
    clip = tiny_clip_folder(tmp_path / "clip")
    hub_snapshot(offline_cache, "test-org/tiny-clip", tmp_path / "clip")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# two templates\na photo of a {}.\n\na blurry photo of the {}.\n")
    model, info = create_model("open_clip:hf-hub:test-org/tiny-clip", prompts=prompts)
    assert info.label_space == "focus" and info.num_classes == 10 and info.weights == "hub-cache"
    assert info.zero_shot["num_templates"] == 2 and info.zero_shot["templates_sha256"] == sha256_file(prompts)
    tokenizer = open_clip.get_tokenizer(f"local-dir:{tmp_path / 'clip'}")
    with torch.no_grad():
        expected = []
        for name in CLASS_NAMES:
            texts = tokenizer([f"a photo of a {name}.", f"a blurry photo of the {name}."])
            embeddings = torch.nn.functional.normalize(clip.encode_text(texts), dim=-1)
            expected.append(torch.nn.functional.normalize(embeddings.mean(dim=0), dim=-1))
        head = model.get_classifier().weight / clip.logit_scale.exp()
        assert torch.allclose(head, torch.stack(expected), atol=1e-6)
        images = torch.randn(2, 3, 32, 32)
        image_features = torch.nn.functional.normalize(clip.encode_image(images), dim=-1)
        assert torch.allclose(model(images), clip.logit_scale.exp() * image_features @ torch.stack(expected).T,
                              atol=1e-5)
    assert info.data_config == {"input_size": (3, 32, 32), "interpolation": "bicubic",
                                   "mean": (0.48145466, 0.4578275, 0.40821073),
                                   "std": (0.26862954, 0.26130258, 0.27577711), "crop_pct": 1.0,
                                   "crop_mode": "center"}


@pytest.mark.parametrize("tag_quick_gelu", [True, False])
def test_clip_tag_weights_come_from_the_hub_cache_with_the_tags_activation_and_preprocessing(
        offline_cache, tmp_path, monkeypatch, tag_quick_gelu):
    # An architecture and a pretrained tag as open_clip registers them, the tag's weights in the HF cache.
    from open_clip import factory

    clip = tiny_clip_folder(tmp_path / "clip")
    config = json.loads((tmp_path / "clip" / "open_clip_config.json").read_text())["model_cfg"]
    monkeypatch.setitem(factory._MODEL_CONFIGS, "Tiny-CLIP", config)
    hub_snapshot(offline_cache, "test-org/tiny-clip-tag", tmp_path / "clip")
    tag_cfg = {"hf_hub": "test-org/tiny-clip-tag/", "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25),
               "interpolation": "bilinear", "resize_mode": "shortest", "quick_gelu": tag_quick_gelu}
    monkeypatch.setattr(open_clip, "get_pretrained_cfg", lambda arch, tag: tag_cfg if (arch, tag) == (
        "Tiny-CLIP", "openai") else {})
    model, info = create_model("open_clip:Tiny-CLIP/openai")
    snapshot = offline_cache / "models--test-org--tiny-clip-tag" / "snapshots" / HUB_COMMIT
    weights = snapshot / "open_clip_model.safetensors"
    assert info.weights == "hub-cache" and info.sha256 == sha256_file(weights)
    # OpenAI's weights were trained with QuickGELU: built with GELU, they would give other features silently.
    activations = {type(m).__name__ for m in model.modules() if type(m).__name__ in ("QuickGELU", "GELU")}
    assert activations == ({"QuickGELU"} if tag_quick_gelu else {"GELU"})
    assert torch.equal(model.visual.conv1.weight, clip.visual.conv1.weight)
    assert info.data_config["mean"] == (0.5, 0.5, 0.5) and info.data_config["interpolation"] == "bilinear"


def test_clip_models_take_the_focus_label_space_only(tmp_path):
    tiny_clip_folder(tmp_path / "clip")
    with pytest.raises(ValueError, match=r"predicts the focus classes.*cannot be scored with --label-space imagenet"):
        create_model(f"open_clip:local-dir:{tmp_path / 'clip'}", label_space="imagenet")


@pytest.mark.parametrize(("text", "message"), [
    ("a photo of a cat.\n", r"line 1: 'a photo of a cat\.' must hold exactly one '\{\}'"),
    ("a {} and a {}\n", r"line 1: .* must hold exactly one"),
    ("# only a comment\n", r"holds no prompt template"),
    (b"\xff\xfe{}", r"not UTF-8 text \(byte 0\)"),
])
def test_bad_prompt_files_are_named_with_the_line(tmp_path, text, message):
    path = tmp_path / "prompts.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=message):
        read_prompts(path)


def test_prompts_apply_to_clip_models_only(tmp_path):
    with pytest.raises(ValueError, match=r"--prompts applies to CLIP models"):
        create_model("test_resnet", random_init=True, prompts=tmp_path / "p.txt")


# ---------------------------------------------------------------------------------- transformers


def test_transformers_imagenet_classifier_from_the_hub_cache_offline(offline_cache, tmp_path):
    vit = tiny_vit_folder(tmp_path / "vit")
    hub_snapshot(offline_cache, "test-org/tiny-vit", tmp_path / "vit")
    model, info = create_model("transformers:test-org/tiny-vit")
    assert info.label_space == "imagenet" and info.weights == "hub-cache" and info.num_classes == 1000
    assert info.data_config == {"input_size": (3, 32, 32), "interpolation": "bilinear", "mean": (0.5, 0.5, 0.5),
                                   "std": (0.5, 0.5, 0.5), "crop_pct": 1.0, "crop_mode": "squash"}
    images = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(images), vit(pixel_values=images).logits)
    assert model.forward_features(images).shape == (2, 32)


def test_transformers_cifar10_head_is_reordered_to_focus_classes(tmp_path):
    vit = tiny_vit_folder(tmp_path / "vit", labels=CIFAR10)
    model, info = create_model(f"transformers:{tmp_path / 'vit'}")
    assert info.label_space == "focus" and info.weights == "local-dir"
    order = [CIFAR10.index({"car": "automobile", "plane": "airplane"}.get(name, name)) for name in CLASS_NAMES]
    images = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(images), vit(pixel_values=images).logits[:, order])
    assert torch.equal(model.get_classifier().weight, vit.classifier.weight[order])


def test_transformers_heads_with_imagenets_class_names_are_imagenet_and_other_1000_label_heads_are_refused():
    from timm.data import ImageNetInfo

    from harness.labels import imagenet_class_names

    # Labels as transformers' ImageNet checkpoints spell them ("tench, Tinca tinca", ...).
    info = ImageNetInfo("imagenet-1k")
    labels = [info.index_to_description(i) for i in range(1000)]
    names = imagenet_class_names()
    assert hf_transformers.label_space_of(labels, CLASS_NAMES, names, "spec") == ("imagenet", None)
    # Another dataset's 1000 classes, or ImageNet's in another order, cannot be mapped as the paper does.
    with pytest.raises(ValueError, match=r"spec: its 1000 labels are not ImageNet-1k's classes in ImageNet's order "
                                         r"\(only 0 agree, e.g. label 0 is 'species 0'\)"):
        hf_transformers.label_space_of([f"species {i}" for i in range(1000)], CLASS_NAMES, names, "spec")
    with pytest.raises(ValueError, match=r"only \d+ agree"):
        hf_transformers.label_space_of(labels[1:] + labels[:1], CLASS_NAMES, names, "spec")


def test_transformers_head_of_other_classes_is_refused_with_its_labels(tmp_path):
    tiny_vit_folder(tmp_path / "vit", labels=["cat", "dog", "fish"])
    with pytest.raises(ValueError, match=r"its head has 3 labels \('cat', 'dog', 'fish'\)\. FOCUS scores ImageNet-1k"):
        create_model(f"transformers:{tmp_path / 'vit'}")


def test_missing_transformers_repo_offline_says_how_to_fetch_it(offline_cache):
    with pytest.raises(WeightsNotFoundError, match=r"`hf download test-org/none`"):
        create_model("transformers:test-org/none")


@pytest.mark.parametrize(("processor", "expected"), [
    ({"size": {"height": 224, "width": 224}, "resample": 2}, (224, 1.0, "squash", "bilinear")),
    ({"size": {"height": 256, "width": 256}, "do_center_crop": True, "crop_size": {"height": 224, "width": 224},
      "resample": 3}, (224, 224 / 256, "squash", "bicubic")),
    ({"size": {"shortest_edge": 224}, "crop_pct": 0.875, "resample": 3}, (224, 0.875, "center", "bicubic")),
    ({"size": {"shortest_edge": 256}, "do_center_crop": True, "crop_size": 224}, (224, 224 / 256, "center",
                                                                                  "bilinear")),
])
def test_image_processors_map_to_timm_data_configs(processor, expected):
    config = hf_transformers.data_config({"image_mean": [0.5] * 3, "image_std": [0.5] * 3, **processor}, "m")
    assert (config["input_size"][1], config["crop_pct"], config["crop_mode"], config["interpolation"]) == expected


# ------------------------------------------------------------------------------ specs and files


def test_wildcards_expand_to_timm_names_or_pretrained_tags():
    assert models.expand_specs(["test_res*"]) == timm.list_models("test_res*")
    assert models.expand_specs(["convnext_tiny.*_in1k"], pretrained_only=True) == timm.list_pretrained(
        "convnext_tiny.*_in1k")
    with pytest.raises(ValueError, match=r"--models 'nothing_like_this\*': no timm models match"):
        models.expand_specs(["nothing_like_this*"])


def test_models_file_lists_specs_with_comments(tmp_path):
    path = tmp_path / "models.txt"
    path.write_text("# the paper's ResNet50 and a CLIP model\ntorchvision:resnet50/IMAGENET1K_V1\n\n"
                    "open_clip:ViT-B-32/laion2b_s34b_b79k  # zero-shot\n")
    assert models.read_models_file(path) == ["torchvision:resnet50/IMAGENET1K_V1",
                                             "open_clip:ViT-B-32/laion2b_s34b_b79k"]
    path.write_text("resnet50 tv_in1k\n")
    with pytest.raises(ValueError, match=r"models.txt, line 1: 'resnet50 tv_in1k' is not one model spec"):
        models.read_models_file(path)
    path.write_bytes(b"\x00\xff")
    with pytest.raises(ValueError, match=r"not UTF-8 text"):
        models.read_models_file(path)
    with pytest.raises(ValueError, match=r"cannot be read"):
        models.read_models_file(tmp_path / "missing.txt")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # would block a plain read for ever
    with pytest.raises(ValueError, match=r"fifo: not a regular file; expected --models-file"):
        models.read_models_file(fifo)
    with pytest.raises(ValueError, match=r"fifo: not a regular file; expected --prompts"):
        read_prompts(fifo)
    (tmp_path / "big.txt").write_text("resnet50\n" * 200_000)
    with pytest.raises(ValueError, match=r"big.txt: larger than 1,048,576 bytes"):
        models.read_models_file(tmp_path / "big.txt")
