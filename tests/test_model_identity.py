"""Tests of harness/models/identity.py and the Hub cache's checks: the file loaded is the file hashed and is what its
name claims; a folder with several candidates, a torchvision file under a false name, a cached blob that is not its
hash, a revision that is a path, a refs file leading out of the cache and a lying safetensors header are refused."""

import hashlib
import json
import struct

import pytest
import safetensors.torch
import timm
import torch
import torchvision

from focus_common.inputs import sha256_file
from harness.models import WeightsIdentityError, create_model, torchvision_models
from harness.models.identity import folder_weights
from harness.models.preparation import ModelOptions, prepare_model

from conftest import HUB_COMMIT, hub_snapshot, tiny_clip_folder, tiny_timm_folder, tiny_vit_folder

pytest.importorskip("open_clip")
pytest.importorskip("transformers")


def random_resnet_state():
    return timm.create_model("test_resnet").state_dict()


def timm_folder_with(folder, weights_name):
    """A save_for_hf folder of test_resnet whose weights file is `weights_name`, holding other random weights."""
    tiny_timm_folder(folder)
    (folder / "model.safetensors").unlink()
    state = random_resnet_state()
    if weights_name.endswith(".safetensors"):
        safetensors.torch.save_file(state, folder / weights_name)
    else:
        torch.save(state, folder / weights_name)
    return state


# ------------------------------------------------------------------------------------------------ torchvision


def test_torchvision_file_that_is_not_the_weights_its_name_claims_is_refused(offline_cache):
    weights = torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1
    path = torchvision_models.weights_path(weights)
    path.parent.mkdir(parents=True)
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), path)  # random weights under the real name
    with pytest.raises(WeightsIdentityError) as raised:
        create_model("torchvision:mobilenet_v3_small/IMAGENET1K_V1")
    message = str(raised.value)
    assert (f"{path} is not the weights its name claims: the name carries the start of their SHA-256, 047dcff4, and "
            f"this file's SHA-256 starts {sha256_file(path)[:8]}. It is not torchvision's "
            f"MobileNet_V3_Small_Weights.IMAGENET1K_V1: delete it. Put the file "
            f"https://download.pytorch.org/models/mobilenet_v3_small-047dcff4.pth at {path}") in message


# ------------------------------------------------------------------------------- one file chosen, loaded, hashed


def test_the_recorded_hash_is_of_the_file_timm_loads(tmp_path):
    folder = tmp_path / "saved"
    state = timm_folder_with(folder, "pytorch_model.pth")  # a file timm reads that is not model.safetensors
    model, info = create_model(f"local-dir:{folder}")
    assert info.weights_file == str(folder / "pytorch_model.pth")
    assert info.sha256 == sha256_file(folder / "pytorch_model.pth")
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())


def test_clip_folder_weights_are_the_file_open_clip_loads(tmp_path):
    clip = tiny_clip_folder(tmp_path / "clip")
    (tmp_path / "clip" / "open_clip_model.safetensors").rename(tmp_path / "clip" / "model.safetensors")
    model, info = create_model(f"open_clip:local-dir:{tmp_path / 'clip'}")
    assert info.weights_file == str(tmp_path / "clip" / "model.safetensors")
    assert info.sha256 == sha256_file(tmp_path / "clip" / "model.safetensors")
    assert torch.equal(model.visual.conv1.weight, clip.visual.conv1.weight)


def _timm_two(folder):
    timm_folder_with(folder, "pytorch_model.pth")
    safetensors.torch.save_file(random_resnet_state(), folder / "open_clip_model.safetensors")
    return f"local-dir:{folder}", ["pytorch_model.pth", "open_clip_model.safetensors"]


def _clip_two(folder):
    tiny_clip_folder(folder)
    (folder / "model.safetensors").write_bytes((folder / "open_clip_model.safetensors").read_bytes())
    return f"open_clip:local-dir:{folder}", ["open_clip_model.safetensors", "model.safetensors"]


def _transformers_two(folder):
    vit = tiny_vit_folder(folder)
    torch.save(vit.state_dict(), folder / "pytorch_model.bin")
    return f"transformers:{folder}", ["model.safetensors", "pytorch_model.bin"]


