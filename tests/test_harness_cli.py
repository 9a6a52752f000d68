"""The harness's command lines (focus-eval, focus-probe, focus-gradcam, focus-report): every option has help and
shows its default, as focus-dataset's do (tests/test_cli.py)."""

import argparse
import re

import pytest

from harness import gradcam, probe, report, run


def shown_help(parser: argparse.ArgumentParser):
    """(option, its help as --help shows it) for every option but --help."""
    formatter = parser._get_formatter()
    for action in parser._actions:
        if not isinstance(action, argparse._HelpAction):
            yield "/".join(action.option_strings) or action.dest, action, formatter._expand_help(action)


PARSERS = {"focus-eval": run.build_parser, "focus-probe": probe.build_parser, "focus-gradcam": gradcam.build_parser,
           "focus-report": report.build_parser}


@pytest.mark.parametrize("command_name", list(PARSERS))
def test_every_option_has_help_and_shows_its_default_once_in_words(command_name):
    parser = PARSERS[command_name]()
    for option, action, text in shown_help(parser):
        assert action.help, f"{command_name} {option} has no help"
        if not action.option_strings or action.required:
            continue
        assert len(re.findall(r"\bdefault:", text, flags=re.IGNORECASE)) == 1, f"{command_name} {option}: {text}"
        # An option that is not given has a meaning, said in words: "None" or "[]" says nothing.
        assert not re.search(r"\(default: (None|\[\])\)", text), f"{command_name} {option}: {text}"
