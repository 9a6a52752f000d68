"""Tests of harness/models/bounds.py and the preprocessing bounds: the sizes a model's files ask for (classes, widths,
depths, input size, crop, prompt templates) are refused before anything is allocated, with messages naming the file
and the field."""

import json

import pytest
import torch

from focus_tools.schema import CLASS_NAMES
from harness.models import bounds, create_model, open_clip_models
from harness.models.open_clip_models import MAX_TEXTS_PER_BATCH, read_prompts

from conftest import tiny_clip_folder, tiny_timm_folder, tiny_vit_folder

open_clip = pytest.importorskip("open_clip")
transformers = pytest.importorskip("transformers")


def edit_json(path, edit):
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


# ------------------------------------------------------------------------------------------------ classes


def test_a_timm_config_with_too_many_classes_is_refused(tmp_path):
    tiny_timm_folder(tmp_path / "saved")
    edit_json(tmp_path / "saved" / "config.json", lambda config: config.update(num_classes=200_000))
    with pytest.raises(ValueError) as raised:
        create_model(f"local-dir:{tmp_path / 'saved'}")
    assert str(raised.value) == (
        f"local-dir:{tmp_path / 'saved'}: {tmp_path / 'saved' / 'config.json'} num_classes is 200000; a classifier "
        f"head has from 1 to 100,000 classes (ImageNet-22k has 21,843). Check the config.")


def test_a_head_set_in_model_args_is_bounded_too(tmp_path):
    tiny_timm_folder(tmp_path / "saved")
    edit_json(tmp_path / "saved" / "config.json", lambda config: config["model_args"].update(num_classes=200_000))
    with pytest.raises(ValueError) as raised:
        create_model(f"local-dir:{tmp_path / 'saved'}", random_init=True)
    assert str(raised.value) == (
        f"local-dir:{tmp_path / 'saved'}: the number of classes {tmp_path / 'saved' / 'config.json'} gives is 200000; "
        f"a classifier head has from 1 to 100,000 classes (ImageNet-22k has 21,843). Check the config.")


def test_num_classes_asked_for_in_python_is_bounded():
    with pytest.raises(ValueError, match=r"test_resnet: num_classes is 200000; a classifier head has from 1 to "
                                         r"100,000 classes"):
        create_model("test_resnet", random_init=True, num_classes=200_000)


def test_a_transformers_config_with_too_many_labels_is_refused_before_transformers_names_them(tmp_path):
    tiny_vit_folder(tmp_path / "vit")
    edit_json(tmp_path / "vit" / "config.json", lambda config: (config.pop("id2label"), config.pop("label2id"),
                                                                config.update(num_labels=20_000_000)))
    with pytest.raises(ValueError, match=r"config.json num_labels is 20000000; a classifier head has from 1 to "
                                         r"100,000 classes"):
        create_model(f"transformers:{tmp_path / 'vit'}")


# ----------------------------------------------------------------------------------- parameters, on meta


def test_a_timm_config_describing_a_huge_model_is_refused_before_it_is_built(tmp_path):
    import timm

    timm.models.save_for_hf(timm.create_model("test_vit"), tmp_path / "vit", safe_serialization=True)
    edit_json(tmp_path / "vit" / "config.json",
              lambda config: config["model_args"].update(embed_dim=16384, depth=48, num_heads=16))
    with pytest.raises(ValueError) as raised:
        create_model(f"local-dir:{tmp_path / 'vit'}")
    message = str(raised.value)
    assert (f"local-dir:{tmp_path / 'vit'}: {tmp_path / 'vit' / 'config.json'} describes a model of "
            in message)
    assert ("parameters and buffers (model_args.embed_dim=16,384, num_features=64, model_args.depth=48, "
            "model_args.num_heads=16)" in message)
    assert "more than the 20,000,000,000 this harness builds. Check the config's sizes" in message


def test_an_open_clip_config_describing_a_huge_model_is_refused_before_it_is_built(tmp_path):
    tiny_clip_folder(tmp_path / "clip")
    edit_json(tmp_path / "clip" / "open_clip_config.json",
              lambda config: config["model_cfg"]["vision_cfg"].update(width=16384, layers=48))
    with pytest.raises(ValueError, match=r"open_clip_config.json describes a model of [\d,]+ parameters and buffers "
                                         r"\(model_cfg.text_cfg.vocab_size=49,408, model_cfg.vision_cfg.width=16,384, "
                                         r"model_cfg.text_cfg.context_length=77, model_cfg.vision_cfg.layers=48\), "
                                         r"[\d,.]+ GB of float32: more than"):
        create_model(f"open_clip:local-dir:{tmp_path / 'clip'}")


def test_a_transformers_model_larger_than_the_memory_available_is_refused(tmp_path, monkeypatch):
    tiny_vit_folder(tmp_path / "vit")
    edit_json(tmp_path / "vit" / "config.json", lambda config: config.update(
        hidden_size=8192, num_hidden_layers=12, intermediate_size=3072, num_attention_heads=16))  # 15 GB
    monkeypatch.setattr(bounds, "available_memory", lambda: 8 * 10**9)
    with pytest.raises(ValueError, match=r"vit/config.json describes a model of [\d,]+ parameters and buffers "
                                         r"\(hidden_size=8,192, intermediate_size=3,072, image_size=32, "
                                         r"pooler_output_size=32\), [\d.]+ GB of float32: more than the 8.0 GB of "
                                         r"memory available\. Check the config's "
                                         r"sizes: it is damaged, or not an image classifier's\."):
        create_model(f"transformers:{tmp_path / 'vit'}")


