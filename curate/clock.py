"""The time stamps written into sidecars, job files and locks (below every module that writes one)."""
from __future__ import annotations

import datetime as _dt


def now() -> str:
    """The current UTC time as ISO 8601 to the second, e.g. '2024-05-01T12:00:00+00:00'."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
