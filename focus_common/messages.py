"""Messages: user values quoted and listed so that a message stays one short line, and the errors that end a
command with an exit status (see commands.run_command)."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence
from typing import Any


class BadInput(ValueError):
    """The command cannot run on what it was given: a file, a value or an option that cannot be used (exit 2)."""


class Rejected(Exception):
    """The command ran and judged its input wanting: a submission rejected, a dataset with integrity errors (exit 1)."""


def quote(value: Any, limit: int = 80) -> str:
    r"""A user's value as messages quote it: its repr, clipped, since a value may be megabytes long.

    A text whose characters could pass for others (not in Unicode's composed form, NFC: "é" as e and a combining
    accent) is shown with escapes, so that two names that look alike do not read alike.

    >>> quote("night"), quote("cafe\u0301.jpg")
    ("'night'", "'cafe\\u0301.jpg'")
    >>> quote("x" * 100_000, limit=5)
    "'xxxxx'… (100,000 characters)"
    """
    if isinstance(value, str) and unicodedata.normalize("NFC", value) != value:
        return ascii(value) if len(value) <= limit else f"{ascii(value[:limit])}… ({len(value):,} characters)"
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


# User-visible names (model specs, file names) written into Markdown tables, HTML and CSV cells: one way each.

def _one_line(text: Any) -> str:
    return " ".join(re.sub(r"[\x00-\x1f\x7f]", " ", str(text)).split())


def markdown_text(text: Any) -> str:
    r"""Text safe in a Markdown table cell: one line, no HTML, links, emphasis, code or column breaks.

    >>> markdown_text("a|b *c* <i>")
    'a\\|b \\*c\\* &lt;i&gt;'
    """
    return re.sub(r"([\\`*_\[\]|#])", r"\\\1", html.escape(_one_line(text), quote=False))


def markdown_code(text: Any) -> str:
    r"""Text as an inline code span safe in a Markdown table cell, whatever backticks and pipes it holds.

    >>> markdown_code("resnet50"), markdown_code("a`b|c")
    ('`resnet50`', '`` a`b\\|c ``')
    """
    text = _one_line(text).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    padding = " " if "`" in text or text.startswith(" ") else ""
    return f"{fence}{padding}{text}{padding}{fence}"


def spreadsheet_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text, never runs: text starting with = + - @ or a control character
    gets a leading apostrophe (numbers stay numbers).

    >>> spreadsheet_cell("=HYPERLINK(1)"), spreadsheet_cell(-0.5), spreadsheet_cell("resnet50")
    ("'=HYPERLINK(1)", -0.5, 'resnet50')
    """
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r", "\n"):
        return "'" + value
    return value
