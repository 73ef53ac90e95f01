"""The engine contract: where the per-file work of the scan, the decode cache and the embedding runs.

A step decides which files need work and writes the workspace's files; an engine only does that work,
in the order given, and returns it (DESIGN.md section 6). Every engine must give what `local` gives:
the same manifest rows, the same decoded pixels, the same vectors (tests/engines/test_engine_contract.py
runs each registered engine against `local`).

A new engine is one file in curate/engines/: a subclass of `Engine` decorated `@register(name)`, with
its own options as a frozen `Options` dataclass of `curate.options.option` fields in the group
f"engine:{name}" (f"engine:{name}:embed" for those only embedding uses: `curate scan` and `curate train`
do not take them). The CLI adds every engine's options (`add_engine_options`) and builds the engine
asked for (`engine_from_args`); a heavy dependency is imported when the engine runs, not here.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Mapping

import numpy as np

from curate.options import add_options, field_default, flag, option_fields
from curate.registry import Registry

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from curate.progress import Progress
    from curate.workspace import Workspace

ENGINES: Registry = Registry("engine")
DEFAULT_ENGINE = "local"


@dataclass(frozen=True)
class EmbedJob:
    """What an engine needs to compute vectors: the images of manifest ids `rows`, and the encoder."""
    ws: Workspace
    manifest: pd.DataFrame
    rows: np.ndarray  # (R,) manifest ids
    encoder_file: Path
    net: torch.nn.Module  # loaded on the step's device (`Engine.device`); an engine may load its own copies
    config: dict
    batch_size: int


class Engine:
    """Base class: subclasses set `Options` and implement the four methods; `create_engine` builds them."""

    @dataclass(frozen=True)
    class Options:  # this engine's own options (curate.options fields); local has none
        pass

    name: ClassVar[str] = ""  # set by `register`

    def __init__(self, options: Any = None):
        self.options = options if options is not None else self.Options()

    def check(self) -> None:
        """Fail before any work when the engine cannot run (a missing package, a cluster that does not answer)."""

    def inspect_files(self, paths: list[Path]) -> Iterator[dict]:
        """`curate.data.scan.inspect_file` of each path (read, hash, test-decode), in the order given."""
        raise NotImplementedError

    def decode_files(self, paths: list[Path], size: int) -> Iterator[np.ndarray | None]:
        """`curate.data.cache.decode_row` of each path ((size, size, 3) uint8; None or zero pixels where a
        file no longer decodes), in the order given: the rows the decoded-image cache writes."""
        raise NotImplementedError

    def embed(self, job: EmbedJob, out: np.ndarray, done: int, on_chunk: Callable[[int], None],
              progress: Progress | None) -> dict:
        """Write the vector of job.rows[k] into out[k] ((R, D) float32, L2-normalised) for every k >= done,
        calling on_chunk(k) whenever out[:k] is complete (the step checkpoints there) and reporting progress;
        return the fields the embeddings sidecar records: {"engine": name, and what the run used}."""
        raise NotImplementedError

    def device(self, requested: str) -> str:
        """The device the step loads its encoder on (an engine whose workers load their own: "cpu")."""
        return requested

    @staticmethod
    def describe(fields: Mapping[str, Any]) -> str:
        """A few words on how the engine ran, from the sidecar fields its `embed` returned ("": nothing to say)."""
        return ""


def register(name: str) -> Callable[[type[Engine]], type[Engine]]:
    """Class decorator: enrol an engine under `name` (its `name`)."""
    def add(cls: type[Engine]) -> type[Engine]:
        cls.name = name
        return ENGINES.register(name)(cls)
    return add


def engine_names() -> list[str]:
    return ENGINES.names()


def engine_option_fields(embeds: bool = True) -> list[dataclasses.Field]:
    """The option fields of every registered engine, in name order (`embeds` False: without those only
    embedding uses, for `curate scan` and `curate train`)."""
    return [f for name in engine_names() for f in option_fields(ENGINES.get(name).Options, _groups(name, embeds))]


def add_engine_options(parser: argparse.ArgumentParser, embeds: bool = True) -> None:
    """Add every registered engine's own options to `parser` (`--engine` itself is a RunOptions field)."""
    for name in engine_names():
        add_options(parser, ENGINES.get(name).Options, _groups(name, embeds))


def _groups(name: str, embeds: bool) -> tuple[str, ...]:
    return (f"engine:{name}", f"engine:{name}:embed") if embeds else (f"engine:{name}",)


def create_engine(name: str, given: Mapping[str, Any] | None = None) -> Engine:
    """The engine `name` with its options from `given` ({field: value}; absent fields keep their defaults),
    checked before any work. A value given for another engine's option (one that differs from its
    default) is refused, naming the flags: "--address needs --engine ray"."""
    cls = ENGINES.get(name)  # ValueError naming the registered engines
    given = dict(given or {})
    fields = {f.name: (engine, f) for engine in engine_names()
              for f in option_fields(ENGINES.get(engine).Options)}
    unknown = sorted(set(given) - set(fields))
    if unknown:
        raise ValueError(f"unknown engine option(s) {', '.join(unknown)}; the engines take: {', '.join(fields)}")
    foreign: dict[str, list[str]] = {}
    for key, (engine, f) in fields.items():  # in declaration order
        if engine != name and given.get(key) is not None and given[key] != field_default(f):
            foreign.setdefault(engine, []).append(flag(f))
    for engine, flags in foreign.items():
        listed = flags[0] if len(flags) == 1 else f"{', '.join(flags[:-1])} and {flags[-1]}"
        raise ValueError(f"{listed} need{'s' if len(flags) == 1 else ''} --engine {engine}")
    mine = {key: value for key, value in given.items() if fields[key][0] == name and value is not None}
    engine = cls(cls.Options(**mine))
    engine.check()
    return engine


def engine_from_args(args: argparse.Namespace | Mapping[str, Any]) -> Engine:
    """`create_engine` of parsed arguments (or a mapping): `engine` (default local) and whichever engine
    options they hold."""
    values = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    given = {f.name: values[f.name] for f in engine_option_fields() if f.name in values}
    return create_engine(values.get("engine") or DEFAULT_ENGINE, given)


def describe_run(fields: Mapping[str, Any]) -> str:
    """`Engine.describe` of the engine an embeddings sidecar names ("" for one not registered here)."""
    name = fields.get("engine")
    return ENGINES.get(name).describe(fields) if name in ENGINES else ""
