"""The lookup service (`curate serve`): FastAPI over a workspace's index, for other programs."""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path

TOKEN_ENV = "CURATE_API_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def read_token(token_file: Path | None) -> str | None:
    """The API token: --token-file's first line, else $CURATE_API_TOKEN, else None. Refuses a short one."""
    token = token_file.read_text().strip().splitlines()[0].strip() if token_file else os.environ.get(TOKEN_ENV)
    if token is not None and len(token) < 16:
        raise ValueError(f"an API token is at least 16 characters (from {token_file or '$' + TOKEN_ENV}); "
                         "e.g. python -c \"import secrets; print(secrets.token_urlsafe(32))\"")
    return token or None


def serve(ws_path: Path, host: str = "127.0.0.1", port: int = 8000, token: str | None = None, **config) -> None:
    """Run the service until SIGTERM or Ctrl-C (uvicorn finishes the requests under way, then stops)."""
    import uvicorn

    from curate.serve.app import ServeConfig, create_app
    from curate.workspace import Workspace

    Workspace(ws_path).require()
    if token is None and not is_loopback(host):
        raise ValueError(f"serving on {host} (not loopback) needs an API token: set ${TOKEN_ENV} or --token-file")
    app = create_app(ws_path, ServeConfig(token=token, **config))
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, server_header=False,
                timeout_graceful_shutdown=10)
