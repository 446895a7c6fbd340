"""The dashboard's screenshots for the docs, and how long ``sdshape publish`` takes.

    python bench/dashboard_screenshots.py [--images docs/img] [--large 2500] [--json OUT]

The screenshot store holds the committed H200 A/A runs (results/h200-aa-2026-12-04/runs), the threads
example (results/examples/threads) and a planted L4 series whose denoising loop steps up 20% at a driver
upgrade (tests/dashboard_store.py: seeded rounds, not a measurement). Its site is published, then shot in
Debian's Chromium: the index, and the planted series' page. ``publish`` is timed as a user runs it (a new
``sdshape publish`` process, wall time, median of 3) on that store and on bench/store_benchmark.py's
store of ``--large`` copies of a four-stage run on 25 machines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import http.server
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.store_benchmark import cpu_model, make_files  # noqa: E402
from sdshape.store.db import open_store  # noqa: E402
from sdshape.store.ingest import add_file  # noqa: E402
from tests.dashboard_store import build_store  # noqa: E402
from tests.present.test_dashboard_browser import CHROMIUM, FLAGS, QuietHandler  # noqa: E402

COMMITTED = ("results/h200-aa-2026-12-04/runs", "results/examples/threads")


def publish_seconds(store: Path, out: Path, repeats: int = 3) -> float:
    """Median wall time of ``sdshape publish`` in a new process (interpreter start included)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sdshape.cli", "publish", "--store", str(store), "--out", str(out)],
                       check=True, capture_output=True)  # fmt: skip
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 2)


def screenshots(site: Path, images: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/"
    timelines = json.loads((site / "data" / "timelines.json").read_text())["timelines"]
    planted = next(t for t in timelines if t["gpu"] == "NVIDIA L4" and t["stage"] == "denoise_loop")
    shots = [
        ("index.html", images / "dashboard-index.png"),
        (f"series/{planted['id']}.html", images / "dashboard-series.png"),
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        for link, path in shots:
            page.goto(base + link, wait_until="load")
            page.screenshot(path=str(path), full_page=link == "index.html")
        browser.close()
    server.shutdown()
    return [path for _, path in shots]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=str(ROOT / "docs" / "img"))
    parser.add_argument("--large", type=int, default=2500, help="files in the timed large store (4 rows each)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        store = build_store(folder / "small", COMMITTED)
        small = publish_seconds(store, folder / "small-site")
        written = screenshots(folder / "small-site", Path(args.images))
        small_site = json.loads((folder / "small-site" / "sdshape-site.json").read_text())
        engine = open_store(folder / "large.sqlite", create=True)
        (folder / "large").mkdir()
        for path in make_files(folder / "large", args.large):
            add_file(engine, path)
        engine.dispose()
        large = publish_seconds(folder / "large.sqlite", folder / "large-site")
        large_pages = len(list((folder / "large-site" / "series").glob("*.html")))
    figures = {
        "measured": {
            "small_store": {key: small_site[key] for key in ("runs", "rows", "timelines")} | {"publish_s": small},
            "large_store": {"runs": args.large, "rows": 4 * args.large, "timelines": large_pages, "publish_s": large},
            "screenshots": [str(path.relative_to(ROOT)) for path in written],
        },
        "machine": {"cpu": cpu_model(), "python": sys.version.split()[0], "date": dt.date.today().isoformat()},
    }
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
