"""The workspace's steps, declared once: what each reads and writes, and the function that runs it.

Every way to build a workspace goes through these declarations: the `curate run` command, the
single-step commands (`curate scan`, `train`, `embed`... run one step each), `pipelines/run_all.py`
(a YAML preset turned into the same `RunOptions`) and the app (its background job starts `curate run`;
its pages run one step with `run_step`). A step is a library function

    run(ws: Workspace, options: RunOptions, progress: Progress | None) -> Summary

where the summary is a small dataclass of the figures the step measured; `summary.lines()` is what
the CLI prints and the app shows. Nothing here prints: a driver (CLI, app, pipeline file) formats.

To add a step: write its module in curate/steps/ (its `run` and its Summary dataclass; its options,
if any, as fields of curate.steps.options.RunOptions), then declare it below, in `STEPS` (part of
`curate run`, in order) or `EXTRA_STEPS` (run on request). A test runs each declared step alone on a
workspace holding only what it declares it reads and checks that it writes what it declares.

Each step is incremental on its own, which is what makes a rerun cheap and a killed run resumable:

    scan          rereads only new or changed files (size, mtime), keeps ids
    quality       measures only images without metrics; thresholds a person set are kept
    train         resumes an interrupted training, skips one finished with this recipe (--retrain repeats it)
    embed         embeds only images whose content or model changed; the index follows the embeddings
    map, dedup, scores, label-issues, select    recomputed from the embeddings (minutes at 1M)
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Callable, ContextManager, Protocol

from curate.progress import Progress
from curate.steps import dedup, embed, label_issues, map as map_step, quality, scan, scores, select, train
from curate.steps.options import RunOptions
from curate.workspace import Workspace


class Summary(Protocol):
    def lines(self) -> list[str]: ...


@dataclasses.dataclass(frozen=True)
class Step:
    """One step: its name, the workspace files it reads and writes (paths relative to the workspace;
    "IMAGES" is the image folder), the unit its progress counts, and its function."""

    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    run: Callable[[Workspace, RunOptions, Progress | None], Summary]
    unit: str = "img"


STEPS = (
    Step("scan", ("IMAGES",), ("workspace.json", "manifest.parquet"), scan.run, "file"),
    Step("quality", ("IMAGES", "workspace.json", "manifest.parquet"), ("manifest.parquet", "fingerprints.npy", "quality.json"),
         quality.run),
    Step("train", ("IMAGES", "workspace.json", "manifest.parquet"),
         ("model/encoder.pt", "model/config.json", "model/checkpoint.pt", "model/train_log.jsonl"), train.run, "s"),
    Step("embed", ("IMAGES", "workspace.json", "manifest.parquet", "model/encoder.pt", "model/config.json"),
         ("embeddings.npy", "embeddings.json", "index.faiss", "index.json"), embed.run),
    Step("map", ("embeddings.npy", "embeddings.json"), ("knn_graph.npz", "projection_umap.npy"), map_step.run),
    Step("dedup", ("manifest.parquet", "fingerprints.npy", "embeddings.npy", "embeddings.json"),
         ("knn_graph.npz", "duplicates.parquet", "duplicates.json", "duplicate_pairs.parquet"), dedup.run, "pair"),
    Step("scores", ("manifest.parquet", "embeddings.npy", "embeddings.json"), ("knn_graph.npz", "scores.parquet"),
         scores.run),
    Step("label-issues", ("manifest.parquet", "embeddings.npy", "embeddings.json"), ("label_issues.parquet",),
         label_issues.run),
    Step("select", ("manifest.parquet", "embeddings.npy", "embeddings.json"), ("selections/",), select.run),
)
EXTRA_STEPS = (  # declared like the others, run on request (`curate map --method tsne`, the app's Explore page)
    Step("tsne", ("embeddings.npy", "embeddings.json"), ("projection_tsne.npy",), map_step.run_tsne),
)


def step(name: str) -> Step:
    """The declared step called `name`."""
    for s in STEPS + EXTRA_STEPS:
        if s.name == name:
            return s
    raise ValueError(f"unknown step {name!r}; steps: {', '.join(s.name for s in STEPS + EXTRA_STEPS)}")


def run_step(ws: Workspace, name: str, options: RunOptions | None = None,
             progress: Progress | None = None, **params) -> Summary:
    """Run one declared step on `ws` with `options` (RunOptions' defaults when None) and the step's own
    `params` (e.g. label-issues' `k`)."""
    return step(name).run(ws, options or RunOptions(workspace=ws.path), progress, **params)


ProgressFor = Callable[[Step], ContextManager[Progress | None]]


def no_progress(step: Step) -> ContextManager[None]:
    return contextlib.nullcontext()


@dataclasses.dataclass(frozen=True)
class RunSummary:
    workspace: Workspace
    seconds: float

    def lines(self) -> list[str]:
        return [f"done in {self.seconds / 60:.1f} min. Explore it: curate app -w {self.workspace.path}"]


def run(options: RunOptions, steps: tuple[Step, ...] = STEPS, progress_for: ProgressFor = no_progress,
        on_summary: Callable[[Step, Summary], None] | None = None) -> RunSummary:
    """Run `steps` in order on `options.images` into `options.workspace`; each step's summary goes to
    `on_summary` as it ends (the CLI prints it), each step's progress to `progress_for(step)`."""
    if options.workspace is None:
        raise ValueError("give the workspace folder (-w WS)")
    start, ws = time.perf_counter(), Workspace(options.workspace)
    for s in steps:
        with progress_for(s) as progress:
            summary = s.run(ws, options, progress)
        if on_summary is not None:
            on_summary(s, summary)
    return RunSummary(ws, time.perf_counter() - start)