@pytest.mark.parametrize("make", [_timm_two, _clip_two, _transformers_two])
def test_a_folder_with_several_weights_files_is_refused_naming_them(tmp_path, make):
    folder = tmp_path / "two"
    spec, names = make(folder)
    with pytest.raises(WeightsIdentityError) as raised:
        create_model(spec)
    assert str(raised.value) == (
        f"{spec}: {folder} holds 2 weights files {names}; which one is loaded would be the library's guess, and the "
        f"one recorded might not be it. Keep the one you mean ({names[0]} is the one the library reads first) and "
        f"move the others out of the folder.")


def test_sharded_transformers_weights_are_the_shards_their_index_names(tmp_path):
    vit = tiny_vit_folder(tmp_path / "vit")
    (tmp_path / "vit" / "model.safetensors").unlink()
    vit.save_pretrained(tmp_path / "vit", max_shard_size="40KB")
    shards = sorted((tmp_path / "vit").glob("model-*.safetensors"))
    assert len(shards) > 1
    _, info = create_model(f"transformers:{tmp_path / 'vit'}")
    assert info.weights_file == str(tmp_path / "vit")
    assert info.sha256 == hashlib.sha256("".join(map(sha256_file, shards)).encode()).hexdigest()
    index = tmp_path / "vit" / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"classifier.weight": "../outside.safetensors"}}))
    with pytest.raises(ValueError, match=r"index.json: its weight_map must name shard files of .*vit \(names, not "
                                         r"paths\), and they must be there"):
        create_model(f"transformers:{tmp_path / 'vit'}")


def test_a_checkpoint_folder_with_several_weights_files_is_refused(tmp_path):
    folder = tmp_path / "checkpoint"
    tiny_timm_folder(folder)
    torch.save(random_resnet_state(), folder / "pytorch_model.bin")
    with pytest.raises(WeightsIdentityError, match=r"Checkpoint folder .*checkpoint holds 2 weights files "
                                                   r"\['model.safetensors', 'pytorch_model.bin'\]"):
        create_model("test_resnet", checkpoint=folder)


def test_a_hub_snapshot_is_one_commit_and_its_first_file_is_taken(tmp_path):
    tiny_timm_folder(tmp_path / "snapshot")
    torch.save(random_resnet_state(), tmp_path / "snapshot" / "pytorch_model.bin")
    assert folder_weights(tmp_path / "snapshot", ["model.safetensors", "pytorch_model.bin"], what="x",
                          from_hub=True) == tmp_path / "snapshot" / "model.safetensors"


def test_a_resume_after_the_loaded_file_is_swapped_is_refused(tmp_path):
    folder = tmp_path / "saved"
    timm_folder_with(folder, "pytorch_model.pth")
    spec = f"local-dir:{folder}"
    _, info = create_model(spec)
    run_config = {"weights": info.weights, "sha256": info.sha256}
    torch.save(random_resnet_state(), folder / "pytorch_model.pth")
    swapped = sha256_file(folder / "pytorch_model.pth")
    with pytest.raises(ValueError, match=rf"these weights \(local-dir, sha256 {swapped[:12]}\) are not the ones the "
                                         rf"run used \(local-dir, sha256 {info.sha256[:12]}\)"):
        prepare_model(spec, ModelOptions(), run_config)


# --------------------------------------------------------------------------------------------- the Hub cache


@pytest.mark.parametrize("spec", ["hf-hub:test-org/tiny@../../outside", "open_clip:hf-hub:test-org/tiny@../../outside",
                                  "transformers:test-org/tiny@../../outside", "hf-hub:test-org/tiny@/main",
                                  "hf-hub:test-org/tiny@"])
def test_a_hub_revision_that_is_not_a_branch_tag_or_commit_is_refused(offline_cache, spec):
    revision = spec.partition("@")[2]
    with pytest.raises(ValueError, match=rf"test-org/tiny@{revision}: the revision '{revision}' is not a branch, a "
                                         rf"tag or a commit: letters, digits"):
        create_model(spec)


def test_a_hub_revision_may_be_a_branch_or_a_commit(offline_cache, tmp_path):
    tiny_timm_folder(tmp_path / "saved")
    hub_snapshot(offline_cache, "test-org/tiny-resnet", tmp_path / "saved")
    for revision in ("main", HUB_COMMIT):
        assert create_model(f"hf-hub:test-org/tiny-resnet@{revision}")[1].weights == "hub-cache"


