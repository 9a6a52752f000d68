"""focus_common/locks.py: one lock per folder, naming its holder; a holder that does not let go is named too."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from focus_common import locks

REPO = Path(__file__).resolve().parents[1]


def test_a_held_folder_stops_a_second_command_naming_the_holder(tmp_path):
    with locks.folder_lock(tmp_path, "focus-eval of m"):
        with pytest.raises(locks.FolderInUse, match=rf"^{tmp_path} is in use by focus-eval of m \(pid {os.getpid()} on "):
            with locks.folder_lock(tmp_path, "another"):
                pass
    assert (tmp_path / locks.LOCK_FILE).read_text() == ""  # let go of cleanly: not a stale lock


def test_a_fifo_or_a_link_in_the_locks_place_is_refused_with_what_to_do(tmp_path):
    os.mkfifo(tmp_path / locks.LOCK_FILE)
    with pytest.raises(RuntimeError, match=rf"^{tmp_path / locks.LOCK_FILE} is not a regular file: remove it$"):
        with locks.folder_lock(tmp_path, "me"):
            pass
    (tmp_path / locks.LOCK_FILE).unlink()
    (tmp_path / locks.LOCK_FILE).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RuntimeError, match=r"cannot be opened as a lock file .*: remove it"):
        with locks.folder_lock(tmp_path, "me"):
            pass
    assert not (tmp_path / "elsewhere").exists()


HOLDER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from focus_common import locks
    with locks.folder_lock({folder!r}, "a stopped focus-eval"):
        print("held", flush=True)
        time.sleep(60)
""")


def test_waiting_for_a_holder_that_is_stopped_ends_with_its_name(tmp_path, monkeypatch, caplog):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(repo=str(REPO), folder=str(tmp_path))],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        holder.send_signal(signal.SIGSTOP)  # Ctrl-Z: it holds the lock and never lets go
        monkeypatch.setattr(locks, "WAIT_S", 1)
        start = time.monotonic()
        with pytest.raises(locks.FolderInUse, match=rf"^{tmp_path} is still in use by a stopped focus-eval \(pid "
                                                    rf"{holder.pid} .* after 1 s: if that process is stopped"):
            with locks.folder_lock(tmp_path, "focus-eval, writing run.json", wait=True):
                pass
        assert time.monotonic() - start < 30
        assert f"is in use by a stopped focus-eval (pid {holder.pid}" in caplog.text  # said at once, not at the end
    finally:
        holder.send_signal(signal.SIGCONT)
        holder.kill()
        holder.wait()


def test_a_staging_folder_is_a_leftover_only_when_no_live_process_holds_it(tmp_path):
    folder = tmp_path / ".out.partial-abc"
    folder.mkdir()
    with locks.folder_lock(folder, "focus-dataset convert"):
        assert locks.held_by(folder).startswith("focus-dataset convert (pid ")
    assert locks.held_by(folder) is None
