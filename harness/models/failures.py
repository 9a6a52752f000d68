"""A model that could not be built: one error for whatever a library raises on a model's files.

Libraries raise what they raise on a damaged or foreign file (KeyError for a config without its key,
TypeError, AttributeError, safetensors' SafetensorError, pickle's UnpicklingError, ...). Under
``loading`` every such exception becomes a ModelLoadError, a ValueError naming the model, the file and
the original error type, so that a caller that takes a ValueError as this model's failure
(``focus-eval --keep-going``) goes on with the next model. The harness's own errors (ValueError and its
subclasses, OSError such as WeightsNotFoundError, ImportError for a missing library) already say what
to do, and pass unchanged.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

_PASSED_ON = (ValueError, OSError, ImportError)
_SHOWN_CHARACTERS = 300  # of the original message: a KeyError on a tensor name can print a whole state dict


class ModelLoadError(ValueError):
    """A model whose files a library could not read or build: a damaged file, or one it does not understand."""


@contextlib.contextmanager
def loading(spec: str, source: str | os.PathLike) -> Iterator[None]:
    """Within this block, any exception but the harness's own becomes a ModelLoadError naming `spec` and `source`.

    >>> with loading("resnet18", "/weights/resnet18.pth"):  # doctest: +ELLIPSIS
    ...     {}["conv1.weight"]
    Traceback (most recent call last):
    harness.models.failures.ModelLoadError: resnet18: cannot be built from /weights/resnet18.pth (KeyError: ...
    """
    try:
        yield
    except _PASSED_ON:
        raise
    except Exception as error:
        said = str(error) if len(str(error)) <= _SHOWN_CHARACTERS else str(error)[:_SHOWN_CHARACTERS] + "…"
        raise ModelLoadError(
            f"{spec}: cannot be built from {source} ({type(error).__name__}: {said}). The file is damaged, or not "
            f"one this library reads: fetch or save it again, or name other weights.") from error
