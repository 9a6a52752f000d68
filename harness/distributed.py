"""Running under accelerate: the accelerator, errors that every process raises alike, locks held for all.

A command runs on one process or on many (torchrun, accelerate launch). Work done by one process only
(the main process's writes) can fail there alone; `run_shared` shares the error, so that it stops every
process instead of leaving the others waiting at the next collective.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import gather_object

from focus_common import locks
from harness.settings import PRECISIONS

T = TypeVar("T")
_MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def accelerator_available() -> bool:
    if hasattr(torch, "accelerator"):
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


@contextlib.contextmanager
def accelerator_for(precision: str = "fp32", *, cpu: bool = False) -> Iterator[Accelerator]:
    """An accelerator for one command: logging quiet on all but the main process, and afterwards accelerate's
    process-wide state released, so that a later command in this process may choose another precision."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    # Without an accelerator, accelerate runs a torchrun/MPI launch as one process unless told it is a CPU run.
    accelerator = Accelerator(mixed_precision=_MIXED_PRECISION[precision], cpu=cpu or not accelerator_available())
    level = logging.getLogger().level
    if not accelerator.is_main_process:
        logging.getLogger().setLevel(logging.WARNING)
    try:
        yield accelerator
    finally:
        logging.getLogger().setLevel(level)
        accelerator.end_training()
        AcceleratorState._reset_state()


class SharedError(RuntimeError):
    """An error raised on another process of the run, with its message (see shared_error)."""


def shared_error(error: Exception | None) -> Exception | None:
    """This process's error, else the first other process's, else None; a collective every process calls.

    Only the error's message crosses between processes (an exception object may not pickle), so the others
    raise a SharedError with the same message.
    """
    messages = [m for m in gather_object([None if error is None else str(error)]) if m is not None]
    if error is not None:
        return error
    return SharedError(messages[0]) if messages else None


def run_shared(accelerator: Accelerator, work: Callable[[], T], *, main_only: bool = False) -> T | None:
    """`work()` on every process (on the main process alone with main_only), its error raised on all.

    A collective every process calls, hence also a barrier: what the main process writes is written
    when it returns, and any error there ends every process with the same message. Returns what
    `work` returned, None where it did not run.
    """
    result, error = None, None
    if accelerator.is_main_process or not main_only:
        try:
            result = work()
        except Exception as err:  # noqa: BLE001 - whatever it is, every process must hear of it
            error = err
    if (error := shared_error(error)) is not None:
        raise error
    return result


@contextlib.contextmanager
def model_folder_lock(accelerator: Accelerator, folder: Path, holder: str) -> Iterator[None]:
    """Hold a model folder's lock (focus_common.locks) on the main process; every process calls this, and a lock
    held by another command (named in the error) stops them all.

    focus-eval, focus-probe and focus-gradcam write into one model's folder: two of them at once would
    each redo the other's work. `holder` names the command and the model.
    """
    with contextlib.ExitStack() as held:
        def lock() -> None:
            folder.mkdir(parents=True, exist_ok=True)
            held.enter_context(locks.folder_lock(folder, holder))
        run_shared(accelerator, lock, main_only=True)
        yield
