"""Messages: user values quoted and listed so that a message stays one short line, and the errors that end a
command with an exit status (see commands.run_command)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class BadInput(ValueError):
    """The command cannot run on what it was given: a file, a value or an option that cannot be used (exit 2)."""


class Rejected(Exception):
    """The command ran and judged its input wanting: a submission rejected, a dataset with integrity errors (exit 1)."""


def quote(value: Any, limit: int = 80) -> str:
    """A user's value as messages quote it: its repr, clipped, since a value may be megabytes long.

    >>> quote("night")
    "'night'"
    >>> quote("x" * 100_000, limit=5)
    "'xxxxx'… (100,000 characters)"
    """
    if isinstance(value, (str, bytes)) and len(value) > limit:
        unit = "characters" if isinstance(value, str) else "bytes"
        return f"{value[:limit]!r}… ({len(value):,} {unit})"
    text = repr(value)
    return text if len(text) <= limit + 2 else text[: limit + 2] + "…"


def listed(names: Sequence[str], shown: int = 8) -> str:
    """Names for a message: the first few, each clipped, and how many more (a wildcard can expand to a thousand).

    >>> listed(["a", "b"]), listed([str(i) for i in range(10)], shown=2)
    ("['a', 'b']", "['0', '1', ... (8 more)]")
    """
    more = f", ... ({len(names) - shown} more)" if len(names) > shown else ""
    return "[" + ", ".join(quote(name) for name in names[:shown]) + more + "]"


def about(name: str, message: str) -> str:
    """`message` about `name` (a model), named once: many messages start with the name already.

    >>> about("resnet18", "resnet18: no weights"), about("resnet18", "no weights")
    ('resnet18: no weights', 'resnet18: no weights')
    """
    return message if message.startswith(f"{name}: ") else f"{name}: {message}"
