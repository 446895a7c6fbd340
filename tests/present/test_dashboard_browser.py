"""The published site in a real headless browser: Debian's Chromium driven by Playwright (no browser
download). Every page loads without a console error, over HTTP and from file://; each chart draws on its
canvas; the index's GPU filter hides the other GPUs' rows. Skipped, with the reason, where Chromium or
Playwright is missing; .ci/run installs both."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

from sdshape.cli import main
from tests.dashboard_store import build_store

CHROMIUM = os.environ.get("SDSHAPE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Flags that work as root in a container: no sandbox, no GPU, nothing that reaches the network.
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
# Non-blank pixels on a drawn chart: the axes alone draw a few thousand; the test asks for far fewer.
INKED = """() => {
  const canvas = document.querySelector('#chart canvas');
  if (!canvas || !canvas.width || !canvas.height) return 0;
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) inked += 1;
  return inked;
}"""


def _playwright():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set SDSHAPE_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    return sync_playwright


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("browser")
    out = folder / "site"
    assert main(["publish", "--store", str(build_store(folder)), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def served(site):
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # port 0: a free one
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    sync_playwright = _playwright()
    with sync_playwright() as playwright:
        # Playwright gives each launch a fresh temporary profile (its --user-data-dir) and passes --headless.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


def _open(browser, url: str):
    """A page at ``url`` and the console errors and uncaught exceptions it raised while loading."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
    page.goto(url, wait_until="load")
    return page, errors


def test_every_page_loads_and_every_chart_draws(browser, served, site):
    page, errors = _open(browser, served + "index.html")
    links = page.eval_on_selector_all("#timelines a", "links => links.map(a => a.getAttribute('href'))")
    assert errors == [] and len(links) == len(list((site / "series").glob("*.html"))) == 10
    for link in links:  # one tab, page after page: a new tab per page costs a second each
        page.goto(served + link, wait_until="load")
        assert errors == [], link
        assert page.locator("#chart canvas").count() >= 1, link
        assert page.evaluate(INKED) > 500, link
    page.close()


def test_the_gpu_filter_hides_the_other_rows(browser, served):
    page, errors = _open(browser, served + "index.html")
    rows = page.locator("#timelines tbody tr")
    assert rows.count() == 10 and page.locator("#shown-count").inner_text() == "10 of 10 shown"
    page.select_option("#filter-gpu", "NVIDIA L4")
    visible = page.eval_on_selector_all("#timelines tbody tr:not([hidden])", "rows => rows.map(r => r.dataset.gpu)")
    assert visible == ["NVIDIA L4", "NVIDIA L4"]
    assert page.locator("#timelines tbody tr[hidden]").count() == 8
    assert page.locator("#shown-count").inner_text() == "2 of 10 shown"
    page.select_option("#filter-stage", "vae_decode")
    assert page.locator("#shown-count").inner_text() == "1 of 10 shown"
    page.select_option("#filter-gpu", "")
    page.select_option("#filter-stage", "")
    assert page.locator("#timelines tbody tr[hidden]").count() == 0 and errors == []
    page.close()


def test_the_site_works_from_file_urls(browser, site):
    """Opened from the disk, with no server: nothing is fetched, the data is in the page."""
    page, errors = _open(browser, (site / "index.html").as_uri())
    first = page.eval_on_selector("#timelines a", "a => a.getAttribute('href')")
    page.close()
    page, errors_series = _open(browser, (site / first).as_uri())
    assert page.evaluate(INKED) > 500
    assert errors == errors_series == []
    page.close()
