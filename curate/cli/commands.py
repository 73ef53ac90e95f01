"""The `curate` commands (DESIGN.md §2): each parses nothing and computes nothing itself; it calls the
library (the declared steps of curate.pipeline, or a step module) and prints what comes back."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from curate.options import from_namespace
from curate.progress import command_progress
from curate.quality.checks import QualityConfig
from curate.steps.options import RunOptions
from curate.workspace import Workspace

if TYPE_CHECKING:  # the pipeline loads every step (torch among them): only for the commands that run one
    from curate import pipeline

log = logging.getLogger("curate")


def configure_logging(verbose: bool = False) -> None:
    """curate's INFO lines on stderr; libraries that chat at INFO (numba, openTSNE, ...) only warn."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(message)s")
    for noisy in ("numba", "matplotlib", "PIL", "streamlit", "faiss.loader", "openTSNE"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def clear_killed_writes(workspace) -> None:
    """Remove the temp files a killed writer left in the workspace (a live writer's are kept)."""
    from curate import storage

    for folder in workspace if isinstance(workspace, list) else [workspace]:
        if folder and Path(folder).is_dir():
            for tmp in storage.remove_stale_temps(folder):
                log.info("removed %s, left by an interrupted write", tmp)


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


# --- the pipeline's steps -------------------------------------------------------------------------
def run_options(args: argparse.Namespace) -> RunOptions:
    """RunOptions of parsed arguments; the engine's own flags go to `engine_options`."""
    from curate.engines import engine_option_fields

    given = {f.name: getattr(args, f.name) for f in engine_option_fields() if hasattr(args, f.name)}
    return from_namespace(RunOptions, args, engine_options=given)


def print_summary(summary: pipeline.Summary) -> None:
    for line in summary.lines():
        print(line, flush=True)


def progress_bar(step: pipeline.Step):
    return command_progress(step.name, step.unit)


def run_steps(options: RunOptions, names: tuple[str, ...] | None = None) -> pipeline.RunSummary:
    """Run the declared steps (all of `curate run`, or `names`) with progress bars, printing each summary;
    with --nproc (or as a torchrun rank) the DDP driver trains in place of the train step."""
    from curate import pipeline
    from curate.train import launch

    steps = pipeline.STEPS if names is None else tuple(pipeline.step(n) for n in names)
    steps = launch.with_ddp(steps, options)
    return pipeline.run(options, steps, progress_for=progress_bar, on_summary=lambda step, summary: print_summary(summary))


def cmd_run(args):
    summary = run_steps(run_options(args))
    print_summary(summary)


def cmd_scan(args):
    run_steps(run_options(args), ("scan",))


def cmd_train(args):
    # `curate train` trains (no skipping a finished recipe); it resumes only when asked (--resume)
    options = dataclasses.replace(run_options(args), retrain=True)
    if getattr(args, "distributed_worker", False):
        from curate.train import launch
        for summary in launch.work(options):
            print_summary(summary)
        return
    run_steps(options, ("scan", "train"))


def cmd_embed(args):
    run_steps(run_options(args), ("scan", "embed"))


def _step(name: str, ws: Workspace, options: RunOptions | None = None, **params) -> None:
    """One declared step on `ws` with a progress bar (its own parameters in `params`); prints its summary."""
    from curate import pipeline

    with progress_bar(pipeline.step(name)) as bar:
        print_summary(pipeline.run_step(ws, name, options, bar, **params))


def cmd_search(args):
    from curate.session import open_workspace

    ows = open_workspace(args.workspace)
    query = args.image if args.image is not None else args.id
    table = ows.search(query, k=args.k, kind=args.kind, where=_where(ows.ws, args))
    columns = ["id", "path", "label", "distance"] + (["kind"] if table["kind"].ne("image").any() else [])
    print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def cmd_select(args):
    from curate.select.auto import ranked_by
    from curate.select.filters import Filters
    from curate.steps.select import SelectionRequest, run_selection
    from curate.workspace import Workspace

    ws = Workspace(args.workspace).require()
    request = SelectionRequest(
        n=args.n, strategy=args.strategy, seed=args.seed, params=_key_values(args.param), balance=args.balance,
        dedup=args.dedup if args.dedup in (None, "auto") else float(args.dedup),
        include=args.include, exclude=args.exclude, kind=args.kind, by_objects=args.by_objects,
        filters=Filters(labels=args.label, skip_flags=args.skip_flag, tags=args.tag, min_side=args.min_side,
                        where=_where(ws, args)))
    table = run_selection(ws, args.n, name=args.name, request=request)
    name = table.attrs["name"]
    meta = ws.selection_meta(name)
    metrics, by = meta["metrics"], ranked_by(args.strategy, meta["strategy"])
    print(f"selection {name!r}: {len(table)} of {metrics['pool']} images by {by}; coverage radius "
          f"{metrics['coverage_radius']:.3f}, mean distance to the nearest selected {metrics['mean_distance_to_selected']:.3f}"
          f" -> {ws.selection_file(name)}")


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


def _where(ws, args) -> str | None:
    """--where and --view as one expression (both must hold)."""
    from curate.data.where import combined

    return combined(args.where, args.view, ws.views_file)


def cmd_view(args):
    from curate.data.where import delete_view, read_views, save_view, where_mask
    from curate.workspace import Workspace

    ws = Workspace(args.workspace).require()
    if args.where is not None or args.delete:
        if not args.name:
            raise ValueError("name the view: `curate view NAME --where EXPR` (or NAME --delete)")
        if args.delete:
            delete_view(ws.views_file, args.name)
            print(f"deleted view {args.name!r} -> {ws.views_file}")
            return
        save_view(ws.views_file, args.name, args.where, ws.manifest())
    views = read_views(ws.views_file)
    if args.name and args.name not in views:
        raise ValueError(f"no view {args.name!r}; views: {', '.join(views) or 'none yet (curate view NAME --where EXPR)'}")
    manifest = ws.manifest()
    for name, expression in views.items():
        if args.name in (None, name):
            print(f"{name}: {int(where_mask(manifest, expression).sum()):,} items  {expression}")
    if not views:
        print("no views yet: save one with `curate view NAME --where EXPR`")


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

    ws = Workspace(args.workspace).require()
    if not 0 < args.target_precision < 1:
        raise ValueError(f"--target-precision must be between 0 and 1, not {args.target_precision}")
    _step("dedup", ws, RunOptions(workspace=ws.path, dedup_threshold=args.threshold, kind=args.kind),
          cfg=PairConfig(crops=args.crops, flips=args.flips, k=args.k), target=args.target_precision)
    if args.across:
        from curate.steps.dedup import across_splits

        table = across_splits(ws, args.across)
        by_split = table.groupby("split")["id"].count().to_dict() if len(table) else {}
        print(f"copies across splits: {len(table)} items have a copy in train "
              f"({', '.join(f'{n} {s}' for s, n in by_split.items()) or 'none'}) -> {ws.leaks_file}")
        if len(table):
            paths = ws.manifest()["path"]
            for row in table.head(10).itertuples():
                print(f"  {paths.iat[row.id]}  =  {paths.iat[row.copy_of]}  ({row.kind})")


def cmd_quality(args):
    from curate.steps.quality import saved_config

    ws = Workspace(args.workspace).require()
    saved = saved_config(ws) or QualityConfig()
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(QualityConfig) if getattr(args, f.name) is not None}
    _step("quality", ws, cfg=dataclasses.replace(saved, **given))


