"""harness.comparisons: copies rejected, near-copies flagged, each table's significance."""

import doctest
import os
import shutil
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from focus_common import inputs
from focus_tools import schema
from harness import runfolder
from harness.leaderboard import (cli, comparisons, errors, packing, rendering, significance,
                                 submission as submission_format, tables, verification, writing)

from .fabricate import MODELS, edit_json, fabricate_run


def _verified(folder: Path, truth) -> verification.Verification:
    verified = verification.verify(folder, truth)
    assert verified.accepted, verified.problems
    return verified


def test_group_weights_give_the_metrics_own_numbers(submissions, truth):
    """The groups behind every statistical column reproduce the metric's values: one definition, pinned."""
    weights = comparisons.group_weights(truth)
    for name in ("model_a.in1k", "model_b.in1k", "model_c.in1k"):
        verified = _verified(submissions / name, truth)
        accuracies = significance.group_accuracies(np.ones((1, truth.num_images)), verified.correct[None, :],
                                                   np.stack(list(weights.values())))
        values = comparisons._column_values(accuracies, list(weights))
        expected = submission_format.headline(verified.recomputed)
        for key in comparisons.COLUMN_GROUPS:
            if expected[key] is None:
                assert np.isnan(values[key][0, 0]), key
            else:
                assert values[key][0, 0] == pytest.approx(expected[key], abs=1e-6), (name, key)


@pytest.fixture
def board(tmp_path, submissions) -> Path:
    return Path(shutil.copytree(submissions, tmp_path / "submissions"))


def _problems(verifications, name: str) -> list[str]:
    return next(v for v in verifications if v.submission.name == name).problems


def test_a_copied_folder_is_rejected_naming_the_earlier_submission(board, truth):
    shutil.copytree(board / "model_b.in1k", board / "zz_copy")
    verifications = [verification.verify(folder, truth) for folder in verification.submission_folders(board)]
    comparisons.reject_copies(verifications)
    assert _problems(verifications, "zz_copy") == [
        "predictions.parquet: the same top-1 as the earlier submission model_b.in1k for every one of its 48 "
        "images; a copied submission is not ranked (earlier by folder name, the claimed submitted dates being the "
        "same)"]
    assert [v.submission.name for v in verifications if v.accepted] == ["model_a.in1k", "model_b.in1k",
                                                                        "model_c.in1k"]


def test_a_renamed_copy_submitted_later_is_the_copy_whatever_its_name(board, truth):
    copy = Path(shutil.copytree(board / "model_a.in1k", board / "a_copy"))

    def rename(metadata):
        metadata["model"], metadata["paper_name"] = "my_own_model", "My own model"
        metadata["submitted"] = (datetime.fromisoformat(metadata["submitted"]) + timedelta(minutes=5)).isoformat()

    edit_json(copy, submission_format.SUBMISSION_FILE, rename)
    verifications = [verification.verify(folder, truth) for folder in verification.submission_folders(board)]
    comparisons.reject_copies(verifications)
    assert _problems(verifications, "a_copy")[0].startswith(
        "predictions.parquet: the same top-1 as the earlier submission model_a.in1k for every one")
    assert _problems(verifications, "model_a.in1k") == []


def test_a_symbolic_link_to_a_submission_folder_is_the_same_submission(board, truth):
    (board / "another_name").symlink_to(board / "model_c.in1k", target_is_directory=True)
    verifications = [verification.verify(folder, truth) for folder in verification.submission_folders(board)]
    comparisons.reject_copies(verifications)
    assert _problems(verifications, "another_name") == [
        "another_name: a symbolic link to the submission model_c.in1k, the same submission; it is ranked once"]
    assert _problems(verifications, "model_c.in1k") == []


def test_render_leaves_copies_and_links_out_and_says_why(board, truth, tmp_path):
    shutil.copytree(board / "model_b.in1k", board / "zz_copy")
    (board / "zz_link").symlink_to(board / "model_a.in1k", target_is_directory=True)
    verifications = rendering.render(board, tmp_path / "site", truth)
    assert sorted(v.submission.name for v in verifications if not v.accepted) == ["zz_copy", "zz_link"]
    markdown = (tmp_path / "site" / rendering.MARKDOWN_FILE).read_text()
    assert "- zz\\_copy: predictions.parquet: the same top-1 as the earlier submission model\\_b.in1k" in markdown
    assert "- zz\\_link: zz\\_link: a symbolic link to the submission model\\_a.in1k" in markdown


