"""harness/evaluation.py as a library: models built a group at a time, failures of any kind per model."""

import gc
import weakref

import pytest

from harness import evaluation
from harness.data import DataSelection
from harness.evaluation import EvaluationOptions, evaluate_models
from harness.preprocess import Preprocessing


def options(tmp_path, **changes):
    return EvaluationOptions(output=tmp_path / "run", random_init=(), batch_size=8, workers=0, n_bootstrap=10,
                             figures="none", quiet=True, selection=DataSelection(limit=8), **changes)


def test_a_wildcard_holds_the_weights_of_one_group_at_a_time(converted, tmp_path, monkeypatch):
    alive, most = weakref.WeakSet(), []
    real = evaluation.prepare_model

    def counted(name, model_options, run_config=None):
        gc.collect()
        built = real(name, model_options, run_config)
        alive.add(built[0])
        most.append(len(alive))
        return built

    monkeypatch.setattr(evaluation, "prepare_model", counted)
    # Under timm's protocol, resnet's bilinear geometry and the others' bicubic one make two groups.
    models = ["test_efficientnet", "test_resnet", "test_vit", "test_convnext"]
    result = evaluate_models(converted, models, options(tmp_path, preprocess="timm"))
    groups = {}
    for name in models:
        groups.setdefault(tuple(Preprocessing.from_dict(result_config(result, name)).geometry), []).append(
            name)
    assert len(groups) >= 2 and sorted(result.metrics) == sorted(models)
    assert max(most) == max(len(group) for group in groups.values()) < len(models)


def result_config(result, name):
    from harness import runfolder

    return runfolder.read_json(runfolder.model_dir(result.run_dir, name) / runfolder.CONFIG_FILE)["preprocessing"]


def test_keep_going_takes_any_loader_failure_as_the_models_own(converted, tmp_path, monkeypatch):
    real = evaluation.prepare_model

    def broken(name, model_options, run_config=None):
        if name == "test_vit":
            raise KeyError("architecture")  # what a library raises from a config without the key
        return real(name, model_options, run_config)

    monkeypatch.setattr(evaluation, "prepare_model", broken)
    result = evaluate_models(converted, ["test_resnet", "test_vit"], options(tmp_path, keep_going=True))
    assert list(result.metrics) == ["test_resnet"]
    assert result.failures["test_vit"] == ("KeyError", "'architecture'")
    with pytest.raises(evaluation.ModelFailed, match=r"^test_vit: 'architecture'$"):
        evaluate_models(converted, ["test_resnet", "test_vit"], options(tmp_path / "again"))
