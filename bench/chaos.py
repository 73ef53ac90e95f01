"""Chaos: `kill -9` at random moments of `curate run` and `curate export`, then check nothing was lost.

    python -m bench.chaos [--kills 24] [--n 400] [--epochs 8] [--seed 0]

A folder of `--n` real images (the bundled CIFAR-10 sample); training checkpoints every 3 s
(`--checkpoint-minutes 0.05`, so that kills land between checkpoints, as they would in a long run
with the default 2 minutes). First one uninterrupted run gives the reference: its training steps and
how long each step lasted (from the `step i/n: NAME` line `curate run` prints as each step begins).
Then, `--kills` times: start `curate run` (then `curate export` of the selection it saves) on the
round's workspace and SIGKILL the whole process group at a random moment inside one step: the steps
scan, quality, train, embed, map, dedup, select and export are aimed at in turn, each kill waiting for
its step's line, then a random 5-95% of that step's reference length. A round is one workspace killed
once in each step, in pipeline order, so every kill finds its step with all its work still to do (the
steps before it are resumed or skipped). After each kill every workspace file must load (no torn file)
and the training checkpoint's step must never go back (training resumes, it does not restart). Then
the round's workspace is finished by an uninterrupted rerun, which must pass:

- every contract file loads, each derived file is of the current generation of what it was computed
  from (`curate.generations`), the train log parses line by line with no step twice;
- training took exactly the reference's steps (the epoch budget, resumed across the kills);
- the embeddings equal those of a from-scratch embedding with the final encoder (cosine >= 0.9999 per row);
- the export holds exactly the selection's files, byte for byte.

Prints the table of kills (stage hit, seconds into the run) and the checks; writes
bench/results/chaos-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.machine import load_average, machine_facts, summary_line
from bench.report import markdown_table
from curate import storage
from curate.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
STEP_LINE = re.compile(r"step \d+/\d+: ([\w-]+)")  # what `curate run` prints as each step begins
# Then the run's last line, the export's progress bar (it begins copying) and the export's last line.
RUN_DONE, EXPORT_BEGUN, EXPORTED = "done in ", "export (copy)", "exported selection"
# The steps aimed at, in turn (scores and label-issues are hit when a kill overshoots into them).
AIMED = ("scan", "quality", "train", "embed", "map", "dedup", "select", "export")


def begun(output: str) -> list[str]:
    """The stages that have begun, in order, from a run's output so far."""
    stages = STEP_LINE.findall(output)
    for mark, stage in ((RUN_DONE, "export start-up"), (EXPORT_BEGUN, "export"), (EXPORTED, "after export")):
        stages += [stage] if mark in output else []
    return stages


def stage_hit(output: str) -> str:
    """The stage a killed process was in: the last that had begun."""
    stages = begun(output)
    return stages[-1] if stages else "start-up"


def step_lengths(log: Path, proc: subprocess.Popen) -> dict[str, float]:
    """Seconds each stage of the run writing `log` lasted (from its line to the next), watched every 10 ms."""
    seen: dict[str, float] = {}
    while True:
        for name in begun(log.read_text(errors="replace")):
            seen.setdefault(name, time.monotonic())
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    seen["end"] = time.monotonic()
    names = list(seen)
    return {a: seen[b] - seen[a] for a, b in zip(names, names[1:])}


def commands(images: Path, ws: Path, export: Path, epochs: float) -> str:
    """One shell line: the run, then the export of its selection (a kill may land in either)."""
    curate = f"{sys.executable} -m curate"
    return (f"{curate} run {images} -w {ws} --epochs {epochs} --batch-size 64 --checkpoint-minutes 0.05 "
            f"--select kcenter:60:chaos && "
            f"{curate} export -w {ws} --selection chaos --to {export} --mode copy")




