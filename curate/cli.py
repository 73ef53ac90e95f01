"""The `curate` command line (DESIGN.md §2). Parses arguments, shows progress, calls curate.steps."""
from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("curate")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    for noisy in ("numba", "matplotlib", "PIL", "streamlit", "faiss.loader"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        result = args.func(args)
        return result if isinstance(result, int) else 0
    except KeyboardInterrupt:
        print("interrupted: work done so far is saved; rerun the command (with --resume for train) to continue",
              file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, PermissionError, FileExistsError, RuntimeError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="curate", description="Curate image datasets with self-supervised embeddings.")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, func, help: str, images: bool = False) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help)
        if images:
            c.add_argument("images", type=Path, help="folder of images (searched recursively)")
        c.add_argument("-w", "--workspace", type=Path, required=True, help="workspace folder")
        c.set_defaults(func=func)
        return c

    c = command("run", cmd_run, "whole pipeline: scan, train, embed, index, 2-D map, duplicate scan", images=True)
    _train_options(c)
    command("scan", cmd_scan, "build or refresh the manifest", images=True)
    c = command("train", cmd_train, "self-supervised pretraining on the images", images=True)
    _train_options(c)
    c.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    c = command("embed", cmd_embed, "embed a folder and (re)build the index", images=True)
    c.add_argument("--model", type=Path, help="encoder.pt to use (default: the workspace's own)")
    c.add_argument("--batch-size", type=int, default=256)
    c = command("search", cmd_search, "nearest neighbours of an image")
    q = c.add_mutually_exclusive_group(required=True)
    q.add_argument("--image", type=Path, help="an image file (anywhere)")
    q.add_argument("--id", type=int, help="a manifest id")
    c.add_argument("-k", type=int, default=10)
    c = command("select", cmd_select, "save a named selection ranked by a strategy")
    c.add_argument("--n", type=int, required=True, help="number of images")
    c.add_argument("--strategy", default="kcenter")
    c.add_argument("--name", help="selection name (default: STRATEGY_N)")
    c.add_argument("--seed", type=int, default=0)
    c = command("dedup", cmd_dedup, "exact and near-duplicate groups")
    c.add_argument("--threshold", type=float, default=None,
                   help="cosine similarity for near duplicates (default: calibrated on the data, see duplicates.json)")
    c = command("export", cmd_export, "copy, link or list a selection into a folder")
    c.add_argument("--selection", required=True)
    c.add_argument("--to", type=Path, required=True)
    c.add_argument("--mode", choices=["copy", "symlink", "list"], default="copy")
    c = command("eval", cmd_eval, "representation report (kNN, linear probe, k-means NMI, per-layer probes, "
                                  "invariance, pretext accuracy) on a held-out split when labels exist")
    c.add_argument("--no-baseline", action="store_true", help="skip the random-weights baseline")
    c.add_argument("--quick", action="store_true", help="skip the per-layer probes and the invariance test")
    c = command("app", cmd_app, "serve the browser app on a workspace")
    c.add_argument("--port", type=int, default=8501)
    c.add_argument("--host", default="localhost")
    return p


def _train_options(c: argparse.ArgumentParser) -> None:
    c.add_argument("--preset", help="training preset: a task name (its recipe in curate/pretext/presets) or a YAML file")
    c.add_argument("--task", action="append", metavar="NAME[:WEIGHT]", help="pretext task, repeatable (default simclr)")
    c.add_argument("--backbone", help="backbone architecture (default resnet18)")
    c.add_argument("--image-size", type=int, help="training resolution (default: from the images)")
    budget = c.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="wall-clock training budget (default 10)")
    budget.add_argument("--epochs", type=float)
    c.add_argument("--batch-size", type=int)
    c.add_argument("--lr", type=float, help="learning rate per 256 images")
    c.add_argument("--optimizer", choices=["sgd", "adamw"])
    c.add_argument("--precision", choices=["auto", "bf16", "fp32"])
    c.add_argument("--holdout", type=float, help="fraction held out of training for `curate eval` "
                                                  "(default 0.1 when images are in class folders, else 0)")
    c.add_argument("--device", help="auto (default), cpu or cuda")
    c.add_argument("--seed", type=int)


def _train_config(args, ws):
    """Preset (if any), then the flags given on the command line on top."""
    from curate.data.manifest import labels
    from curate.pretext import TaskSpec, parse_task
    from curate.train.presets import config_from_dict, load_preset

    tasks = [parse_task(t) for t in args.task] if args.task else None
    # no --preset: the recipe of the (first) task asked for, since e.g. vicreg diverges under simclr's SGD
    preset = args.preset or (tasks[0].name if tasks else None)
    cfg = config_from_dict(load_preset(preset) if preset else {})
    if tasks:
        preset_params = {t.name: t.params for t in cfg.tasks}  # `--task NAME:W` keeps the preset's settings of NAME
        cfg.tasks = [TaskSpec(t.name, t.weight, dict(preset_params.get(t.name, {}))) for t in tasks]
    flags = {"backbone": args.backbone, "image_size": args.image_size, "minutes": args.minutes, "epochs": args.epochs,
             "batch_size": args.batch_size, "lr": args.lr, "optimizer": args.optimizer, "precision": args.precision,
             "device": args.device, "seed": args.seed}
    for key, value in flags.items():
        if value is not None:
            setattr(cfg, key, value)
    cfg.holdout = args.holdout if args.holdout is not None else (0.1 if labels(ws.manifest()) is not None else 0.0)
    return cfg


def _bar(desc: str, unit: str = "img"):
    from curate.progress import tqdm_progress

    return tqdm_progress(desc, unit)


