"""FOCUS for PyTorch: the dataset through `datasets` (Arrow), decoding and resizing in DataLoader workers."""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import datasets
import numpy as np
import PIL.Image
import PIL.ImageFile
import torch

import focus_dataset
from focus_tools.release import problem_text
from harness.settings import SUBSETS

logger = logging.getLogger(__name__)

# The original FOCUS loader set this: web-scraped sets hold truncated JPEGs that still show the object.
PIL.ImageFile.LOAD_TRUNCATED_IMAGES = True




def subset_rows(labels: np.ndarray, limit: int, how: str = "stratified", seed: int = 0) -> np.ndarray:
    """The rows (ascending) of a `limit`-image subset: the first ones, random ones, or per class in proportion.

    "first" takes the first rows in file_name order, which makes a class-skewed subset (the first 20 of
    FOCUS are all birds); "random" draws rows uniformly; "stratified" keeps each class's share (largest
    remainders), drawn at random within the class. Random draws follow `seed`.

    >>> labels = np.array([0] * 6 + [1] * 3 + [2])
    >>> subset_rows(labels, 4, "first").tolist(), np.bincount(labels[subset_rows(labels, 5)]).tolist()
    ([0, 1, 2, 3], [3, 2])
    """
    if how not in SUBSETS:
        raise ValueError(f"--subset must be one of {list(SUBSETS)}, got {how!r}")
    if limit >= labels.size:
        return np.arange(labels.size)
    if how == "first":
        return np.arange(limit)
    rng = np.random.default_rng(seed)
    if how == "random":
        return np.sort(rng.choice(labels.size, size=limit, replace=False))
    classes, counts = np.unique(labels, return_counts=True)
    quotas = counts * limit / labels.size
    take = np.floor(quotas).astype(int)
    remainders = np.argsort(-(quotas - take), kind="stable")[: limit - take.sum()]
    take[remainders] += 1
    chosen = [rng.choice(np.flatnonzero(labels == c), size=n, replace=False) for c, n in zip(classes, take)]
    return np.sort(np.concatenate(chosen))


@dataclasses.dataclass(frozen=True)
class DataSelection:
    """Which images of the dataset a command sees: filters as the original loader's, then `limit` of them.

    `limit` images are chosen by `subset` (subset_rows); `seed` draws them (random, stratified). The
    record (run.json's "selection") is what an analysis of the run takes to see the same images.
    """

    limit: int | None = None
    subset: str = "stratified"
    seed: int = 0
    categories: tuple[str, ...] | None = None
    times: tuple[str, ...] | None = None
    weathers: tuple[str, ...] | None = None
    locations: tuple[str, ...] | None = None
    locations_match: str = "any"
    humans: bool | None = None

    def filters(self) -> dict[str, Any]:
        """focus_dataset.filter_focus's keyword arguments."""
        return {"categories": self.categories, "times": self.times, "weathers": self.weathers,
                "locations": self.locations, "locations_match": self.locations_match, "humans": self.humans}

    @property
    def draws(self) -> bool:
        """Whether `seed` matters: a limit drawn at random."""
        return self.limit is not None and self.subset != "first"

    def record(self) -> dict[str, Any]:
        """As run.json records it (its option names; humans as "yes"/"no"; the seed only when it draws)."""
        listed = {key: None if value is None else list(value) for key, value in self.filters().items()
                  if key not in ("locations_match", "humans")}
        return {"limit": self.limit, "subset": self.subset, **listed, "locations_match": self.locations_match,
                "humans": None if self.humans is None else ("yes" if self.humans else "no"),
                "seed": self.seed if self.draws else None}

    @classmethod
    def from_record(cls, record: dict[str, Any], seed: int = 0) -> "DataSelection":
        """A recorded selection (run.json's), checked as the command line's is; `seed` when it records none."""
        if not isinstance(record, dict):
            raise ValueError(f"a run's image selection must be an object, got {str(record)[:80]}")
        humans = record.get("humans")
        lists = {key: None if record.get(key) is None else tuple(map(str, record[key]))
                 for key in ("categories", "times", "weathers", "locations")}
        return cls(limit=record.get("limit"), subset=record.get("subset", "stratified"),
                   seed=record["seed"] if record.get("seed") is not None else seed, **lists,
                   locations_match=record.get("locations_match", "any"),
                   humans=None if humans is None else humans == "yes")

    def text(self) -> str:
        """The options that make this selection again, e.g. "--limit 12 --subset stratified --seed 0".

        >>> DataSelection(limit=12, subset="first").text(), DataSelection(limit=12).text(), DataSelection().text()
        ('--limit 12 --subset first', '--limit 12 --seed 0', 'every image')
        """
        default, record = DataSelection().record(), self.record()
        words = []
        for key, value in record.items():
            if key != "seed" and value != default[key]:
                shown = " ".join(map(str, value)) if isinstance(value, list) else str(value)
                words.append(f"--{key.replace('_', '-')} {shown}")
        if record["seed"] is not None:
            words.append(f"--seed {record['seed']}")
        return " ".join(words) or "every image"


