"""focus_tools.card: the converted folder's dataset card."""

import datasets

import focus_dataset as fd


def test_two_different_conversions_never_share_the_datasets_cache(tmp_path):
    # datasets names a local folder's cache after its YAML metadata: the split sizes keep them apart.
    small = fd.write_sample_release(tmp_path / "small" / "focus", 12, seed=1)
    large = fd.write_sample_release(tmp_path / "large" / "focus", 20, seed=1)
    for release in (small, large):
        fd.convert(release, release.parent / "converted" / "focus")
    cache = str(tmp_path / "cache")
    sizes = [datasets.load_dataset(str(r.parent / "converted" / "focus"), split="test", cache_dir=cache).num_rows
             for r in (small, large)]
    assert sizes == [12, 20]