def test_the_size_of_a_model_is_counted_without_allocating_it():
    import psutil
    import timm

    model = timm.create_model("test_vit")
    assert bounds.check_model_size("m", lambda: timm.create_model("test_vit"), "config.json", {}) == sum(
        t.numel() for t in [*model.parameters(), *model.buffers()])
    before = psutil.Process().memory_info().rss
    giant = bounds.check_model_size("m", lambda: timm.create_model("vit_giant_patch14_224"), "config.json", {})
    assert giant > 10**9 and psutil.Process().memory_info().rss - before < 4 * giant / 10  # 4 GB, never allocated


# ------------------------------------------------------------------------------------------ preprocessing


@pytest.mark.parametrize(("edit", "message"), [
    (lambda config: config["pretrained_cfg"].update(input_size=[3, 100_000, 100_000]),
     "input_size must be a number of pixels from 1 to 4096, got 100000"),
    (lambda config: config["pretrained_cfg"].update(crop_pct=0.001),
     r"crop_pct must be a fraction \(crop size / resize size, e.g. 0.875\) from 0.1 to 2.0, got 0.001"),
    (lambda config: config["pretrained_cfg"].update(std=[0.0, 0.0, 0.0]), r"std must be positive, got \[0.0, 0.0, "),
])
def test_a_timm_config_asking_for_unbounded_preprocessing_is_refused(tmp_path, edit, message):
    tiny_timm_folder(tmp_path / "saved")
    edit_json(tmp_path / "saved" / "config.json", edit)
    with pytest.raises(ValueError, match=rf"local-dir:.*saved: its preprocessing config: {message}"):
        create_model(f"local-dir:{tmp_path / 'saved'}")


def test_an_image_processor_of_100000_pixels_is_refused(tmp_path):
    processor = transformers.ViTImageProcessor(size={"height": 100_000, "width": 100_000})
    tiny_vit_folder(tmp_path / "vit", processor=processor)
    with pytest.raises(ValueError) as raised:
        create_model(f"transformers:{tmp_path / 'vit'}")
    assert str(raised.value) == (f"transformers:{tmp_path / 'vit'}: its preprocessing config: input_size must be a "
                                 f"number of pixels from 1 to 4096, got 100000")


def test_an_open_clip_preprocess_config_with_zero_std_is_refused(tmp_path):
    tiny_clip_folder(tmp_path / "clip")
    edit_json(tmp_path / "clip" / "open_clip_config.json",
              lambda config: config["preprocess_cfg"].update(std=[0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"open_clip:local-dir:.*clip: its preprocessing config: std must be "
                                         r"positive, got \[0.0, 0.0, 0.0\]"):
        create_model(f"open_clip:local-dir:{tmp_path / 'clip'}")


# ------------------------------------------------------------------------------------------------ prompts


def test_too_many_prompt_templates_are_refused_with_their_count(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("a photo of a {}.\n" * 60_000)  # 1 MB holds 60,000 templates: 600,000 texts for ten classes
    with pytest.raises(ValueError) as raised:
        read_prompts(path)
    assert str(raised.value) == (f"{path}: holds 60,000 prompt templates, more than 1,000: each is encoded through the "
                                 f"text tower once per class (CLIP's ImageNet set has 80). Keep the templates you "
                                 f"mean.")


def test_the_zero_shot_head_is_encoded_in_bounded_batches(tmp_path, monkeypatch):
    clip = tiny_clip_folder(tmp_path / "clip")
    templates = [f"photo {i} of a {{}}." for i in range(300)]  # 3 classes (900 texts) a batch
    (tmp_path / "prompts.txt").write_text("\n".join(templates))
    batches = []
    encode_text = open_clip.CLIP.encode_text

    def counting(self, texts, normalize=False):
        batches.append(len(texts))
        return encode_text(self, texts, normalize=normalize)

    monkeypatch.setattr(open_clip.CLIP, "encode_text", counting)
    model, info = create_model(f"open_clip:local-dir:{tmp_path / 'clip'}", prompts=tmp_path / "prompts.txt")
    assert batches == [900, 900, 900, 300] and max(batches) <= MAX_TEXTS_PER_BATCH
    tokenizer = open_clip.get_tokenizer(f"local-dir:{tmp_path / 'clip'}")
    with torch.no_grad():
        whole = open_clip.build_zero_shot_classifier(clip, tokenizer, list(CLASS_NAMES), templates,
                                                     num_classes_per_batch=None)
    assert torch.allclose(model.get_classifier().weight / clip.logit_scale.exp(), whole.T, atol=1e-6)
    assert open_clip_models.MAX_TEMPLATES * 10 > MAX_TEXTS_PER_BATCH  # a batch is never all of a long list
