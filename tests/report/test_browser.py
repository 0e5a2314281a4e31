"""Reports in a real browser: the system's headless Chromium, driven by Playwright (pinned in
pyproject.toml's `browser` extra; no browser download), plus a `chromium --headless --dump-dom`
check that needs nothing but the browser. `make test-browser` installs both and runs these.

SELFALIGN_SCREENSHOTS=DIR saves the screenshots there (docs/report/ holds the README's).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from sample_runs import HOSTILE

from selfalign.report import build_report

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the browser fixture says how to install it; collection of the quick suite must not fail
    expect = sync_playwright = None

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def chromium():
    if CHROMIUM is None:
        pytest.fail("no Chromium: install it with `apt-get install -y chromium` (make test-browser does)")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(sample_runs, hostile_runs):  # runs first: their commands cannot start inside Playwright's event loop
    if sync_playwright is None:
        pytest.fail("no Playwright: pip install 'selfalign[browser]' (make test-browser does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser):
    """open_page(html_file, hash) -> a page with the report drawn; console errors fail the test."""
    pages, problems = [], []

    def open_(path, fragment=""):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: m.type in ("error", "warning") and problems.append(f"console {m.type}: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("request", lambda r: r.url.startswith("file://") or problems.append(f"request: {r.url}"))
        page.goto(path.resolve().as_uri() + fragment)
        page.wait_for_selector("header nav")
        pages.append(page)
        return page

    yield open_
    for page in pages:
        page.close()
    assert problems == []


def screenshot(page, name, tmp_path):
    folder = Path(os.environ.get("SELFALIGN_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"))
    assert (folder / f"{name}.png").stat().st_size > 10_000


def report(runs, tmp_path, name="report.html", **options):
    path = tmp_path / name
    path.write_text(build_report([str(p) for p in runs.values()], **options), "utf-8")
    return path


def shown(page, count):
    """Wait until the list says it shows `count` matching items (Playwright retries)."""
    expect(page.locator(".count")).to_have_text(re.compile(f"^{count} of "))


def go(page, run):
    """Open run `run` (from 0: the tab and link say run + 1) by its tab; the route draws it in the
    same task as it marks the tab."""
    page.click(f"header nav a[href='#r{run + 1}']")
    page.wait_for_selector(f"header nav a.on[href='#r{run + 1}']")


def pick(page, n):
    page.click(f".items .row >> nth={n}")
    page.wait_for_selector(".items .row.on")


def test_every_view_opens_and_answers_clicks_and_filters(sample_runs, open_page, tmp_path):
    path = report(sample_runs, tmp_path)
    page = open_page(path)
    expect(page.locator("table.overview th a")).to_have_count(11)
    screenshot(page, "overview", tmp_path)

    go(page, 1)  # MATRIX: an item, its scene and timeline, the answers' differences
    pick(page, 0)
    assert page.locator(".timeline .event").count() >= 3 and page.locator(".event.rejected").count() >= 1
    assert page.locator(".diff ins").count() >= 1 and page.locator(".diff del").count() >= 1
    assert "#r2/000000" in page.url  # the second tab, "2. matrix"
    screenshot(page, "matrix", tmp_path)
    shown(page, 4)
    page.check("input[data-filter='value conflicts']")
    shown(page, 3)
    page.fill("input.search", "partner")
    shown(page, 1)
    page.fill("input.search", "no such text anywhere")
    shown(page, 0)

    go(page, 2)  # Sandbox: rounds, curves, one agent's turns
    assert page.locator("svg.grid .cell").count() == 9 and page.locator(".chart polyline").count() == 5
    page.fill("input.round-slider", "3")
    expect(page.locator("text=round 3 of 3")).to_have_count(1)
    page.click("svg.grid .cell[data-agent='4']")
    expect(page.locator(".agent-panel .turn")).to_have_count(3)
    screenshot(page, "sandbox", tmp_path)

    go(page, 0)  # critique-revise: principles cited, facet by principle
    assert page.locator(".card svg rect").count() >= 1
    options = page.locator("select[data-facet='principle'] option")
    principle = options.nth(1).get_attribute("value")
    page.select_option("select[data-facet='principle']", principle)
    expect(page.locator(".count")).not_to_have_text(re.compile("^4 of"))  # fewer, unless one principle was cited for all
    pick(page, 0)
    assert page.locator(".detail .label", has_text="critique").count() == 1
    screenshot(page, "critique", tmp_path)

    go(page, 3)  # eval: win / tie / lose bars, metrics, every judged item
    assert page.locator("text=wins, ties and losses").count() == 1
    page.select_option("select[data-facet='scorer']", "pairwise")
    pick(page, 0)
    expect(page.locator(".detail >> text=the judge's reason, first order")).to_have_count(1)
    screenshot(page, "eval", tmp_path)

    go(page, 4)  # training: loss and learning-rate curves
    assert page.locator(".chart polyline").count() == 3
    screenshot(page, "train", tmp_path)

    go(page, 5)  # attack: success rates beside the baseline, every attempt, filters by attack and success
    assert page.locator("text=attack success rate · scorer harm").count() == 1
    shown(page, 19)
    page.check("input[data-filter='attack succeeded']")
    shown(page, 2)  # the novelist template, on both harmful behaviours
    assert page.locator(".items .row >> nth=0").inner_text().startswith("\u26a0 ")  # the behaviour before the long id
    pick(page, 0)
    expect(page.locator(".detail >> text=attack succeeded")).to_have_count(1)
    assert "thriller novel" in page.locator(".detail").inner_text()
    screenshot(page, "attack", tmp_path)

    go(page, 6)  # self-align stage 1: kept prompts and the generation calls
    page.select_option("select[data-facet='what']", "kept prompt: red-team")
    shown(page, 1)
    pick(page, 0)
    expect(page.locator(".detail >> text=topic: Tenant Law")).to_have_count(1)

    go(page, 7)  # stage 2: principles cited (bar chart), facet by principle, thoughts and answer
    assert page.locator("text=how often each principle was cited").count() == 1
    page.select_option("select[data-facet='principle']", "ethical")
    shown(page, 1)
    pick(page, 0)
    expect(page.locator(".detail >> text=internal thoughts")).to_have_count(1)
    screenshot(page, "principles", tmp_path)

    go(page, 9)  # stage 4: stage 2's thoughts and principles, the verbose answer beside the principled one
    page.select_option("select[data-facet='principle']", "ethical")
    shown(page, 1)
    page.goto(page.url.split("#")[0] + "#r10/000000")
    page.wait_for_selector(".items .row.on")
    assert page.locator(".detail .diff ins").count() >= 1 and page.locator(".detail .badge", has_text="question assessment").count() == 1
    assert "Rule 1 (ethical)" in page.locator(".detail").inner_text()
    screenshot(page, "verbose", tmp_path)


def test_links_count_runs_from_1_as_tabs_do_and_training_reads_plainly(sample_runs, open_page, tmp_path):
    page = open_page(report(sample_runs, tmp_path), "#r1")
    expect(page.locator("header nav a.on")).to_have_text("1. critique-revise")
    page.goto(page.url.split("#")[0] + "#r5")
    expect(page.locator("header nav a.on")).to_have_text("5. train")
    labels = page.eval_on_selector_all(".view svg.chart text", "texts => texts.map((t) => t.textContent)")
    assert "0.000" not in labels and {"1.8e-5", "4.9e-7"} <= set(labels)  # the learning rate's axis, not 0.000
    page.goto(page.url.split("#")[0] + "#")
    overview = page.locator("table.overview").inner_text()
    assert "training steps" in overview and "40 of 40" in overview and "tokens trained on" in overview


@pytest.mark.parametrize("compress_above", [10**9, 0], ids=["json", "gzipped"])
def test_a_link_opens_the_item_it_names(sample_runs, open_page, tmp_path, compress_above):
    page = open_page(report(sample_runs, tmp_path, compress_above=compress_above), "#r3/r002-a00003")
    assert page.locator(".detail h2").inner_text().startswith("r002-a00003")
    assert page.locator(".items .row.on").get_attribute("data-id") == "r002-a00003"
    go(page, 1)  # MATRIX: gzipped, an item's scene and events come from its block when it is opened
    page.check("input[data-filter='value conflicts']")
    shown(page, 3)  # the list filters on the records' briefs
    pick(page, 1)
    expect(page.locator(".detail .timeline .event.conflict")).not_to_have_count(0)
    pick(page, 0)
    expect(page.locator(".detail h2")).to_have_text(re.compile("^" + page.locator(".items .row.on").get_attribute("data-id")))
    assert page.locator(".detail .timeline .event").count() >= 3 and page.locator(".detail .diff ins").count() >= 1


@pytest.mark.parametrize("compress_above", [10**9, 0], ids=["json", "gzipped"])
def test_hostile_records_show_as_text_and_nothing_runs(hostile_runs, open_page, tmp_path, compress_above):
    page = open_page(report(hostile_runs, tmp_path, compress_above=compress_above))
    for run in (0, 1, 2, 3, 5, 7, 9):  # every view that shows the models' text
        go(page, run)
        for n in range(page.locator(".items .row").count()):
            page.click(f".items .row >> nth={n}")
            page.wait_for_selector(".items .row.on")
            page.wait_for_selector(".detail h2")  # on a gzipped page MATRIX reads the item's block first
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        text = page.locator("main").inner_text()
        assert "</script><script>window.pwned = 1</script><!-- <img" in text  # as text, whole
        assert "\u241b[31mRED\u241b[0m" in text  # the escape shown as its symbol, never acted on
    go(page, 2)
    page.click("svg.grid .cell[data-agent='0']")
    expect(page.locator(".agent-panel .turn")).to_have_count(3)
    assert page.evaluate("window.pwned") is None
    assert page.locator("main img, main script, main style, main iframe").count() == 0
    assert page.evaluate("getComputedStyle(document.body).display") == "block"


def test_dump_dom_fallback_renders_without_playwright(sample_runs, hostile_runs, tmp_path):
    """The check that needs only the browser: Chromium runs the page's script and prints the DOM."""
    for runs, name in ((sample_runs, "plain.html"), (hostile_runs, "hostile.html")):
        path = report(runs, tmp_path, name)
        proc = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
                               "--virtual-time-budget=10000", "--dump-dom", path.resolve().as_uri() + "#r2/000001"],
                              capture_output=True, text=True, timeout=120)
        dom = proc.stdout
        assert 'class="timeline"' in dom and 'class="event' in dom, (name, [l for l in proc.stderr.splitlines() if "dbus" not in l][-10:])
        body = dom.split('<script type="application/')[0]
        assert "<img" not in body and body.count("<script") == 0 and body.count("<style") == 1
        if runs is hostile_runs:
            assert "&lt;/script&gt;&lt;script&gt;window.pwned = 1&lt;/script&gt;&lt;!-- &lt;img" in body
        assert HOSTILE not in body
