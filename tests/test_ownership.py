"""focus_common/ownership.py: a command replaces and deletes only files it recorded as written, checked by content."""

import os
import shutil

import pytest

from focus_common.ownership import MANIFEST, NotWrittenHere, Written, is_written, remove_written, written_files
from harness import runfolder
from harness.probe import main as probe_main
from harness.run import main as eval_main

FAST = ["--models", "test_resnet", "--random-init", "--batch-size", "8", "--workers", "0", "--n-bootstrap", "10",
        "--quiet", "--figures", "none", "--limit", "8"]


def test_a_file_written_through_the_manifest_is_owned_and_one_changed_since_is_not(tmp_path):
    written = Written(tmp_path)
    written.replace(tmp_path / "a.json", "{}\n")
    assert written.owns(tmp_path / "a.json") and written_files(tmp_path) == ["a.json"]
    (tmp_path / "a.json").write_text('{"edited": true}\n')
    assert not written.owns(tmp_path / "a.json")
    with pytest.raises(NotWrittenHere, match=rf"^{tmp_path / 'a.json'}: not a file this toolkit wrote there \(no "
                                             rf"record of it in \.focus-written\.json\), so it is not replaced: move "
                                             rf"it away, or write to another folder$"):
        written.replace(tmp_path / "a.json", "{}\n")
    assert (tmp_path / "a.json").read_text() == '{"edited": true}\n'


def test_a_copied_folder_stays_the_toolkits_and_a_file_of_the_same_name_does_not(tmp_path):
    Written(tmp_path / "run").folder.mkdir()
    Written(tmp_path / "run").replace(tmp_path / "run" / "report.md", "# report\n")
    copy = shutil.copytree(tmp_path / "run", tmp_path / "copy")
    assert is_written(copy / "report.md")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "report.md").write_text("# report\n")  # the same bytes, but no record of them there
    assert not is_written(tmp_path / "other" / "report.md")


def test_links_fifos_and_folders_are_never_owned_and_a_refusal_deletes_nothing(tmp_path):
    written = Written(tmp_path)
    written.replace(tmp_path / "mine.txt", "mine")
    (tmp_path / "link").symlink_to(tmp_path / "mine.txt")
    os.mkfifo(tmp_path / "fifo")
    for name in ("link", "fifo"):
        with pytest.raises(NotWrittenHere, match=f"{name}: not a file this toolkit wrote there"):
            remove_written([tmp_path / "mine.txt", tmp_path / name])
        assert (tmp_path / "mine.txt").exists()  # checked before anything went
    remove_written([tmp_path / "mine.txt"])
    assert not (tmp_path / "mine.txt").exists() and (tmp_path / "link").is_symlink()


def test_a_damaged_manifest_records_nothing(tmp_path):
    Written(tmp_path).replace(tmp_path / "a.txt", "a")
    (tmp_path / MANIFEST).write_text("{not json")
    assert not is_written(tmp_path / "a.txt")
    (tmp_path / MANIFEST).write_text("[" * 100_000 + "]" * 100_000)  # nested too deep for json
    assert not is_written(tmp_path / "a.txt")


def test_a_growing_log_is_known_by_its_first_line(tmp_path):
    written = Written(tmp_path)
    written.replace(tmp_path / "x.log", "# the drawer's log\n")
    written.record(tmp_path / "x.log", growing=True)
    with open(tmp_path / "x.log", "a") as log:
        log.write("drew 3 figures\n")
    assert written.owns(tmp_path / "x.log")
    (tmp_path / "x.log").write_text("a user's notes\n")
    assert not written.owns(tmp_path / "x.log")


def test_focus_eval_refuses_a_users_files_in_a_model_folder_without_its_config_and_deletes_nothing(
        converted, tmp_path, capsys):
    # The case: a folder with no config.json, holding a user's metrics.json and a draft in parts/.
    model_dir = runfolder.model_dir(tmp_path / "work", "test_resnet")
    (model_dir / "parts").mkdir(parents=True)
    (model_dir / "metrics.json").write_text('{"my": 1}')
    (model_dir / "parts" / "part-2024-draft.txt").write_text("x")
    assert eval_main(["--data", str(converted), "--output", str(tmp_path / "work"), *FAST]) == 2
    err = capsys.readouterr().err
    assert f"{model_dir / 'metrics.json'}: not a file this toolkit wrote there" in err and err.count("\n") == 1
    assert (model_dir / "metrics.json").read_text() == '{"my": 1}'
    assert (model_dir / "parts" / "part-2024-draft.txt").read_text() == "x"
    (model_dir / "metrics.json").unlink()
    assert eval_main(["--data", str(converted), "--output", str(tmp_path / "work"), *FAST]) == 2
    assert f"{model_dir / 'parts' / 'part-2024-draft.txt'}: not a file this toolkit wrote there" in \
        capsys.readouterr().err
    assert (model_dir / "parts" / "part-2024-draft.txt").exists()


def test_focus_probe_refuses_a_users_features_file_without_its_config(converted, tmp_path, capsys):
    model_dir = runfolder.model_dir(tmp_path / "work", "test_resnet")
    model_dir.mkdir(parents=True)
    (model_dir / "features.parquet").write_text("my own features")
    assert probe_main(["--data", str(converted), "--output", str(tmp_path / "work"), "--models", "test_resnet",
                       "--random-init", "--workers", "0", "--quiet", "--limit", "8"]) == 2
    assert f"{model_dir / 'features.parquet'}: not a file this toolkit wrote there" in capsys.readouterr().err
    assert (model_dir / "features.parquet").read_text() == "my own features"


def test_no_resume_deletes_the_harness_files_and_refuses_a_users_file_among_them(converted, tmp_path, capsys):
    output = tmp_path / "run"
    assert eval_main(["--data", str(converted), "--output", str(output), *FAST]) == 0
    model_dir = runfolder.model_dir(output, "test_resnet")
    (model_dir / "predictions.parquet").write_bytes(b"the user's edit")
    assert eval_main(["--data", str(converted), "--output", str(output), *FAST, "--no-resume"]) == 2
    assert f"{model_dir / 'predictions.parquet'}: not a file this toolkit wrote there" in capsys.readouterr().err
    assert (model_dir / "metrics.json").exists()  # nothing was deleted: every file is checked first
    (model_dir / "predictions.parquet").unlink()
    assert eval_main(["--data", str(converted), "--output", str(output), *FAST, "--no-resume"]) == 0
