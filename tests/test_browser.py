"""The app in a real headless Chromium: the WebGL map draws, a lasso fills the basket, a search shows
neighbour images. Screenshots of every page land in tests/artifacts/ (look at them)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with {server.returncode}: {server.stdout.read()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not serve {url} within {timeout} s")


@pytest.fixture
def app_url(built_workspace):
    """`streamlit run app.py -- --workspace WS` on a free port; always terminated afterwards."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "CURATE_WORKSPACE"}  # the CLI argument must do it
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--", "--workspace", str(built_workspace)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url, server)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def open_page(page, title: str) -> None:
    """Go to a page through the sidebar (same session, so the basket survives) and wait for its title."""
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).click()
    page.get_by_role("heading", name=title, exact=True).wait_for(timeout=30_000)


def wait_idle(page) -> None:
    """Wait until the script run that the last action started has finished."""
    page.wait_for_timeout(300)  # the rerun a click triggers starts a moment later
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=60_000)


def images_loaded(page) -> None:
    """Wait for every thumbnail to arrive, then check none is broken (each decodes to real pixels)."""
    page.wait_for_function("Array.from(document.images).every(img => img.complete)", timeout=30_000)
    broken = page.eval_on_selector_all('[data-testid="stImage"] img', "imgs => imgs.filter(i => !i.naturalWidth).length")
    assert broken == 0, f"{broken} thumbnails failed to load"


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    wait_idle(page)
    images_loaded(page)
    page.wait_for_timeout(600)  # let lazily loaded charts paint
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def lasso(page, box) -> None:
    """Drag a lasso around the middle of the plot area."""
    cx, cy, r = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, min(box["width"], box["height"]) / 4
    page.mouse.move(cx - r, cy - r)
    page.mouse.down()
    for x, y in ((cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r), (cx - r, cy - r + 2)):
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def test_app_in_chromium(app_url):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1700})
            page.goto(app_url)
            page.get_by_role("heading", name="Overview", exact=True).wait_for(timeout=60_000)
            expect(page.locator('[data-testid="stMetric"]').first).to_contain_text("Images")
            shoot(page, "overview")

            open_page(page, "Explore")
            plot = page.locator(".js-plotly-plot").first
            plot.wait_for(timeout=30_000)
            expect(plot.locator("canvas").first).to_be_attached()  # Scattergl draws with WebGL on canvases
            lasso(page, plot.locator(".nsewdrag").first.bounding_box())
            add = page.get_by_role("button", name="to basket")
            add.wait_for(timeout=30_000)
            shoot(page, "explore_lasso")
            add.click()
            expect(page.locator('[data-testid="stSidebar"]')).not_to_contain_text("Basket: 0", timeout=30_000)
            shoot(page, "explore_basket")

            open_page(page, "Search")
            id_input = page.locator('[data-testid="stNumberInput"] input').first
            id_input.fill("7")
            id_input.press("Enter")
            expect(page.get_by_text("#7 ·").first).to_be_visible(timeout=30_000)
            results = page.locator('[data-testid="stImage"] img')
            expect(results).to_have_count(13, timeout=30_000)  # the query image and its 12 neighbours
            shoot(page, "search")

            open_page(page, "Select")
            page.get_by_role("button", name="Preview").click()
            expect(page.get_by_text("Coverage radius")).to_be_visible(timeout=60_000)
            shoot(page, "select")

            for title in ("Duplicates", "Export"):
                open_page(page, title)
                shoot(page, title.lower())
            assert not page.locator('[data-testid="stException"]').count()
        finally:
            browser.close()
