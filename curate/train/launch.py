"""`curate train --nproc N`: training with torch DDP, one process per share of the CPU cores (gloo)
or per GPU (NCCL), started by torchrun (DESIGN.md §6).

The launcher (`launch`, in the `curate train` process) scans, takes the workspace's model lock,
builds the decoded-image cache and runs

    python -m torch.distributed.run --standalone --nproc-per-node N -m curate.train IMAGES -w WS <options>

Each rank (`work`) joins the process group and runs the ordinary `curate train` path, which in a
process group trains on its rows of every global batch (curate.train.ddp) and lets rank 0 write.
`torchrun --nproc-per-node N -m curate.train IMAGES -w WS ...` starts the ranks without a launcher:
rank 0 then scans, builds the cache and takes the lock itself, as it does with `--nnodes` above 1
(every node runs the same command on a shared workspace, so no launcher writes it). A rank that
fails writes its error where the launcher finds it, so `curate train` ends with the first failure's
message.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from curate.steps.train import LOCK_HELD_ENV

log = logging.getLogger(__name__)

LAUNCHED_ENV = "CURATE_DDP_LAUNCHER"  # set for the ranks: a launcher scanned and built the image cache
ERRORS_ENV = "CURATE_DDP_ERRORS"  # folder where a failing rank writes rank<R>.txt
# options of the launcher only, not passed on to the ranks (--threads is passed on as the per-rank share)
LAUNCHER_ONLY = ("nproc", "nnodes", "node_rank", "rdzv_endpoint", "rdzv_id", "rdzv_backend", "distributed_worker",
                 "threads", "workspace", "images", "engine", "address")  # the launcher built the image cache
INTERRUPT_WAIT_S = 120  # how long the launcher waits for the ranks to checkpoint after Ctrl-C


def distributed_train(args, ws, cmd_train):
    """`curate train` with --nproc (launch torchrun) or --distributed-worker (be one of its ranks)."""
    return work(args, cmd_train) if getattr(args, "distributed_worker", False) else launch(args, ws)


def cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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


def launch(args, ws):
    """Run the DDP training of `args` under torchrun and return the workspace; raises the first failing rank's error."""
    from curate import pipeline
    from curate.data.cache import image_cache
    from curate.locks import locked
    from curate.steps.scan import image_decoder
    from curate.steps.train import run_config
    from curate.workspace import Workspace

    check_nproc(args.nproc, args.device)
    nnodes = str(args.nnodes or 1)
    threads = args.threads or max(1, cores() // args.nproc)
    if nnodes != "1":
        if not args.rdzv_endpoint:
            raise ValueError("several nodes need a rendezvous: --rdzv-endpoint HOST:PORT (the same on every node), "
                             "as torchrun documents")
        # Every node runs this command on the same shared workspace, so no launcher writes it: rank 0,
        # wherever the rendezvous places it, scans, builds the image cache and takes the model lock (`work`)
        # while the others wait at a barrier.
        _torchrun(args, nnodes, threads, {})
        return Workspace(args.workspace)
    ws = ws or pipeline.scan_step(args)
    cfg = run_config(ws, pipeline.train_config(args, ws), getattr(args, "resume", False))
    if cfg.batch_size % args.nproc:
        raise ValueError(f"the batch size ({cfg.batch_size}) must divide evenly over {args.nproc} processes: each "
                         "trains on an equal share of every batch")
    with locked(ws.locks_dir, "model", wait=False, what="a training run"):  # held for the ranks
        decode_files = image_decoder(getattr(args, "engine", "local"), getattr(args, "address", None))
        with pipeline.command_progress("decode") as bar:
            image_cache(ws.root, ws.manifest(), cfg.image_size, ws.cache_dir, progress=bar, decode_files=decode_files)
        _torchrun(args, nnodes, threads, {LAUNCHED_ENV: str(os.getpid()), LOCK_HELD_ENV: "1"})
    return ws


def _torchrun(args, nnodes: str, threads: int, env: dict) -> None:
    """Run this node's ranks under torchrun; raises the first failing rank's error."""
    with tempfile.TemporaryDirectory(prefix="curate-ddp-") as errors:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), ERRORS_ENV: errors, **env}
        command = torchrun_command(args, nnodes) + worker_argv(args, threads)
        log.info("%s", " ".join(command))
        rc = _run(command, env)
        if rc:
            raise RuntimeError(first_failure(Path(errors)) or f"torchrun exited with status {rc} (its output is above)")