def cmd_map(args):
    ws = Workspace(args.workspace).require()
    hint = " (about 15 s per 5,000 images, fitted on 20,000 at most)" if args.method == "tsne" else ""
    print(f"computing the {args.method} map{hint}...", flush=True)
    _step("tsne" if args.method == "tsne" else "map", ws, RunOptions(workspace=ws.path, seed=args.seed,
                                                                     map_method=args.method))


def cmd_scores(args):
    _step("scores", Workspace(args.workspace).require(), k=args.k)


def cmd_label_issues(args):
    from curate import storage
    from curate.steps.label_issues import import_labels

    ws = Workspace(args.workspace).require()
    if args.labels is not None:
        imported = import_labels(ws, args.labels)
        unmatched = storage.read_json(ws.sidecar(ws.labels_file))["unmatched"]
        print(f"imported {len(imported)} labels from {args.labels}"
              f"{f' ({unmatched} rows matched no image)' if unmatched else ''} -> {ws.labels_file}")
    _step("label-issues", ws, RunOptions(workspace=ws.path, kind=args.kind), k=args.k, source=args.source,
          probabilities=args.probabilities, required=True, target=args.target_precision)


def cmd_export(args):
    from curate.steps.export import export_selection
    from curate.workspace import Workspace

    ws = Workspace(args.workspace).require()
    where = _where(ws, args)
    if where:  # the selection's items for which it holds, in rank order, exported as the selection would be
        return _export_where(ws, args, where)
    if args.format != "folder":
        from curate.steps.export import export_formatted

        with command_progress(f"export {args.format}", "file") as bar:
            folder = export_formatted(ws, args.selection, args.to, args.format, progress=bar)
        print(f"exported selection {args.selection!r} as {args.format} -> {folder}")
        return
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


def cmd_serve(args):
    from curate.serve import read_token, serve

    serve(args.workspace, args.host, args.port, read_token(args.token_file), max_upload_mb=args.max_upload_mb,
          max_batch=args.max_batch)


