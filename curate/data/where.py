"""`--where`: one filter expression over the manifest's columns, parsed and run by DuckDB, never by `eval`.

    camera_model = 'X100V' AND captured >= '2024-06-01'
    label IN ('cat', 'dog') AND width >= 640
    kind = 'object' AND (x1 - x0) * (y1 - y0) < 32 * 32

The expression is parsed as one SQL expression (`duckdb.SQLExpression`: a second statement or a dangling
clause does not parse) and run over the table in a DuckDB connection with external access turned off and
its configuration locked, so an expression can read the table's columns and nothing else: no files, no
URLs, no settings. Column names are the table's own (quote odd ones: "camera make"). A timestamp column
compares with a date written as text ('2024-06-01'), as SQL casts it.

A view is a named, saved `--where` (`views.json` in the workspace, written atomically).
"""
from __future__ import annotations

import difflib
import re

import numpy as np
import pandas as pd

from curate import storage

_COLUMN_ERROR = re.compile(r'Referenced column "?([^"\s]+)"? not found')
VIEW_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_. -]{0,63}$")


class WhereError(ValueError):
    """An expression that does not parse, names a column the table does not have, or does not give a boolean."""


def where_mask(table: pd.DataFrame, expression: str | None) -> np.ndarray:
    """(len(table),) bool: the rows for which `expression` is true (NULL counts as false); all rows for an
    empty expression. Raises WhereError with a message that names the problem (and close column names)."""
    if expression is None or not expression.strip():
        return np.ones(len(table), bool)
    import duckdb

    try:
        parsed = duckdb.SQLExpression(expression)
    except duckdb.Error as err:
        raise WhereError(f"--where {expression!r} does not parse: {_first_line(err)}") from None
    con = duckdb.connect(config={"enable_external_access": False, "lock_configuration": True, "threads": 2})
    try:
        rel = con.from_df(table.assign(__row=np.arange(len(table), dtype=np.int64)))  # DuckDB scans pandas columns
        result = str(rel.project(parsed).types[0])
        if result != "BOOLEAN":
            raise WhereError(f"--where {expression!r} gives {result.lower()} values, not true or false: compare "
                             "it with something (e.g. width >= 640, label = 'cat')")
        rows = rel.filter(parsed).project("__row").fetchnumpy()["__row"]
    except duckdb.BinderException as err:
        raise WhereError(_binder_message(expression, err, table.columns)) from None
    except duckdb.Error as err:
        raise WhereError(f"--where {expression!r} cannot be applied: {_first_line(err)}") from None
    finally:
        con.close()
    mask = np.zeros(len(table), bool)
    mask[np.asarray(rows, dtype=np.int64)] = True
    return mask


def _binder_message(expression: str, err: Exception, columns) -> str:
    found = _COLUMN_ERROR.search(str(err))
    if found:
        name = found.group(1)
        close = difflib.get_close_matches(name, [str(c) for c in columns], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return (f"--where {expression!r}: there is no column {name!r}{hint} Columns: "
                f"{', '.join(str(c) for c in columns)}")
    return f"--where {expression!r} cannot be applied: {_first_line(err)}"


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0]


# --- views: saved expressions ----------------------------------------------------------------------
def read_views(file) -> dict[str, str]:
    """{name: expression} of the workspace's saved views (none yet: empty)."""
    return dict(storage.read_json(file)) if file.exists() else {}


def save_view(file, name: str, expression: str, table: pd.DataFrame) -> dict[str, str]:
    """Check `expression` on `table`, then save it as view `name` (replacing one of that name)."""
    if not VIEW_NAME.match(name):
        raise WhereError(f"a view name is 1-64 letters, digits, spaces, '_', '-' or '.', not {name!r}")
    where_mask(table, expression)  # a view that does not run is refused when saved, not when used
    views = {**read_views(file), name: expression}
    storage.write_json(file, views)
    return views


def delete_view(file, name: str) -> dict[str, str]:
    views = read_views(file)
    if name not in views:
        raise WhereError(f"no view {name!r}; views: {', '.join(views) or 'none'}")
    del views[name]
    storage.write_json(file, views)
    return views


def view_expression(file, name: str) -> str:
    views = read_views(file)
    if name not in views:
        raise WhereError(f"no view {name!r}; views: {', '.join(views) or 'none yet (save one with `curate view`)'}")
    return views[name]


def combined(where: str | None, view: str | None, views_file) -> str | None:
    """One expression from `--where` and a saved `--view` (both must hold); None when neither is given."""
    parts = [view_expression(views_file, view) if view else None, where]
    parts = [p.strip() for p in parts if p and p.strip()]
    if len(parts) < 2:
        return parts[0] if parts else None
    return " AND ".join(f"({p})" for p in parts)
