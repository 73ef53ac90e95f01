"""Who may use a shared app, and which folders a browser may name.

`curate app` passes both to the server in its environment:

    CURATE_APP_ROOTS     folders (os.pathsep-separated) inside which every path typed in the browser
                         must lie: workspaces to open or build, image folders, export targets.
                         `curate app --root DIR` (repeatable); by default the open workspace's parent
                         folder, its image folder and ./workspaces. Unset (a bare `streamlit run
                         app.py` on one's own machine): nothing is confined.
    CURATE_APP_BUCKETS   bucket prefixes (space-separated URLs, s3:// gs:// az://) under which a URL typed
                         in the browser must lie to build a workspace from it: `curate app --root
                         s3://bucket/prefix`; by default the open workspace's own bucket, if it has one.
                         The server's environment holds the credentials; the browser never gives any.
    CURATE_APP_PASSWORD  when set, every browser session signs in with it first: at the gate in front
                         of every endpoint (`curate.ui.gate`, which `curate app` always runs), and
                         here in the page script too, so a bare `streamlit run app.py` is not open.

Paths are compared after resolving symlinks and `..`, so a link inside a root that points out of it
is refused too.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Mapping

import streamlit as st

from curate.data.remote import PACKAGES
from curate.ui.gate import COOKIE, PASSWORD_ENV, SECRET_ENV, cookie_valid, password_matches

ROOTS_ENV = "CURATE_APP_ROOTS"
BUCKETS_ENV = "CURATE_APP_BUCKETS"
BUCKET_PROTOCOLS = tuple(PACKAGES)  # the object stores curate reads: never http://, file://, ...
SIGNED_IN_KEY = "signed_in"


def allowed_roots(environ: Mapping[str, str] = os.environ) -> list[Path] | None:
    """The resolved folders a browser may name, or None when the app is not confined."""
    value = environ.get(ROOTS_ENV)
    if value is None:
        return None
    return [Path(p).expanduser().resolve() for p in value.split(os.pathsep) if p.strip()]


def confine(path: str | Path, roots: list[Path] | None) -> Path:
    """`path` resolved, when it lies inside one of `roots` (or nothing is confined); else PermissionError."""
    resolved = Path(path).expanduser().resolve()
    if roots is None or any(resolved == root or resolved.is_relative_to(root) for root in roots):
        return resolved if roots is not None else Path(path).expanduser()
    shown = ", ".join(str(r) for r in roots) or "none"
    raise PermissionError(f"{path} is outside the folders this app may use ({shown}); start `curate app` with "
                          f"--root DIR to allow another folder")


def allowed(path: str | Path) -> Path:
    """`confine` against this server's roots."""
    return confine(path, allowed_roots())


def allowed_buckets(environ: Mapping[str, str] = os.environ) -> list[str] | None:
    """The bucket prefixes a browser may name, or None when the app is not confined (no roots set)."""
    if environ.get(ROOTS_ENV) is None:
        return None
    return [bucket_prefix(u) for u in environ.get(BUCKETS_ENV, "").split()]


def bucket_prefix(url: str) -> str:
    """`url` checked to be an object-store URL with a bucket and no `.`/`..` parts, without a trailing slash."""
    protocol, _, rest = url.strip().partition("://")
    parts = rest.rstrip("/").split("/")
    if protocol not in BUCKET_PROTOCOLS or not parts[0]:
        raise ValueError(f"{url} is not a bucket URL: the app reads {', '.join(p + '://' for p in BUCKET_PROTOCOLS)}"
                         " followed by a bucket and an optional prefix")
    if any(part in (".", "..", "") for part in parts):
        raise ValueError(f"{url}: a bucket URL may not have empty, . or .. parts")
    return f"{protocol}://{'/'.join(parts)}"


def confine_url(url: str, buckets: list[str] | None) -> str:
    """`url` normalised, when it lies under one of `buckets` (or nothing is confined); else PermissionError."""
    clean = bucket_prefix(url)
    if buckets is None or any(clean == b or clean.startswith(b + "/") for b in buckets):
        return clean
    shown = ", ".join(buckets) or "none"
    raise PermissionError(f"{url} is outside the buckets this app may read ({shown}); start `curate app` with "
                          "--root s3://bucket/prefix to allow one")


def allowed_url(url: str) -> str:
    """`confine_url` against this server's bucket prefixes."""
    return confine_url(url, allowed_buckets())


def signed_in(environ: Mapping[str, str] = os.environ) -> bool:
    """True when no password is set or this session has signed in (here or at the gate); otherwise draw
    the sign-in form."""
    password = environ.get(PASSWORD_ENV)
    if not password or st.session_state.get(SIGNED_IN_KEY) or signed_in_at_gate(environ):
        return True
    st.title("curate")
    with st.form("sign_in"):
        given = st.text_input("Password", type="password", key="sign_in_password")
        go = st.form_submit_button("Sign in", type="primary", icon=":material/login:")
    if go:
        if password_matches(given, password):
            st.session_state[SIGNED_IN_KEY] = True
            st.session_state.pop("sign_in_password", None)
            st.rerun()
        st.error("Wrong password.", icon=":material/lock:")
    return False


def signed_in_at_gate(environ: Mapping[str, str] = os.environ) -> bool:
    """The gate's cookie reached the script: this browser signed in there (`curate app`)."""
    secret = environ.get(SECRET_ENV)
    return bool(secret) and cookie_valid(st.context.cookies.get(COOKIE), bytes.fromhex(secret), time.time())
