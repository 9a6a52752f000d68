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
import difflib
import logging
import re
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


class ArgumentParser(argparse.ArgumentParser):
    """argparse with short, exact answers to mistakes.

    An option is spelled out (no abbreviations: `--model` is not `--models`, and a prefix that works
    today does not break when an option is added); a mistyped option or choice gets "did you mean";
    and an error is two lines, the error and where the help is, not the whole usage.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}{self._suggestion(message)}\n"
                     f"{self.prog}: see `{self.prog} --help`\n")

    def _suggestion(self, message: str) -> str:
        unknown = re.match(r"unrecognized arguments: (.*)", message)
        if unknown:
            options = self._all_option_strings()
            close = {word: difflib.get_close_matches(word.split("=")[0], options, n=1, cutoff=0.6)
                     for word in unknown.group(1).split() if word.startswith("-")}
            hints = [(word.split("=")[0], match[0]) for word, match in close.items() if match]
            if len(hints) == 1 and len(close) == 1:
                return f"; did you mean {hints[0][1]}?"
            return f"; did you mean {', '.join(f'{right} (for {wrong})' for wrong, right in hints)}?" if hints else ""
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            choices = re.findall(r"'([^']*)'", choice.group(2))
            match = difflib.get_close_matches(choice.group(1), choices, n=1, cutoff=0.5)
            return f"; did you mean {match[0]!r}?" if match else ""
        return ""

    def _all_option_strings(self) -> list[str]:
        """This parser's options and its subcommands' (an unknown option after a subcommand is reported here)."""
        options = []
        for action in self._actions:
            options += [o for o in action.option_strings if o.startswith("--")]
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    options += sub._all_option_strings() if isinstance(sub, ArgumentParser) else []
        return sorted(set(options))


def parser(prog: str | None, description: str) -> ArgumentParser:
    """A focus-* command's argument parser: defaults in every help line, the exit statuses at the end, exact
    answers to mistakes (ArgumentParser)."""
    return ArgumentParser(prog=prog, description=description, epilog=EXIT_STATUS)


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
