"""Near-duplicate detection on planted edits: curate next to cleanvision, fastdup and imagededup.

    python -m bench.duplicates --cifar-workspace WS [--n-clean 2000] [--per-kind 30] [--photo-minutes 10]
                               [--faces N] [--only cifar|photo] [--peers cleanvision,fastdup,imagededup]

Two flat folders of anonymous, shuffled file names (so no tool gets hints), real images only:

- cifar: n_clean held-out images of the CIFAR-10 workspace WS (`holdout_mask` as bench/curation_quality.py
  takes them: its encoder never saw them), embedded with WS's encoder;
- photo: n_clean Caltech-101 photos plus the real Faces / Faces_easy crop pairs; curate trains its encoder
  on this folder itself first (SimCLR preset, --photo-minutes), as a user would, timed on its own.

Into each, `per_kind` edited copies of distinct originals per edit of bench/dup_data.py. curate runs scan,
quality, embed and dedup (default, --crops and --flips modes), plus its old embedding-only rule for
reference; each peer runs in its own process in .venv-bench (bench/dup_peers.py) at its documented
defaults. Groups become pairs (every pair inside a group); recall = planted (copy, original) pairs
found; precision = found pairs that are planted. Duplicates already among the originals (CIFAR and
Caltech hold some) count as false positives for every tool alike.
Prints markdown tables and writes bench/results/duplicates-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import time
from itertools import combinations
from pathlib import Path

import numpy as np

from bench.dup_data import CROPS, EDITS, FACES, FLIPS, STANDARD, build_folder, faces_pairs
from bench.machine import load_average, machine_facts, summary_line
from bench.report import markdown_table

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
PEERS = ("cleanvision", "fastdup", "imagededup")
log = logging.getLogger("bench.duplicates")


def pairs_of(groups) -> set[frozenset]:
    return {frozenset(p) for g in groups for p in combinations(sorted(g), 2)}


MODES = {"curate": {}, "curate --crops": {"crops": True}, "curate --flips": {"flips": True}}


def curate_tools(folder: Path, work: Path, encoder: Path | None, minutes: float) -> dict:
    """curate on `folder`: one entry per mode, each {pairs, seconds (scan + quality + embed + its dedup), ...}.

    `encoder` None: train one on the folder first, with `curate run`'s default TrainConfig (SimCLR preset).
    """
    from curate.steps.embed import embed
    from curate.steps.quality import quality
    from curate.steps.scan import scan

    shutil.rmtree(work, ignore_errors=True)
    steps = {}
    t = time.perf_counter()
    ws, _ = scan(folder, work)
    steps["scan"] = time.perf_counter() - t
    t = time.perf_counter()
    quality(ws)
    steps["quality"] = time.perf_counter() - t
    trained = None
    if encoder is None:
        trained = train_on_folder(ws, minutes)
        encoder = ws.encoder_file
    t = time.perf_counter()
    embed(ws, model=encoder)
    steps["embed"] = time.perf_counter() - t
    manifest = ws.manifest()
    names = manifest["path"].to_numpy()
    base = steps["scan"] + steps["quality"] + steps["embed"]
    tools = {label: dedup_mode(ws, names, flags, base) for label, flags in MODES.items()}
    tools["curate embedding rule (old)"] = embedding_rule(ws, names, steps["scan"] + steps["embed"])
    return {"tools": tools, "steps_s": steps, "encoder": str(encoder), "trained": trained}


def dedup_mode(ws, names: np.ndarray, flags: dict, base_s: float) -> dict:
    """`dedup` in one mode: the pairs inside its groups, the scored pairs above its threshold, and what
    its calibration expects. seconds = base_s (scan + quality + embed) + this dedup."""
    from curate import storage
    from curate.quality.pairs import PairConfig
    from curate.steps.dedup import dedup, read_pairs

    t = time.perf_counter()
    table = dedup(ws, cfg=PairConfig(**flags))
    seconds = time.perf_counter() - t
    meta = storage.read_json(ws.sidecar(ws.duplicates_file))
    scored = read_pairs(ws)
    scored = scored[scored["duplicate"] & ~scored["null"]]
    return {"pairs": pairs_of(names[g["id"].to_numpy()] for _, g in table.groupby("group")),
            "scored_pairs": {frozenset(p) for p in names[scored[["a", "b"]].to_numpy()]},
            "seconds": base_s + seconds, "dedup_s": seconds, "threshold": meta["threshold"],
            "expected_precision": meta["expected_precision"], "groups": meta["groups"],
            "setting": f"dedup(ws, cfg=PairConfig({', '.join(f'{k}=True' for k in flags)})) at its calibrated threshold"}


def embedding_rule(ws, names: np.ndarray, base_s: float) -> dict:
    """curate's old embedding-only rule, for reference: cosine groups above a threshold taken from the
    nearest-neighbour similarity distribution. seconds = base_s (scan + embed) + the rule."""
    from curate.data.manifest import ok_mask
    from curate.quality import calibrated_threshold, near_duplicates

    rows = np.flatnonzero(ok_mask(ws.manifest()))
    vectors = np.asarray(ws.embeddings())[rows]
    t = time.perf_counter()
    threshold = calibrated_threshold(vectors)
    groups = near_duplicates(vectors, threshold)
    return {"pairs": pairs_of(names[rows[g]] for g in groups), "seconds": base_s + time.perf_counter() - t,
            "threshold": threshold, "groups": len(groups),
            "setting": "near_duplicates(vectors, calibrated_threshold(vectors)) on the embeddings (reference)"}


def train_on_folder(ws, minutes: float) -> dict:
    """`curate run`'s training on the folder: the SimCLR preset, the budget given, no holdout
    (a flat folder has no labels: `_train_config` sets holdout 0 then)."""
    from curate.data.manifest import labels
    from curate.steps.train import train_workspace
    from curate.train.presets import config_from_dict, load_preset

    cfg = config_from_dict(load_preset("simclr"))
    cfg.minutes = minutes
    cfg.holdout = 0.1 if labels(ws.manifest()) is not None else 0.0
    log.info("training curate's encoder on the folder for %.1f min (SimCLR preset)", minutes)
    t = time.perf_counter()
    result = train_workspace(ws, cfg)
    return {"seconds": time.perf_counter() - t, "minutes": minutes, "steps": result.steps,
            "images_per_s": result.images_per_s, "backbone": cfg.backbone, "image_size": cfg.image_size}


def peer_tool(name: str, folder: Path, work: Path, python: Path) -> dict:
    """Run one peer in its own process (bench/dup_peers.py in .venv-bench); {pairs, seconds, ...} or {error}."""
    out = work / f"{name}.json"
    shutil.rmtree(work / name, ignore_errors=True)
    out.unlink(missing_ok=True)
    cmd = [str(python), "-m", "bench.dup_peers", "--peer", name, "--folder", str(folder), "--out", str(out),
           "--work", str(work / name)]
    t = time.perf_counter()
    with open(work / f"{name}.log", "w") as logfile:
        rc = subprocess.run(cmd, cwd=REPO, stdout=logfile, stderr=subprocess.STDOUT,
                            env={**os.environ, "SENTRY_OPT_OUT": "1"}).returncode
    process_s = time.perf_counter() - t
    if rc != 0 or not out.exists():
        tail = (work / f"{name}.log").read_text(errors="replace").strip().splitlines()[-3:]
        return {"error": f"exit {rc}: {' / '.join(tail)} (log {work / f'{name}.log'})"}
    res = json.loads(out.read_text())
    pairs = pairs_of(res["groups"]) if "groups" in res else {frozenset(p) for p in res["pairs"]}
    return {"pairs": pairs, "seconds": res["seconds"], "process_s": process_s, "version": res["version"],
            "setting": res["setting"], **({"groups": len(res["groups"])} if "groups" in res else {})}


# Row blocks of a dataset's table: the edits every tool is asked to find, then the heavier ones.
def row_kinds(truth: dict) -> list[tuple[str, list[str]]]:
    heavy = [*CROPS, *([FACES] if any(k == FACES for k, *_ in truth.values()) else [])]
    return ([(k, [k]) for k in STANDARD] + [("all standard edits", list(STANDARD))]
            + [(f"{k} (--crops)", [k]) for k in heavy] + [(f"{k} (--flips)", [k]) for k in FLIPS]
            + [("all", [*EDITS, FACES])])


def score(found: set[frozenset], truth: dict) -> dict:
    """Per row of `row_kinds`: planted pairs, recall, found pairs touching those copies, precision.
    The "all" row's precision is over every found pair; false pairs among originals are counted apart."""
    planted = {frozenset((name, orig)): kind for name, (kind, orig, _) in truth.items() if orig is not None}
    copy_kind = {name: kind for name, (kind, orig, _) in truth.items() if orig is not None}
    rows = {}
    for label, kinds in row_kinds(truth):
        want = {p for p, k in planted.items() if k in kinds}
        mine = found if label == "all" else {p for p in found if any(copy_kind.get(n) in kinds for n in p)}
        rows[label] = {"planted": len(want), "recall": len(want & found) / max(len(want), 1), "found": len(mine),
                       "precision": len(mine & planted.keys()) / len(mine) if mine else None}
    among = sorted(sorted(truth[n][2] for n in p) for p in found if not any(n in copy_kind for n in p))
    rows["false pairs among originals"] = {"found": len(among), "examples": among[:50]}
    rows["largest group"] = largest_component(found)
    return rows


