"""harness.rendering: the Markdown and the page, one table per board; the page in headless Chromium."""

import base64
import doctest
import html
import json
import os
import re
import select
import shutil
import stat
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.leaderboard import (comparisons, errors, packing, rendering, submission as submission_format, tables,
                                 writing)
from harness.leaderboard import markdown as markdown_module, page as page_module

from .fabricate import PAPER_PREPROCESSING, as_version_1, edit_json, fabricate_run


CHROMIUM = next((path for path in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(path).exists()), None)


def _order(page: str) -> list[str]:
    return re.findall(r'<tr data-rank="\d+" data-submission="([^"]+)"', page)


def _expected_order(verifications, key: str, descending: bool) -> list[str]:
    """Submission names sorted by a column's recomputed value; ties keep the published (accuracy) order."""
    def value(v):
        if key == "num_params":
            return v.metadata["num_params"]
        if key in v.recomputed["partitions"]:
            return v.recomputed["partitions"][key]["accuracy"]
        return v.recomputed[key]["value"] if isinstance(v.recomputed[key], dict) else v.recomputed[key]

    accepted = sorted((v for v in verifications if v.accepted), key=lambda v: -v.recomputed["accuracy"])
    return [v.submission.name for v in sorted(accepted, key=lambda v: -value(v) if descending else value(v))]


def test_render_shows_recomputed_numbers_best_accuracy_first(site):
    out, verifications = site
    page = (out / rendering.HTML_FILE).read_text()
    assert _order(page) == ["model_a.in1k", "model_b.in1k", "model_c.in1k"]
    markdown = (out / rendering.MARKDOWN_FILE).read_text()
    a = next(v for v in verifications if v.submission.name == "model_a.in1k").recomputed
    row = next(line for line in markdown.splitlines() if line.startswith("| 1 |"))
    assert f"| {100 * a['accuracy']:.2f} | {100 * a['partitions']['P0']['accuracy']:.2f} |" in row
    assert f"| {100 * a['G_t']['value']:.2f} [" in row and "| 50.00 M | fp32 | 224×224 |" in row
    ranked = "| # |" + markdown.split("\n| # |", 1)[1].split("\n\n", 1)[0]
    assert ranked.count("\n| ") == 3  # three models after the header: the tampered claim is not shown
    assert not any("zz" in line for line in markdown.splitlines() if line.startswith("| "))


def test_render_lists_skipped_submissions_with_their_reason(site):
    out, verifications = site
    assert [v.submission.name for v in verifications if not v.accepted] == ["zz_tampered"]
    for name in (rendering.MARKDOWN_FILE, rendering.HTML_FILE):
        text = (out / name).read_text()
        assert "Not shown" in text and "zz" in text and "$.accuracy: claimed 0.99, recomputed" in text


def test_render_escapes_user_strings(site):
    out, _ = site
    page = (out / rendering.HTML_FILE).read_text()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;C&#x27;)&lt;/script&gt; | *C*" in page
    markdown = (out / rendering.MARKDOWN_FILE).read_text()
    assert r"&lt;script&gt;alert('C')&lt;/script&gt; \| \*C\* (model\_c.in1k)" in markdown


def test_render_page_is_self_contained(site):
    page = (site[0] / rendering.HTML_FILE).read_text()
    assert not re.search(r'(src|href)=["\']?(https?:)?//', page)
    assert "<svg" in page and page.count('<circle class="common"') == 4  # legend and three models


def test_render_shows_only_the_papers_mapping_table_when_no_other_board_is_submitted(site):
    markdown = (site[0] / rendering.MARKDOWN_FILE).read_text()
    assert "## ImageNet-1k models, the paper's mapping, the paper's preprocessing\n" in markdown
    assert "restricted" not in markdown and "FOCUS heads" not in markdown


@pytest.fixture(scope="module")
def boards_site(tmp_path_factory, submissions, truth) -> Path:
    """Models A and B (paper's mapping), a restricted-mapping model and a FOCUS head, rendered.

    The restricted model and the head have a better accuracy than A, so a single table would rank them first.
    """
    board = tmp_path_factory.mktemp("boards")
    for model in ("model_a.in1k", "model_b.in1k"):
        shutil.copytree(submissions / model, board / "submissions" / model)
    run = board / "run"
    fabricate_run(run, truth.table, "model_r.in1k", accuracy=0.9, num_params=10, paper_name=None, seed=5,
                  mapping="restricted")
    fabricate_run(run, truth.table, "head_f", accuracy=0.95, num_params=10, paper_name=None, seed=6,
                  label_space="focus", mapping=None)
    for model in ("model_r.in1k", "head_f"):
        packing.pack(run, model, board / "submissions" / model)
    verifications = rendering.render(board / "submissions", board / "site", truth)
    assert all(v.accepted for v in verifications)
    return board / "site"


