"""The app as a person meets it: first paint of every page and search latency, in headless Chromium.

    python -m bench.app_speed --workspace WS [--searches 10] [--port 8599] [--screenshots DIR]

Serves `app.py` on the workspace with `streamlit run` (a real server), drives Debian's
/usr/bin/chromium through Playwright, and measures in the browser:

- first paint: from the click on a page's sidebar link to its title being drawn, for every page,
  after the first load of the app (the cold start, which loads the workspace into the caches, is
  reported on its own row);
- search: from pressing Enter on a new image id to the results grid being drawn (all thumbnails
  arrived), over --searches different ids (median and max).

Targets (issue 5): first paint < 2 s on a 50,000-image workspace, search results < 0.5 s.
Prints a markdown table and writes bench/results/app_speed-<timestamp>.json.
Needs playwright (requirements-dev.txt) and Debian's chromium.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
PAGES = ("Explore", "Search", "Select", "Duplicates & quality", "Export", "Overview")
TARGETS = {"first paint": 2.0, "search": 0.5}


def serve(workspace: Path, port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--", "--workspace", str(workspace)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return server
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise TimeoutError("streamlit did not start within 120 s")


def idle(page) -> None:
    page.wait_for_timeout(200)
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=120_000)


def shoot(page, folder: Path | None, name: str) -> None:
    """A full-page screenshot once every thumbnail has arrived (not part of any timing)."""
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    page.wait_for_function("Array.from(document.images).every(img => img.complete)", timeout=60_000)
    page.wait_for_timeout(800)  # let charts paint
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def measure(url: str, searches: int, screenshots: Path | None = None) -> dict:
    from playwright.sync_api import sync_playwright

    out: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            t = time.perf_counter()
            page.goto(url)
            page.get_by_role("heading", name="Overview", exact=True).wait_for(timeout=300_000)
            out["cold start (Overview)"] = time.perf_counter() - t
            idle(page)
            for title in PAGES:
                t = time.perf_counter()
                page.locator('[data-testid="stSidebarNav"] a', has_text=title).click()
                page.get_by_role("heading", name=title, exact=True).wait_for(timeout=120_000)
                out[f"first paint: {title}"] = time.perf_counter() - t
                idle(page)
                shoot(page, screenshots, title.split()[0].lower())
            page.locator('[data-testid="stSidebarNav"] a', has_text="Search").click()
            page.get_by_role("heading", name="Search", exact=True).wait_for(timeout=120_000)
            idle(page)
            box = page.locator('[data-testid="stNumberInput"] input').first
            latencies = []
            for i in range(searches):
                image_id = 101 + 997 * i
                t = time.perf_counter()
                box.fill(str(image_id))
                box.press("Enter")
                page.get_by_text(f"#{image_id} ·").first.wait_for(timeout=60_000)
                page.wait_for_function("Array.from(document.images).every(img => img.complete)", timeout=60_000)
                latencies.append(time.perf_counter() - t)
                idle(page)
            shoot(page, screenshots, "search_results")
            out["search (median)"] = statistics.median(latencies)
            out["search (max)"] = max(latencies)
        finally:
            browser.close()
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, required=True)
    p.add_argument("--searches", type=int, default=10)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--screenshots", type=Path, help="save a screenshot of every page here")
    args = p.parse_args(argv)
    from curate.workspace import Workspace

    n_images = len(Workspace(args.workspace).require().manifest())
    port = args.port or free_port()
    server = serve(args.workspace, port)
    try:
        timings = measure(f"http://127.0.0.1:{port}", args.searches, args.screenshots)
    finally:
        server.terminate()
        server.wait(timeout=30)
    rows = []
    for name, seconds in timings.items():
        kind = "first paint" if name.startswith("first paint") else "search" if name.startswith("search") else None
        target = TARGETS.get(kind)
        rows.append({"measure": name, "seconds": round(seconds, 3),
                     "target": f"< {target} s" if target else "", "met": ("yes" if seconds < target else "no") if target else ""})
    print(f"app speed on {n_images:,} images (real Streamlit server, headless Chromium)")
    print("| measure | seconds | target | met |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['measure']} | {r['seconds']:.2f} | {r['target']} | {r['met']} |")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (out / f"app_speed-{stamp}.json").write_text(json.dumps(
        {"workspace": str(args.workspace), "images": n_images, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
