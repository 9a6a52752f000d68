"""focus_tools.card: the converted folder's dataset card."""

import json

import datasets

from focus_tools import card, convert, sample
import focus_dataset as fd
from conftest import published_version_table


def test_two_different_conversions_never_share_the_datasets_cache(tmp_path):
    # datasets names a local folder's cache after its YAML metadata: the split sizes keep them apart.
    small = sample.write_sample_release(tmp_path / "small" / "focus", 12, seed=1)
    large = sample.write_sample_release(tmp_path / "large" / "focus", 20, seed=1)
    for release in (small, large):
        convert.convert(release, release.parent / "converted" / "focus")
    cache = str(tmp_path / "cache")
    sizes = [datasets.load_dataset(str(r.parent / "converted" / "focus"), split="test", cache_dir=cache).num_rows
             for r in (small, large)]
    assert sizes == [12, 20]


def test_card_and_report_name_the_closest_published_version(converted):
    card = (converted / "README.md").read_text()
    assert "closest to the **23,902-image\nversion** of FOCUS, the version the paper's text describes" in card
    assert "measured on another version" not in card
    report = json.loads((converted / convert.REPORT_NAME).read_text())
    assert report["published_version"]["version"] == 23902
    assert report["published_version"]["num_images"] == 48


def test_card_of_the_20815_version_says_tables_3_and_4_were_measured_on_another():
    table = published_version_table(20815)
    text = card.render_card(fd.focus_info(), table, fd.load_uncommon_table(), {"skipped_rows": [], "image_problems": [],
                            "images_without_rows": []}, num_bytes=1)
    assert "closest to the **20,815-image\nversion** of FOCUS, the version in the authors' repository notebooks" in text
    assert "0\nTable 1 cell(s)" in text
    assert "The paper's Tables 3 and 4 were measured on another version" in text


def test_card_says_which_classes_have_no_gap_under_the_table_in_use():
    table = published_version_table(23902)
    empty_report = {"skipped_rows": [], "image_problems": [], "images_without_rows": []}
    paper_card = card.render_card(fd.focus_info(), table, fd.load_uncommon_table(), empty_report, num_bytes=1)
    assert "no time is uncommon for frog, so the per-class G_t of frog is undefined" in paper_card
    # A user's table that gives frog an uncommon time and takes cat's and dog's away.
    uncommon = fd.load_uncommon_table()
    uncommon["time"] = dict(uncommon["time"], frog=["night"], cat=[], dog=[])
    user_card = card.render_card(fd.focus_info(), table, uncommon, empty_report, num_bytes=1)
    assert "G_t of frog" not in user_card
    assert "no time is uncommon for cat, dog, so the per-class G_t of cat, dog are undefined" in user_card
    uncommon["time"] = {name: ["night"] for name in fd.CLASS_NAMES}
    every_card = card.render_card(fd.focus_info(), table, uncommon, empty_report, num_bytes=1)
    assert "Every class has an uncommon value of every attribute in this table" in every_card
