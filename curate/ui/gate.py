"""One sign-in in front of every endpoint of the app: pages, websocket, uploads, media, components.

`curate app` serves app.py on Streamlit's own ASGI server (`st.App`, see `curate/ui/asgi/entry.py`)
with `SignInGate` as its first middleware. A request that has not signed in never reaches Streamlit:
a page load is sent to the gate's own sign-in page, anything else (the websocket, an upload, a media
file, a component) gets 401 or a closed socket before a byte of its body is read. The page script
still checks too (`curate.ui.access.signed_in`), so a bare `streamlit run app.py` is not left open.

Signing in:
- with a password (`CURATE_APP_PASSWORD`): a form posted to `SIGN_IN`; wrong answers are slowed per
  client address by `curate.serve.throttle.Throttle` (a few free, then an exponential wait, each one
  logged), and a right one gets an HttpOnly, SameSite=Strict cookie signed with this server's secret
  (`CURATE_APP_SECRET`, new at every start: a restart signs everyone out), valid `MAX_AGE` seconds;
- with single sign-on (`st.login`: an `[auth]` section in `.streamlit/secrets.toml`): the sign-in page
  links to Streamlit's own OIDC routes, and the gate admits the user cookie Streamlit signs after the
  provider's callback.

`/_stcore/metrics` (cache names, session counts, upload bytes) is served to no one; `/_stcore/health`
("ok") stays open for a load balancer's probe.
"""
from __future__ import annotations

import hashlib
import hmac
import html
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping
from urllib.parse import parse_qs, quote

from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from curate.serve.throttle import Throttle

log = logging.getLogger(__name__)

COOKIE = "curate_session"
SECRET_ENV = "CURATE_APP_SECRET"
PASSWORD_ENV = "CURATE_APP_PASSWORD"
SIGN_IN = "/_curate/sign-in"
SIGN_OUT = "/_curate/sign-out"
OPEN = ("/_stcore/health",)  # answers "ok", nothing else
NEVER = ("/_stcore/metrics",)  # internal names and counts: no one needs them from a browser
SSO_ROUTES = ("/auth/login", "/auth/logout", "/oauth2callback")  # Streamlit's own OIDC flow
MAX_AGE = 12 * 3600  # seconds a sign-in lasts
MAX_FORM = 4096  # bytes of a sign-in form: a password, not an upload


@dataclass(frozen=True)
class GateConfig:
    password: str | None = None
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    sso_providers: tuple[str, ...] = ()  # st.login providers ("default" for a bare [auth] section)

    @property
    def required(self) -> bool:
        return bool(self.password or self.sso_providers)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], sso_providers: tuple[str, ...] = ()) -> "GateConfig":
        secret = environ.get(SECRET_ENV)
        return cls(password=environ.get(PASSWORD_ENV) or None, sso_providers=sso_providers,
                   **({"secret": bytes.fromhex(secret)} if secret else {}))


def session_cookie(secret: bytes, now: float, max_age: int = MAX_AGE) -> str:
    """`nonce.expires.mac`: proof of a sign-in until `expires`, checkable with `secret` alone."""
    body = f"{secrets.token_hex(8)}.{int(now) + max_age}"
    return f"{body}.{_mac(secret, body)}"


def cookie_valid(value: str | None, secret: bytes, now: float) -> bool:
    """True for an unexpired cookie this secret signed (compared in constant time)."""
    body, _, mac = (value or "").rpartition(".")
    expires = body.rpartition(".")[2]
    return bool(body) and expires.isdigit() and hmac.compare_digest(mac, _mac(secret, body)) and int(expires) > now


def password_matches(given: str, expected: str) -> bool:
    """Constant-time comparison (of digests, so lengths leak nothing either)."""
    digest = lambda text: hashlib.sha256(text.encode("utf-8")).digest()  # noqa: E731
    return hmac.compare_digest(digest(given), digest(expected))


def _mac(secret: bytes, body: str) -> str:
    return hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()


