"""The tunable parameters of a registered strategy, read from its signature (for forms and `--set`).

A strategy's keyword parameters with a plain default (int, float, bool, str) are its knobs; `seed`
and `include` (supplied by the engine) and parameters defaulting to None (computed when absent)
are not.
"""
from __future__ import annotations

import inspect

from curate.select.base import STRATEGIES

ENGINE_PARAMS = frozenset({"vectors", "n", "seed", "include", "neighbours"})


def user_params(strategy: str) -> dict[str, inspect.Parameter]:
    """Name -> parameter of every keyword a user may set on `strategy` (not the engine's), in signature order."""
    return {name: p for name, p in inspect.signature(STRATEGIES.get(strategy)).parameters.items()
            if name not in ENGINE_PARAMS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def tunable_params(strategy: str) -> dict[str, int | float | bool | str]:
    """Parameter name -> default of `strategy`'s tunable parameters, in signature order."""
    return {name: p.default for name, p in user_params(strategy).items()
            if isinstance(p.default, (bool, int, float, str))}


def check_params(strategy: str, params: dict) -> None:
    """Raise ValueError naming `strategy`'s parameters when `params` holds one it does not take."""
    accepted = user_params(strategy)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"{strategy} takes no parameter {', '.join(map(repr, unknown))}; "
                         f"its parameters: {', '.join(accepted) or 'none'}")