def cmd_scan(args):
    from curate.steps.scan import scan

    with _bar("scan", "file") as bar:
        ws, summary = scan(args.images, args.workspace, progress=bar)
    print(f"scanned {ws.root}: {summary.line()}")
    if summary.skipped:
        bad = ws.manifest()
        bad = bad[~bad["status"].isin(["ok", "removed"])]
        for row in bad.head(20).itertuples():
            print(f"  skipped {row.path}: {row.status}")
        if len(bad) > 20:
            print(f"  ... and {len(bad) - 20} more (see manifest.parquet, column status)")
    return ws


def cmd_train(args, ws=None):
    from curate.steps.train import train
    from curate.workspace import Workspace

    ws = ws or cmd_scan(args)
    cfg = _train_config(args, ws)
    names = "+".join(f"{t.name}:{t.weight:g}" for t in cfg.tasks)
    with _bar(f"train {names}", "s") as bar:
        result = train(ws, cfg, resume=getattr(args, "resume", False), progress=bar)
    print(f"trained {names} for {result.elapsed_s / 60:.1f} min: {result.steps} steps, "
          f"{result.images_per_s:.0f} img/s, loss {result.last_losses.get('loss', float('nan')):.3f} -> "
          f"{Workspace(args.workspace).encoder_file}")
    return ws


def cmd_embed(args, ws=None):
    from curate.steps.embed import embed
    from curate.steps.index import build_workspace_index

    ws = ws or cmd_scan(args)
    t = time.perf_counter()
    with _bar("embed") as bar:
        vectors = embed(ws, getattr(args, "model", None), progress=bar)
    sidecar = build_workspace_index(ws)
    print(f"embedded {sidecar['n']} images ({vectors.shape[1]}-d) in {time.perf_counter() - t:.1f}s; "
          f"index {sidecar['factory']} -> {ws.index_file}")
    return ws


def cmd_run(args):
    from curate.steps.dedup import dedup
    from curate.steps.index import build_projection

    t = time.perf_counter()
    ws = cmd_scan(args)
    cmd_train(args, ws)
    cmd_embed(argparse.Namespace(**{**vars(args), "model": None}), ws)
    log.info("computing the 2-D map (UMAP)...")
    build_projection(ws)
    groups = dedup(ws)
    print(f"map -> {ws.projection_file}; {groups['group'].nunique() if len(groups) else 0} duplicate groups")
    print(f"done in {(time.perf_counter() - t) / 60:.1f} min. Explore it: curate app -w {ws.path}")


def cmd_search(args):
    from curate.session import open_workspace

    ows = open_workspace(args.workspace)
    query = args.image if args.image is not None else args.id
    table = ows.search(query, k=args.k)
    print(table[["id", "path", "label", "distance"]].to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def cmd_select(args):
    from curate.steps.select import run_selection
    from curate.workspace import Workspace

    ws = Workspace(args.workspace).require()
    table = run_selection(ws, args.n, args.strategy, args.name, args.seed)
    name = args.name or f"{args.strategy}_{len(table)}"
    meta = ws.selection_meta(name)
    print(f"selection {name!r}: {len(table)} images by {args.strategy}, "
          f"coverage radius {meta['metrics']['coverage_radius']:.3f} -> {ws.selections_dir / name}.parquet")


def cmd_dedup(args):
    from curate import storage
    from curate.steps.dedup import dedup
    from curate.workspace import Workspace

    ws = Workspace(args.workspace).require()
    table = dedup(ws, args.threshold)
    threshold = storage.read_json(ws.sidecar(ws.duplicates_file))["threshold"]
    kinds = table.groupby("kind")["group"].nunique().to_dict() if len(table) else {}
    print(f"{kinds.get('exact', 0)} exact and {kinds.get('near', 0)} near-duplicate groups "
          f"({len(table)} images) at cosine >= {threshold:.3f} -> {ws.duplicates_file}")


def cmd_export(args):
    from curate.steps.export import export_selection
    from curate.workspace import Workspace

    ws = Workspace(args.workspace).require()
    with _bar(f"export {args.mode}", "file") as bar:
        csv = export_selection(ws, args.selection, args.to, args.mode, progress=bar)
    print(f"exported selection {args.selection!r} ({args.mode}) -> {csv.parent} (manifest: {csv.name})")


def cmd_eval(args):
    from curate.evaluate.summary import summary_table
    from curate.steps.evaluate import evaluate
    from curate.workspace import Workspace

    ws = Workspace(args.workspace).require()
    with _bar("eval", "stage") as bar:
        report = evaluate(ws, random_baseline=not args.no_baseline, quick=args.quick, progress=bar)
    print(summary_table(report))
    for part, why in report.get("skipped", {}).items():
        print(f"  {part}: {why}")
    print(f"{report['train_images']:,} train / {report['test_images']:,} held-out images, {report['classes']} classes, "
          f"{report['speed']['eval_seconds']:.0f}s -> {ws.reports_dir / 'eval.json'} "
          f"(+{len(report.get('plots', {}))} PNGs)")


def cmd_app(args):
    from curate.workspace import Workspace

    ws = Workspace(args.workspace).require()
    app = Path(__file__).resolve().parent.parent / "app.py"
    if not app.exists():
        raise FileNotFoundError(f"app.py not found beside the curate package ({app}): install curate from its repository")
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
           "--server.address", args.host, "--server.port", str(args.port), "--browser.gatherUsageStats", "false",
           "--", "--workspace", str(ws.path)]
    print(f"serving {ws.path} at http://{args.host}:{args.port}  (Ctrl+C stops)")
    return subprocess.call(cmd, cwd=app.parent)  # so the repository's .streamlit/config.toml applies


if __name__ == "__main__":
    sys.exit(main())