def test_cli_verify_against_the_submissions_folder_rejects_a_copy(board, converted, capsys):
    shutil.copytree(board / "model_b.in1k", board / "zz_copy")
    assert cli.main(["verify", str(board / "model_b.in1k"), "--data", str(converted),
                             "--submissions", str(board)]) == 0
    assert cli.main(["verify", str(board / "zz_copy"), "--data", str(converted),
                             "--submissions", str(board)]) == 1
    output = capsys.readouterr().out
    assert (f"{board / 'zz_copy'}: rejected, 1 problem(s)\n  - predictions.parquet: the same top-1 as the earlier "
            f"submission model_b.in1k for every one of its 48 images") in output
    assert cli.main(["verify", str(board / "zz_copy"), "--data", str(converted)]) == 0  # on its own: valid


def test_cli_verify_of_a_new_submission_against_the_folder_catches_a_copy_from_outside(board, tmp_path, converted,
                                                                                       capsys):
    outside = Path(shutil.copytree(board / "model_a.in1k", tmp_path / "incoming"))
    edit_json(outside, submission_format.SUBMISSION_FILE, lambda m: m.update(submitted=(
        datetime.fromisoformat(m["submitted"]) + timedelta(minutes=1)).isoformat()))
    assert cli.main(["verify", str(outside), "--data", str(converted), "--submissions", str(board)]) == 1
    assert "the same top-1 as the earlier submission model_a.in1k" in capsys.readouterr().out


@pytest.mark.parametrize("spelling", ["absolute", "relative folder", "dot-dot"])
def test_cli_verify_against_the_folder_finds_the_submission_however_it_is_spelled(board, converted, monkeypatch,
                                                                                  capsys, spelling):
    """The folder's own entry, spelled otherwise than the folder lists it, is itself, not a link to itself."""
    monkeypatch.chdir(board.parent)
    submission, folder = {"absolute": (str(board / "model_a.in1k"), "submissions"),
                          "relative folder": ("submissions/model_a.in1k", str(board)),
                          "dot-dot": ("./submissions/../submissions/model_a.in1k", "submissions")}[spelling]
    assert cli.main(["verify", submission, "--data", str(converted), "--submissions", folder]) == 0
    assert ": accepted\n" in capsys.readouterr().out


def test_cli_verify_against_the_folder_rejects_a_backdated_copy_from_outside(board, tmp_path, converted, capsys):
    """A submission arriving from outside the folder is later than every one in it, whatever its claimed dates."""
    outside = Path(shutil.copytree(board / "model_a.in1k", tmp_path / "incoming"))

    def backdate(metadata):
        metadata["model"] = "mine"
        metadata["submitted"] = (datetime.fromisoformat(metadata["submitted"]) - timedelta(days=1)).isoformat()
        for key in ("started", "finished"):
            metadata["evaluated"][key] = (datetime.fromisoformat(metadata["evaluated"][key])
                                          - timedelta(days=2)).isoformat()

    edit_json(outside, submission_format.SUBMISSION_FILE, backdate)
    assert cli.main(["verify", str(outside), "--data", str(converted), "--submissions", str(board)]) == 1
    assert ("  - predictions.parquet: the same top-1 as the earlier submission model_a.in1k for every one of its 48 "
            "images; a copied submission is not ranked (earlier: already in the submissions folder, which this "
            "submission is not)\n") in capsys.readouterr().out


def test_a_copy_in_another_table_is_a_copy_even_claiming_the_same_model_and_weights(board, truth):
    """Editing the claimed preprocessing moves a copy to another table, where it is still a copy: under another
    name by its top-1, under the same model and weights by its probabilities, bit-identical to the original's
    (another preprocessing changes them)."""
    renamed = Path(shutil.copytree(board / "model_b.in1k", board / "zz_renamed"))
    same = Path(shutil.copytree(board / "model_b.in1k", board / "zz_same_model"))

    def timm_preprocessing(metadata):
        metadata["preprocessing"]["protocol"] = "timm"

    edit_json(same, submission_format.SUBMISSION_FILE, timm_preprocessing)
    edit_json(renamed, submission_format.SUBMISSION_FILE, lambda m: (timm_preprocessing(m), m.update(model="my_model")))
    verifications = [verification.verify(folder, truth) for folder in verification.submission_folders(board)]
    assert all(v.accepted for v in verifications)
    assert submission_format.board_of(verifications[-1].metadata) != submission_format.board_of(verifications[1].metadata)
    comparisons.reject_copies(verifications)
    assert _problems(verifications, "zz_renamed") == [
        "predictions.parquet: the same top-1 as the earlier submission model_b.in1k for every one of its 48 "
        "images; a copied submission is not ranked (earlier by folder name, the claimed submitted dates being the "
        "same)"]
    assert _problems(verifications, "zz_same_model") == [
        "predictions.parquet: the same top-5 classes and probabilities, bit for bit, as the earlier submission "
        "model_b.in1k on 48 of its 48 images (a copy from 99%); a copied submission is not ranked (earlier by folder "
        "name, the claimed submitted dates being the same)"]