def _table_order(page: str, table_id: str) -> list[str]:
    return _order(page.split(f'<table id="{table_id}"', 1)[1].split("</table>", 1)[0])


def test_render_ranks_each_mapping_in_its_own_labelled_table(boards_site):
    markdown = (boards_site / rendering.MARKDOWN_FILE).read_text()
    sections = re.split(r"^## ", markdown, flags=re.MULTILINE)[1:]
    assert [section.splitlines()[0] for section in sections[:3]] == [
        "ImageNet-1k models, the paper's mapping, the paper's preprocessing",
        "ImageNet-1k models, restricted mapping (not comparable), the paper's preprocessing",
        "FOCUS heads (10 classes, no mapping), the paper's preprocessing",
    ]
    ranked = [[line.split(" | ")[1] for line in section.splitlines() if re.match(r"\| \d+ \|", line)]
              for section in sections[:3]]
    assert ranked == [["Model A (model\\_a.in1k)", "model\\_b.in1k"], ["model\\_r.in1k"], ["head\\_f"]]
    assert ("Submissions with mapping \"restricted\" take the argmax over the mapped ImageNet classes only: they "
            "never predict none of the FOCUS classes, which scores higher than the paper's mapping. Ranked against "
            "each other only, never against the paper's mapping.") in markdown
    assert ("Submissions with label\\_space \"focus\" (mapping null): models whose head predicts the ten FOCUS "
            "classes directly. Ranked against each other only, never against ImageNet-1k models.") in markdown
    page = (boards_site / rendering.HTML_FILE).read_text()
    assert _table_order(page, "leaderboard") == ["model_a.in1k", "model_b.in1k"]
    assert _table_order(page, "leaderboard-restricted") == ["model_r.in1k"]
    assert _table_order(page, "leaderboard-focus-head") == ["head_f"]
    assert "<h2>ImageNet-1k models, restricted mapping (not comparable), the paper&#x27;s preprocessing</h2>" in page
    assert 'data-rank="1" data-submission="model_r.in1k"' in page  # ranked first among its own kind only


def test_render_shows_both_overall_gaps_with_their_definitions(site):
    out, verifications = site
    a = next(v for v in verifications if v.submission.name == "model_a.in1k").recomputed
    markdown = (out / rendering.MARKDOWN_FILE).read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| # |"))
    assert "| gap\\_overall | gap\\_overall\\_paper |" in header
    row = next(line for line in markdown.splitlines() if line.startswith("| 1 |"))
    assert f"| {100 * a['gap_overall']['value']:.2f} [" in row
    assert f"| {100 * a['gap_overall_paper']['value']:.2f} [" in row
    assert "gap_overall_paper is A(P0) − A(P1 ∪ P2), the definition behind the paper's published overall gaps" \
           in markdown
    page = (out / rendering.HTML_FILE).read_text()
    th = re.search(r'<th data-key="gap_overall_paper"[^>]*title="([^"]*)"', page)
    assert th and th.group(1).startswith("overall gap as the paper published it, A(P0) − A(P1 ∪ P2)")
    assert f'<td data-value="{a["gap_overall_paper"]["value"]!r}">' in page


@pytest.fixture(scope="module")
def preprocessing_site(tmp_path_factory, submissions, truth) -> Path:
    """Model A (the paper's preprocessing), B (timm's), C (custom) and a version-1 submission, rendered."""
    board = tmp_path_factory.mktemp("preprocessing")
    run = board / "run"
    shutil.copytree(submissions / "model_a.in1k", board / "submissions" / "model_a.in1k")
    fabricate_run(run, truth.table, "model_b.in1k", accuracy=0.55, num_params=10, paper_name=None, seed=2,
                  preprocessing=PAPER_PREPROCESSING | {"protocol": "timm", "resize": 256, "crop_pct": 0.875,
                                                       "interpolation": "bicubic"})
    fabricate_run(run, truth.table, "model_c.in1k", accuracy=0.3, num_params=10, paper_name=None, seed=3,
                  preprocessing=PAPER_PREPROCESSING | {"custom": True, "mean": [0.5] * 3, "std": [0.5] * 3})
    fabricate_run(run, truth.table, "model_v1", accuracy=0.9, num_params=10, paper_name=None, seed=8)
    for model in ("model_b.in1k", "model_c.in1k", "model_v1"):
        packing.pack(run, model, board / "submissions" / model)
    as_version_1(board / "submissions" / "model_v1")
    verifications = rendering.render(board / "submissions", board / "site", truth)
    assert all(v.accepted for v in verifications)
    return board / "site"


