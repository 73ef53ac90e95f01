"""The tunable parameters of a registered strategy, read from its signature (for forms and `--set`).

A strategy's keyword parameters with a plain default (int, float, bool, str) are its knobs; `seed`
and `include` (supplied by the engine) and parameters defaulting to None (computed when absent)
are not.
"""
from __future__ import annotations

import inspect

from curate.select.base import STRATEGIES

ENGINE_PARAMS = frozenset({"vectors", "n", "seed", "include", "neighbours"})


def tunable_params(strategy: str) -> dict[str, int | float | bool | str]:
    """Parameter name -> default of `strategy`'s tunable parameters, in signature order."""
    out = {}
    for name, p in inspect.signature(STRATEGIES.get(strategy)).parameters.items():
        if name in ENGINE_PARAMS or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if isinstance(p.default, (bool, int, float, str)):
            out[name] = p.default
    return out
