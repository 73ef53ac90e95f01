"""`curate train --nproc N`: training with torch DDP, one process per share of the CPU cores (gloo)
or per GPU (NCCL), started by torchrun (DESIGN.md §6).

A driver beside the pipeline: with `--nproc`, `with_ddp` puts `launch` in place of the train step
of `curate train` / `curate run`. The launcher (in the `curate` process) takes the workspace's model
lock, builds the decoded-image cache and runs

    python -m torch.distributed.run --standalone --nproc-per-node N -m curate.train IMAGES -w WS <options>

Each rank (`work`) joins the process group and runs the ordinary train step, which in a process
group trains on its rows of every global batch (curate.train.ddp) and lets rank 0 write.
`torchrun --nproc-per-node N -m curate.train IMAGES -w WS ...` starts the ranks without a launcher:
rank 0 then scans, builds the cache and takes the lock itself, as it does with `--nnodes` above 1
(every node runs the same command on a shared workspace, so no launcher writes it). A rank that
fails writes its error where the launcher finds it, so `curate train` ends with the first failure's
message.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from curate.locks import locked
from curate.options import to_argv
from curate.progress import Progress, staged
from curate.steps.options import RunOptions
from curate.steps.train import (LOCK_HELD_ENV, TrainSummary, build_image_cache, plan, run as train_step, run_config,
                                task_names, train_config, trained_summary)
from curate.train.device import cores, set_threads
from curate.workspace import Workspace

log = logging.getLogger(__name__)

LAUNCHED_ENV = "CURATE_DDP_LAUNCHER"  # set for the ranks: a launcher scanned and built the image cache
ERRORS_ENV = "CURATE_DDP_ERRORS"  # folder where a failing rank writes rank<R>.txt
RANK_GROUPS = ("common", "train", "resume")  # the options a rank is given (the launcher built the image cache)
INTERRUPT_WAIT_S = 120  # how long the launcher waits for the ranks to checkpoint after Ctrl-C


def uses_cuda(device: str | None) -> bool:
    return device == "cuda" or (device in (None, "auto") and torch.cuda.is_available())


def check_nproc(nproc: int, device: str | None) -> None:
    """A clear error for a process count this machine cannot run: one GPU per rank, at least a core per rank."""
    if nproc < 1:
        raise ValueError(f"--nproc must be at least 1, not {nproc}")
    if uses_cuda(device):
        gpus = torch.cuda.device_count()
        if nproc > gpus:
            raise ValueError(f"--nproc {nproc} needs {nproc} GPUs (one per process, NCCL); this machine has {gpus}. "
                             f"Use --nproc {gpus}, or --device cpu")
    elif nproc > cores():
        raise ValueError(f"--nproc {nproc} is more processes than the {cores()} CPU cores here: each process needs at "
                         f"least one core; use --nproc {cores()} or fewer")


def with_ddp(steps: tuple, options: RunOptions) -> tuple:
    """`steps` with `launch` in place of the train step when `options.nproc` is given. Over several nodes
    no launcher writes the shared workspace: the scan is left to rank 0 too (`work`)."""
    if options.nproc is None:
        return steps
    several_nodes = str(options.nnodes or 1) != "1"
    return tuple(dataclasses.replace(s, run=launch) if s.name == "train" else s for s in steps
                 if not (several_nodes and s.name == "scan"))


def launch(ws: Workspace, options: RunOptions, progress: Progress | None = None) -> TrainSummary:
    """Run the DDP training of `options` under torchrun; raises the first failing rank's error."""
    check_nproc(options.nproc, options.device)
    nnodes = str(options.nnodes or 1)
    threads = options.threads or max(1, cores() // options.nproc)
    if nnodes != "1":
        if not options.rdzv_endpoint:
            raise ValueError("several nodes need a rendezvous: --rdzv-endpoint HOST:PORT (the same on every node), "
                             "as torchrun documents")
        # Every node runs this command on the same shared workspace, so no launcher writes it: rank 0,
        # wherever the rendezvous places it, scans, builds the image cache and takes the model lock (`work`)
        # while the others wait at a barrier.
        _torchrun(options, nnodes, threads, {})
        return trained_summary(ws)
    cfg, action, why = plan(ws, options)  # as the train step decides: skip a finished recipe, resume a stopped one
    if action == "skip":
        return TrainSummary(task_names(cfg), ws.encoder_file, skipped=why)
    options = dataclasses.replace(options, resume=action == "resume")
    cfg = _prepare(ws, options, progress, cfg)
    if cfg.batch_size % options.nproc:
        raise ValueError(f"the batch size ({cfg.batch_size}) must divide evenly over {options.nproc} processes: each "
                         "trains on an equal share of every batch")
    with locked(ws.locks_dir, "model", wait=False, what="a training run"):  # held for the ranks
        _torchrun(options, nnodes, threads, {LAUNCHED_ENV: str(os.getpid()), LOCK_HELD_ENV: "1"})
    return trained_summary(ws, resumed=why if action == "resume" else None)


def _prepare(ws: Workspace, options: RunOptions, progress: Progress | None, cfg=None):
    """The run's training configuration (`cfg`, default the options' recipe), with the decoded-image cache
    the ranks read built for it."""
    from curate.engines import create_engine

    cfg = run_config(ws, cfg or train_config(ws, options), options.resume)
    engine = create_engine(options.engine, options.engine_options)
    build_image_cache(ws, cfg, staged(progress, "decode"), engine.decode_files)
    return cfg


def _torchrun(options: RunOptions, nnodes: str, threads: int, env: dict) -> None:
    """Run this node's ranks under torchrun; raises the first failing rank's error."""
    with tempfile.TemporaryDirectory(prefix="curate-ddp-") as errors:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), ERRORS_ENV: errors, **env}
        command = torchrun_command(options, nnodes) + worker_argv(options, threads)
        log.info("%s", " ".join(command))
        rc = _run(command, env)
        if rc:
            raise RuntimeError(first_failure(Path(errors)) or f"torchrun exited with status {rc} (its output is above)")