def test_render_ranks_each_preprocessing_in_its_own_labelled_table(preprocessing_site):
    page = (preprocessing_site / rendering.HTML_FILE).read_text()
    assert _table_order(page, "leaderboard") == ["model_a.in1k"]
    assert _table_order(page, "leaderboard-paper-timm") == ["model_v1", "model_b.in1k"]  # version 1 is timm's
    assert _table_order(page, "leaderboard-paper-custom") == ["model_c.in1k"]
    markdown = (preprocessing_site / rendering.MARKDOWN_FILE).read_text()
    assert re.findall(r"^## (.*)$", markdown, flags=re.MULTILINE)[:3] == [
        "ImageNet-1k models, the paper's mapping, the paper's preprocessing",
        "ImageNet-1k models, the paper's mapping, timm preprocessing (not comparable)",
        "ImageNet-1k models, the paper's mapping, custom preprocessing (not comparable)",
    ]
    assert "Preprocessing from each model&#x27;s timm data config" in page
    assert "48 images, paper mapping, paper preprocessing: resize 224, crop 224×224, bilinear" in page
    assert "timm preprocessing: resize 256, crop 224×224, bicubic" in page
    assert "paper preprocessing, custom: resize 224" in page
    assert "timm preprocessing (data config, not recorded)" in page


def _entries(folder: Path) -> list[str]:
    """The files in `folder` and below, relative to it."""
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


def test_render_strict_writes_nothing_when_a_submission_fails(tmp_path, site, truth):
    submissions_dir = site[0].parent / "submissions"
    with pytest.raises(rendering.StrictRenderError, match=r"1 submission\(s\) failed verification \(zz_tampered\)"):
        rendering.render(submissions_dir, tmp_path / "site", truth, strict=True)
    assert _entries(tmp_path / "site") == [f"{writing.RENDER_FOLDER}/.lock"]  # no page, no ledger


def test_render_keeps_the_previous_page_when_rendering_fails(tmp_path, site, truth, monkeypatch):
    out = Path(shutil.copytree(site[0], tmp_path / "site"))
    before = (out / rendering.HTML_FILE).read_text()
    ledger = (out / rendering.LEDGER_FILE).read_text()

    def broken(*args, **kwargs):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(rendering, "render_html", broken)
    with pytest.raises(RuntimeError):
        rendering.render(site[0].parent / "submissions", out, truth)
    assert (out / rendering.HTML_FILE).read_text() == before
    assert (out / rendering.LEDGER_FILE).read_text() == ledger
    assert _entries(out) == sorted([rendering.HTML_FILE, rendering.MARKDOWN_FILE, rendering.LEDGER_FILE,
                                    f"{writing.RENDER_FOLDER}/.lock"])


def test_render_writes_the_site_as_the_umask_says(tmp_path, site, truth):
    previous = os.umask(0o022)
    try:
        rendering.render(site[0].parent / "submissions", tmp_path / "site", truth)
    finally:
        os.umask(previous)
    site = tmp_path / "site"
    assert {stat.S_IMODE(p.stat().st_mode) for p in (site, site / writing.RENDER_FOLDER)} == {0o755}
    assert {stat.S_IMODE((site / name).stat().st_mode) for name in _entries(site)} == {0o644}


def test_render_replaces_only_pages_it_wrote(tmp_path, site, truth):
    out = tmp_path / "www"
    out.mkdir()
    (out / rendering.HTML_FILE).write_text("<html>my own home page</html>")
    with pytest.raises(errors.LeaderboardError, match=r"index.html: not a page that render wrote; render "
                                                           r"replaces only its own leaderboard.md and index.html"):
        rendering.render(site[0].parent / "submissions", out, truth)
    assert (out / rendering.HTML_FILE).read_text() == "<html>my own home page</html>"
    assert sorted(p.name for p in out.iterdir()) == [rendering.HTML_FILE]
    rendering.render(site[0].parent / "submissions", site[0], truth)  # its own pages: replaced


