"""harness.writing: render's files committed together; a render killed between its renames, a full or read-only OUT."""

import doctest
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from focus_common import outputs
from harness.leaderboard import cli, errors, packing, rendering, writing

from .fabricate import fabricate_run, read_only

REPO = Path(__file__).resolve().parents[2]

# Renders in a fresh process whose os.replace kills the process (SIGKILL: nothing runs after it) on its
# `kill_at`-th call, and prints the targets of the calls it made.
KILLED_RENDER = """
import json, os, signal, sys
import pyarrow.parquet as pq
from harness.leaderboard import rendering, verification

args = json.loads(sys.argv[1])
truth = verification.GroundTruth(pq.read_table(args["truth"]), args["fingerprint"], "test")
replace, targets = os.replace, []

def replace_or_die(source, target):
    targets.append(os.path.basename(target))
    if len(targets) == args["kill_at"]:
        os.kill(os.getpid(), signal.SIGKILL)
    replace(source, target)

os.replace = replace_or_die
rendering.render(args["submissions"], args["out"], truth)
print(json.dumps(targets))
"""


@pytest.fixture
def rendered(tmp_path, submissions, truth) -> dict:
    """A site rendered from three submissions, and a fourth submission arrived since."""
    board = Path(shutil.copytree(submissions, tmp_path / "submissions"))
    rendering.render(board, tmp_path / "site", truth)
    fabricate_run(tmp_path / "run", truth.table, "model_d.in1k", accuracy=0.6, num_params=7, paper_name=None, seed=4)
    packing.pack(tmp_path / "run", "model_d.in1k", board / "model_d.in1k")
    pq.write_table(truth.table, tmp_path / "truth.parquet")
    return {"board": board, "out": tmp_path / "site", "first": _generations(tmp_path / "site"),
            "args": {"truth": str(tmp_path / "truth.parquet"), "fingerprint": truth.fingerprint,
                     "submissions": str(board), "out": str(tmp_path / "site")}}


def _generations(out: Path) -> tuple[str | None, str | None]:
    """The generations of the Markdown and of the page in OUT (None for a page that is not there)."""
    return writing.generation_of(out / rendering.MARKDOWN_FILE), writing.generation_of(out / rendering.HTML_FILE)


def _render_killed_at(rendered: dict, kill_at: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", KILLED_RENDER, json.dumps(rendered["args"] | {"kill_at": kill_at})],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def test_a_render_renames_the_commit_record_then_the_pages_then_the_ledger(rendered):
    result = _render_killed_at(rendered, kill_at=0)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [writing.COMMIT_FILE, rendering.MARKDOWN_FILE, rendering.HTML_FILE,
                                         rendering.LEDGER_FILE]


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4])
def test_a_render_killed_between_its_renames_never_leaves_pages_of_two_renders(rendered, truth, kill_at):
    """Killed while writing its commit record (1), before each rename (2, 3), before the ledger's (4)."""
    out, first = rendered["out"], rendered["first"]
    result = _render_killed_at(rendered, kill_at)
    assert result.returncode == -signal.SIGKILL, result.stderr
    markdown, page = _generations(out)
    if kill_at == 1:  # no commit recorded: the pages are the first render's
        assert (markdown, page) == first
    elif kill_at == 2:  # the old pages taken away, no new one yet
        assert (markdown, page) == (None, None)
    elif kill_at == 3:  # the new Markdown alone
        assert markdown not in (None, first[0]) and page is None
    else:  # both new, the ledger not yet
        assert markdown == page and markdown not in (None, first[0])
    with writing.locked(out):  # what the next render does first: complete the commit, remove leftovers
        pass
    committed = _generations(out)
    assert committed == first if kill_at == 1 else (committed[0] == committed[1] != first[0])
    assert markdown in (None, committed[0])
    assert os.listdir(out / writing.RENDER_FOLDER) == [".lock"]
    assert ("model_d.in1k" in rendering.read_ledger(out)) == (kill_at > 1)
    rendering.render(rendered["board"], out, truth)
    markdown, page = _generations(out)
    assert markdown == page != first[0] and (kill_at == 1 or (markdown, page) == committed)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_a_full_or_read_only_out_keeps_the_pages_it_had(rendered, truth, monkeypatch, code):
    """The second file (or the commit record) cannot be written: the first is removed, the pages stay."""
    written, write = [], outputs.write_new_file

    def write_or_fail(parent, prefix, data):
        if written:
            raise OSError(code, os.strerror(code))
        written.append(write(parent, prefix, data))
        return written[-1]

    monkeypatch.setattr(outputs, "write_new_file", write_or_fail)
    with pytest.raises(errors.LeaderboardError) as raised:
        rendering.render(rendered["board"], rendered["out"], truth)
    assert str(raised.value) == f"{rendered['out']}: cannot write the site ({os.strerror(code)}); the pages there " \
                                f"are unchanged"
    assert _generations(rendered["out"]) == rendered["first"]
    assert os.listdir(rendered["out"] / writing.RENDER_FOLDER) == [".lock"]
    assert "model_d.in1k" not in rendering.read_ledger(rendered["out"])