def test_the_same_evaluation_scored_with_another_mapping_is_not_a_copy(board, truth, tmp_path):
    """The same run's top-5, bit for bit, under the restricted mapping: the same model's other table."""
    fabricate_run(tmp_path / "run", truth.table, "model_a.in1k", mapping="restricted", **MODELS["model_a.in1k"])
    packing.pack(tmp_path / "run", "model_a.in1k", board / "zz_restricted")
    verifications = [verification.verify(folder, truth) for folder in verification.submission_folders(board)]
    original, restricted = verifications[0], verifications[-1]
    assert restricted.accepted and np.array_equal(restricted.top5, original.top5)
    comparisons.reject_copies(verifications)
    assert restricted.accepted


def _backdated_copy(board: Path, name: str, copy: str) -> Path:
    """A copy of submission `name` under another model name, claiming to be a day older (and evaluated before)."""
    folder = Path(shutil.copytree(board / name, board / copy))

    def backdate(metadata):
        metadata["model"] = "mine"
        for key, value in (("submitted", metadata["submitted"]), *metadata["evaluated"].items()):
            earlier = (datetime.fromisoformat(value) - timedelta(days=1)).isoformat()
            if key == "submitted":
                metadata["submitted"] = earlier
            else:
                metadata["evaluated"][key] = earlier

    edit_json(folder, submission_format.SUBMISSION_FILE, backdate)
    return folder


def test_render_keeps_the_submission_its_ledger_accepted_before_a_backdated_copy(board, truth, tmp_path):
    site = tmp_path / "site"
    first = datetime.now(timezone.utc).replace(microsecond=0)
    rendering.render(board, site, truth, now=first)
    _backdated_copy(board, "model_a.in1k", "a_copy")
    verifications = rendering.render(board, site, truth, now=first + timedelta(hours=1))
    assert _problems(verifications, "model_a.in1k") == []
    assert _problems(verifications, "a_copy") == [
        f"predictions.parquet: the same top-1 as the earlier submission model_a.in1k for every one of its 48 images; "
        f"a copied submission is not ranked (earlier: accepted by an earlier render on {first.isoformat()}, as its "
        f"ledger records; this one was not)"]
    ledger = rendering.read_ledger(site)
    assert sorted(ledger) == ["model_a.in1k", "model_b.in1k", "model_c.in1k"]  # the copy was not accepted
    assert {entry["first_accepted"] for entry in ledger.values()} == {first}  # kept from the first render
    assert ledger["model_a.in1k"]["predictions_sha256"] == inputs.sha256_file(
        board / "model_a.in1k" / submission_format.PREDICTIONS_FILE)


def test_without_a_ledger_the_claimed_date_decides_and_the_rejection_says_so(board, truth, tmp_path):
    copy = _backdated_copy(board, "model_a.in1k", "a_copy")
    original = runfolder.read_json(board / "model_a.in1k" / submission_format.SUBMISSION_FILE)["submitted"]
    claimed = runfolder.read_json(copy / submission_format.SUBMISSION_FILE)["submitted"]
    verifications = rendering.render(board, tmp_path / "site", truth)
    assert _problems(verifications, "a_copy") == []
    assert _problems(verifications, "model_a.in1k")[0].endswith(
        f"(earlier by the claimed submitted dates: {datetime.fromisoformat(claimed).isoformat()} against "
        f"{datetime.fromisoformat(original).isoformat()})")


def test_render_ledger_takes_a_resubmission_as_a_new_arrival(board, truth, tmp_path):
    site = tmp_path / "site"
    first = datetime.now(timezone.utc).replace(microsecond=0)
    rendering.render(board, site, truth, now=first)
    shutil.rmtree(board / "model_c.in1k")
    shutil.copytree(board / "model_b.in1k", board / "model_c.in1k")  # other predictions under the same name
    verifications = rendering.render(board, site, truth, now=first + timedelta(hours=1))
    assert _problems(verifications, "model_c.in1k")[0].endswith(
        f"(earlier: accepted by an earlier render on {first.isoformat()}, as its ledger records; this one was not)")
    assert rendering.read_ledger(site)["model_c.in1k"]["first_accepted"] == first  # the old entry stays


