"""Models as a command prepares them: the specs checked before any is loaded, each model built with its weights
and preprocessing, and the models of an earlier run taken as that run had them.

Plain values in, plain values out: `ModelOptions` says what the command line (or a notebook) asked for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from accelerate.utils import set_seed
from torch import nn

from focus_common.messages import listed, quote
from harness import preprocess, runfolder
from harness.models import check_model_name, create_model, expand_specs, read_models_file
from harness.models.info import ModelInfo
from harness.models.timm_models import UnknownModelError
from harness.preprocess import Preprocessing


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """How the models of a command are built.

    checkpoints: weights per spec (a file, or a folder saved by save_for_hf); random_init: None for trained
    weights, () for random weights for every model, or the specs that get them; label_space: "imagenet",
    "focus" or None (the model's own); prompts: a CLIP prompt-template file; preprocess: "paper", "timm" or
    None (the default of the model's library); overrides: timm validate.py's preprocessing overrides
    (img_size, crop_pct, crop_mode, interpolation, mean, std); seed: of random weights; pretrained_only: a
    timm wildcard expands to pretrained tags only.
    """

    checkpoints: Mapping[str, str] = dataclasses.field(default_factory=dict)
    random_init: tuple[str, ...] | None = None
    label_space: str | None = None
    prompts: str | None = None
    preprocess: str | None = None
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = 0
    pretrained_only: bool = False

    def random_weights(self, name: str) -> bool:
        """Whether `name` gets random weights (random_init given empty applies to every model)."""
        return self.random_init is not None and (not self.random_init or name in self.random_init)


def model_specs(models: Sequence[str], models_file: str | None = None) -> list[str]:
    """The specs of --models and --models-file, in order."""
    return [*models, *(read_models_file(models_file) if models_file else [])]


def check_models(specs: Sequence[str], options: ModelOptions,
                 failures: dict[str, tuple[str, str]] | None = None) -> list[str]:
    """The specs with presets and wildcards expanded, each checked before any model is loaded.

    The names given random weights or checkpoints must be among them. With `failures` (--keep-going), a model
    whose check fails is left out and its error kept there under its name (error type, message).
    """
    if not specs:
        raise ValueError("no model to evaluate: name them with --models SPEC ... or --models-file FILE")
    names = expand_specs(specs, pretrained_only=options.pretrained_only)
    unknown = [name for name in options.random_init or () if name not in names]
    if unknown:
        raise ValueError(f"--random-init {listed(unknown)}: not among the models {listed(names)}")
    for name, path in options.checkpoints.items():
        if name not in names:
            raise ValueError(f"--checkpoint {quote(f'{name}={path}')}: {quote(name)} is not among --models "
                             f"{listed(names)}")
    checked = []
    for name in names:
        try:
            check_model_name(name, pretrained=not options.random_weights(name) and name not in options.checkpoints)
        except UnknownModelError as err:
            if failures is None:
                raise
            failures[name] = (type(err).__name__, str(err))
            continue
        checked.append(name)
    return checked


def prepare_model(name: str, options: ModelOptions,
                  run_config: dict[str, Any] | None = None) -> tuple[nn.Module, ModelInfo, Preprocessing]:
    """A model in eval mode, with where its weights came from and its preprocessing.

    Random weights are drawn after seeding with options.seed, so every process (and every run with that seed)
    builds the same ones; info.init_seed records it. With `run_config` (a focus-eval run's config.json for
    this model), the model gets the run's weights (its checkpoint, or its random weights from its seed), label
    space and preprocessing, and weights that differ from the run's are refused: they would explain
    predictions they did not make.
    """
    checkpoint, randomly, seed = options.checkpoints.get(name), options.random_weights(name), options.seed
    label_space, prompts = options.label_space, options.prompts
    if run_config is not None:
        checkpoint, randomly, seed, label_space, prompts = _as_the_run_had_it(name, options, run_config)
    if randomly:
        set_seed(seed)
    model, info = create_model(name, checkpoint=checkpoint, random_init=randomly, label_space=label_space,
                               prompts=prompts)
    info.init_seed = seed if randomly else None
    if run_config is None:
        protocol = options.preprocess or preprocess.DEFAULT_PROTOCOL[info.source]
        return model, info, preprocess.resolve_preprocessing(info.data_config, protocol, **options.overrides)
    _check_same_weights(name, info, prompts, run_config)
    if not run_config.get("preprocessing"):
        protocol = options.preprocess or preprocess.DEFAULT_PROTOCOL[info.source]
        return model, info, preprocess.resolve_preprocessing(info.data_config, protocol, **options.overrides)
    recorded = Preprocessing.from_dict(run_config["preprocessing"], f"the run's {runfolder.CONFIG_FILE} of {name}")
    if options.preprocess or options.overrides:
        raise ValueError(f"the run's preprocessing applies to {name} ({recorded.summary()}); drop --preprocess "
                         f"and its overrides")
    return model, info, recorded


def _as_the_run_had_it(name: str, options: ModelOptions, run_config: dict[str, Any]) -> tuple:
    """(checkpoint, random weights, seed, label space, prompts) of a run's model."""
    ran_random = run_config.get("weights") == "random-init"
    if options.random_weights(name) and not ran_random:
        raise ValueError(f"--random-init {name}: the run evaluated {name} with trained weights "
                         f"({run_config.get('weights')}); random weights would explain predictions they did not "
                         f"make. Drop --random-init to use the run's weights.")
    seed = run_config.get("init_seed", options.seed)
    if ran_random and seed is None:
        raise ValueError(f"the run evaluated {name} with random weights but did not record their seed; rerun "
                         f"focus-eval (it records init_seed), or name the images with --images")
    checkpoint = options.checkpoints.get(name)
    recorded = str(run_config.get("weights") or "")
    if checkpoint is None and recorded.startswith("checkpoint:"):
        checkpoint = recorded.removeprefix("checkpoint:")
    label_space = run_config.get("label_space", options.label_space)
    return checkpoint, ran_random, seed, label_space, prompts_of_run(name, run_config, options.prompts)


def _check_same_weights(name: str, info: ModelInfo, prompts: str | None, run_config: dict[str, Any]) -> None:
    run_templates = (run_config.get("zero_shot") or {}).get("templates_sha256")
    if run_templates != (info.zero_shot or {}).get("templates_sha256"):
        raise ValueError(f"{name}: the prompt templates ({prompts or 'CLIP ImageNet templates'}) are not the ones "
                         f"the run used ({run_config['zero_shot']['templates']}); its zero-shot head would be "
                         f"another classifier. Drop --prompts to use the run's")
    if run_config.get("sha256") not in (None, info.sha256):
        raise ValueError(f"{name}: these weights ({info.weights}, sha256 {str(info.sha256)[:12]}) are not "
                         f"the ones the run used ({run_config.get('weights')}, sha256 "
                         f"{run_config['sha256'][:12]}); drop --checkpoint to use the run's")


def prompts_of_run(name: str, run_config: dict[str, Any], prompts: str | None) -> str | None:
    """The prompt file a run's zero-shot model was built with (--prompts, when given, must be the same file)."""
    zero_shot = run_config.get("zero_shot") or {}
    if prompts is None and zero_shot.get("templates_sha256"):
        prompts = zero_shot["templates"]
        if not Path(prompts).is_file():
            raise ValueError(f"{name}: the run built its zero-shot head from the prompts in {prompts}, which is gone; "
                             f"pass the same file with --prompts")
    return prompts


@dataclasses.dataclass(frozen=True)
class RunModels:
    """The models of an earlier focus-eval run, as an analysis of it takes them."""

    run_dir: Path
    info: dict[str, Any]  # run.json
    names: list[str]
    configs: dict[str, dict[str, Any]]  # each model's config.json

    @property
    def fingerprint(self) -> str | None:
        return self.info.get("dataset_fingerprint")


def models_of_run(run_dir: str | Path, specs: Sequence[str] = ()) -> RunModels:
    """The run's models to analyse (`specs` among them, else all of them), each with its config.json, which
    says which weights and preprocessing the run used. A model the run did not finish is named."""
    run_dir = Path(run_dir)
    run_file = run_dir / runfolder.RUN_FILE
    if not run_file.is_file():
        raise ValueError(f"--run {run_dir}: no {runfolder.RUN_FILE}; pass a run folder written by focus-eval")
    run_info = runfolder.read_json(run_file)
    names = expand_specs(specs) or run_info.get("models", [])
    configs = {}
    for name in names:
        config_file = runfolder.model_dir(run_dir, name) / runfolder.CONFIG_FILE
        if not config_file.is_file():
            raise ValueError(f"--run {run_dir}: {name!r} is not a model of the run (it evaluated "
                             f"{listed(run_info.get('models', []))}). Run `focus-eval --data ... --models {name} "
                             f"--output {run_dir}` first, or name the images with --images.")
        configs[name] = runfolder.read_json(config_file)
    return RunModels(run_dir, run_info, names, configs)