def test_render_refuses_to_write_into_a_submission(tmp_path, submissions, truth):
    board = Path(shutil.copytree(submissions, tmp_path / "submissions"))
    with pytest.raises(errors.LeaderboardError, match=r"site: lies inside the submission folder .*model_a.in1k; "
                                                           r"write the site outside every submission"):
        rendering.render(board, board / "model_a.in1k" / "site", truth)
    assert not (board / "model_a.in1k" / "site").exists()


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe): stdlib only.

    Chromium reads NUL-terminated JSON commands on fd 3 and writes replies on fd 4.
    """

    def __init__(self, profile: Path, timeout: float = 30):
        command_read, self._commands = os.pipe()
        self._replies, reply_write = os.pipe()
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--remote-debugging-pipe", "--window-size=1280,1000", "about:blank"]
        # bash moves the pipe ends to the descriptors 3 and 4 that Chromium expects.
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec 3<&{command_read} 4>&{reply_write} "$@"', "bash", CHROMIUM, *flags],
            pass_fds=(command_read, reply_write), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(command_read)
        os.close(reply_write)
        self.timeout, self._buffer, self._id, self.session = timeout, b"", 0, None

    def send(self, method: str, **params):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            while b"\0" not in self._buffer:
                if not select.select([self._replies], [], [], max(0.0, deadline - time.monotonic()))[0]:
                    raise TimeoutError(f"no reply from Chromium to {method}")
                chunk = os.read(self._replies, 1 << 16)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the pipe during {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
        raise TimeoutError(f"no reply from Chromium to {method}")

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", url=url)["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.wait_for("document.readyState === 'complete' && location.protocol === 'file:'")

    def evaluate(self, expression: str):
        return self.send("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited for {expression}")
            time.sleep(0.05)

    def click(self, selector: str) -> None:
        """A real mouse click (pressed, released) at the middle of the element."""
        x, y = self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                             f"e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); "
                             f"return [r.x + r.width / 2, r.y + r.height / 2]; }})()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._commands)
        os.close(self._replies)


ROW_ORDER = "Array.from(document.querySelectorAll('#leaderboard tbody tr')).map(row => row.dataset.submission)"


SORTED_BY = "document.querySelector('th[data-key=\"{key}\"]').getAttribute('aria-sort') === '{order}'"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install chromium (make test does)")
def test_page_sorts_rows_when_a_column_header_is_clicked_in_headless_chromium(site, tmp_path):
    out, verifications = site
    page = Path(shutil.copy(out / rendering.HTML_FILE, tmp_path / "index.html"))
    browser = Chromium(tmp_path / "profile")
    try:
        browser.open(page.as_uri())
        assert browser.evaluate(ROW_ORDER) == ["model_a.in1k", "model_b.in1k", "model_c.in1k"]
        # Parameters: fewest first on the first click (B 5M, C 20M, A 50M), the reverse on the second.
        browser.click('th[data-key="num_params"] button')
        browser.wait_for(SORTED_BY.format(key="num_params", order="ascending"))
        assert browser.evaluate(ROW_ORDER) == ["model_b.in1k", "model_c.in1k", "model_a.in1k"]
        assert browser.evaluate("location.hash") == "#sort=num_params:asc"  # a link to this view
        browser.click('th[data-key="num_params"] button')
        browser.wait_for(SORTED_BY.format(key="num_params", order="descending"))
        assert browser.evaluate(ROW_ORDER) == ["model_a.in1k", "model_c.in1k", "model_b.in1k"]
        # Each numeric column sorts by the recomputed values: accuracies best first, gaps smallest first.
        for key in ("P0", "P1", "G_t", "G_w", "G_l", "gap_overall", "accuracy"):
            descending = key in ("accuracy", "P0", "P1")
            browser.click(f'th[data-key="{key}"] button')
            browser.wait_for(SORTED_BY.format(key=key, order="descending" if descending else "ascending"))
            assert browser.evaluate(ROW_ORDER) == _expected_order(verifications, key, descending), key
        # A linked sort (#sort=...) applies on load.
        browser.open(page.as_uri() + "#sort=accuracy:asc")
        assert browser.evaluate(ROW_ORDER) == ["model_c.in1k", "model_b.in1k", "model_a.in1k"]
        data = base64.b64decode(browser.send("Page.captureScreenshot", format="png")["data"])
    finally:
        browser.close()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width == 1280 and height > 600 and len(data) > 20_000  # the window's viewport, drawn (not blank)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install chromium (make test does)")
def test_page_sorts_every_boards_table_by_the_clicked_column_in_headless_chromium(boards_site, tmp_path):
    page = Path(shutil.copy(boards_site / rendering.HTML_FILE, tmp_path / "index.html"))
    rows = "Array.from(document.querySelectorAll('table.board')).map(t => Array.from(t.tBodies[0].rows).map(r => " \
           "r.dataset.submission))"
    browser = Chromium(tmp_path / "profile")
    try:
        browser.open(page.as_uri())
        assert browser.evaluate(rows) == [["model_a.in1k", "model_b.in1k"], ["model_r.in1k"], ["head_f"]]
        browser.click('#leaderboard th[data-key="num_params"] button')
        browser.wait_for(SORTED_BY.format(key="num_params", order="ascending"))
        assert browser.evaluate(rows) == [["model_b.in1k", "model_a.in1k"], ["model_r.in1k"], ["head_f"]]
        assert browser.evaluate("Array.from(document.querySelectorAll('th[data-key=\"num_params\"]'))"
                                ".map(th => th.getAttribute('aria-sort'))") == ["ascending"] * 3
    finally:
        browser.close()


@pytest.mark.parametrize("module", [rendering, tables, markdown_module, page_module])
def test_doctests_pass(module):
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0


@pytest.fixture(scope="module")
def ties_site(tmp_path_factory, submissions, truth) -> tuple[Path, list[tables.Table]]:
    """The three submissions and a second model as accurate as A (other images right): rendered, and its tables."""
    board = tmp_path_factory.mktemp("ties")
    shutil.copytree(submissions, board / "submissions")
    fabricate_run(board / "run", truth.table, "model_a2.in1k", accuracy=0.8, num_params=25_000_000,
                  paper_name=None, seed=11)
    packing.pack(board / "run", "model_a2.in1k", board / "submissions" / "model_a2.in1k")
    verifications = rendering.render(board / "submissions", board / "site", truth)
    assert all(v.accepted for v in verifications)
    return board / "site", tables.leaderboard_tables(verifications, truth)


def test_page_and_markdown_show_rank_intervals_ties_paired_comparisons_and_effective_robustness(ties_site):
    out, (table,) = ties_site
    rows, comparison = table.rows, table.comparison
    tied = [row["submission"] for row in rows if row["ranks"]["accuracy"][2]]
    assert tied, "the planted pair should tie on accuracy"
    page = (out / rendering.HTML_FILE).read_text()
    for row in rows:
        low, high, is_tied = row["ranks"]["accuracy"]
        cell = re.search(rf'data-submission="{re.escape(row["submission"])}">.*?<td class="rank" data-ranks="([^"]+)"'
                         rf'.*?<span class="interval">([^<]+)</span><span class="tie"[^>]*?( hidden)?>', page)
        assert json.loads(html.unescape(cell.group(1)))["G_l"] == list(row["ranks"]["G_l"])
        assert cell.group(2) == (str(low) if low == high else f"{low}–{high}")
        assert (cell.group(3) is None) == is_tied
    data = json.loads(re.search(r'<script type="application/json" id="data-paper">(.*?)</script>', page).group(1))
    assert data["effective_robustness_fit"]["n"] == 4
    assert data["effective_robustness_fit"]["slope"] == pytest.approx(comparison.fit["slope"])
    chart = page.split('class="er-chart"', 1)[1].split("</svg>", 1)[0]
    assert chart.count('<circle class="model"') == 4 and 'class="fit"' in chart and 'class="diagonal"' in chart
    assert page.count("<table class=\"pairs\">") == 1
    markdown = (out / rendering.MARKDOWN_FILE).read_text()
    assert "| # | Model | Rank (95%) | Accuracy |" in markdown
    for rank, row in enumerate(rows, 1):
        line = next(line for line in markdown.splitlines() if line.startswith(f"| {rank} | "))
        assert line.split(" | ")[2] == tables.rank_text(row["ranks"]["accuracy"])
    assert "### Paired comparisons with the model ranked above" in markdown
    assert sum(line.startswith("| ") for line in markdown.split("### Paired comparisons", 1)[1].split("\n\n")[2]
               .splitlines()) == 4  # header and the three models below the first
    assert "logit A(P0), fitted over 4 models" in markdown


def test_a_near_copy_is_flagged_on_the_page_with_its_agreement(ties_site, truth, tmp_path, monkeypatch):
    monkeypatch.setattr(comparisons, "NEAR_COPY", 0.0)  # on 48 images only a copy reaches 99.5%
    board = ties_site[0].parent / "submissions"
    verifications = rendering.render(board, tmp_path / "site", truth)
    flagged = {v.submission.name: v.near_copies for v in verifications if v.near_copies}
    assert flagged
    page = (tmp_path / "site" / rendering.HTML_FILE).read_text()
    name, [(other, share), *_] = next(iter(flagged.items()))
    assert f"near copy: agrees with {other} on {100 * share:.1f}% of the images" in page
    assert "Near copies, flagged and not rejected" in (tmp_path / "site" / rendering.MARKDOWN_FILE).read_text()


RANK_CELLS = ("Array.from(document.querySelectorAll('#leaderboard tbody tr')).map(row => [row.dataset.submission, "
              "row.querySelector('td.rank .interval').textContent, !row.querySelector('td.rank .tie').hidden])")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install chromium (make test does)")
def test_page_shows_rank_intervals_ties_and_the_robustness_chart_and_still_sorts_in_headless_chromium(ties_site,
                                                                                                      tmp_path):
    out, (table,) = ties_site
    page = Path(shutil.copy(out / rendering.HTML_FILE, tmp_path / "index.html"))

    def expected(key: str) -> list:
        ascending = key == "G_l"  # gaps: smallest first
        rows = sorted(table.rows, key=lambda row: (row["values"][key] if ascending else -row["values"][key],
                                                   table.rows.index(row)))
        return [[row["submission"], tables.rank_text(row["ranks"][key][:2] + (False,)),
                 row["ranks"][key][2]] for row in rows]

    browser = Chromium(tmp_path / "profile")
    try:
        browser.open(page.as_uri())
        assert browser.evaluate(RANK_CELLS) == expected("accuracy")
        assert any(tie for _, _, tie in browser.evaluate(RANK_CELLS))  # a tie mark is shown
        assert browser.evaluate("document.querySelector('#paper .rank-key').textContent") == "accuracy"
        # The effective-robustness chart is drawn: four models, the fit, and its data in the page.
        box = browser.evaluate("(() => { const r = document.querySelector('#paper svg.er-chart')"
                               ".getBoundingClientRect(); return [r.width, r.height]; })()")
        assert box[0] > 400 and box[1] > 300
        assert browser.evaluate("document.querySelectorAll('#paper svg.er-chart circle.model').length") == 4
        assert browser.evaluate("JSON.parse(document.getElementById('data-paper').textContent)"
                                ".effective_robustness_fit.n") == 4
        # Sorting still works, and the rank intervals follow the sorted column.
        browser.click('th[data-key="G_l"] button')
        browser.wait_for(SORTED_BY.format(key="G_l", order="ascending"))
        assert browser.evaluate(RANK_CELLS) == expected("G_l")
        assert browser.evaluate("document.querySelector('#paper .rank-key').textContent") == "G_l"
        browser.click('th[data-key="num_params"] button')
        browser.wait_for(SORTED_BY.format(key="num_params", order="ascending"))
        assert [cells[0] for cells in browser.evaluate(RANK_CELLS)] == [
            "model_b.in1k", "model_c.in1k", "model_a2.in1k", "model_a.in1k"]
        assert browser.evaluate("document.querySelector('#paper .rank-key').textContent") == "accuracy"
        browser.click('th[data-key="accuracy"] button')
        browser.wait_for(SORTED_BY.format(key="accuracy", order="descending"))
        assert browser.evaluate(RANK_CELLS) == expected("accuracy")
        data = base64.b64decode(browser.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)[
            "data"])
    finally:
        browser.close()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


# Names that are Markdown or HTML: a model, its paper name, a folder name (a folder may hold a newline).
MODEL = "evil`|<b>x</b>#1|"
PAPER_NAME = "# Evil\n- item | `code` <i>it</i> ~~gone~~ [a](http://x)\x1b[31m\u202e"
FOLDER = "# zz`|<i>x\n1. y"  # no "/", which separates folders


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory, submissions, truth) -> Path:
    """Model B, a model whose names are Markdown and HTML, and a tampered copy under a hostile name, rendered
    with every pair flagged as a near copy (so that the names also begin list items)."""
    board = tmp_path_factory.mktemp("hostile")
    shutil.copytree(submissions / "model_b.in1k", board / "submissions" / "model_b.in1k")
    fabricate_run(board / "run", truth.table, MODEL, accuracy=0.7, num_params=10, paper_name=PAPER_NAME, seed=8)
    packing.pack(board / "run", MODEL, board / "submissions" / FOLDER)
    tampered = Path(shutil.copytree(board / "submissions" / FOLDER, board / "submissions" / f"- {FOLDER}"))
    edit_json(tampered, submission_format.METRICS_FILE, lambda m: m.update(accuracy=0.99))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(comparisons, "NEAR_COPY", 0.0)
        verifications = rendering.render(board / "submissions", board / "site", truth)
    assert [v.submission.name for v in verifications if not v.accepted] == [f"- {FOLDER}"]
    return board / "site"


def test_names_that_are_markdown_stay_text_in_the_markdown(hostile_site):
    markdown_it = pytest.importorskip("markdown_it")
    text = (hostile_site / rendering.MARKDOWN_FILE).read_text()
    tokens = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(text)
    kinds = {token.type for token in tokens} | {child.type for token in tokens for child in token.children or []}
    assert not kinds & {"html_inline", "code_inline", "s_open", "link_open", "em_open", "strong_open"}
    assert [token.content for token in tokens if token.type == "html_block"] == [
        f"<!-- {writing.generation_mark(writing.generation_of(hostile_site / rendering.MARKDOWN_FILE))} -->\n"]
    headings = [tokens[i + 1].content for i, token in enumerate(tokens) if token.type == "heading_open"]
    assert not [heading for heading in headings if "zz" in heading or "vil" in heading]
    rows = [[]]
    for token in tokens:
        if token.type == "tr_close":
            rows.append([])
        elif token.type in ("td_open", "th_open"):
            rows[-1].append(token)
    assert {len(row) for row in rows[:3]} == {len(tables.COLUMNS) + 1}  # the ranked table: no cell split
    # As a reader sees it: every name whole, as text (its invisible characters as escapes).
    shown = ["".join(child.content for child in token.children) for token in tokens if token.type == "inline"]
    assert tables.visible(FOLDER) in shown  # a cell of the paired comparisons
    assert any(text.startswith(f"{tables.visible(PAPER_NAME)} ({MODEL}) agrees with ") for text in shown)
    assert any(text.startswith(f"{tables.visible('- ' + FOLDER)}: metrics.json ") for text in shown)  # not shown


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_names_that_are_html_stay_text_on_the_page(hostile_site):
    page = _Elements()
    page.feed((hostile_site / rendering.HTML_FILE).read_text())
    assert not {"b", "i"} & set(page.tags)
    text = "".join(page.text)
    for name in (MODEL, PAPER_NAME, FOLDER):
        assert tables.visible(name) in text
    assert "\x1b" not in text and "\u202e" not in text


@pytest.fixture(scope="module")
def precision_site(tmp_path_factory, submissions, truth) -> Path:
    """The three submissions, model A again in fp16 (its row differs from A's by the precision alone) and a model
    with a long hf-hub name, rendered."""
    board = tmp_path_factory.mktemp("precision")
    shutil.copytree(submissions, board / "submissions")
    fabricate_run(board / "run16", truth.table, "model_a.in1k", accuracy=0.78, num_params=50_000_000,
                  paper_name="Model A", seed=12, precision="fp16")
    packing.pack(board / "run16", "model_a.in1k", board / "submissions" / "model_a.in1k-fp16")
    long_name = "hf-hub:timm/vit_base_patch16_clip_224.openai_ft_in12k_in1k"
    fabricate_run(board / "run", truth.table, long_name, accuracy=0.6, num_params=86_000_000, paper_name=None,
                  seed=13)
    packing.pack(board / "run", long_name, board / "submissions" / "vit_clip")
    verifications = rendering.render(board / "submissions", board / "site", truth)
    assert all(v.accepted for v in verifications)
    return board / "site"


def _model_cell(page: str, submission: str) -> str:
    return re.search(rf'data-submission="{re.escape(submission)}"><td data-value="[^"]*">(.*?)</td>', page).group(1)


def test_the_model_cell_shows_the_precision_that_can_tell_two_rows_apart(precision_site):
    page = (precision_site / rendering.HTML_FILE).read_text()
    fp32, fp16 = _model_cell(page, "model_a.in1k"), _model_cell(page, "model_a.in1k-fp16")
    assert fp32.replace("fp32", "fp16") == fp16  # the rows' names alike: the precision tells them apart
    assert '<span class="precision">fp32</span>, 224×224, 48 images' in fp32
    assert '<span class="precision">fp16</span>, 224×224, 48 images' in fp16
    # The precision and input columns are the model cell's too: hidden on narrow screens, marked so.
    assert page.count('<th data-key="precision"') == 1 and re.search(r'<th data-key="precision"[^>]* class="in-model-'
                                                                     r'cell"', page)
    assert page.count('class="in-model-cell" data-value="fp16"') == 1


def test_the_effective_robustness_chart_labels_its_points_and_ticks_its_axes_in_percent(precision_site):
    page = (precision_site / rendering.HTML_FILE).read_text()
    chart = page.split('class="er-chart"', 1)[1].split("</svg>", 1)[0]
    labels = re.findall(r'<text class="point-label"[^>]*>([^<]*)</text>', chart)
    assert len(labels) == chart.count('<circle class="model"') == 5
    assert {label.rsplit(" (", 1)[0] for label in labels} == {
        "Model A, fp32", "Model A, fp16", "model_b.in1k", html.escape("<script>alert('C')</script> |…"),
        "hf-hub:timm/vit_base_patch16_…"}
    assert all(re.fullmatch(r".* \([+-]\d+\.\d\d\)", label) for label in labels)  # with its ER in points
    ticks = re.findall(r'<text x="[^"]*" y="[^"]*" text-anchor="(?:middle|end)">([^<]*)</text>', chart)
    ticks.remove("accuracy on P0 (common), logit scale")  # the x axis's title
    assert len(ticks) > 4 and all(re.fullmatch(r"\d+(\.\d+)?%", tick) for tick in ticks)
    common_uncommon = page.split('aria-label="Accuracy in common and uncommon settings per model"', 1)[1]
    assert "Model A, fp16</text>" in common_uncommon and "Model A, fp32</text>" in common_uncommon


def test_an_empty_table_says_there_are_no_submissions_yet(tmp_path, truth):
    (tmp_path / "submissions").mkdir()
    assert rendering.render(tmp_path / "submissions", tmp_path / "site", truth) == []
    page = (tmp_path / "site" / rendering.HTML_FILE).read_text()
    assert f'<p class="empty" id="leaderboard">{tables.EMPTY_TABLE}</p>' in page
    assert "<table" not in page and "<svg" not in page  # no bare header, no empty chart
    markdown = (tmp_path / "site" / rendering.MARKDOWN_FILE).read_text()
    assert f"\n{tables.EMPTY_TABLE}\n" in markdown and "| # |" not in markdown


OVERFLOW = ("(() => { const table = document.querySelector('#leaderboard'); const box = table.parentElement; "
            "return [document.documentElement.scrollWidth, box.scrollWidth, box.clientWidth]; })()")
PRECISIONS = ("Array.from(document.querySelectorAll('#leaderboard tbody tr')).map(row => { "
              "const cell = row.cells[0]; const shown = cell.querySelector('.precision'); const r = shown."
              "getBoundingClientRect(); return [row.dataset.submission, shown.textContent, shown.checkVisibility(), "
              "r.width > 0 && r.left >= cell.getBoundingClientRect().left && r.right <= innerWidth]; })")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install chromium (make test does)")
def test_the_table_fits_1400_pixels_with_the_precision_in_sight_in_headless_chromium(precision_site, tmp_path):
    page = Path(shutil.copy(precision_site / rendering.HTML_FILE, tmp_path / "index.html"))
    browser = Chromium(tmp_path / "profile")
    try:
        browser.open(page.as_uri())
        browser.send("Emulation.setDeviceMetricsOverride", width=1400, height=900, deviceScaleFactor=1, mobile=False)
        browser.wait_for("innerWidth === 1400")
        document_width, table_width, box_width = browser.evaluate(OVERFLOW)
        assert document_width <= 1400 and table_width <= box_width  # neither the page nor the table scrolls
        shown = {submission: (text, visible, inside) for submission, text, visible, inside in
                 browser.evaluate(PRECISIONS)}
        assert shown["model_a.in1k"] == ("fp32", True, True) and shown["model_a.in1k-fp16"] == ("fp16", True, True)
        assert all(visible and inside for _, visible, inside in shown.values())
        # The precision column itself gives way to the others at this width; on a wide screen it is back.
        assert browser.evaluate("getComputedStyle(document.querySelector('th[data-key=\"precision\"]')).display") \
            == "none"
        browser.send("Emulation.setDeviceMetricsOverride", width=1900, height=900, deviceScaleFactor=1, mobile=False)
        browser.wait_for("innerWidth === 1900")
        assert browser.evaluate("getComputedStyle(document.querySelector('th[data-key=\"precision\"]')).display") \
            == "table-cell"
        assert browser.evaluate(OVERFLOW)[0] <= 1900
    finally:
        browser.close()