@pytest.mark.parametrize(("spec", "repo_id", "make", "escape"), [
    ("hf-hub:test-org/escape", "test-org/escape", tiny_timm_folder, "refs"),
    ("hf-hub:test-org/escape", "test-org/escape", tiny_timm_folder, "link"),
    ("test_resnet", "timm/test_resnet.r160_in1k", tiny_timm_folder, "link"),
    ("open_clip:hf-hub:test-org/escape", "test-org/escape", tiny_clip_folder, "refs"),
    ("transformers:test-org/escape", "test-org/escape", tiny_vit_folder, "refs"),
])
def test_a_cache_entry_leading_out_of_the_cache_is_refused(offline_cache, tmp_path, spec, repo_id, make, escape):
    make(tmp_path / "outside")
    repo = offline_cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "snapshots").mkdir(parents=True)
    (repo / "refs").mkdir()
    if escape == "refs":
        (repo / "refs" / "main").write_text("../../../../outside")  # snapshots/<this> is tmp_path/outside
    else:
        (repo / "refs" / "main").write_text(HUB_COMMIT)
        (repo / "snapshots" / HUB_COMMIT).symlink_to(tmp_path / "outside")
    with pytest.raises(WeightsIdentityError) as raised:
        create_model(spec)
    message = str(raised.value)
    assert f"of the Hugging Face repo {repo_id}, leads to {tmp_path / 'outside'}" in message
    assert (f"outside the cache {offline_cache.resolve()}: a refs file or a link in the cache points out of it. "
            f"Delete {repo} and fetch the repo again.") in message


def test_a_cached_blob_whose_bytes_are_not_its_name_is_refused(offline_cache):
    repo = offline_cache / "models--timm--test_resnet.r160_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(HUB_COMMIT)
    (repo / "blobs").mkdir()
    (repo / "snapshots" / HUB_COMMIT).mkdir(parents=True)
    staged = repo / "blobs" / "staged"
    safetensors.torch.save_file(random_resnet_state(), staged)
    digest = sha256_file(staged)
    blob = staged.rename(repo / "blobs" / digest)
    (repo / "snapshots" / HUB_COMMIT / "model.safetensors").symlink_to(f"../../blobs/{digest}")
    assert create_model("test_resnet")[1].sha256 == digest  # the cache as huggingface_hub lays it out
    safetensors.torch.save_file(random_resnet_state(), blob)
    with pytest.raises(WeightsIdentityError) as raised:
        create_model("test_resnet")
    assert (f"model.safetensors is not the file the Hugging Face cache stored: the cache names it by its SHA-256, "
            f"{digest[:16]}…, and its bytes hash to {sha256_file(blob)[:16]}…. Delete {repo.resolve()} and fetch "
            f"the repo again.") in str(raised.value)


# ------------------------------------------------------------------------------------- safetensors headers


def lying_safetensors(path, header, data=b"", length=None):
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)


@pytest.mark.parametrize(("header", "data", "length", "problem"), [
    (b"{}", b"", 10**9, "its header claims 1,000,000,000 bytes, but 2 follow its length"),
    ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, None,
     "tensor 'w': its data_offsets [0, 16] lie outside the 8 bytes of data"),
    ({"w": {"dtype": "F32", "shape": [1000000, 1000000], "data_offsets": [0, 8]}}, b"\0" * 8, None,
     "tensor 'w': its shape [1000000, 1000000] of F32 needs 4,000,000,000,000 bytes, its data_offsets span 8"),
    ({"w": {"dtype": "F99", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, None,
     "tensor 'w': {'dtype': 'F99', 'shape': [2], 'data_offsets': [0, 8]} is not a dtype of"),
    (b"\xff{", b"", None, "its header is not JSON"),
    (b"[]", b"", None, "its header is a JSON list, not an object"),
])
def test_a_safetensors_file_whose_header_lies_is_refused_before_loading(tmp_path, header, data, length, problem):
    tiny_timm_folder(tmp_path / "saved")
    weights = tmp_path / "saved" / "model.safetensors"
    lying_safetensors(weights, header, data, length)
    with pytest.raises(WeightsIdentityError) as raised:
        create_model(f"local-dir:{tmp_path / 'saved'}")
    assert str(raised.value).startswith(f"{weights} is not a readable safetensors file: {problem}")
    assert str(raised.value).endswith("It is damaged or was not written by safetensors; fetch or save it again.")


def test_a_safetensors_checkpoint_whose_header_lies_is_refused(tmp_path):
    path = tmp_path / "weights.safetensors"
    lying_safetensors(path, b"{}", length=2**40)
    with pytest.raises(ValueError, match=r"weights.safetensors is not a readable safetensors file: its header claims "
                                         r"1,099,511,627,776 bytes, but 2 follow its length"):
        create_model("test_resnet", checkpoint=path)