def check_output_outside_data(data: str | Path, output: str | Path) -> None:
    """A run folder may not lie in (or be) a dataset folder: the dataset's loader would read its files, and a
    dataset folder is the data's alone."""
    data_path, output_path = Path(data), Path(output)
    if not data_path.is_dir():
        return  # a zip, a Hub id: nothing of ours can land inside it
    inside, folder = output_path.resolve(), data_path.resolve()
    if inside == folder or folder in inside.parents:
        raise ValueError(f"--output {output} lies inside the dataset folder {data}: write the run to a folder of "
                         f"its own (a dataset folder holds the data alone)")


def open_focus(data: str | Path, selection: DataSelection = DataSelection(), *,
               cache_dir: str | None = None) -> tuple[datasets.Dataset, dict[str, Any] | None]:
    """FOCUS from a converted folder, a Hub repo id, or a raw release (converted on the fly), its images selected.

    Returns the dataset and what the subset was (None without a limit), for the run's records.
    """
    if selection.subset not in SUBSETS:
        raise ValueError(f"--subset must be one of {list(SUBSETS)}, got {selection.subset!r}")
    dataset = focus_dataset.load_focus(data, cache_dir=cache_dir, **selection.filters())
    chosen = None
    if selection.limit is not None:
        if selection.limit < 1:
            raise ValueError(f"--limit must be a positive number of images, got {selection.limit}")
        labels = np.asarray(dataset.with_format("arrow", columns=["label"])[:]["label"])
        dataset = dataset.select(subset_rows(labels, selection.limit, selection.subset, selection.seed))
        chosen = {"how": selection.subset, "limit": selection.limit,
                  "seed": selection.seed if selection.draws else None, "num_images": dataset.num_rows}
    if dataset.num_rows == 0:
        active = {k: v for k, v in selection.filters().items() if v is not None and k != "locations_match"}
        raise ValueError(f"{data}: no image is left after filtering with {active}; loosen the filters")
    return dataset, chosen


def image_files(dataset: datasets.Dataset) -> datasets.Dataset:
    """The dataset's image column alone, its rows the files' bytes ({"bytes", "path"}), nothing decoded."""
    return dataset.select_columns(["image"]).cast_column("image", datasets.Image(decode=False))


def decode_image(data: bytes | None) -> PIL.Image.Image:
    """An RGB PIL image from file bytes (grayscale, CMYK and palette images converted).

    High-bit-depth grayscale (a 16-bit PNG is PIL mode "I;16" or "I", a float TIFF "F") is scaled to
    8 bits first: PIL's own conversion clips it, which turns a 16-bit photo almost white.
    """
    if data is None:
        raise OSError("the image file is missing from the release")
    with PIL.Image.open(io.BytesIO(data)) as image:
        if image.mode.startswith("I") or image.mode == "F":
            return eight_bit_gray(image).convert("RGB")
        return image.convert("RGB")


def eight_bit_gray(image: PIL.Image.Image) -> PIL.Image.Image:
    """A 16-bit, 32-bit or float grayscale image as 8-bit grayscale ("L"), its range scaled to 0-255.

    The range is the format's: 0-65535 for "I;16" (and for "I" holding 16-bit values, as older PIL reads
    16-bit PNGs), 0-255 for "I" with 8-bit values, 0-1 for "F" values within it, else 0-255.

    >>> gray = PIL.Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16))
    >>> gray.mode, np.asarray(eight_bit_gray(gray)).tolist()
    ('I;16', [[0, 128, 255]])
    """
    values = np.asarray(image, dtype=np.float64)
    top = float(values.max(initial=0.0))
    if image.mode.startswith("I;16"):
        full = 65535.0
    elif image.mode == "F":
        full = 1.0 if top <= 1.0 else 255.0
    else:  # "I": 32-bit integers
        full = next(bound for bound in (255.0, 65535.0, 2.0**32 - 1) if top <= bound)
    scaled = np.clip(np.rint(values * (255.0 / full)), 0, 255).astype(np.uint8)
    return PIL.Image.fromarray(scaled)


class FocusImages(torch.utils.data.Dataset):
    """(row index, image tensor, decoded ok) for given rows of a FOCUS dataset.

    `transform` takes the decoded RGB image to a uint8 (3, H, W) tensor of `input_size` (the geometry
    of harness.preprocess; each model normalises on its device). A file that cannot be decoded yields
    a zero tensor and ok=False, so one bad web image does not stop an evaluation; the harness records
    it and leaves it out of the metrics.
    """

    def __init__(self, dataset: datasets.Dataset, transform: Callable, indices: Sequence[int],
                 input_size: Sequence[int]):
        self.images = image_files(dataset)
        self.transform = transform
        self.indices = list(indices)
        self.input_size = tuple(input_size)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[int, torch.Tensor, bool]:
        index = self.indices[position]
        image = self.images[index]["image"]
        try:
            tensor = self.transform(decode_image(None if image is None else image["bytes"]))
        except (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError):
            return index, torch.zeros(self.input_size, dtype=torch.uint8), False
        return index, tensor, True


def decode_error(dataset: datasets.Dataset, index: int) -> str:
    """Why the image at row `index` cannot be decoded (for the run folder and the log)."""
    image = image_files(dataset)[index]["image"]
    try:
        decode_image(None if image is None else image["bytes"])
    except Exception as err:  # noqa: BLE001 - any decoder failure is reported as it is
        return f"{type(err).__name__}: {problem_text(err)}"
    return "decoded on retry"