def test_render_refuses_a_ledger_that_it_did_not_write(board, truth, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / rendering.LEDGER_FILE).write_text('{"accepted": {}}')
    with pytest.raises(errors.LeaderboardError, match=r"accepted.json: not the ledger of accepted submissions "
                                                           r"that render writes"):
        rendering.render(board, site, truth)
    assert sorted(p.name for p in site.iterdir()) == [writing.RENDER_FOLDER, rendering.LEDGER_FILE]


def test_render_names_a_deeply_nested_ledger_in_one_line(board, converted, tmp_path, capsys):
    site = tmp_path / "site"
    site.mkdir()
    (site / rendering.LEDGER_FILE).write_text("[" * 100_000 + "]" * 100_000)
    assert cli.main(["render", str(board), str(site), "--data", str(converted)]) == 2
    assert capsys.readouterr().err == (
        f"error: {site / rendering.LEDGER_FILE}: not the ledger of accepted submissions that render writes (arrays "
        f"and objects nested 100,000 deep, deeper than the 64 levels allowed); move it, or choose another OUT\n")


@pytest.mark.parametrize("plant, message", [
    (lambda path, tmp: path.symlink_to(tmp / "elsewhere.json"), r"accepted.json: a symbolic link, not the ledger"),
    (lambda path, tmp: os.mkfifo(path), r"accepted.json: not a regular file; expected the ledger of accepted"),
])
def test_render_refuses_a_ledger_that_is_a_link_or_a_fifo_without_reading_it(tmp_path, plant, message):
    site = tmp_path / "site"
    site.mkdir()
    (tmp_path / "elsewhere.json").write_text('{"written_by": "focus-leaderboard render", "accepted": {}}')
    plant(site / rendering.LEDGER_FILE, tmp_path)
    with pytest.raises(errors.LeaderboardError, match=message):  # a FIFO would block a plain read
        rendering.read_ledger(site)


def _synthetic(name: str, top1: np.ndarray, model: str, sha: str = "0" * 64, mapping: str = "paper",
               top5: np.ndarray | None = None, protocol: str = "paper") -> verification.Verification:
    """An accepted submission: its top-1, and its top-5 values (by default probabilities of its own)."""
    if top5 is None:
        top5 = _top5(top1, np.random.default_rng(zlib.crc32(name.encode())))
    return verification.Verification(
        Path(name), [], metadata={"label_space": "imagenet", "mapping": mapping, "model": model, "precision": "fp32",
                                  "preprocessing": {"protocol": protocol, "custom": False},
                                  "weights": {"sha256": sha}, "submitted": "2026-01-01T00:00:00+00:00"},
        recomputed={}, correct=np.ones(len(top1), dtype=bool), top1=top1, top5=top5)


