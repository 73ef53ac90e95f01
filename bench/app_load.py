"""Load: concurrent browser sessions on one app server, each searching, lassoing and selecting.

    python -m bench.app_load -w WS [--sessions 10] [--minutes 3]

Serves `app.py` on WS (e.g. a 50,000-image workspace) and drives `--sessions` headless Chromium
contexts at once (Playwright, Debian's /usr/bin/chromium), each a separate Streamlit session looping
for `--minutes`: Search by a random id (wait for the 13 thumbnails), Explore (wait for the map, lasso
its middle, wait for the selection's button), Select (Preview a 100-image k-center selection, wait for
its coverage figure). Every action's time from the click to its result is a "page time". Errors: a
result that did not come within 300 s, or any error box or exception the page shows. The server's RSS
is sampled every second. Prints p50/p95/max per action, errors and peak server memory; writes
bench/results/app_load-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from bench.machine import load_average, machine_facts, summary_line
from bench.report import markdown_table
from curate import storage

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RETYPES = [0]  # ids typed again because the page dropped them (see `search`)
TIMEOUT_MS = 300_000  # a 2-core machine shares its CPU between the server and every browser


def serve(ws: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "CURATE_WORKSPACE"}
    return subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.headless",
                             "true", "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false", "--", "--workspace", str(ws)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def rss_sampler(pid: int, samples: list[float], stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    samples.append(int(line.split()[1]) / 1024)
        except OSError:
            return
        stop.wait(1.0)


async def idle(page) -> None:
    await page.wait_for_timeout(300)
    await page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=TIMEOUT_MS)


async def go(page, title: str) -> None:
    await page.locator('[data-testid="stSidebarNav"] a', has_text=title).click()
    await page.get_by_role("heading", name=title, exact=True).wait_for(timeout=TIMEOUT_MS)
    await idle(page)


async def problems(page) -> list[str]:
    """Error boxes and exceptions the page shows now."""
    texts = await page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').all_inner_texts()
    return [t.strip()[:200] for t in texts]


async def session(browser, url: str, n_images: int, until: float, seed: int, times: dict, errors: list) -> None:
    rng = random.Random(seed)
    context = await browser.new_context(viewport={"width": 1400, "height": 1200})
    page = await context.new_page()
    try:
        await page.goto(url)
        await page.get_by_role("heading", name="Overview", exact=True).wait_for(timeout=TIMEOUT_MS)
        while time.monotonic() < until:
            for action in (search, explore, select):
                t = time.perf_counter()
                try:
                    await action(page, rng, n_images)
                    times.setdefault(action.__name__, []).append(time.perf_counter() - t)
                except Exception as err:  # a timeout or a page error: counted (with a screenshot), the loop goes on
                    errors.append(f"{action.__name__}: {type(err).__name__}: {str(err)[:200]}")
                    await page.screenshot(path=f"/tmp/app_load_error_{seed}_{len(errors)}.png")
                shown = await problems(page)
                errors.extend(f"{action.__name__}: {s}" for s in shown)
                if time.monotonic() >= until:
                    break
    finally:
        await context.close()


async def search(page, rng, n_images: int) -> None:
    """Type a random id and wait for its results. A value typed while the page was still rerunning
    can be dropped by the widget it replaced: then it is typed again (counted in `retypes`)."""
    await go(page, "Search")
    query = rng.randrange(n_images)
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        box = page.locator('[data-testid="stNumberInput"] input').first
        await box.fill(str(query))
        await box.press("Enter")
        try:
            await page.get_by_text(f"#{query} ·").first.wait_for(timeout=30_000)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            RETYPES[0] += 1
            await idle(page)
    await idle(page)


async def explore(page, rng, n_images: int) -> None:
    await go(page, "Explore")
    plot = page.locator(".js-plotly-plot").first
    await plot.wait_for(timeout=TIMEOUT_MS)
    area = await plot.locator(".nsewdrag").first.bounding_box()
    cx, cy = area["x"] + area["width"] * rng.uniform(0.35, 0.65), area["y"] + area["height"] * rng.uniform(0.35, 0.65)
    r = min(area["width"], area["height"]) / 6
    await page.mouse.move(cx - r, cy - r)
    await page.mouse.down()
    for x, y in ((cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r), (cx - r, cy - r + 2)):
        await page.mouse.move(x, y, steps=6)
    await page.mouse.up()
    await page.get_by_role("button", name=re.compile("to basket")).first.wait_for(timeout=TIMEOUT_MS)
    await idle(page)


async def select(page, rng, n_images: int) -> None:
    await go(page, "Select")
    await page.get_by_role("button", name="Preview").click()
    await page.get_by_text("Coverage radius").first.wait_for(timeout=TIMEOUT_MS)
    await idle(page)


async def drive(url: str, sessions: int, minutes: float, n_images: int) -> tuple[dict, list]:
    from playwright.async_api import async_playwright

    times: dict[str, list[float]] = {}
    errors: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        until = time.monotonic() + minutes * 60
        await asyncio.gather(*(session(browser, url, n_images, until, s, times, errors) for s in range(sessions)))
        await browser.close()
    return times, errors


def main(argv: list[str] | None = None) -> None:
    from curate.workspace import Workspace

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-w", "--workspace", type=Path, required=True)
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    from tests.apptest_helpers import free_port, wait_until_serving  # one copy, shared with the browser tests
    ws = Workspace(args.workspace).require()
    n_images = len(ws.manifest())
    facts = machine_facts("cpu", REPO)
    port = free_port()
    server = serve(ws.path, port)
    samples: list[float] = []
    stop = threading.Event()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url, server, timeout=120)
        sampler = threading.Thread(target=rss_sampler, args=(server.pid, samples, stop), daemon=True)
        sampler.start()
        t = time.perf_counter()
        times, errors = asyncio.run(drive(url, args.sessions, args.minutes, n_images))
        wall = time.perf_counter() - t
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=30)
    rows = [{"action": name, "done": len(v), "p50 s": float(np.percentile(v, 50)), "p95 s": float(np.percentile(v, 95)),
             "max s": float(np.max(v))} for name, v in sorted(times.items())]
    every = [x for v in times.values() for x in v]
    rows.append({"action": "all", "done": len(every), "p50 s": float(np.percentile(every, 50)) if every else None,
                 "p95 s": float(np.percentile(every, 95)) if every else None,
                 "max s": float(np.max(every)) if every else None})
    facts["load_avg_end"] = load_average()
    print(f"\n### App load: {args.sessions} concurrent Chromium sessions for {args.minutes:g} min on {n_images:,} "
          "images (search, Explore + lasso, Select preview)\n")
    print(summary_line(facts) + "\n")
    print(markdown_table(rows) + "\n")
    print(f"ids typed again after the page dropped them: {RETYPES[0]}")
    print(f"errors: {len(errors)}; server peak RSS {max(samples, default=0):,.0f} MB "
          f"(start {samples[0] if samples else 0:,.0f} MB); wall {wall:.0f} s")
    for e in errors[:20]:
        print(f"  {e}")
    out = args.out / f"app_load-{time.strftime('%Y%m%d-%H%M%S')}.json"
    storage.write_text(out, json.dumps({"machine": facts, "args": {k: str(v) for k, v in vars(args).items()},
                                        "rows": rows, "errors": errors, "retypes": RETYPES[0], "server_rss_mb": samples, "wall_s": wall},
                                       indent=1))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