def torchrun_command(options: RunOptions, nnodes: str) -> list[str]:
    """`python -m torch.distributed.run` with the process counts and rendezvous of `options`."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(options.nproc)]
    if nnodes == "1" and not options.rdzv_endpoint:
        return cmd + ["--standalone"]  # a free port on localhost: two trainings on one machine never collide
    cmd += ["--nnodes", nnodes]
    if options.node_rank is not None:
        cmd += ["--node-rank", str(options.node_rank)]
    if options.rdzv_endpoint:
        cmd += ["--rdzv-backend", options.rdzv_backend or "c10d", "--rdzv-endpoint", options.rdzv_endpoint]
    if options.rdzv_id:
        cmd += ["--rdzv-id", options.rdzv_id]
    return cmd


def worker_argv(options: RunOptions, threads: int) -> list[str]:
    """`-m curate.train IMAGES -w WS --threads T <every train option given>`."""
    from curate.data.remote import is_url
    from curate.workspace import Workspace

    # a bucket was mirrored by the scan: the ranks read the mirror, never the bucket again
    images = Workspace(options.workspace).mirror_dir if is_url(options.images) else options.images
    return ["-m", "curate.train", str(images), "-w", str(options.workspace), "--threads", str(threads),
            *to_argv(options, RANK_GROUPS)]


def _run(command: list[str], env: dict) -> int:
    """Run torchrun in its own session, forwarding one Ctrl-C: the ranks then agree to stop at the next
    step and rank 0 checkpoints (a second Ctrl-C, or no end within INTERRUPT_WAIT_S, terminates them)."""
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=INTERRUPT_WAIT_S)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            proc.terminate()
            proc.wait()
        raise


def first_failure(errors: Path) -> str | None:
    """The message of the rank that failed first (later ones mostly report the lost connection to it)."""
    files = sorted(errors.glob("rank*.txt"), key=lambda f: (f.stat().st_mtime_ns, f.stem))
    if not files:
        return None
    return f"training failed on {files[0].stem.replace('rank', 'rank ')}: {files[0].read_text().strip()}"


def work(options: RunOptions) -> list:
    """One rank: join the process group, prepare (rank 0, when no launcher did), then the ordinary train step.
    Returns the summaries this rank should show: rank 0's scan and training when no launcher reports them."""
    from curate.distributed import process_group
    from curate.engines import DEFAULT_ENGINE
    from curate.steps.scan import run as scan_step

    try:
        with process_group("cuda" if uses_cuda(options.device) else "cpu") as world:
            if options.threads is None:  # torchrun's default of one thread per rank would waste the cores
                set_threads(max(1, cores() // world.local_size))
            if not world.main:  # rank 0 speaks for the run
                sys.stdout = open(os.devnull, "w")
                logging.getLogger().setLevel(logging.WARNING)
            ws, summaries = Workspace(options.workspace), []
            speaks = world.main and not os.environ.get(LAUNCHED_ENV)  # else the launcher reports
            if speaks:
                summaries.append(scan_step(ws, options))
                _prepare(ws, options, None)
            torch.distributed.barrier()  # the others wait for the scan and the image cache
            # the image cache is built: the ranks train on it, with no engine to reach
            summary = train_step(ws, dataclasses.replace(options, nproc=None, engine=DEFAULT_ENGINE, engine_options={}))
            return summaries + [summary] if speaks else []
    except Exception as err:
        _record_failure(err)
        raise


def _record_failure(err: Exception) -> None:
    folder = os.environ.get(ERRORS_ENV)
    if not folder:
        return
    plain = isinstance(err, (ValueError, RuntimeError, FileNotFoundError))  # as `curate` prints them
    message = str(err) if plain else f"{type(err).__name__}: {err}"
    with contextlib.suppress(OSError):
        Path(folder, f"rank{os.environ.get('RANK', '?')}.txt").write_text(message + "\n")