def test_the_command_says_a_full_disk_in_one_line_and_exits_2(rendered, converted, monkeypatch, capsys):
    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(outputs, "write_new_file", full)
    assert cli.main(["render", str(rendered["board"]), str(rendered["out"]), "--data", str(converted)]) == 2
    assert capsys.readouterr().err == f"error: {rendered['out']}: cannot write the site (No space left on device); " \
                                      f"the pages there are unchanged\n"
    assert _generations(rendered["out"]) == rendered["first"]


def test_a_read_only_out_is_one_line_and_exit_2(rendered, converted, capsys, tmp_path):
    parent = tmp_path / "read_only"
    parent.mkdir()
    with read_only(parent):
        assert cli.main(["render", str(rendered["board"]), str(parent / "site"), "--data", str(converted)]) == 2
    error = capsys.readouterr().err
    assert re.fullmatch(rf"error: {re.escape(str(parent / 'site'))}: cannot write the site here \((Permission denied|"
                        rf"Operation not permitted)\); choose another OUT\n", error), error
    assert not (parent / "site").exists()


def test_a_site_made_read_only_keeps_its_pages_and_is_completed_once_writable(rendered, converted, capsys):
    out = rendered["out"]
    with read_only(out):
        assert cli.main(["render", str(rendered["board"]), str(out), "--data", str(converted)]) == 2
        error = capsys.readouterr().err
        assert re.fullmatch(rf"error: {re.escape(str(out))}: cannot put the new pages in place \((Permission denied|"
                            rf"Operation not permitted)\); the next render into it completes this one\n", error), error
        assert _generations(out) == rendered["first"]
    with writing.locked(out):
        pass
    markdown, page = _generations(out)
    assert markdown == page != rendered["first"][0] and "model_d.in1k" in rendering.read_ledger(out)


def test_a_commit_record_that_render_did_not_write_stops_it(rendered, truth):
    record = rendered["out"] / writing.RENDER_FOLDER / writing.COMMIT_FILE
    record.write_text(json.dumps({"written_by": "focus-leaderboard render", "files": {"index.html": "../../etc"}}))
    with pytest.raises(errors.LeaderboardError, match=r"commit.json: not a commit record that render wrote; remove "
                                                      r"it \(the pages may be those of two renders\)$"):
        rendering.render(rendered["board"], rendered["out"], truth)
    assert _generations(rendered["out"]) == rendered["first"]


def test_files_of_others_in_the_render_folder_are_left_alone(rendered, truth):
    mine = rendered["out"] / writing.RENDER_FOLDER / "notes.txt"
    mine.write_text("mine")
    rendering.render(rendered["board"], rendered["out"], truth)
    assert mine.read_text() == "mine"


def test_doctests_pass():
    assert doctest.testmod(writing, optionflags=doctest.ELLIPSIS).failed == 0
