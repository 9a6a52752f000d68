"""One pass over the data, for focus-eval, focus-probe and focus-gradcam alike.

`run_pass` owns everything about it but the model: a DataLoader over the chosen rows (decoding and
the geometry in its workers, see harness.preprocess), accelerate's sharding across processes,
autocast, `gather_for_metrics` (the padding of the last batches never counts), rows written to
part files on the main process as they come (a killed pass resumes from them), the final merge, the
progress bar and the timing. Each tool supplies two small functions:

    step(batch) -> {name: tensor}       the model on one process's batch (normalisation included)
    to_rows({name: array}) -> pa.Table   gathered results as rows, on the main process

An exception on any process, in the step, in `to_rows` or while the main process writes parts or
merges them, ends the pass on every process with the same error (harness.distributed.run_shared), instead of
leaving the others waiting in a collective. Whether the rows are new (a resumed model skips what its part
files hold) is harness.artifacts' business; the pass imports nothing of the command line.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from harness.artifacts import read_parts, write_part
from harness.data import FocusImages
from harness.distributed import run_shared, shared_error


@dataclass(frozen=True)
class Batch:
    """One process's batch, on its device."""

    indices: torch.Tensor  # dataset rows
    images: torch.Tensor  # uint8 (batch, 3, H, W): decoded, resized and cropped, not normalised
    ok: torch.Tensor  # bool: False where the file could not be decoded (its image is zeros)


Step = Callable[[Batch], dict[str, torch.Tensor]]
# Receives the gathered step outputs plus "index" (dataset rows) and "ok", as numpy arrays.
ToRows = Callable[[dict[str, np.ndarray]], pa.Table]


@dataclass(frozen=True)
class PassResult:
    rows: pa.Table | None  # every row, earlier parts' included, in the order written; main process only
    num_images: int  # images passed this time (over all processes)
    seconds: float  # the loop's wall time
    # The loop's first batch: its images and the time it took (worker start-up, the first decode, kernels compiled).
    warm_up_images: int = 0
    warm_up_seconds: float = 0.0

    @property
    def images_per_second(self) -> float | None:
        """The steady rate, the first batch left out (the whole loop's when it had one batch only)."""
        images, seconds = self.num_images - self.warm_up_images, self.seconds - self.warm_up_seconds
        if not images or seconds <= 0:
            images, seconds = self.num_images, self.seconds
        return images / seconds if images and seconds else None


def all_finite(outputs: torch.Tensor) -> torch.Tensor:
    """Per image (the first dimension), whether every value of `outputs` is finite: a flag for check_finite."""
    return torch.isfinite(outputs).flatten(1).all(dim=1)


def check_finite(finite: np.ndarray, gathered: dict[str, np.ndarray], file_names: Sequence[str], name: str,
                 what: str) -> None:
    """An error naming the model and the first image when `finite` (per gathered image) is False for a decoded one.

    NaN or infinite outputs (broken weights, or a precision that overflows) must never become a silent
    0%, cached NaN features or blank panels. `what` names them ("logits", "features", ...). Called in a
    tool's `to_rows`, on the main process, so that the device never waits for the check.
    """
    broken = np.flatnonzero(~finite & gathered["ok"])
    if broken.size:
        raise ValueError(f"{name} gave non-finite {what} (NaN or infinity) for {broken.size} image(s) of a batch, "
                         f"the first {file_names[gathered['index'][broken[0]]]}: its weights are broken, or the "
                         f"precision overflows (try --precision bf16 or fp32)")


@dataclass(frozen=True)
class Consumer:
    """One user of a shared pass: its step, its rows, and where they go.

    `rows` are the dataset rows it still needs (the pass covers the union of every consumer's rows);
    each consumer's `to_rows` sees only its own. With `parts_dir`, its rows go to part files.
    """

    step: Step
    to_rows: ToRows
    schema: pa.Schema
    rows: Sequence[int]
    parts_dir: Path | None = None


def run_pass(accelerator: Accelerator, dataset: datasets.Dataset, rows: Sequence[int],
             geometry: Callable, input_size: Sequence[int], step: Step, to_rows: ToRows, *, schema: pa.Schema,
             parts_dir: Path | None = None, save_every: int = 1024, batch_size: int = 64, workers: int = 0,
             grad: bool = False, desc: str = "", quiet: bool = False) -> PassResult:
    """Pass `rows` of `dataset` through `step` on every process; `to_rows` makes rows of `schema`.

    With `parts_dir`, rows go to part files every `save_every` images and the result holds every
    part there; without, they are kept in memory. The step runs under autocast, and under inference
    mode unless `grad` (then it chooses where gradients flow). Every process calls this; an error on
    any of them is raised on all.
    """
    return run_shared_pass(accelerator, dataset, geometry, input_size,
                           [Consumer(step, to_rows, schema, rows, parts_dir)], save_every=save_every,
                           batch_size=batch_size, workers=workers, grad=grad, desc=desc, quiet=quiet)[0]


