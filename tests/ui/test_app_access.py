"""A shared app is safe: a non-local address needs a password (or a proxy in front), every folder a
browser names lies inside the app's roots, sign-in gates every page, and `curate app` stops on SIGTERM."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from curate.cli import main
from curate.ui.access import (BUCKETS_ENV, PASSWORD_ENV, ROOTS_ENV, allowed_buckets, allowed_roots, confine,
                              confine_url)
from tests.apptest_helpers import assert_clean, free_port, start, wait_until_serving

REPO = Path(__file__).resolve().parents[2]


def test_confine_keeps_paths_inside_the_roots(tmp_path):
    root = tmp_path / "allowed"
    (root / "images").mkdir(parents=True)
    (root / "escape").symlink_to(tmp_path)  # a link inside the root that points out of it
    roots = allowed_roots({ROOTS_ENV: os.pathsep.join([str(root), str(tmp_path / "other")])})
    assert confine(root / "images", roots) == (root / "images").resolve()
    assert confine(root / "new_workspace", roots) == (root / "new_workspace").resolve()  # need not exist yet
    for outside in (tmp_path, root / "escape" / "x", root / ".." / "elsewhere", "/etc"):
        with pytest.raises(PermissionError, match="outside the folders this app may use"):
            confine(outside, roots)
    assert allowed_roots({}) is None and confine("/etc", None) == Path("/etc")  # a bare `streamlit run`: not confined


def test_bucket_urls_are_confined_to_the_apps_bucket_prefixes(built_workspace, capsys):
    buckets = allowed_buckets({ROOTS_ENV: "/data", BUCKETS_ENV: "s3://team/photos/ gs://other"})
    assert buckets == ["s3://team/photos", "gs://other"]
    assert confine_url("s3://team/photos", buckets) == "s3://team/photos"
    assert confine_url("s3://team/photos/2024/", buckets) == "s3://team/photos/2024"
    assert confine_url("gs://other/any/thing", buckets) == "gs://other/any/thing"
    for outside in ("s3://team/photosynthesis", "s3://team", "s3://elsewhere/photos", "az://team/photos"):
        with pytest.raises(PermissionError, match="outside the buckets this app may read"):
            confine_url(outside, buckets)
    for bad in ("s3://team/photos/../secrets", "s3://team/photos//x", "http://team/photos", "file:///etc",
                "s3:///photos"):
        with pytest.raises(ValueError):
            confine_url(bad, buckets)
    assert allowed_buckets({ROOTS_ENV: "/data"}) == []  # confined, no bucket named: none may be read
    assert allowed_buckets({}) is None and confine_url("az://any/where", None) == "az://any/where"
    assert main(["app", "-w", str(built_workspace), "--root", "http://example.com/images"]) == 2
    assert "is not a bucket URL" in capsys.readouterr().err


def test_a_network_address_needs_a_password_or_a_proxy(built_workspace, tmp_path, capsys):
    assert main(["app", "-w", str(built_workspace), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "--host 0.0.0.0" in err and PASSWORD_ENV in err and "--behind-proxy" in err
    empty = tmp_path / "password.txt"
    empty.write_text("\n")
    assert main(["app", "-w", str(built_workspace), "--host", "0.0.0.0", "--password-file", str(empty)]) == 2
    assert "is empty" in capsys.readouterr().err


def test_curate_app_serves_confined_and_stops_on_sigterm(built_workspace, tmp_path):
    """The real command: it becomes the Streamlit server (same pid), tells the server its roots, and a
    SIGTERM (what a supervisor or `docker stop` sends) stops it and frees the port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in (ROOTS_ENV, PASSWORD_ENV)}
    server = subprocess.Popen([sys.executable, "-m", "curate", "app", "-w", str(built_workspace), "--host", "127.0.0.1",
                               "--port", str(port), "--root", str(tmp_path)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url, server)
        environ = Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0")
        assert f"{ROOTS_ENV}={tmp_path.resolve()}".encode() in environ  # only the --root given
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) is not None
        with pytest.raises(OSError):
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert "serving" in server.stdout.read()


def test_sign_in_gates_every_page(monkeypatch, built_workspace):
    monkeypatch.setenv(PASSWORD_ENV, "correct horse")
    at = start(monkeypatch, built_workspace)
    assert [t.value for t in at.title] == ["curate"] and not at.metric  # nothing of the workspace is shown
    at.text_input(key="sign_in_password").set_value("wrong")
    next(b for b in at.button if b.label == "Sign in").click().run()
    assert any("Wrong password" in e.value for e in at.error) and not at.metric
    at.text_input(key="sign_in_password").set_value("correct horse")
    next(b for b in at.button if b.label == "Sign in").click().run()
    assert_clean(at)
    assert [t.value for t in at.title] == ["Overview"] and at.metric


def test_folders_outside_the_roots_are_refused_in_the_browser(monkeypatch, built_workspace, tmp_path):
    monkeypatch.setenv(ROOTS_ENV, str(Path(built_workspace).parent))
    at = start(monkeypatch, built_workspace)
    assert_clean(at)
    assert [t.value for t in at.title] == ["Overview"] and at.metric  # the workspace itself is inside
    # building a workspace from a folder outside the roots
    at.text_input(key="run_images").set_value(str(tmp_path))
    next(b for b in at.button if b.label == "Start run").click().run()
    assert any("outside the folders this app may use" in e.value for e in at.error)
    assert not (tmp_path / "workspaces").exists() and not (Path.cwd() / "workspaces" / tmp_path.name).exists()
    # opening a workspace folder outside them
    at.sidebar.text_input(key="workspace_input").set_value("/etc").run()
    assert any("outside the folders this app may use" in e.value for e in at.sidebar.error)
    assert not at.metric  # nothing opened


def test_export_targets_outside_the_roots_are_refused(monkeypatch, built_workspace, tmp_path):
    from tests.apptest_helpers import open_page

    monkeypatch.setenv(ROOTS_ENV, str(Path(built_workspace).parent))
    at = open_page(start(monkeypatch, built_workspace), "Export")
    at.text_input(key="export_target").set_value(str(tmp_path / "out"))
    next(b for b in at.button if b.label == "Review export").click().run()
    assert any("outside the folders this app may use" in e.value for e in at.error)
    assert not (tmp_path / "out").exists()
