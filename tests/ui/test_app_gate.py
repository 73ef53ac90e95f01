"""The sign-in gate in front of every endpoint of `curate app` (issue 30, part 4), attacked over HTTP and
the websocket as a stranger would, on the real server (`curate app`: Streamlit's ASGI server + the gate),
and single sign-on through st.login against a local OIDC provider (oidc-provider-mock)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from curate.ui.gate import (COOKIE, GateConfig, cookie_valid, password_matches, session_cookie, sso_providers)
from tests.apptest_helpers import free_port, wait_until_serving
from tests.ui.test_browser import CHROMIUM, CHROMIUM_ARGS

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


def test_session_cookies_are_signed_and_expire():
    secret, other = b"k" * 32, b"o" * 32
    cookie = session_cookie(secret, now=1_000, max_age=60)
    assert cookie_valid(cookie, secret, now=1_059)
    assert not cookie_valid(cookie, secret, now=1_061)  # expired
    assert not cookie_valid(cookie, other, now=1_000)  # another server's secret (a restart signs everyone out)
    nonce, expires, mac = cookie.split(".")
    assert not cookie_valid(f"{nonce}.{int(expires) + 10_000}.{mac}", secret, now=1_000)  # a longer life, forged
    for junk in (None, "", "x", "..", f"{nonce}.{expires}.", "a.b.c"):
        assert not cookie_valid(junk, secret, now=1_000)
    assert session_cookie(secret, 1_000) != session_cookie(secret, 1_000)  # a nonce each
    assert password_matches("pw", "pw") and not password_matches("pw", "pw ") and not password_matches("", "pw")
    assert GateConfig(password=None).required is False and GateConfig(password="x").required


def test_sso_providers_from_an_auth_section():
    assert sso_providers(None) == () and sso_providers({}) == ()
    assert sso_providers({"redirect_uri": "u", "cookie_secret": "s", "client_id": "c"}) == ("default",)
    assert sso_providers({"redirect_uri": "u", "google": {"client_id": "c"}, "okta": {"client_id": "d"}}) == (
        "google", "okta")
    assert sso_providers({"redirect_uri": "u", "cookie_secret": "s"}) == ()  # no client: nothing to sign in with


def start_app(workspace: Path, *extra: str, env_extra: dict | None = None):
    """`curate app` on a free loopback port; returns (process, url)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURATE_APP_")}
    server = subprocess.Popen([sys.executable, "-m", "curate", "app", "-w", str(workspace), "--host", "127.0.0.1",
                               "--port", str(port), *extra], cwd=REPO, env={**env, **(env_extra or {})},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(url, server)
    return server, url


def stop(server) -> str:
    server.terminate()
    try:
        out, _ = server.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        out, _ = server.communicate()
    return out


def websocket_opens(url: str, cookie: str | None = None) -> bool:
    """Whether Streamlit's websocket accepts this client (closed before accept: HTTP 403 to the client)."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    headers = {"Cookie": cookie} if cookie else {}
    try:
        with connect(url.replace("http", "ws") + "/_stcore/stream", additional_headers=headers, open_timeout=10,
                     subprotocols=["streamlit"]):
            return True
    except InvalidStatus as refused:
        assert refused.response.status_code == 403
        return False


@pytest.fixture
def password_app(built_workspace, tmp_path):
    secret = tmp_path / "password.txt"
    secret.write_text(PASSWORD + "\n")
    server, url = start_app(built_workspace, "--password-file", str(secret))
    yield server, url
    if server.poll() is None:
        stop(server)


def test_nothing_behind_the_gate_answers_before_sign_in(password_app):
    """The probe of issue 30: no page, asset, media file, upload or websocket reaches Streamlit unsigned; the
    metrics answer no one; an upload is refused before its body is read."""
    server, url = password_app
    page = requests.get(url + "/search", headers={"Accept": "text/html"}, allow_redirects=False, timeout=10)
    assert page.status_code == 303 and page.headers["location"] == "/_curate/sign-in"
    sign_in = requests.get(url + "/_curate/sign-in", timeout=10)
    assert sign_in.status_code == 200 and 'type="password"' in sign_in.text and "<script" not in sign_in.text
    for path in ("/_stcore/host-config", "/media/abc.png", "/component/x/index.html", "/static/js/main.js",
                 "/app/static/x.png", "/_stcore/script-health-check"):
        assert requests.get(url + path, timeout=10).status_code == 401, path
    for session in ("any", "0" * 36):  # 5 MB, in the shape Streamlit's uploader sends
        reply = requests.put(f"{url}/_stcore/upload_file/{session}/f1", files={"file": ("a.png", os.urandom(5 << 20))},
                             timeout=30)
        assert reply.status_code == 401
    assert not websocket_opens(url)
    assert requests.get(url + "/_stcore/metrics", timeout=10).status_code == 404
    assert requests.get(url + "/_stcore/health", timeout=10).text == "ok"  # a probe's liveness check stays open
    forged = f"{COOKIE}=00000000.{int(time.time()) + 3600}.{'0' * 64}"
    assert requests.get(url + "/_stcore/host-config", headers={"Cookie": forged}, timeout=10).status_code == 401
    assert not websocket_opens(url, forged)


def test_wrong_passwords_are_slowed_logged_and_a_right_one_opens_everything(password_app):
    server, url = password_app
    post = lambda pw: requests.post(url + "/_curate/sign-in", data={"password": pw}, allow_redirects=False,  # noqa: E731
                                    timeout=10)
    for _ in range(3):  # typos are free
        assert post("wrong").status_code == 401
    fourth = post("wrong")
    assert fourth.status_code == 401 and "checked in 1 s" in fourth.text
    locked = post(PASSWORD)  # during the wait not even the right password is checked
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
    time.sleep(int(locked.headers["retry-after"]) + 0.2)
    fifth = post("wrong")  # the waits grow: 1 s, then 2 s
    assert fifth.status_code == 401 and "checked in 2 s" in fifth.text
    time.sleep(2.2)
    signed = post(PASSWORD)
    assert signed.status_code == 303 and signed.headers["location"] == "/"
    set_cookie = signed.headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE}=") and "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie
    cookie = set_cookie.split(";")[0]
    headers = {"Cookie": cookie}
    assert requests.get(url + "/", headers=headers, timeout=10).status_code == 200
    assert requests.get(url + "/_stcore/host-config", headers=headers, timeout=10).status_code == 200
    assert requests.get(url + "/_stcore/metrics", headers=headers, timeout=10).status_code == 404  # not even signed in
    assert websocket_opens(url, cookie)
    out = stop(server)
    failures = re.findall(r"wrong app password from 127\.0\.0\.1 \((\d+) in a row\)", out)
    assert failures == ["1", "2", "3", "4", "5"]  # one log line per wrong attempt that was checked


def test_single_sign_on_through_a_local_oidc_provider(built_workspace, tmp_path):
    """st.login's OIDC flow behind the gate: the sign-in page links to Streamlit's /auth/login, the provider
    (oidc-provider-mock on loopback) signs the user in, and Streamlit's signed user cookie opens the app."""
    oidc = pytest.importorskip("oidc_provider_mock", reason="needs oidc-provider-mock (requirements-dev.txt)")
    port = free_port()
    with oidc.run_server_in_thread() as provider:
        secrets = tmp_path / "secrets.toml"
        secrets.write_text(f'[auth]\nredirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
                           f'cookie_secret = "{os.urandom(16).hex()}"\nclient_id = "curate"\nclient_secret = "s"\n'
                           f'server_metadata_url = "http://localhost:{provider.server_port}'
                           '/.well-known/openid-configuration"\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith("CURATE_APP_")}
        server = subprocess.Popen([sys.executable, "-m", "curate", "app", "-w", str(built_workspace), "--host",
                                   "127.0.0.1", "--port", str(port), "--secrets", str(secrets)], cwd=REPO, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_serving(url, server)
            browser = requests.Session()
            assert not websocket_opens(url)
            page = browser.get(url + "/_curate/sign-in", timeout=10).text
            assert 'type="password"' not in page  # single sign-on only
            login = re.search(r'href="(/auth/login\?provider=[^"]+)"', page).group(1)
            form = browser.get(url + login, timeout=30)  # -> the provider's authorization form
            assert form.url.startswith(f"http://localhost:{provider.server_port}/") and 'name="sub"' in form.text
            done = browser.post(form.url, data={"sub": "alice@example.com"}, timeout=30)  # -> callback -> the app
            assert done.status_code == 200 and done.url.rstrip("/") == url
            cookies = "; ".join(f"{c.name}={c.value}" for c in browser.cookies if c.domain.startswith("127.0.0.1"))
            assert "_streamlit_user" in cookies
            assert browser.get(url + "/_stcore/host-config", timeout=10).status_code == 200
            assert websocket_opens(url, cookies)
            tampered = re.sub(r"(_streamlit_user=)[^;]{8}", r"\g<1>AAAAAAAA", cookies)
            assert not websocket_opens(url, tampered)
        finally:
            stop(server)


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
def test_signing_in_in_chromium(password_app):
    """A person's way in: the app's address shows the gate's page, a wrong password says so, the right one opens
    the app (whose own page script then asks nothing more: it sees the gate's cookie)."""
    from playwright.sync_api import sync_playwright

    _, url = password_app
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url + "/explore")
            assert page.url.endswith("/_curate/sign-in")
            page.fill('input[name="password"]', "not it")
            page.click('button[type="submit"]')
            assert "Wrong password" in page.text_content('[role="alert"]')
            page.fill('input[name="password"]', PASSWORD)
            page.click('button[type="submit"]')
            page.get_by_role("heading", name="Overview", exact=True).wait_for(timeout=90_000)
            assert page.locator('input[type="password"]').count() == 0  # no second sign-in form in the page
            assert page.get_by_text("Wrong password").count() == 0
            page.get_by_role("link", name="Sign out").click()  # the sidebar's link (it may open a tab): cookie cleared
            deadline = time.monotonic() + 30
            while not any(p.url.endswith("/_curate/sign-in") for p in page.context.pages):
                assert time.monotonic() < deadline, "signing out did not reach the sign-in page"
                page.wait_for_timeout(200)
            page.goto(url + "/")
            assert page.url.endswith("/_curate/sign-in")
        finally:
            browser.close()


def test_a_query_upload_is_decoded_only_as_large_as_embedding_needs(built_workspace):
    """Signed in, the probe's 727 kB PNG of 15,790^2 pixels (under the scan's 250 MP cap) made one search decode
    jump ~950 MB. A query now stops at the header above `QUERY_MAX_PIXELS`, on both of the Search page's paths
    (the preview to draw a box on, the embedding), and a large JPEG is decoded reduced in the DCT domain."""
    import io

    from PIL import Image

    from curate import open_workspace
    from curate.data.images import QUERY_MAX_PIXELS, ImageError
    from curate.ui.cache import upload_preview
    from tests.serve.test_serve import _png_header_only

    bomb = _png_header_only(15_790, 15_790)
    session = open_workspace(built_workspace)
    for decode in (lambda: session.decode_for_embedding(io.BytesIO(bomb)),
                   lambda: session.decode_for_embedding(io.BytesIO(bomb), box=(0, 0, 100, 100)),
                   lambda: upload_preview.__wrapped__(bomb, 512)):
        with pytest.raises(ImageError, match=f"{QUERY_MAX_PIXELS:,}|{QUERY_MAX_PIXELS}"):
            decode()
    big = io.BytesIO()
    Image.new("RGB", (6_000, 4_000), (90, 140, 30)).save(big, "JPEG", quality=80)
    img = session.decode_for_embedding(io.BytesIO(big.getvalue()))
    assert max(img.size) <= 4 * session.encoder[1]["image_size"]  # reduced in the DCT domain, then to size