def _top5(top1: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """top5_values of a top-5 led by `top1`, with probabilities drawn from `rng`."""
    ids = (top1[:, None] + np.arange(5)) % 1000
    return verification.top5_values(ids, -np.sort(-rng.dirichlet(np.ones(6), size=len(top1))[:, :5], axis=1))


def _changed(top1: np.ndarray, top5: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A copy of (top1, top5) with its first `rows` images given another top-5, led by another class."""
    top1, top5 = top1.copy(), top5.copy()
    top1[:rows] = (top1[:rows] + 1) % 1000
    top5[:rows] = _top5(top1[:rows], np.random.default_rng(99))
    return top1, top5


@pytest.mark.parametrize("changed, sha, protocol, copy", [
    (1, "0" * 64, "paper", True),  # the same model and weights, resubmitted: the same evaluation twice
    (1, "1" * 64, "timm", True),  # other weights, in another table
    (6, "1" * 64, "paper", True),  # 594 of 600 images: 99.0%
    (7, "1" * 64, "paper", False),  # 593 of 600: below 99%
])
def test_a_copy_is_judged_on_its_probabilities_whatever_its_predictions_and_claims(changed, sha, protocol, copy):
    """600 images, `changed` of them given another top-5 (and top-1) in the copy."""
    top1 = np.arange(600) % 997
    original = _synthetic("original", top1, "resnet50")
    copied_top1, copied_top5 = _changed(top1, original.top5, changed)
    copied = _synthetic("zz_copy", copied_top1, "resnet50", sha=sha, protocol=protocol, top5=copied_top5)
    comparisons.reject_copies([original, copied])
    expected = [f"predictions.parquet: the same top-5 classes and probabilities, bit for bit, as the earlier "
                f"submission original on {600 - changed} of its 600 images (a copy from 99%); a copied submission is "
                f"not ranked (earlier by folder name, the claimed submitted dates being the same)"]
    assert copied.problems == (expected if copy else [])
    assert original.problems == []


def test_near_copies_are_flagged_across_tables():
    top1 = np.arange(1000) % 997
    near = top1.copy()
    near[:3] = (near[:3] + 1) % 1000  # 99.7% the same
    verifications = [_synthetic("paper", top1, "resnet50"), _synthetic("moved", near, "my_net", protocol="timm")]
    assert len({submission_format.board_of(v.metadata) for v in verifications}) == 2
    comparisons.reject_copies(verifications)
    comparisons.flag_near_copies(verifications)
    assert [v.near_copies for v in verifications] == [[("moved", 0.997)], [("paper", 0.997)]]


def test_near_copies_of_a_different_model_are_flagged_with_their_agreement():
    rng = np.random.default_rng(0)
    top1 = rng.integers(0, 1000, 1000)
    near = top1.copy()
    near[:3] = (near[:3] + 1) % 1000  # 99.7% the same
    far = top1.copy()
    far[:10] = (far[:10] + 1) % 1000  # 99.0%
    verifications = [_synthetic("a", top1, "resnet50"), _synthetic("b", near, "my_net"),
                     _synthetic("c", far, "other_net"), _synthetic("d", near.copy(), "resnet50", sha="1" * 64)]
    comparisons.reject_copies(verifications)
    assert [v.problems for v in verifications][3] == [
        "predictions.parquet: the same top-1 as the earlier submission b for every one of its 1,000 images; a "
        "copied submission is not ranked (earlier by folder name, the claimed submitted dates being the same)"]
    comparisons.flag_near_copies(verifications)
    assert verifications[0].near_copies == [("b", 0.997)]
    assert verifications[1].near_copies == [("a", 0.997)]
    assert verifications[2].near_copies == []  # 99.0%: below the threshold


def test_the_same_predictions_scored_in_another_table_are_not_a_copy():
    top1 = np.arange(1000) % 997
    verifications = [_synthetic("paper", top1, "lite0"), _synthetic("restricted", top1, "lite0", mapping="restricted"),
                     _synthetic("zz_copy", top1.copy(), "someone_else")]
    comparisons.reject_copies(verifications)
    assert [len(v.problems) for v in verifications] == [0, 0, 1]
    assert "the earlier submission paper for every one" in verifications[2].problems[0]


def test_the_same_model_at_another_precision_is_not_a_near_copy():
    top1 = np.arange(1000) % 1000
    other = top1.copy()
    other[0] = 7
    verifications = [_synthetic("fp32", top1, "lite0"), _synthetic("bf16", other, "lite0")]
    comparisons.flag_near_copies(verifications)
    assert [v.near_copies for v in verifications] == [[], []]


def test_tables_carry_rank_intervals_mcnemar_paired_gap_differences_and_the_fit(site, truth):
    _, verifications = site
    (table,) = tables.leaderboard_tables([v for v in verifications if v.accepted], truth)
    rows, comparison = table.rows, table.comparison
    assert [row["submission"] for row in rows] == ["model_a.in1k", "model_b.in1k", "model_c.in1k"]
    assert set(comparison.rank_intervals) == set(comparisons.COLUMN_GROUPS)
    for key, bounds in comparison.rank_intervals.items():
        assert all(1 <= low <= high <= 3 for low, high, _ in bounds), key
        assert [row["ranks"][key] for row in rows] == bounds
    assert comparison.rank_intervals["accuracy"][0] == (1, 1, False)  # 80% against 55% on 48 images
    assert comparison.neighbours[0] is None and rows[0]["values"]["vs_above"] is None
    for i in (1, 2):
        pair = comparison.neighbours[i]
        only_this, only_above = significance.discordant(rows[i]["correct"], rows[i - 1]["correct"])
        assert (pair["above"], pair["only_this"], pair["only_above"]) == (rows[i - 1]["submission"], only_this,
                                                                         only_above)
        assert pair["p_value"] == float(significance.mcnemar_exact(only_this, only_above)) == rows[i]["values"][
            "vs_above"]
        for gap in schema.GAPS:
            value, low, high = pair["gaps"][gap]
            this, above = rows[i]["values"][gap], rows[i - 1]["values"][gap]
            assert value == (None if this is None or above is None else pytest.approx(this - above))
            assert low is None or low <= high
    fit = comparison.fit
    assert fit["n"] == 3 and fit["submissions"] == [row["submission"] for row in rows]
    assert [row["values"]["effective_robustness"] for row in rows] == pytest.approx(fit["effective_robustness"])
    assert fit["common"] == [row["common"] for row in rows] and fit["uncommon"] == [row["uncommon"] for row in rows]


def test_doctests_pass():
    assert doctest.testmod(comparisons, optionflags=doctest.ELLIPSIS).failed == 0