def run_shared_pass(accelerator: Accelerator, dataset: datasets.Dataset, geometry: Callable,
                    input_size: Sequence[int], consumers: Sequence[Consumer], *, save_every: int = 1024,
                    batch_size: int = 64, workers: int = 0, grad: bool = False, desc: str = "",
                    quiet: bool = False) -> list[PassResult]:
    """One pass over the union of the consumers' rows: each batch is decoded and cropped once and fed to every
    consumer's step (several models of one geometry, each normalising the uint8 images its own way).

    Returns each consumer's PassResult; a consumer's rows are exactly what it would get from a pass of
    its own (its steps see the same uint8 images), and they are written to its part files as they come.
    """
    rows = list(dict.fromkeys(row for consumer in consumers for row in consumer.rows))  # in the order given
    wanted = [np.zeros(dataset.num_rows, dtype=bool) for _ in consumers]
    for mask, consumer in zip(wanted, consumers):
        mask[np.asarray(consumer.rows, dtype=np.int64)] = True
    buffers: list[list[pa.Table]] = [[] for _ in consumers]  # rows not yet in a part file (without parts: all)
    error: Exception | None = None

    def keep(gathered: dict[str, np.ndarray]) -> None:
        for i, (consumer, buffer) in enumerate(zip(consumers, buffers)):
            mine = wanted[i][gathered["index"]]
            if not mine.any():
                continue
            outputs = {name.split(":", 1)[1]: value[mine] for name, value in gathered.items()
                       if name.startswith(f"{i}:")}
            buffer.append(consumer.to_rows({"index": gathered["index"][mine], "ok": gathered["ok"][mine], **outputs}))
            if consumer.parts_dir is not None and sum(t.num_rows for t in buffer) >= save_every:
                write_part(consumer.parts_dir, pa.concat_tables(buffer))
                buffer.clear()

    def step(batch: Batch) -> dict[str, torch.Tensor]:
        return {f"{i}:{name}": value for i, consumer in enumerate(consumers)
                for name, value in consumer.step(batch).items()}

    num_images, warm_up = 0, (0, 0.0)
    start = time.perf_counter()
    progress = tqdm(total=len(rows), desc=desc, unit="img", disable=quiet or not accelerator.is_local_main_process)
    batches = iter(_loader(accelerator, dataset, rows, geometry, input_size, batch_size, workers)) if rows else iter(())
    try:
        while True:
            batch = outputs = None
            if error is None:
                try:
                    batch = next(batches, None)
                    if batch is not None:
                        outputs = _run_step(accelerator, step, Batch(*batch), grad)
                except Exception as err:  # noqa: BLE001 - shared below, whatever it is
                    error = err
            if (error := shared_error(error)) is not None:
                raise error
            if batch is None:
                break
            indices, _, ok = batch
            gathered = accelerator.gather_for_metrics({"index": indices, "ok": ok, **outputs})
            num_images += len(gathered["index"])
            if not warm_up[0]:
                warm_up = (num_images, time.perf_counter() - start)
            progress.update(len(gathered["index"]))
            if accelerator.is_main_process:
                try:  # the error, if any, is shared at the next batch
                    keep({name: value.cpu().numpy() for name, value in gathered.items()})
                except Exception as err:  # noqa: BLE001
                    error = err
    finally:
        progress.close()
        # The loader's workers end now, not when an error's traceback lets go of this frame.
        batches = batch = outputs = None
    seconds = time.perf_counter() - start

    def merge() -> list[pa.Table]:
        merged = []
        for consumer, buffer in zip(consumers, buffers):
            if consumer.parts_dir is None:
                merged.append(pa.concat_tables(buffer) if buffer else consumer.schema.empty_table())
                continue
            if buffer:
                write_part(consumer.parts_dir, pa.concat_tables(buffer))
            merged.append(read_parts(consumer.parts_dir, consumer.schema))
        return merged

    merged = run_shared(accelerator, merge, main_only=True) or [None] * len(consumers)
    return [PassResult(rows=table, num_images=num_images if rows else 0, seconds=seconds, warm_up_images=warm_up[0],
                       warm_up_seconds=warm_up[1]) for table in merged]


def _loader(accelerator: Accelerator, dataset: datasets.Dataset, rows: Sequence[int], geometry: Callable,
            input_size: Sequence[int], batch_size: int, workers: int) -> torch.utils.data.DataLoader:
    loader = torch.utils.data.DataLoader(
        FocusImages(dataset, geometry, rows, input_size), batch_size=batch_size, num_workers=workers,
        shuffle=False, pin_memory=accelerator.device.type == "cuda",
    )
    # Sharded across processes (each gets whole batches), and placed on each process's device.
    return accelerator.prepare_data_loader(loader)


def _run_step(accelerator: Accelerator, step: Step, batch: Batch, grad: bool) -> dict[str, torch.Tensor]:
    with accelerator.autocast(), (contextlib.nullcontext() if grad else torch.inference_mode()):
        return step(batch)
