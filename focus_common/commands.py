"""What the six focus-* commands share: one command-line contract.

focus-dataset, focus-eval, focus-probe, focus-gradcam, focus-report and focus-leaderboard name the same
things the same way (--data the dataset, --run a focus-eval run folder, --output what the command
writes, --seed the seed of everything random in the command), show every default in their help, and run
their work through `run_command`: logging set up first, SIGTERM/SIGHUP/SIGQUIT turned into a clean exit
(every `finally` runs: staging folders go, locks are let go), and every ending mapped to one line and
one exit status (EXIT_STATUS): a traceback means a bug.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from focus_common.messages import Rejected

EXIT_STATUS = """\
exit status:
  0  done
  1  done in part: a submission rejected, a dataset with integrity errors, models that failed with --keep-going
  2  the command cannot run: bad input, a file that cannot be read or written (one line on stderr says which)
  130  stopped with Ctrl-C (128 + the signal's number for SIGTERM, SIGHUP, SIGQUIT)"""
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

    Called once, first thing in every command (run_command); library functions never touch logging. The
    datasets library is told through its environment variables, so that a command which never loads a
    dataset (--help, a usage error) does not pay for importing it.
    """
    logging.basicConfig(level=level, format=LOG_FORMAT)
    os.environ.setdefault("DATASETS_VERBOSITY", "warning")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if "datasets" in sys.modules:
        datasets = sys.modules["datasets"]
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


# What ends a command with its message and exit status 2: bad input, files that cannot be read or written,
# a run folder that does not fit, a missing optional library. Anything else is a bug and shows its traceback.
COMMAND_ERRORS = (ValueError, OSError, RuntimeError, ImportError)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


class Stopped(BaseException):
    """A stop signal (SIGTERM, SIGHUP, SIGQUIT) received: raised where the command is, so that it cleans up."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, frame: object) -> None:
    raise Stopped(signum)


def is_main_process() -> bool:
    """Whether this is the process that speaks for a distributed run (torchrun/accelerate's rank 0), or alone."""
    return os.environ.get("RANK", "0") == "0"


def say(line: str) -> None:
    """One line on stderr, from the main process of a distributed run only (every process ends alike)."""
    if is_main_process():
        print(line, file=sys.stderr)


def run_command(work: Callable[[], int], *, on_stop: str = "nothing more was written") -> int:
    """Run a command's work and map every ending to one line and an exit status (EXIT_STATUS).

    Logging is set up first. Ctrl-C and the stop signals end the work where it is, so every clean-up runs,
    and print "stopped (...); `on_stop`" (what the user can do: "run the same command again to resume").
    A `Rejected` ends with its message and 1, the COMMAND_ERRORS with theirs and 2.
    """
    set_up_logging()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {signum: signal.signal(signum, _stop) for signum in STOP_SIGNALS} if in_main_thread else {}
    try:
        return work()
    except KeyboardInterrupt:
        say(f"stopped (Ctrl-C); {on_stop}")
        return 128 + signal.SIGINT
    except Stopped as stop:
        say(f"stopped ({signal.Signals(stop.signum).name}); {on_stop}")
        return 128 + stop.signum
    except Rejected as err:
        say(f"error: {err}")
        return 1
    except COMMAND_ERRORS as err:
        logging.getLogger(__name__).debug("the error's traceback", exc_info=True)
        say(f"error: {err}")
        return 2
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
