"""The `curate` command line (DESIGN.md §2). Parses arguments, shows progress, calls curate.steps."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import time
from pathlib import Path

from curate.pipeline import (command_progress, dedup_summary, embed_step, label_issues_step, quality_step, run,
                             scan_step, scores_step, train_step)
from curate.quality.checks import QualityConfig
from curate.select.auto import RULE as AUTO_RULE

log = logging.getLogger("curate")


def configure_logging(verbose: bool = False) -> None:
    """curate's INFO lines on stderr; libraries that chat at INFO (numba, openTSNE, ...) only warn."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(message)s")
    for noisy in ("numba", "matplotlib", "PIL", "streamlit", "faiss.loader", "openTSNE"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # A shell starts `cmd &` with SIGINT ignored, and children inherit that (an app started so would
        # start runs that its Cancel, a SIGINT, cannot stop): here SIGINT always saves the work and stops.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    configure_logging(args.verbose)
    try:
        if getattr(args, "threads", None) is not None:
            set_threads(args.threads)
        set_decode_limits(args)
        _clear_killed_writes(getattr(args, "workspace", None))
        result = args.func(args)
        return result if isinstance(result, int) else 0
    except KeyboardInterrupt:
        print("interrupted: work done so far is saved; rerun the command (with --resume for train) to continue",
              file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, PermissionError, FileExistsError, RuntimeError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _clear_killed_writes(workspace) -> None:
    """Remove the temp files a killed writer left in the workspace (a live writer's are kept)."""
    from curate import storage

    for folder in workspace if isinstance(workspace, list) else [workspace]:
        if folder and Path(folder).is_dir():
            for tmp in storage.remove_stale_temps(folder):
                logging.getLogger("curate").info("removed %s, left by an interrupted write", tmp)


def set_decode_limits(args: argparse.Namespace) -> None:
    """The decoding limits given as flags, for this process and the workers it starts (they read the
    environment: DDP ranks, Ray actors, the app's background runs). Without flags: nothing to import."""
    given = {flag: getattr(args, flag, None) for flag in ("max_pixels", "max_file_mb", "decode_memory_mb")}
    if all(value is None for value in given.values()):
        return
    import os

    from curate.data import images, scan

    envs = {"max_pixels": images.MAX_PIXELS_ENV, "max_file_mb": scan.MAX_FILE_MB_ENV,
            "decode_memory_mb": images.DECODE_MEMORY_ENV}
    for flag, value in given.items():
        if value is not None:
            if value < 1:
                raise ValueError(f"--{flag.replace('_', '-')} must be at least 1, not {value:g}")
            os.environ[envs[flag]] = str(int(value))
    images.DECODE_MEMORY.limit = images.env_int(images.DECODE_MEMORY_ENV, 1024) * 2**20


def set_threads(n: int) -> None:
    """Use n CPU threads in torch, FAISS and numba (UMAP), and in subprocesses that read OMP_NUM_THREADS."""
    import os

    import faiss
    import torch

    if n < 1:
        raise ValueError(f"--threads must be at least 1, not {n}")
    os.environ["OMP_NUM_THREADS"] = str(n)
    if "numba" in sys.modules:  # its pool size is fixed once loaded: changing the variable now breaks compiles
        import numba
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    else:  # numba reads it when first imported (by UMAP, later)
        os.environ["NUMBA_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="curate", description="Curate image datasets with self-supervised embeddings.")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, func, help: str, images: bool = False, workspaces: int = 1) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help)
        if images:
            c.add_argument("images", type=Path, help="folder of images (searched recursively)")
        if workspaces == 1:
            c.add_argument("-w", "--workspace", type=Path, required=True, help="workspace folder")
        else:
            c.add_argument("-w", "--workspace", type=Path, required=True, action="append",
                           help=f"workspace folder (give {workspaces})")
        c.add_argument("--threads", type=int, help="CPU threads for torch, FAISS and UMAP (default: torch's choice, "
                                                   "the physical cores); fewer leaves room for other work")
        limits = c.add_argument_group("decoding limits (also set by $CURATE_MAX_PIXELS, $CURATE_MAX_FILE_MB, "
                                      "$CURATE_DECODE_MEMORY_MB)")
        limits.add_argument("--max-pixels", type=float, metavar="N",
                            help="refuse images with more pixels (default 250e6; JPEGs, decoded at reduced scale, "
                                 "may have 4x more)")
        limits.add_argument("--max-file-mb", type=float, metavar="MB", help="refuse larger files (default 1024)")
        limits.add_argument("--decode-memory-mb", type=float, metavar="MB",
                            help="memory that concurrent large decodes may hold at once (default 1024)")
        c.set_defaults(func=func)
        return c

    c = command("run", cmd_run, "whole pipeline: scan, quality checks, train, embed, index, 2-D map, duplicates, "
                                "scores, label issues (when there are labels)", images=True)
    _train_options(c)
    _ddp_options(c)
    _engine_options(c)
    _index_options(c)
    c.add_argument("--retrain", action="store_true", help="train again even when the workspace's encoder was trained "
                                                          "with this recipe (default: a rerun resumes an interrupted "
                                                          "training, skips a finished one and embeds new images)")
    c.add_argument("--map-method", choices=["auto", "umap", "pca"], default="auto",
                   help="2-D map: UMAP (auto: PCA for tiny sets)")
    c.add_argument("--dedup-threshold", type=float, help="near-duplicate score threshold (default: calibrated)")
    c.add_argument("--select", action="append", default=[], metavar="STRATEGY:N[:NAME]",
                   help="save a selection at the end, repeatable (e.g. kcenter:100:diverse_100)")
    c = command("scan", cmd_scan, "build or refresh the manifest", images=True)
    _engine_options(c, actors=False)
    c = command("train", cmd_train, "self-supervised pretraining on the images", images=True)
    _train_options(c)
    c.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    _ddp_options(c)
    _engine_options(c, actors=False)  # Ray scans and fills the decoded-image cache; training runs here (or DDP)
    c.add_argument("--distributed-worker", action="store_true", help=argparse.SUPPRESS)  # a torchrun rank
    c = command("embed", cmd_embed, "embed a folder and (re)build the index", images=True)
    c.add_argument("--model", type=Path, help="encoder.pt to use (default: the workspace's own)")
    c.add_argument("--batch-size", type=int, default=256)
    _engine_options(c)
    _index_options(c)
    c = command("search", cmd_search, "nearest neighbours of an image")
    q = c.add_mutually_exclusive_group(required=True)
    q.add_argument("--image", type=Path, help="an image file (anywhere)")
    q.add_argument("--id", type=int, help="a manifest id")
    c.add_argument("-k", type=int, default=10)
    c = command("select", cmd_select, "save a named selection ranked by a strategy, under constraints")
    c.add_argument("--n", type=float, required=True, help="number of images, or a fraction of the pool if < 1")
    c.add_argument("--strategy", default="auto", help="auto, random, kcenter, facility_location, typiclust, probcover, "
                                                       f"cluster_balanced, uniqueness (default auto: {AUTO_RULE}, the "
                                                       "winners of the selection-lift benchmark)")
    c.add_argument("--name", help="selection name (default: STRATEGY_N, the strategy that ranked it)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="strategy parameter")
    c.add_argument("--balance", choices=["label", "cluster"], help="equal share per label or k-means cluster")
    c.add_argument("--dedup", nargs="?", const="auto", default=None, metavar="COSINE",
                   help="skip near-duplicates of chosen images (threshold; default: the workspace's duplicate threshold)")
    c.add_argument("--include", action="append", default=[], metavar="SELECTION|tag:NAME",
                   help="images that must be in the selection (repeatable)")
    c.add_argument("--exclude", action="append", default=[], metavar="SELECTION|tag:NAME",
                   help="images that must stay out (repeatable)")
    c.add_argument("--label", action="append", default=[], help="draw only from these labels (repeatable)")
    c.add_argument("--skip-flag", action="append", default=[], metavar="FLAG",
                   help="leave out images with this flag, e.g. blurry, dark, outlier, duplicate, label_issue")
    c.add_argument("--tag", action="append", default=[], help="draw only from images with this tag")
    c.add_argument("--min-side", type=int, help="leave out images whose shorter side is smaller (px)")
    c = command("tag", cmd_tag, "tag images (or untag with --remove); tags act as filters and exclusions")
    c.add_argument("tag", help="tag name, e.g. to_label or bad")
    src = c.add_mutually_exclusive_group(required=True)
    src.add_argument("--ids", help="comma-separated manifest ids")
    src.add_argument("--selection", help="tag every image of this selection")
    c.add_argument("--remove", action="store_true")
    c = command("dedup", cmd_dedup, "exact and near-duplicate groups from pixel fingerprints and embeddings")
    c.add_argument("--threshold", type=float, default=None,
                   help="pair score for near duplicates (default: calibrated for --target-precision, then moved "
                        "by pairs marked in the app; see duplicates.json)")
    c.add_argument("--target-precision", type=float, default=0.95,
                   help="expected share of found pairs that are real duplicates (default 0.95)")
    c.add_argument("--crops", action="store_true", help="also find heavier crops (up to ~half the area cut away)")
    c.add_argument("--flips", action="store_true", help="count left-right mirrored copies as duplicates")
    c.add_argument("-k", type=int, default=5, help="candidate neighbours per image per kind of evidence (default 5)")
    c = command("quality", cmd_quality, "image-quality checks (dark, bright, blurry, low information, odd aspect "
                                        "ratio, odd size, grayscale) as manifest columns")
    for f in dataclasses.fields(QualityConfig):
        c.add_argument(f"--{f.name.replace('_', '-')}", type=float, metavar="T",
                       help=f"threshold of the {f.name} flag (default {f.default}, see curate/quality/checks.py)")
    c = command("map", cmd_map, "a 2-D map of the embeddings: UMAP or PCA as the main map (projection_umap.npy), "
                                "or a t-SNE map beside it (projection_tsne.npy)")
    c.add_argument("--method", choices=["auto", "umap", "pca", "tsne"], default="tsne",
                   help="tsne (default): the SSL literature's view, for Explore and `curate eval`; auto/umap/pca "
                        "rebuild the main map as `curate run --map-method` does")
    c.add_argument("--seed", type=int, default=0)
    c = command("scores", cmd_scores, "per-image uniqueness, typicality and outlier scores from the embeddings")
    c.add_argument("-k", type=int, default=10, help="neighbours per image (default 10)")
    c = command("label-issues", cmd_label_issues, "images whose label disagrees with their neighbours in embedding "
                                                  "space, with a suggested label (label_issues.parquet)")
    c.add_argument("--labels", type=Path, metavar="CSV", help="import labels from a CSV with columns path,label "
                                                              "(paths relative to the image folder) to use instead of "
                                                              "the class folders")
    c.add_argument("--source", choices=["auto", "folders", "imported"], default="auto",
                   help="labels to check (default: imported ones when there are, else the class folders)")
    c.add_argument("-k", type=int, default=20, help="neighbours that vote (default 20)")
    c.add_argument("--probabilities", choices=["knn+linear", "knn", "linear"], default="knn+linear",
                   help="where the out-of-sample class probabilities come from: the neighbours' vote, a 5-fold "
                        "cross-validated linear model on the embeddings, or (default) their mean")
    c = command("export", cmd_export, "copy, link or list a selection into a folder")
    c.add_argument("--selection", required=True)
    c.add_argument("--to", type=Path, required=True)
    c.add_argument("--mode", choices=["copy", "symlink", "hardlink", "list", "zip"], default="copy",
                   help="zip: --to is the .zip file to write")
    c = command("eval", cmd_eval, "representation report (kNN, linear probe, k-means NMI, per-layer probes, "
                                  "invariance, pretext accuracy) on a held-out split when labels exist")
    c.add_argument("--no-baseline", action="store_true", help="skip the random-weights baseline")
    c.add_argument("--quick", action="store_true",
                   help="skip the per-layer probes, the invariance test and the fine-tuning transfer")
    c.add_argument("--finetune-steps", type=int, default=None, metavar="N",
                   help="the most steps of each fine-tuning run on 1%% and 10%% of the labels (default 200, fewer "
                        "for small labelled sets: 30 passes, at least 50 steps; 0: skip)")
    c = command("compare-models", cmd_compare_models, "how much two workspaces' encoders agree, without labels: "
                "overlap (Jaccard@k) of each image's nearest neighbours, and where they differ most", workspaces=2)
    c.add_argument("-k", type=int, default=10, help="neighbours per image (default 10)")
    c.add_argument("--sample", type=int, default=2000, help="query images, a seeded sample of the shared ones")
    c.add_argument("--show", type=int, default=12, help="the most disagreeing images listed (default 12)")
    c.add_argument("--out", type=Path, help="report JSON (default: the first workspace's reports/compare_models.json)")
    c = command("app", cmd_app, "serve the browser app on a workspace")
    c.add_argument("--port", type=int, default=8501)
    c.add_argument("--host", default="localhost", help="address to serve on (default localhost: this machine only); "
                                                       "another needs a password or --behind-proxy")
    c.add_argument("--root", action="append", type=Path, default=[], metavar="DIR",
                   help="a folder the browser may name (workspaces, image folders, export targets), repeatable; "
                        "default: the workspace's parent folder, its image folder and ./workspaces")
    c.add_argument("--password-file", type=Path, help="file holding the password every browser session signs in "
                                                      "with (or set CURATE_APP_PASSWORD)")
    c.add_argument("--behind-proxy", action="store_true",
                   help="serve a non-local --host without a password: a reverse proxy in front authenticates")
    return p


def _train_options(c: argparse.ArgumentParser) -> None:
    c.add_argument("--preset", help="training preset: a task name (its recipe in curate/pretext/presets) or a YAML file")
    c.add_argument("--task", action="append", metavar="NAME[:WEIGHT]", help="pretext task, repeatable (default simclr)")
    c.add_argument("--backbone", help="backbone architecture (default: the preset's, resnet10 for simclr)")
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
    c.add_argument("--health-minutes", type=float, help="log embedding health (effective rank, alignment, "
                                                        "uniformity) every so many minutes (default 1; 0 = off)")
    c.add_argument("--checkpoint-minutes", type=float, help="save a resumable checkpoint every so many minutes "
                                                            "(default 2); a crash loses at most that much training")
    c.add_argument("--snapshot-minutes", type=float, nargs="+", help="also keep the encoder after these minutes "
                                                                     "of training (model/snapshots/encoder-{M}min.pt)")
    c.add_argument("--stop-on-collapse", action="store_true", default=None,
                   help="stop with a checkpoint when the embeddings collapse (default: warn and go on)")


def _index_options(c: argparse.ArgumentParser) -> None:
    c.add_argument("--index-memory", default="4G", help="memory the FAISS index may take (default 4G): the index "
                                                        "type follows from it, the image count and the dimension")
    c.add_argument("--recall", type=float, default=0.95, help="recall@10 against exact search the index is tuned "
                                                              "to reach (default 0.95)")


def _ddp_options(c: argparse.ArgumentParser) -> None:
    c.add_argument("--nproc", type=int, help="train with torch DDP in this many processes on this machine (torchrun; "
                                             "gloo on CPU with cores/N threads each, NCCL with one GPU each); the "
                                             "batch size is the global batch, split evenly")
    c.add_argument("--nnodes", help="DDP over several machines: node count (or MIN:MAX), as torchrun takes it")
    c.add_argument("--node-rank", type=int, help="this machine's rank among the nodes (static rendezvous)")
    c.add_argument("--rdzv-endpoint", help="HOST:PORT of the rendezvous, the same on every node")
    c.add_argument("--rdzv-id", help="a job id shared by the nodes of one run")
    c.add_argument("--rdzv-backend", help="rendezvous backend (default c10d)")


def _engine_options(c: argparse.ArgumentParser, actors: bool = True) -> None:
    c.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="where the work runs: this process (default) or a Ray cluster (needs pip install 'ray[data]')")
    c.add_argument("--address", help="Ray cluster to join: auto or HOST:PORT (default: RAY_ADDRESS, else start Ray "
                                     "in this process; ray:// Ray Client addresses cannot run Ray Data)")
    if actors:
        c.add_argument("--actors", type=int, help="Ray encoder actors (default: one per --gpus-per-actor GPUs, "
                                                  "else half the cluster's CPUs)")
        c.add_argument("--gpus-per-actor", type=float, default=0.0,
                       help="GPUs per Ray encoder actor (default 0: CPU actors)")


def cmd_scan(args):
    return scan_step(args)


def cmd_train(args, ws=None):
    return train_step(args, ws)


def cmd_embed(args, ws=None):
    return embed_step(args, ws)


def cmd_run(args):
    run(args)


def cmd_search(args):
    from curate.session import open_workspace

    ows = open_workspace(args.workspace)
    query = args.image if args.image is not None else args.id
    table = ows.search(query, k=args.k)
    print(table[["id", "path", "label", "distance"]].to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def cmd_select(args):
    from curate.select.auto import ranked_by
    from curate.select.filters import Filters
    from curate.steps.select import SelectionRequest, run_selection
    from curate.workspace import Workspace

    ws = Workspace(args.workspace).require()
    request = SelectionRequest(
        n=args.n, strategy=args.strategy, seed=args.seed, params=_key_values(args.param), balance=args.balance,
        dedup=args.dedup if args.dedup in (None, "auto") else float(args.dedup),
        include=args.include, exclude=args.exclude,
        filters=Filters(labels=args.label, skip_flags=args.skip_flag, tags=args.tag, min_side=args.min_side))
    table = run_selection(ws, args.n, name=args.name, request=request)
    name = table.attrs["name"]
    meta = ws.selection_meta(name)
    metrics, by = meta["metrics"], ranked_by(args.strategy, meta["strategy"])
    print(f"selection {name!r}: {len(table)} of {metrics['pool']} images by {by}; coverage radius "
          f"{metrics['coverage_radius']:.3f}, mean distance to the nearest selected {metrics['mean_distance_to_selected']:.3f}"
          f" -> {ws.selections_dir / name}.parquet")


def cmd_tag(args):
    from curate.data.tags import add_tag, remove_tag
    from curate.workspace import Workspace

    ws = Workspace(args.workspace).require()
    if args.selection:
        ids = ws.selection(args.selection)["id"].tolist()
    else:
        try:
            ids = [int(i) for i in args.ids.split(",") if i.strip()]
        except ValueError:
            raise ValueError(f"--ids takes comma-separated integers, not {args.ids!r}") from None
        unknown = [i for i in ids if not 0 <= i < len(ws.manifest())]
        if unknown:
            raise ValueError(f"no images with ids {unknown[:5]} in {ws.path}")
    changed = remove_tag(ws, ids, args.tag) if args.remove else add_tag(ws, ids, args.tag)
    print(f"{'untagged' if args.remove else 'tagged'} {changed} images {args.tag!r} -> {ws.tags_file}")


def _key_values(items: list[str]) -> dict:
    """['k=3', 'name=x'] -> {'k': 3, 'name': 'x'} (values parsed as YAML scalars)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param takes KEY=VALUE, not {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def cmd_dedup(args):
    from curate.quality.pairs import PairConfig
    from curate.steps.dedup import dedup
    from curate.workspace import Workspace

    ws = Workspace(args.workspace).require()
    if not 0 < args.target_precision < 1:
        raise ValueError(f"--target-precision must be between 0 and 1, not {args.target_precision}")
    with command_progress("dedup", "pair") as bar:
        table = dedup(ws, args.threshold, PairConfig(crops=args.crops, flips=args.flips, k=args.k),
                      args.target_precision, progress=bar)
    print(dedup_summary(ws, table))


def cmd_quality(args):
    from curate.steps.quality import saved_config
    from curate.workspace import Workspace

    ws = Workspace(args.workspace).require()
    cfg = saved_config(ws) or QualityConfig()
    for f in dataclasses.fields(QualityConfig):
        if getattr(args, f.name) is not None:
            setattr(cfg, f.name, getattr(args, f.name))
    quality_step(args, ws, cfg)


def cmd_map(args):
    from curate.steps.index import build_projection
    from curate.workspace import Workspace

    ws = Workspace(args.workspace).require()
    hint = " (about 15 s per 5,000 images, fitted on 20,000 at most)" if args.method == "tsne" else ""
    print(f"computing the {args.method} map{hint}...", flush=True)
    started = time.perf_counter()
    build_projection(ws, args.method, args.seed)
    print(f"{args.method} map of {ws.embeddings().shape[0]:,} rows in {time.perf_counter() - started:.1f}s "
          f"-> {ws.map_file(args.method)}")


def cmd_scores(args):
    from curate.workspace import Workspace

    scores_step(args, Workspace(args.workspace).require(), args.k)


def cmd_label_issues(args):
    from curate import storage
    from curate.steps.label_issues import import_labels
    from curate.workspace import Workspace

    ws = Workspace(args.workspace).require()
    if args.labels is not None:
        imported = import_labels(ws, args.labels)
        unmatched = storage.read_json(ws.sidecar(ws.labels_file))["unmatched"]
        print(f"imported {len(imported)} labels from {args.labels}"
              f"{f' ({unmatched} rows matched no image)' if unmatched else ''} -> {ws.labels_file}")
    label_issues_step(args, ws, args.k, args.source, required=True, probabilities=args.probabilities)


def cmd_export(args):
    from curate.steps.export import export_selection
    from curate.workspace import Workspace

    ws = Workspace(args.workspace).require()
    if args.mode == "zip":
        from curate import storage
        from curate.steps.export import zip_selection

        target = args.to if args.to.suffix == ".zip" else args.to.with_suffix(".zip")
        with command_progress("export zip", "file") as bar, storage.atomic_path(target) as tmp:
            n = zip_selection(ws, tmp, args.selection, progress=bar)
        print(f"zipped selection {args.selection!r} ({n} images) -> {target}")
        return
    with command_progress(f"export {args.mode}", "file") as bar:
        csv = export_selection(ws, args.selection, args.to, args.mode, progress=bar)
    print(f"exported selection {args.selection!r} ({args.mode}) -> {csv.parent} (manifest: {csv.name})")


def cmd_eval(args):
    from curate.evaluate.summary import summary_table
    from curate.steps.evaluate import evaluate
    from curate.workspace import Workspace

    ws = Workspace(args.workspace).require()
    with command_progress("eval", "stage") as bar:
        report = evaluate(ws, random_baseline=not args.no_baseline, quick=args.quick, progress=bar,
                          finetune_steps=args.finetune_steps)
    print(summary_table(report))
    for part, why in report.get("skipped", {}).items():
        print(f"  {part}: {why}")
    what = (f"{report['test_images']:,} images, no labels" if report.get("label_free") else
            f"{report['train_images']:,} train / {report['test_images']:,} held-out images, {report['classes']} classes")
    print(f"{what}, "
          f"{report['speed']['eval_seconds']:.0f}s -> {ws.reports_dir / 'eval.json'} "
          f"(+{len(report.get('plots', {}))} PNGs)")


def cmd_compare_models(args):
    from curate import storage
    from curate.steps.compare_models import compare_models, summary_line
    from curate.workspace import Workspace

    if len(args.workspace) != 2:
        raise ValueError(f"compare-models takes two workspaces (-w A -w B), not {len(args.workspace)}")
    a, b = (Workspace(w) for w in args.workspace)
    report = compare_models(a, b, k=args.k, sample=args.sample, show=args.show)
    out = args.out or a.reports_dir / "compare_models.json"
    storage.write_json(out, report)
    print(summary_line(report))
    print("most different neighbourhoods (id in A, Jaccard): "
          + ", ".join(f"#{d['id_a']} {d['jaccard']:.2f}" for d in report["disagreements"][:5]) + f" -> {out}")


LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def cmd_app(args):
    """Serve the app: this process becomes the Streamlit server (exec), so SIGTERM and SIGINT stop it."""
    import os

    from curate.ui.access import PASSWORD_ENV, ROOTS_ENV
    from curate.workspace import Workspace

    ws = Workspace(args.workspace).require()
    app = Path(__file__).resolve().parent.parent / "app.py"
    if not app.exists():
        raise FileNotFoundError(f"app.py not found beside the curate package ({app}): install curate from its repository")
    password = args.password_file.read_text().strip() if args.password_file else os.environ.get(PASSWORD_ENV)
    if args.password_file and not password:
        raise ValueError(f"{args.password_file} is empty: put the app's password in it")
    if args.host not in LOOPBACK and not password and not args.behind_proxy:
        raise ValueError(f"--host {args.host} would let anyone who reaches this machine use the app without signing "
                         f"in: set {PASSWORD_ENV} (or --password-file FILE), or serve it behind a reverse proxy that "
                         "authenticates and pass --behind-proxy (README, \"Sharing the app\")")
    roots = args.root or [ws.path.parent, ws.root, Path.cwd() / "workspaces"]
    env = {**os.environ, ROOTS_ENV: os.pathsep.join(str(Path(r).expanduser().resolve()) for r in roots)}
    if password:
        env[PASSWORD_ENV] = password
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
           "--server.address", args.host, "--server.port", str(args.port), "--browser.gatherUsageStats", "false",
           "--server.enableXsrfProtection", "true", "--server.enableCORS", "true",
           "--", "--workspace", str(ws.path)]
    print(f"serving {ws.path} at http://{args.host}:{args.port}  (Ctrl+C stops; the browser may use "
          f"{', '.join(env[ROOTS_ENV].split(os.pathsep))}{'; sign-in required' if password else ''})", flush=True)
    os.chdir(app.parent)  # so the repository's .streamlit/config.toml applies
    os.execve(sys.executable, cmd, env)


if __name__ == "__main__":
    sys.exit(main())
