"""focus_tools.cli: the focus-dataset command line."""

import focus_dataset as fd


def test_cli_reports_bad_input_on_stderr_with_exit_status_2(tmp_path, capsys):
    assert fd.main(["convert", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    assert "no such file or folder; expected a FOCUS release folder or focus.zip" in capsys.readouterr().err