def torchrun_command(args, nnodes: str) -> list[str]:
    """`python -m torch.distributed.run` with the process counts and rendezvous of `args`."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(args.nproc)]
    if nnodes == "1" and not args.rdzv_endpoint:
        return cmd + ["--standalone"]  # a free port on localhost: two trainings on one machine never collide
    cmd += ["--nnodes", nnodes]
    if args.node_rank is not None:
        cmd += ["--node-rank", str(args.node_rank)]
    if args.rdzv_endpoint:
        cmd += ["--rdzv-backend", args.rdzv_backend or "c10d", "--rdzv-endpoint", args.rdzv_endpoint]
    if args.rdzv_id:
        cmd += ["--rdzv-id", args.rdzv_id]
    return cmd


def worker_argv(args, threads: int) -> list[str]:
    """`-m curate.train IMAGES -w WS --threads T <every train option given>`, rebuilt from the parsed args."""
    argv = ["-m", "curate.train", str(args.images), "-w", str(args.workspace), "--threads", str(threads)]
    for action in _train_parser()._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings or action.dest in LAUNCHER_ONLY or value is None or value is False:
            continue
        flag = action.option_strings[-1]
        if action.nargs == 0:  # store_true
            argv.append(flag)
        elif isinstance(value, list):  # append (--task)
            for v in value:
                argv += [flag, str(v)]
        else:
            argv += [flag, str(value)]
    return argv


def _train_parser() -> argparse.ArgumentParser:
    from curate.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


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


def work(args, cmd_train):
    """One rank: join the process group, prepare (rank 0, when no launcher did), then the ordinary `curate train`."""
    from curate import cli, pipeline
    from curate.distributed import process_group
    from curate.workspace import Workspace

    try:
        with process_group("cuda" if uses_cuda(args.device) else "cpu") as world:
            if args.threads is None:  # torchrun's default of one thread per rank would waste the cores
                cli.set_threads(max(1, cores() // world.local_size))
            if not world.main:  # rank 0 speaks for the run
                sys.stdout = open(os.devnull, "w")
                logging.getLogger().setLevel(logging.WARNING)
            if world.main and not os.environ.get(LAUNCHED_ENV):
                ws = pipeline.scan_step(args)
                _build_cache(args, ws)
            torch.distributed.barrier()  # the others wait for the scan and the image cache
            # the image cache is built: the ranks train on it, with no engine to reach
            plain = argparse.Namespace(**{**vars(args), "nproc": None, "distributed_worker": False, "engine": "local",
                                          "address": None})
            return cmd_train(plain, Workspace(args.workspace))
    except Exception as err:
        _record_failure(err)
        raise


def _build_cache(args, ws) -> None:
    from curate import pipeline
    from curate.data.cache import image_cache
    from curate.steps.scan import image_decoder
    from curate.steps.train import run_config

    cfg = run_config(ws, pipeline.train_config(args, ws), getattr(args, "resume", False))
    decode_files = image_decoder(getattr(args, "engine", "local"), getattr(args, "address", None))
    with pipeline.command_progress("decode") as bar:
        image_cache(ws.root, ws.manifest(), cfg.image_size, ws.cache_dir, progress=bar, decode_files=decode_files)


def _record_failure(err: Exception) -> None:
    folder = os.environ.get(ERRORS_ENV)
    if not folder:
        return
    plain = isinstance(err, (ValueError, RuntimeError, FileNotFoundError))  # as `curate` prints them
    message = str(err) if plain else f"{type(err).__name__}: {err}"
    with contextlib.suppress(OSError):
        Path(folder, f"rank{os.environ.get('RANK', '?')}.txt").write_text(message + "\n")