class SignInGate:
    """Pure ASGI middleware (HTTP and websocket alike) admitting only signed-in clients."""

    def __init__(self, app, config: GateConfig, throttle: Throttle | None = None,
                 clock: Callable[[], float] = time.time, sso_user: Callable[[Mapping[str, str]], bool] | None = None):
        self.app, self.config, self.clock = app, config, clock
        self.throttle = throttle or Throttle()
        self.sso_user = sso_user or streamlit_user_signed_in

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):  # lifespan
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path in NEVER:
            return await self._refuse(scope, receive, send, 404, "Not found")
        if path in OPEN or not self.config.required:
            return await self.app(scope, receive, send)
        if path == SIGN_IN and scope["type"] == "http":
            response = await self._sign_in(Request(scope, receive))
            return await response(scope, receive, send)
        if path == SIGN_OUT and scope["type"] == "http":
            response = RedirectResponse(SIGN_IN, status_code=303)
            response.delete_cookie(COOKIE, path="/")
            return await response(scope, receive, send)
        if self.admits(HTTPConnection(scope).cookies) or (self.config.sso_providers and path in SSO_ROUTES):
            return await self.app(scope, receive, send)
        if scope["type"] == "http" and scope["method"] == "GET" and "text/html" in _header(scope, b"accept"):
            return await RedirectResponse(SIGN_IN, status_code=303)(scope, receive, send)  # a page load
        return await self._refuse(scope, receive, send, 401, "Sign in first")

    def admits(self, cookies: Mapping[str, str]) -> bool:
        return (cookie_valid(cookies.get(COOKIE), self.config.secret, self.clock())
                or bool(self.config.sso_providers and self.sso_user(cookies)))

    async def _refuse(self, scope, receive, send, status: int, text: str):
        if scope["type"] == "websocket":  # closed before accept: the client sees HTTP 403, the app nothing
            await receive()  # websocket.connect
            return await send({"type": "websocket.close", "code": 1008})
        return await PlainTextResponse(text, status_code=status)(scope, receive, send)

    async def _sign_in(self, request: Request) -> Response:
        if request.method != "POST":
            return self._page()
        client = request.client.host if request.client else "unknown"
        wait = self.throttle.wait(client)
        if wait > 0:  # not even checked: a guess during the wait costs nothing but time
            return self._page(f"Too many wrong passwords: try again in {wait:.0f} s.", 429,
                              {"Retry-After": str(int(wait) + 1)})
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                return PlainTextResponse("Sign-in form too large", status_code=413)
        given = parse_qs(body.decode("utf-8", "replace")).get("password", [""])[0]
        if not self.config.password or not password_matches(given, self.config.password):
            delay = self.throttle.failed(client, "app password")
            wait_note = f" The next try is checked in {delay:.0f} s." if delay else ""
            return self._page(f"Wrong password.{wait_note}", 401)
        self.throttle.succeeded(client)
        log.info("app sign-in from %s", client)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, session_cookie(self.config.secret, self.clock()), max_age=MAX_AGE, path="/",
                            httponly=True, samesite="strict", secure=request.url.scheme == "https")
        return response

    def _page(self, message: str = "", status: int = 200, headers: dict | None = None) -> HTMLResponse:
        return HTMLResponse(sign_in_page(message, bool(self.config.password), self.config.sso_providers),
                            status_code=status, headers=headers)


def sign_in_page(message: str, password: bool, sso_providers: tuple[str, ...]) -> str:
    """The gate's own page: no script, no Streamlit (nothing of the app loads before sign-in)."""
    form = (f'<form method="post" action="{SIGN_IN}"><label>Password <input type="password" name="password" '
            'autofocus required></label> <button type="submit">Sign in</button></form>') if password else ""
    links = "".join(f'<p><a class="sso" href="/auth/login?provider={quote(sso_login_token(p))}">Sign in with '
                    f'{html.escape("single sign-on" if p == "default" else p)}</a></p>' for p in sso_providers)
    note = f'<p class="msg" role="alert">{html.escape(message)}</p>' if message else ""
    return ('<!doctype html><html><head><meta charset="utf-8"><title>curate: sign in</title><style>'
            'body{font-family:system-ui,sans-serif;max-width:24rem;margin:15vh auto;padding:0 1rem}'
            '.msg{color:#b00020}input,button{font-size:1rem;padding:.3rem}</style></head><body>'
            f'<h1>curate</h1>{note}{form}{links}</body></html>')


def _header(scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == name), "")


def sso_login_token(provider: str) -> str:
    """The signed provider token Streamlit's `/auth/login` expects (what `st.login(provider)` sends)."""
    from streamlit.auth_util import encode_provider_token

    return encode_provider_token(provider)


def streamlit_user_signed_in(cookies: Mapping[str, str]) -> bool:
    """Whether `cookies` hold the user cookie Streamlit signed after an OIDC callback (Streamlit 1.67's
    format, read with its own helpers, so a cookie it would not trust is not trusted here either)."""
    import json

    from streamlit.auth_util import get_cookie_with_chunks
    from streamlit.web.server.server_util import get_cookie_secret
    from streamlit.web.server.starlette.starlette_app_utils import decode_signed_value
    from streamlit.web.server.starlette.starlette_server_config import USER_COOKIE_NAME

    def one(name: str) -> bytes | None:
        value = cookies.get(name)
        return None if value is None else decode_signed_value(get_cookie_secret(), name, value.encode("latin-1"))

    try:
        raw = get_cookie_with_chunks(one, USER_COOKIE_NAME)
        return bool(raw) and bool(json.loads(raw).get("is_logged_in"))
    except (ValueError, TypeError, AttributeError):
        return False


def sso_providers(auth: Mapping | None) -> tuple[str, ...]:
    """The st.login providers an `[auth]` secrets section configures: its named sub-sections, or
    "default" for a bare section with a client_id; none without a section."""
    if not auth:
        return ()
    named = tuple(k for k, v in auth.items() if isinstance(v, Mapping))
    return named or (("default",) if auth.get("client_id") else ())
