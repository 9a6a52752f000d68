"""What the six focus-* commands share: one command-line contract.

focus-dataset, focus-eval, focus-probe, focus-gradcam, focus-report and focus-leaderboard name the same
things the same way (--data the dataset, --run a focus-eval run folder, --output what the command
writes, --seed the seed of everything random in the command), show every default in their help, set
up logging first thing in `main` (set_up_logging), and exit with the same statuses (EXIT_STATUS).
"""

from __future__ import annotations

import argparse
import logging
import os
import stat
from pathlib import Path

EXIT_STATUS = """\
exit status:
  0  done
  1  done in part: a submission rejected, a dataset with integrity errors, models that failed with --keep-going
  2  the command cannot run: bad input, a file that cannot be read or written (one line on stderr says which)"""
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default, as in timm's scripts, unless it states the default itself."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or action.required or action.default is argparse.SUPPRESS
                or "(default: " in text):
            return text
        return f"{text} (default: %(default){'g' if isinstance(action.default, float) else 's'})"


def parser(prog: str | None, description: str) -> argparse.ArgumentParser:
    """A focus-* command's argument parser: defaults in every help line, the exit statuses at the end."""
    return argparse.ArgumentParser(prog=prog, description=description, epilog=EXIT_STATUS,
                                   formatter_class=HelpFormatter)


def set_up_logging(level: int = logging.INFO) -> None:
    """Log to stderr with time, level and logger; keep the datasets library to its warnings, without its bars.

    Called once, first thing in every command's `main`; library functions never touch logging.
    """
    import datasets

    logging.basicConfig(level=level, format=LOG_FORMAT)
    datasets.logging.set_verbosity_warning()
    datasets.disable_progress_bars()


def one_of(parser: argparse.ArgumentParser, positional: str | None, option: str | None, names: str) -> str:
    """A folder given as a positional (an older spelling that keeps working) or as an option (the common one).

    `names` says both spellings for the error, e.g. "OUTPUT or --output".
    """
    if positional is None and option is None:
        parser.error(f"name the folder: {names}")
    if positional is not None and option is not None and Path(positional) != Path(option):
        parser.error(f"{positional} and {option} name different folders ({names}: give one)")
    return option if option is not None else positional


def read_small_text(path: str | Path, what: str, max_bytes: int = 2**20) -> str:
    """A user's small text file (a table, a list of models, prompt templates), read safely.

    Only a regular file is opened (a FIFO or a device would block or never end), at most `max_bytes`
    are read, and the bytes must be UTF-8. Every failure is a ValueError naming the file and `what`
    was expected.
    """
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; what was opened is checked, not the path.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror}); expected {what}") from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise ValueError(f"{path}: not a regular file; expected {what}")
    with os.fdopen(descriptor, "rb") as file:
        try:
            data = file.read(max_bytes + 1)
        except OSError as err:
            raise ValueError(f"{path}: cannot be read ({err.strerror}); expected {what}") from None
    if len(data) > max_bytes:
        raise ValueError(f"{path}: larger than {max_bytes:,} bytes; expected {what}, a small text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}); expected {what}") from None
