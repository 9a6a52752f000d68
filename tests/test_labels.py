import doctest

import numpy as np
import pytest
import torch

from focus_tools.schema import CLASS_NAMES
from harness import labels
from harness.labels import (
    IMAGENET_TO_FOCUS,
    class_names,
    focus_predictions,
    imagenet_class_names,
    imagenet_to_focus_index,
    mapped_imagenet_ids,
    topk_predictions,
)

FOCUS_ID = {name: i for i, name in enumerate(CLASS_NAMES)}


def _logits_with_top(*imagenet_ids: int) -> torch.Tensor:
    logits = torch.randn(len(imagenet_ids), 1000, generator=torch.Generator().manual_seed(0))
    logits[torch.arange(len(imagenet_ids)), list(imagenet_ids)] = 100.0
    return logits


def test_mapping_holds_the_papers_imagenet_ids_per_class():
    # The table of FOCUS.md, written out id by id so that a range off by one cannot hide.
    assert IMAGENET_TO_FOCUS["truck"] == (407, 555, 569, 654, 675, 717, 757, 779, 864, 867)
    assert IMAGENET_TO_FOCUS["car"] == (436, 468, 511, 609, 627, 656, 705, 734, 751, 817)
    assert IMAGENET_TO_FOCUS["plane"] == (404, 895)
    assert IMAGENET_TO_FOCUS["ship"] == (403, 472, 510, 554, 625, 628, 693, 724, 780, 814, 914)
    assert IMAGENET_TO_FOCUS["cat"] == (281, 282, 283, 284, 285)
    assert IMAGENET_TO_FOCUS["dog"] == tuple(i for i in range(151, 276) if not 269 <= i <= 272)
    assert IMAGENET_TO_FOCUS["horse"] == (339, 340)
    assert IMAGENET_TO_FOCUS["deer"] == (351, 352, 353)
    assert IMAGENET_TO_FOCUS["frog"] == (30, 31, 32)
    bird = [i for i in range(7, 147) if i <= 24 or 80 <= i <= 100 or i >= 127]
    assert IMAGENET_TO_FOCUS["bird"] == tuple(bird)


def test_mapping_counts_per_class_and_follows_class_names_order():
    counts = {name: len(ids) for name, ids in IMAGENET_TO_FOCUS.items()}
    assert counts == {
        "truck": 10, "car": 10, "plane": 2, "ship": 11, "cat": 5,
        "dog": 121, "horse": 2, "deer": 3, "frog": 3, "bird": 59,
    }
    assert list(IMAGENET_TO_FOCUS) == CLASS_NAMES


def test_mapped_ids_are_zero_based_imagenet_classes_of_the_right_kind():
    names = imagenet_class_names()
    assert [names[i] for i in (404, 895)] == ["airliner", "warplane"]
    assert names[282] == "tiger cat" and names[30] == "bullfrog" and names[339] == "sorrel"
    assert names[555] == "fire engine" and names[817] == "sports car" and names[510] == "container ship"
    assert names[269] == "timber wolf"  # just past the dog range, correctly left out


def test_index_gives_each_imagenet_class_its_focus_id_and_minus_one_when_unmapped():
    index = imagenet_to_focus_index()
    assert index.shape == (1000,) and index.dtype == np.int64
    for name, ids in IMAGENET_TO_FOCUS.items():
        assert (index[list(ids)] == FOCUS_ID[name]).all()
    assert (index >= 0).sum() == 226 == len(mapped_imagenet_ids())
    assert index[0] == index[999] == index[269] == -1


def test_index_is_a_copy_callers_cannot_corrupt():
    imagenet_to_focus_index()[282] = 7
    assert imagenet_to_focus_index()[282] == FOCUS_ID["cat"]


def test_paper_mapping_maps_the_top1_and_counts_an_unmapped_top1_as_minus_one():
    logits = _logits_with_top(282, 207, 404, 0, 967)  # tiger cat, golden retriever, airliner, tench, espresso
    predictions = focus_predictions(logits, "imagenet", "paper")
    assert predictions.dtype == torch.int64
    assert predictions.tolist() == [FOCUS_ID["cat"], FOCUS_ID["dog"], FOCUS_ID["plane"], -1, -1]


def test_restricted_mapping_takes_the_argmax_over_mapped_classes_only():
    logits = torch.full((1, 1000), -10.0)
    logits[0, 0] = 9.0  # tench: unmapped, ignored
    logits[0, 340] = 3.0  # zebra → horse
    logits[0, 352] = 2.0  # impala → deer
    assert focus_predictions(logits, mapping="paper").tolist() == [-1]
    assert focus_predictions(logits, mapping="restricted").tolist() == [FOCUS_ID["horse"]]


def test_restricted_mapping_never_predicts_minus_one_and_agrees_when_top1_is_mapped():
    logits = torch.randn(64, 1000, generator=torch.Generator().manual_seed(1))
    restricted = focus_predictions(logits, mapping="restricted")
    paper = focus_predictions(logits, mapping="paper")
    assert (restricted >= 0).all()
    assert torch.equal(restricted[paper >= 0], paper[paper >= 0])


def test_focus_label_space_takes_the_argmax_of_a_ten_way_head():
    logits = torch.zeros(2, 10)
    logits[0, FOCUS_ID["frog"]] = 1.0
    logits[1, FOCUS_ID["truck"]] = 1.0
    assert focus_predictions(logits, label_space="focus").tolist() == [FOCUS_ID["frog"], FOCUS_ID["truck"]]


def test_logits_of_the_wrong_width_name_the_shape_and_the_other_label_space():
    other_space = r"expects logits of shape \(batch, 1000\), got \(2, 10\).*label_space='focus'"
    with pytest.raises(ValueError, match=other_space):
        focus_predictions(torch.zeros(2, 10))
    with pytest.raises(ValueError, match=r"shape \(batch, 10\), got \(2, 1000\)"):
        focus_predictions(torch.zeros(2, 1000), label_space="focus")


def test_unknown_mapping_and_label_space_are_named_with_the_choices():
    with pytest.raises(ValueError, match=r"mapping must be one of \('paper', 'restricted'\), got 'imagenet-a'"):
        focus_predictions(torch.zeros(1, 1000), mapping="imagenet-a")
    with pytest.raises(ValueError, match=r"label_space must be one of \('imagenet', 'focus'\), got 'cifar'"):
        focus_predictions(torch.zeros(1, 1000), label_space="cifar")


def test_topk_returns_ids_best_first_with_softmax_probabilities():
    logits = torch.log(torch.tensor([[0.1, 0.6, 0.3]]))
    ids, probs = topk_predictions(logits, k=5)  # k capped at the 3 classes
    assert ids.tolist() == [[1, 2, 0]]
    assert torch.allclose(probs, torch.tensor([[0.6, 0.3, 0.1]]))
    with pytest.raises(ValueError, match="k must be a positive number of classes, got 0"):
        topk_predictions(logits, k=0)


def test_class_names_are_imagenet_names_for_a_1000_way_head_else_numbered():
    names = class_names(1000)
    assert len(names) == 1000 and names == list(imagenet_class_names()) and names[282] == "tiger cat"
    assert class_names(4) == ["class 0", "class 1", "class 2", "class 3"]


def test_docstring_examples_run():
    assert doctest.testmod(labels).failed == 0
