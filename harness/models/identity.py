"""Which file a model's weights are, and that its bytes are what its name claims.

One mechanism for every source (timm, torchvision, open_clip, transformers, checkpoints):

- a folder's weights file is chosen here, once, and that path is the one the library is told to load;
  a folder filled by hand that holds several candidates is refused, since the one a library happens to
  read first need not be the one its owner meant (a Hub snapshot is one commit of one repo: its
  library's first choice is taken);
- the file loaded is the file hashed, and hashed once (`identify`);
- a safetensors header is checked against the file's size before any tensor is allocated;
- a hash the file's name claims is compared with its bytes: torchvision names its cached files by a
  SHA-256 prefix (``resnet50-0676ba61.pth``, what torch.hub's ``check_hash=True`` checks), and the
  Hugging Face cache stores a large file as a blob named by its SHA-256.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import torch.hub

from focus_common.inputs import sha256_file
from focus_common.messages import listed, quote

# safetensors' element types, in bits.
SAFETENSORS_BITS = {"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16,
                    "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64,
                    "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}
MAX_SAFETENSORS_HEADER = 100 * 2**20  # safetensors' own bound on a header
_BLOB_NAME = re.compile(r"[0-9a-f]{64}")  # the Hugging Face cache's name for a large file: its SHA-256


class WeightsIdentityError(ValueError):
    """A weights file that is not what its name, its place or its header says it is."""


@dataclasses.dataclass(frozen=True)
class WeightsFile:
    """A weights file as it is loaded: its path and the SHA-256 of its bytes, computed once."""

    path: Path
    sha256: str


def name_hash(path: str | Path) -> str | None:
    """The SHA-256 prefix a torchvision (torch.hub) file name carries, or None.

    >>> name_hash("resnet50-0676ba61.pth"), name_hash("weights.pth")
    ('0676ba61', None)
    """
    match = torch.hub.HASH_REGEX.search(Path(path).name)
    return match[1] if match and match[1] else None


def identify(path: str | Path, *, claimed: str | None = None, advice: str = "") -> WeightsFile:
    """The weights file at `path`, checked and hashed once: record its sha256, and load its path.

    `claimed` is a SHA-256 prefix the file's name carries (`name_hash`), and `advice` says how to get
    the real file when the bytes do not match it. A safetensors header is checked first, and a file in
    the Hugging Face cache's blobs is compared with the hash its blob name claims.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a file; expected a weights file")
    if path.suffix == ".safetensors":
        check_safetensors(path)
    digest = sha256_file(path)
    if claimed is not None and not digest.startswith(claimed):
        raise WeightsIdentityError(
            f"{path} is not the weights its name claims: the name carries the start of their SHA-256, {claimed}, "
            f"and this file's SHA-256 starts {digest[:len(claimed)]}. {advice}".rstrip())
    _check_blob(path, digest)
    return WeightsFile(path, digest)


def _check_blob(path: Path, digest: str) -> None:
    blob = path.resolve()
    if blob.parent.name == "blobs" and _BLOB_NAME.fullmatch(blob.name) and blob.name != digest:
        raise WeightsIdentityError(
            f"{path} is not the file the Hugging Face cache stored: the cache names it by its SHA-256, "
            f"{blob.name[:16]}…, and its bytes hash to {digest[:16]}…. Delete {blob.parent.parent} and fetch the "
            f"repo again.")


def folder_weights(folder: Path, names: Sequence[str], *, what: str, suffixes: Sequence[str] = (),
                   from_hub: bool = False) -> Path | None:
    """The weights file of a model folder, or None when it holds none.

    The first of `names` (the library's order of preference) that the folder holds, else a file ending
    in one of `suffixes`. Several in a folder filled by hand are refused: which one the library would
    read first is its guess. A Hub snapshot (`from_hub`) is one commit of one repo: its first is taken.
    """
    found = [folder / name for name in names if (folder / name).is_file()]
    if not found:
        found = [path for suffix in suffixes for path in sorted(folder.glob(f"*{suffix}")) if path.is_file()]
    if len(found) > 1 and not from_hub:
        raise WeightsIdentityError(
            f"{what}: {folder} holds {len(found)} weights files {listed([path.name for path in found])}; which one "
            f"is loaded would be the library's guess, and the one recorded might not be it. Keep the one you mean "
            f"({found[0].name} is the one the library reads first) and move the others out of the folder.")
    return found[0] if found else None


def check_safetensors(path: Path) -> None:
    """Refuse a safetensors file whose header does not fit the file, before anything reads its tensors.

    The header (an 8-byte length, then JSON) must lie inside the file, and each tensor's data_offsets
    inside the data that follows it, spanning exactly the bytes its dtype and shape need: a lying header
    cannot make a reader allocate more than the file holds, nor read past it.
    """
    problem = _safetensors_problem(path)
    if problem:
        raise WeightsIdentityError(f"{path} is not a readable safetensors file: {problem}. It is damaged or was not "
                                   f"written by safetensors; fetch or save it again.")


def _safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    if size < 8:
        return f"it has {size} bytes, fewer than the 8 that give its header's length"
    with open(path, "rb") as file:
        length = int.from_bytes(file.read(8), "little")
        if length > min(size - 8, MAX_SAFETENSORS_HEADER):
            return f"its header claims {length:,} bytes, but {size - 8:,} follow its length"
        text = file.read(length)
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "its header is not JSON"
    if not isinstance(header, dict):
        return f"its header is a JSON {type(header).__name__}, not an object"
    data_size = size - 8 - length
    for name, entry in header.items():
        problem = None if name == "__metadata__" else _tensor_problem(entry, data_size)
        if problem:
            return f"tensor {quote(name)}: {problem}"
    return None


def _tensor_problem(entry: object, data_size: int) -> str | None:
    if not isinstance(entry, dict) or entry.get("dtype") not in SAFETENSORS_BITS:
        return f"{quote(entry)} is not a dtype of {sorted(SAFETENSORS_BITS)}, a shape and data_offsets"
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not (isinstance(shape, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        return f"its shape {quote(shape)} is not a list of sizes"
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(n, int) and not isinstance(n, bool)
                                                                     for n in offsets)):
        return f"its data_offsets {quote(offsets)} are not two byte offsets"
    begin, end = offsets
    if not 0 <= begin <= end <= data_size:
        return f"its data_offsets [{begin:,}, {end:,}] lie outside the {data_size:,} bytes of data"
    needed = math.prod(shape) * SAFETENSORS_BITS[entry["dtype"]]  # bits: F4 and F6 tensors pack several a byte
    if needed != 8 * (end - begin):
        return (f"its shape {shape} of {entry['dtype']} needs {(needed + 7) // 8:,} bytes, its data_offsets span "
                f"{end - begin:,}")
    return None
