"""Streamlit helpers shared by the app tests (and bench/app_load.py): start the app on a workspace in
AppTest, open a page, assert that nothing went wrong; find a free port and wait for a served app."""
from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from streamlit.testing.v1 import AppTest

from curate.ui.navigation import PAGES

REPO = Path(__file__).resolve().parent.parent
PAGE_FILES = {title: f"curate/ui/pages/{file}" for file, title, _, _ in PAGES}
TITLES = {file: title for file, title, _, _ in PAGES}


def start(monkeypatch, workspace, basket: list[int] | None = None) -> AppTest:
    """The app as `streamlit run app.py` starts it, on `workspace` (a path, a Workspace, or None for
    none) via $CURATE_WORKSPACE, optionally with ids already in the basket."""
    if workspace is None:
        monkeypatch.delenv("CURATE_WORKSPACE", raising=False)
    else:
        monkeypatch.setenv("CURATE_WORKSPACE", str(Path(getattr(workspace, "path", workspace))))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    if basket is not None:
        at.session_state["basket"] = list(basket)
    return at.run()


def open_page(at: AppTest, page: str) -> AppTest:
    """Switch to a page given by its title ("Explore") or its file ("explore_page.py")."""
    title = TITLES[page] if page.endswith(".py") else page
    at.switch_page(PAGE_FILES[title]).run()
    assert_clean(at)
    assert [t.value for t in at.title] == [title]
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def stop(proc: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not ended within `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with {server.returncode}: "
                               f"{server.stdout.read() if server.stdout else '(output not captured)'}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not serve {url} within {timeout} s")