def _export_where(ws, args, where: str) -> None:
    from curate.data.where import where_mask
    from curate.steps.export import export_formatted, export_ids

    chosen = ws.selection(args.selection).sort_values("rank")["id"].to_numpy()
    ids = chosen[where_mask(ws.manifest(), where)[chosen]]
    if not len(ids):
        raise ValueError(f"none of the {len(chosen):,} items of selection {args.selection!r} match --where/--view: "
                         "nothing exported")
    source = f"selection {args.selection!r} where {where}"
    with command_progress(f"export {args.format if args.format != 'folder' else args.mode}", "file") as bar:
        if args.format != "folder":
            out = export_formatted(ws, None, args.to, args.format, progress=bar, ids=ids)
        elif args.mode == "zip":
            from curate import storage
            from curate.steps.export import zip_selection

            out = args.to if args.to.suffix == ".zip" else args.to.with_suffix(".zip")
            with storage.atomic_path(out) as tmp:
                zip_selection(ws, tmp, ids=ids, progress=bar)
        else:
            out = export_ids(ws, ids, args.to, args.mode, progress=bar, source=source).parent
    print(f"exported {len(ids):,} of {len(chosen):,} items of selection {args.selection!r} ({where}) -> {out}")


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
          f"{report['speed']['eval_seconds']:.0f}s -> {ws.eval_report_file} "
          f"(+{len(report.get('plots', {}))} PNGs)")


def cmd_compare_models(args):
    from curate import storage
    from curate.steps.compare_models import compare_models, summary_line
    from curate.workspace import Workspace

    if len(args.workspace) != 2:
        raise ValueError(f"compare-models takes two workspaces (-w A -w B), not {len(args.workspace)}")
    a, b = (Workspace(w) for w in args.workspace)
    report = compare_models(a, b, k=args.k, sample=args.sample, show=args.show)
    out = args.out or a.compare_models_file
    storage.write_json(out, report)
    print(summary_line(report))
    print("most different neighbourhoods (id in A, Jaccard): "
          + ", ".join(f"#{d['id_a']} {d['jaccard']:.2f}" for d in report["disagreements"][:5]) + f" -> {out}")


LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def cmd_app(args):
    """Serve the app: this process becomes the server (exec), so SIGTERM and SIGINT stop it. It serves
    `curate/ui/asgi/entry.py`: app.py behind the sign-in gate on every endpoint (curate.ui.gate)."""
    import os
    import secrets
    import tomllib

    from curate.data.remote import is_url
    from curate.ui.access import BUCKETS_ENV, PASSWORD_ENV, ROOTS_ENV, bucket_prefix
    from curate.ui.gate import SECRET_ENV, sso_providers
    from curate.workspace import Workspace

    ws = Workspace(args.workspace).require()
    repo = Path(__file__).resolve().parents[2]
    entry = repo / "curate" / "ui" / "asgi" / "entry.py"
    if not (repo / "app.py").exists():
        raise FileNotFoundError(f"app.py not found beside the curate package ({repo}): install curate from its "
                                "repository")
    password = args.password_file.read_text().strip() if args.password_file else os.environ.get(PASSWORD_ENV)
    if args.password_file and not password:
        raise ValueError(f"{args.password_file} is empty: put the app's password in it")
    sso = sso_providers(tomllib.loads(args.secrets.read_text()).get("auth")) if args.secrets else ()
    if args.secrets and not sso:
        raise ValueError(f"{args.secrets} has no [auth] section with a client_id: single sign-on needs one "
                         "(docs/team.md, \"Single sign-on\")")
    if args.host not in LOOPBACK and not (password or sso) and not args.behind_proxy:
        raise ValueError(f"--host {args.host} would let anyone who reaches this machine use the app without signing "
                         f"in: set {PASSWORD_ENV} (or --password-file FILE), give --secrets FILE with an [auth] "
                         "section (single sign-on), or serve it behind a reverse proxy that authenticates and pass "
                         "--behind-proxy (docs/reliability.md)")
    buckets = [bucket_prefix(r) for r in args.root if is_url(r)]  # a bad URL: ValueError, said before serving
    folders = [Path(r) for r in args.root if not is_url(r)]
    if not args.root:
        folders = [ws.path.parent, ws.root, Path.cwd() / "workspaces"]
        buckets = [ws.meta["source"]] if ws.meta.get("source") else []
    env = {**os.environ, ROOTS_ENV: os.pathsep.join(str(Path(r).expanduser().resolve()) for r in folders),
           BUCKETS_ENV: " ".join(buckets), SECRET_ENV: secrets.token_hex(32)}  # the secret signs the gate's cookies
    if password:
        env[PASSWORD_ENV] = password
    cmd = [sys.executable, "-m", "streamlit", "run", str(entry), "--server.headless", "true",
           "--server.address", args.host, "--server.port", str(args.port), "--browser.gatherUsageStats", "false",
           # No file watcher: it walks every imported module (torch's thousands) on the first page, ~1.5 s.
           "--server.fileWatcherType", "none",
           "--runner.magicEnabled", "false",  # explicit st.* calls only: no per-page ast.parse (.streamlit/config.toml)
           "--server.enableXsrfProtection", "true", "--server.enableCORS", "true",
           *(["--secrets.files", str(args.secrets.resolve())] if args.secrets else []),
           "--", "--workspace", str(ws.path)]
    signing_in = "; sign-in required" if password or sso else ""
    print(f"serving {ws.path} at http://{args.host}:{args.port}  (Ctrl+C stops; the browser may use "
          f"{', '.join(env[ROOTS_ENV].split(os.pathsep) + buckets)}{signing_in})", flush=True)
    os.chdir(repo)  # so the repository's .streamlit/config.toml applies
    os.execve(sys.executable, cmd, env)