def start(line: str, log: Path) -> subprocess.Popen:
    out = open(log, "w")
    return subprocess.Popen(["bash", "-c", line], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def kill_inside(proc: subprocess.Popen, log: Path, step: str, length: float, rng) -> tuple[bool, float]:
    """SIGKILL the process group at a random moment of `step` (5-95% of its reference `length` after the
    line that says it began); returns (the process finished before that, seconds into the run)."""
    t0 = time.monotonic()

    while step not in begun(log.read_text(errors="replace")):
        if proc.poll() is not None:
            return proc.returncode == 0, time.monotonic() - t0
        time.sleep(0.01)
    try:
        proc.wait(timeout=float(rng.uniform(0.05, 0.95)) * length)
        return proc.returncode == 0, time.monotonic() - t0
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return False, time.monotonic() - t0


def whole(ws: Path) -> list[str]:
    """Problems with the workspace's files as they are now: each present file must load completely."""
    import pandas as pd
    import torch

    problems = []
    for f in sorted(ws.rglob("*")):
        if not f.is_file() or f.suffix == ".lock" or "cache" in f.parts:
            continue
        try:
            if f.suffix == ".parquet":
                pd.read_parquet(f)
            elif f.suffix == ".npy":
                np.load(f, mmap_mode="r")[-1:].copy()
            elif f.suffix == ".json":
                json.loads(f.read_text())
            elif f.suffix == ".pt":
                torch.load(f, map_location="cpu", weights_only=True)
            elif f.suffix == ".faiss":
                import faiss
                faiss.read_index(str(f))
        except Exception as err:  # a torn file: the finding this benchmark is for
            problems.append(f"{f.relative_to(ws)}: {type(err).__name__}: {err}")
    return problems


def checkpoint_step(ws: Path) -> int | None:
    import torch

    f = Workspace(ws).checkpoint_file
    return int(torch.load(f, map_location="cpu", weights_only=True)["step"]) if f.exists() else None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=24, help="kills, aimed at each step in turn (8 steps)")
    p.add_argument("--n", type=int, default=400, help="images in the folder")
    p.add_argument("--epochs", type=float, default=8.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/curate-chaos"))
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    facts = machine_facts("cpu", REPO)
    rng = np.random.default_rng(args.seed)
    shutil.rmtree(args.workdir, ignore_errors=True)
    images = args.workdir / "images"
    files = sorted((REPO / "data" / "cifar10-sample").glob("*/*.jpg"))
    for i in rng.permutation(len(files))[:args.n]:
        (images / files[i].parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(files[i], images / files[i].parent.name / files[i].name)

    ref_ws, ref_export = args.workdir / "reference", args.workdir / "reference_export"
    t = time.perf_counter()
    ref = start(commands(images, ref_ws, ref_export, args.epochs), args.workdir / "reference.log")
    lengths = step_lengths(args.workdir / "reference.log", ref)
    if ref.wait() != 0:
        raise RuntimeError(f"the reference run failed: {(args.workdir / 'reference.log').read_text()[-2000:]}")
    duration = time.perf_counter() - t
    ref_steps = storage.read_json(Workspace(ref_ws).model_config_file)["trained"]["steps"]
    print(f"reference: {duration:.0f} s, {ref_steps} training steps; stage lengths (s): "
          + ", ".join(f"{name} {s:.2f}" for name, s in lengths.items()), flush=True)

    # Rounds: one workspace killed once in each aimed step, in pipeline order (so each kill finds its
    # step with all its work to do), then finished by an uninterrupted rerun and checked in full; the
    # next round starts from nothing.
    kills, rounds, resumed, last_step = [], [], 0, None
    for k in range(args.kills):
        n_round, aimed = divmod(k, len(AIMED))
        ws, export = args.workdir / f"ws_{n_round}", args.workdir / f"export_{n_round}"
        last_step = None if aimed == 0 else last_step  # the checkpoint step must never go back within a round
        step = AIMED[aimed]
        log = args.workdir / f"kill_{k:02d}.log"
        proc = start(commands(images, ws, export, args.epochs), log)
        finished, delay = kill_inside(proc, log, step, lengths[step], rng)
        output = log.read_text(errors="replace")
        checkpoint = checkpoint_step(ws)
        went_back = last_step is not None and checkpoint is not None and checkpoint < last_step
        resumed += "resuming training" in output
        problems = whole(ws)
        kills.append({"kill": k + 1, "round": n_round + 1, "aimed at": step, "at s": round(delay, 2),
                      "stage hit": "finished before the kill" if finished else stage_hit(output),
                      "checkpoint step": checkpoint, "step went back": went_back, "torn files": len(problems)})
        print(markdown_table(kills[-1:]) + ("\n" + "\n".join(problems) if problems else ""), flush=True)
        last_step = checkpoint if checkpoint is not None else last_step
        if aimed == len(AIMED) - 1 or k == args.kills - 1:  # the round's last kill: finish it, check it
            final = start(commands(images, ws, export, args.epochs), args.workdir / f"final_{n_round}.log")
            rounds.append(final_checks(ws, export, ref_steps, final.wait()))
            resumed += "resuming training" in (args.workdir / f"final_{n_round}.log").read_text(errors="replace")
    facts["load_avg_end"] = load_average()
    print(f"\n### Chaos: {args.kills} x kill -9 during `curate run` + `curate export` ({args.n} images, "
          f"{args.epochs:g} epochs; reference run {duration:.0f} s)\n")
    print(summary_line(facts) + "\n")
    print(markdown_table(kills) + "\n")
    stages = sorted({k["stage hit"] for k in kills})
    print(f"stages hit: {', '.join(stages)}; training resumed from a checkpoint in {resumed} reruns\n")
    print(markdown_table([{"round": i + 1, **r} for i, r in enumerate(rounds)]))
    out = args.out / f"chaos-{time.strftime('%Y%m%d-%H%M%S')}.json"
    storage.write_text(out, json.dumps({"machine": facts, "args": {k: str(v) for k, v in vars(args).items()},
                                        "reference_s": duration, "stage_lengths_s": lengths, "kills": kills, "rounds": rounds, "resumed": resumed},
                                       indent=1))
    print(f"-> {out}")


def final_checks(ws: Path, export: Path, ref_steps: int, rc: int) -> dict:
    """What the last, uninterrupted rerun must leave: see the module docstring."""
    import torch

    from curate.embed import embed_images, load_encoder
    from curate.data.cache import image_cache

    w = Workspace(ws)
    trained = storage.read_json(w.model_config_file)["trained"]
    log_steps = [json.loads(line)["step"] for line in w.train_log_file.read_text().splitlines()]
    manifest = w.manifest()
    rows = np.flatnonzero((manifest["status"] == "ok").to_numpy())
    stored = np.asarray(w.embeddings())[rows]
    net, config = load_encoder(w.encoder_file, "cpu")
    with torch.inference_mode():
        cache = image_cache(w.root, manifest, config["image_size"], Path(ws) / "cache")
        norm = config["normalization"]
        fresh = embed_images(net, cache, rows, norm["mean"], norm["std"])
    cosine = (stored * fresh).sum(1)
    selection = w.selection("chaos")
    wanted = sorted(str(p) for p in selection.merge(manifest, on="id")["path"])
    copied = sorted(str(f.relative_to(export)) for f in export.rglob("*.jpg"))
    same_bytes = all((export / rel).read_bytes() == (w.root / rel).read_bytes() for rel in wanted if (export / rel).exists())
    from curate.generations import problems

    mixed = [p for f in sorted(Path(ws).glob("*.json")) for p in problems(f.with_suffix(".npy"))
             + problems(f.with_suffix(".parquet")) + problems(f.with_suffix(".faiss")) + problems(f.with_suffix(".npz"))]
    return {"final rerun exit code": rc, "torn files": len(whole(ws)), "files of another generation": len(mixed),
            "train log: steps strictly increasing": bool(np.all(np.diff(log_steps) > 0)),
            "training steps (reference)": f"{trained['steps']} ({ref_steps})",
            "embeddings vs from-scratch: min cosine": round(float(cosine.min()), 6),
            "export: files = selection, same bytes": copied == wanted and same_bytes,
            "selection rows": len(w.selection("chaos"))}


if __name__ == "__main__":
    main()