def largest_component(pairs: set[frozenset]) -> int:
    """Size of the largest connected component of the found pairs (a group tool's largest group)."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in (tuple(p) for p in pairs):
        parent[root(a)] = root(b)
    sizes: dict[str, int] = {}
    for x in parent:
        sizes[root(x)] = sizes.get(root(x), 0) + 1
    return max(sizes.values(), default=0)


def precision(found: set[frozenset], truth: dict) -> float | None:
    planted = {frozenset((name, orig)) for name, (_, orig, _) in truth.items() if orig is not None}
    return len(found & planted) / len(found) if found else None


def cell(r: dict) -> str:
    recall, precision = r["recall"], r["precision"]
    return f"{recall:.2f} / {'-' if precision is None else f'{precision:.2f}'}"


def dataset_table(scores: dict, tools: dict) -> list[dict]:
    """One row per edit type, one column per tool: 'recall / precision'; then counts and seconds."""
    first = next(iter(scores.values()))
    rows = [{"edit": label, "planted": r["planted"], **{t: cell(scores[t][label]) for t in scores}}
            for label, r in first.items() if isinstance(r, dict) and "recall" in r]
    rows.append({"edit": "pairs found / false among originals", "planted": None,
                 **{t: f"{scores[t]['all']['found']} / {scores[t]['false pairs among originals']['found']}"
                    for t in scores}})
    rows.append({"edit": "seconds", "planted": None, **{t: f"{tools[t]['seconds']:.1f}" for t in scores}})
    return rows


def run_dataset(name: str, folder: Path, truth: dict, args, encoder: Path | None) -> dict:
    work = args.workdir / f"{name}-tools"
    work.mkdir(parents=True, exist_ok=True)
    (args.workdir / f"{name}-truth.json").write_text(json.dumps(truth, indent=1))  # name: [kind, original, source]
    log.info("%s: curate on %d images", name, len(truth))
    ours = curate_tools(folder, args.workdir / f"{name}-ws", encoder, args.photo_minutes)
    tools = dict(ours.pop("tools"))
    for peer in args.peers:
        log.info("%s: %s", name, peer)
        tools[peer] = peer_tool(peer, folder, work, args.bench_python)
    failed = {t: v["error"] for t, v in tools.items() if "error" in v}
    ok = {t: v for t, v in tools.items() if "error" not in v}
    scores = {t: score(v["pairs"], truth) for t, v in ok.items()}
    overall = [{"dataset": name, "tool": t, "images": len(truth), "recall standard": s["all standard edits"]["recall"],
                "recall all": s["all"]["recall"], "pairs found": s["all"]["found"], "precision": s["all"]["precision"],
                "scored-pair precision": precision(ok[t]["scored_pairs"], truth) if "scored_pairs" in ok[t] else None,
                "expected precision": ok[t].get("expected_precision"), "largest group": s["largest group"],
                "seconds": ok[t]["seconds"]}
               for t, s in scores.items()]
    kinds = {k: sum(1 for kk, *_ in truth.values() if kk == k) for k in ["original", *EDITS, FACES]}
    return {"images": len(truth), "kinds": kinds, "curate": ours, "failed": failed, "overall": overall,
            "table": dataset_table(scores, ok), "scores": scores,
            "tools": {t: {k: v for k, v in info.items() if not k.endswith("pairs")} for t, info in tools.items()}}


def cifar_sources(workspace: Path) -> tuple[list[Path], Path, dict]:
    """Held-out CIFAR images of the workspace, exactly as bench/curation_quality.py picks them."""
    from curate import storage
    from bench.curation_quality import source_images

    root, held, encoder = source_images(argparse.Namespace(workspace=workspace, encoder=None, images=None, minutes=None))
    trained = storage.read_json(encoder.with_name("config.json")).get("trained", {})
    return [root / rel for rel in held], encoder, trained


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cifar-workspace", type=Path, help="curate workspace on cifar10-train trained with a holdout")
    p.add_argument("--caltech", type=Path, default=DATA / "caltech101")
    p.add_argument("--faces-dir", type=Path, default=DATA / "caltech101-faces-train")
    p.add_argument("--faces", type=int, help="Faces / Faces_easy pairs mixed into the photo folder (default all 290)")
    p.add_argument("--n-clean", type=int, default=2000, help="originals per folder")
    p.add_argument("--per-kind", type=int, default=30, help="planted copies per edit")
    p.add_argument("--photo-minutes", type=float, default=10.0, help="curate's training budget on the photo folder")
    p.add_argument("--photo-encoder", type=Path, default=None,
                   help="reuse an encoder.pt trained on this same photo folder (same --seed and sizes) by an earlier "
                        "run instead of training again (its training time is then not in this run)")
    p.add_argument("--only", choices=["cifar", "photo"], help="one dataset only")
    p.add_argument("--peers", default=",".join(PEERS), help="comma-separated peers (default all three; '' for none)")
    p.add_argument("--bench-python", type=Path, default=REPO / ".venv-bench" / "bin" / "python",
                   help="python of the venv holding the peers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/curate-dup-bench"))
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    args.peers = [x for x in args.peers.split(",") if x]
    if unknown := set(args.peers) - set(PEERS):
        p.error(f"unknown peers {sorted(unknown)}: choose from {', '.join(PEERS)}")
    if args.peers and not args.bench_python.exists():
        p.error(f"{args.bench_python} not found: set up .venv-bench (bench/README.md) or pass --peers ''")
    if args.only != "photo" and args.cifar_workspace is None:
        p.error("--cifar-workspace is needed for the cifar part (or --only photo)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    facts = machine_facts("auto", REPO)
    start = time.perf_counter()
    datasets = {}
    if args.only != "photo":
        sources, encoder, trained = cifar_sources(args.cifar_workspace)
        truth = build_folder(sources, args.n_clean, args.per_kind, args.workdir / "cifar", args.seed)
        datasets["cifar"] = run_dataset("cifar", args.workdir / "cifar", truth, args, encoder)
        datasets["cifar"]["curate"]["trained"] = {"outside this command": trained}
    if args.only != "cifar":
        sources = sorted(args.caltech.glob("*/*.jpg"))
        faces = faces_pairs(args.faces_dir)[:args.faces]
        truth = build_folder(sources, args.n_clean, args.per_kind, args.workdir / "photo", args.seed, faces)
        datasets["photo"] = run_dataset("photo", args.workdir / "photo", truth, args, args.photo_encoder)
        if args.photo_encoder is not None:
            from curate import storage

            config = storage.read_json(args.photo_encoder.with_name("config.json"))
            datasets["photo"]["curate"]["trained"] = {"outside this command": config.get("trained", {})}
    facts["load_avg_end"] = load_average()
    report(datasets, facts)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = args.out / f"duplicates-{stamp}.json"
    path.write_text(json.dumps({"created": stamp, "config": {k: str(v) if isinstance(v, Path) else v
                                                            for k, v in vars(args).items()},
                                "machine": facts, "datasets": datasets, "wall_s": time.perf_counter() - start},
                               indent=2, default=_plain))
    print(f"\nwrote {path}")


def report(datasets: dict, facts: dict) -> None:
    print(f"\n## Near duplicates: curate, cleanvision, fastdup, imagededup\n\n{summary_line(facts)}")
    for name, d in datasets.items():
        k = d["kinds"]
        print(f"\n### {name}: {d['images']} images ({k['original']} originals, {d['images'] - k['original']} planted "
              f"copies); recall / precision per edit\n\n{markdown_table(d['table'])}\n")
        for tool, info in d["tools"].items():
            extra = f"; calibrated threshold {info['threshold']:.4f}" if "threshold" in info else ""
            extra += f", expected precision {info['expected_precision']:.3f}" if info.get("expected_precision") else ""
            print(f"- {tool}: {info.get('error') or info['setting']}{extra}")
        print(f"- curate's encoder: {d['curate']['encoder']}; {training_line(d['curate']['trained'])}")
        print("- curate steps shared by its columns (s): " + ", ".join(f"{s} {v:.1f}" for s, v in d["curate"]["steps_s"].items()))
    print("\n- Precision of an edit's row: found pairs that involve its copies and are planted; of the 'all' row: "
          "every found pair. Duplicates already among the originals count as false positives for every tool alike.")
    print(f"\n### Overall\n\n{markdown_table([r for d in datasets.values() for r in d['overall']])}")


def training_line(trained: dict) -> str:
    if "outside this command" in trained:
        t = trained["outside this command"]
        return (f"trained outside this command ({t.get('elapsed_s')} s, {t.get('steps')} steps on "
                f"{t.get('train_images')} images)")
    return (f"trained here on the folder, not in the seconds: {trained['seconds']:.0f} s (budget "
            f"{trained['minutes']:g} min), {trained['steps']} steps, {trained['backbone']} at {trained['image_size']} px")


def _plain(obj):
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


if __name__ == "__main__":
    main()
