"""Options declared once: each is a dataclass field holding its default and its help text.

The command line is built from these fields (`add_options`), the app's run form and the
`pipelines/` presets fill the same dataclass, and the steps read it. A field's `group` says which
commands take it (`curate run` takes every group; `curate train` the train and ddp groups, ...).

    @dataclass(frozen=True)
    class MyOptions:
        k: int = option(10, "neighbours per image", group="scores")

    add_options(parser, MyOptions, groups=("scores",))   # --k, "neighbours per image (default 10)"
    options = from_namespace(MyOptions, parser.parse_args())
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Iterable, Mapping, TypeVar

T = TypeVar("T")


def option(default: Any, help: str, group: str, *, flags: tuple[str, ...] = (), exclusive: str | None = None,
           show_default: bool = True, **argparse_kwargs) -> Any:
    """A dataclass field that is also a command-line option.

    flags: the option strings (default `--field-name`); exclusive: fields sharing this name form a
    mutually exclusive group; argparse_kwargs go to `add_argument` (type, choices, nargs, action, metavar).
    List defaults are stored as tuples (a frozen dataclass holds no mutable default)."""
    meta = {"help": help, "group": group, "flags": flags, "exclusive": exclusive, "show_default": show_default,
            "argparse": argparse_kwargs}
    if isinstance(default, (list, tuple)):
        return dataclasses.field(default_factory=lambda: tuple(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def option_fields(cls, groups: Iterable[str] | None = None) -> list[dataclasses.Field]:
    """The fields of `cls` declared with `option`, in declaration order, of `groups` (all when None)."""
    wanted = None if groups is None else set(groups)
    return [f for f in dataclasses.fields(cls)
            if "group" in f.metadata and (wanted is None or f.metadata["group"] in wanted)]


def flag(f: dataclasses.Field) -> str:
    """The option string of a field (its last declared flag, else --field-name)."""
    return f.metadata["flags"][-1] if f.metadata.get("flags") else f"--{f.name.replace('_', '-')}"


def field_default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def add_options(parser: argparse.ArgumentParser, cls, groups: Iterable[str] | None = None,
                flags: Mapping[str, tuple[str, ...]] | None = None,
                extra: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Add an argument for each option field of `cls` in `groups`. `flags` gives a field other option
    strings for this command (kept for a command whose flag predates the field); `extra` adds
    add_argument keywords to a field (choices known only at run time)."""
    add_fields(parser, option_fields(cls, groups), flags, extra)


def add_fields(parser: argparse.ArgumentParser, fields: Iterable[dataclasses.Field],
               flags: Mapping[str, tuple[str, ...]] | None = None,
               extra: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """`add_options` for a list of option fields (e.g. every engine's)."""
    exclusive: dict[str, Any] = {}
    for f in fields:
        meta = f.metadata
        kwargs = {**meta["argparse"], **(extra or {}).get(f.name, {})}
        default = field_default(f)
        names = (flags or {}).get(f.name) or meta["flags"] or (f"--{f.name.replace('_', '-')}",)
        if isinstance(default, bool):
            kwargs.setdefault("action", "store_true")
        elif isinstance(default, tuple) and kwargs.get("nargs") is None:
            kwargs.setdefault("action", "append")
        shown = meta["show_default"] and default not in (None, (), False)
        kwargs["help"] = meta["help"] + (f" (default {default})" if shown else "")
        if kwargs.get("action") == "append":
            default = None  # argparse appends to a given list: start from none, `from_namespace` fills the default
        if meta["exclusive"] and meta["exclusive"] not in exclusive:
            exclusive[meta["exclusive"]] = parser.add_mutually_exclusive_group()
        target = exclusive[meta["exclusive"]] if meta["exclusive"] else parser
        target.add_argument(*names, dest=f.name, default=default, **kwargs)


def from_namespace(cls: type[T], namespace: argparse.Namespace | Mapping, **overrides) -> T:
    """`cls` with the values the namespace (or mapping) holds for its fields; absent or None-for-a-list
    fields keep their defaults. Lists become tuples."""
    values = vars(namespace) if isinstance(namespace, argparse.Namespace) else dict(namespace)
    values.update(overrides)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        value = values[f.name]
        if isinstance(value, list):
            value = tuple(value)
        if value is None and isinstance(field_default(f), tuple):
            continue
        kwargs[f.name] = value
    return cls(**kwargs)


def to_argv(options, groups: Iterable[str] | None = None, skip: Iterable[str] = ()) -> list[str]:
    """The command-line flags that give `options` again (fields at their default are left out)."""
    argv: list[str] = []
    skip = set(skip)
    for f in option_fields(type(options), groups):
        value = getattr(options, f.name)
        if f.name in skip or value == field_default(f) or value is None:
            continue
        name = flag(f)
        if isinstance(value, bool):
            argv += [name] if value else []
        elif isinstance(value, tuple) and f.metadata["argparse"].get("nargs") in ("+", "*"):
            argv += [name, *map(str, value)]
        elif isinstance(value, tuple):
            for item in value:
                argv += [name, str(item)]
        else:
            argv += [name, f"{value:g}" if isinstance(value, float) else str(value)]
    return argv
