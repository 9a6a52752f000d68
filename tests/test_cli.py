"""focus_tools.cli: the focus-dataset command line."""

import argparse
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from focus_tools import cli


def test_cli_reports_bad_input_on_stderr_with_exit_status_2(tmp_path, capsys):
    assert cli.main(["convert", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    assert "no such file or folder; expected a FOCUS release folder or focus.zip" in capsys.readouterr().err


def options(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from ((f"{name} {option}", help_, default) for option, help_, default in options(subparser))
        elif not isinstance(action, argparse._HelpAction):
            yield "/".join(action.option_strings) or action.dest, action.help, action.default


def test_every_option_has_help_and_shows_its_default():
    for option, help_, default in options(cli.build_parser()):
        assert help_, f"{option} has no help"
        if default not in (None, False):
            assert f"(default: {default})" in help_, option


@pytest.mark.parametrize("argv, message", [
    (["convert", "{release}", "{tmp}/out", "--max-shard-size", "5XB"], "--max-shard-size: '5XB' is not a size"),
    (["sample", "{tmp}/s", "--num-images", "0"], "--num-images: expected a whole number from 1 to 1,000,000, got '0'"),
    (["validate", "{release}", "--max-lines", "-1"], "--max-lines: expected a whole number of at least 0, got '-1'"),
])
def test_bad_option_values_are_named_with_exit_status_2(tmp_path, sample_release, capsys, argv, message):
    argv = [a.format(release=sample_release, tmp=tmp_path) for a in argv]
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_sample_into_an_unwritable_place_is_a_clean_error(capsys):
    assert cli.main(["sample", "/proc/foo", "--num-images", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: /proc/foo: cannot write") and err.count("\n") == 1


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGINT])
def test_a_terminated_conversion_removes_its_partial_folder(tmp_path, sample_release, signum):
    script = (
        "import sys, time, focus_tools.release as release\nfrom focus_tools import cli\n"
        "check = release.check_image_bytes\n"
        "def slow(data):\n"
        "    print('converting', flush=True); time.sleep(0.2); return check(data)\n"
        "release.check_image_bytes = slow\n"
        f"sys.exit(cli.main(['convert', {str(sample_release)!r}, {str(tmp_path / 'out')!r}]))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[1],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "converting\n"
    assert list(tmp_path.glob(".out.partial-*"))
    process.send_signal(signum)  # a closing terminal (SIGHUP), Ctrl-\\ (SIGQUIT), Ctrl-C, kill
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum and "Traceback" not in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_the_parsers_defaults_are_the_libraries():
    """focus-dataset's parser names these values itself, so that --help imports neither datasets nor the release
    reader; they must stay the libraries' own."""
    import datasets

    from focus_tools import convert, release
    assert cli.DEFAULT_MAX_SHARD_SIZE == datasets.config.MAX_SHARD_SIZE
    assert cli.MAX_SAMPLE_IMAGES == release.MAX_ROWS
    assert cli.REPORT_NAME == convert.REPORT_NAME
