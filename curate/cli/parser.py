"""The `curate` argument parser (DESIGN.md §2). The options of the pipeline's steps come from their
declarations (curate.steps.options.RunOptions, each engine's options); the rest are declared here."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Callable

from curate.engines import add_engine_options, engine_names
from curate.options import add_options
from curate.quality.checks import QualityConfig
from curate.select.auto import RULE as AUTO_RULE
from curate.steps.options import RUN_GROUPS, RunOptions

Command = Callable[[argparse.Namespace], object]


def build_parser() -> argparse.ArgumentParser:
    from curate.cli import commands as c

    p = argparse.ArgumentParser(prog="curate", description="Curate image datasets with self-supervised embeddings.")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(required=True, metavar="COMMAND")
    new = _command_factory(sub)
    _run(new("run", c.cmd_run, "whole pipeline: scan, quality checks, train, embed, index, 2-D map, duplicates, "
                               "scores, label issues (when there are labels)", images=True))
    _scan(new("scan", c.cmd_scan, "build or refresh the manifest: images, videos (their frames) and annotated "
                                  "boxes (objects)", images=True))
    _train(new("train", c.cmd_train, "self-supervised pretraining on the images", images=True))
    _embed(new("embed", c.cmd_embed, "embed a folder and (re)build the index", images=True))
    _search(new("search", c.cmd_search, "nearest neighbours of an image"))
    _select(new("select", c.cmd_select, "save a named selection ranked by a strategy, under constraints"))
    _tag(new("tag", c.cmd_tag, "tag images (or untag with --remove); tags act as filters and exclusions"))
    _dedup(new("dedup", c.cmd_dedup, "exact and near-duplicate groups from pixel fingerprints and embeddings"))
    _quality(new("quality", c.cmd_quality, "image-quality checks (dark, bright, blurry, low information, odd aspect "
                                           "ratio, odd size, grayscale) as manifest columns"))
    _map(new("map", c.cmd_map, "a 2-D map of the embeddings: UMAP or PCA as the main map (projection_umap.npy), "
                               "or a t-SNE map beside it (projection_tsne.npy)"))
    scores = new("scores", c.cmd_scores, "per-image uniqueness, typicality and outlier scores from the embeddings")
    scores.add_argument("-k", type=int, default=10, help="neighbours per image (default 10)")
    add_options(scores, RunOptions, ["kind"])
    _label_issues(new("label-issues", c.cmd_label_issues, "images whose label disagrees with their neighbours in "
                                                          "embedding space, with a suggested label (label_issues.parquet)"))
    _export(new("export", c.cmd_export, "copy, link or list a selection into a folder"))
    _view(new("view", c.cmd_view, "list, save or delete views: named --where filters, shown in the app"))
    _eval(new("eval", c.cmd_eval, "representation report (kNN, linear probe, k-means NMI, per-layer probes, "
                                  "invariance, pretext accuracy) on a held-out split when labels exist"))
    _compare_models(new("compare-models", c.cmd_compare_models, "how much two workspaces' encoders agree, without "
                        "labels: overlap (Jaccard@k) of each image's nearest neighbours, and where they differ most",
                        workspaces=2))
    _app(new("app", c.cmd_app, "serve the browser app on a workspace"))
    _serve(new("serve", c.cmd_serve, "nearest-neighbour lookup over HTTP for other programs (POST /search, "
                                     "GET /items/ID, OpenAPI at /docs)"))
    return p


def location(text: str) -> Path | str:
    """A local folder as a Path; a bucket URL kept as text (a Path would fold its '//')."""
    from curate.data.remote import is_url

    return text if is_url(text) else Path(text)


def _command_factory(sub):
    def new(name: str, func: Command, help: str, images: bool = False, workspaces: int = 1) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help)
        if images:
            c.add_argument("images", type=location, help="folder of images (searched recursively), or a bucket URL "
                                                          "(s3://bucket/prefix, gs://, az://: mirrored into the workspace)")
        many = {"action": "append", "help": f"workspace folder (give {workspaces})"} if workspaces > 1 else \
            {"help": "workspace folder"}
        c.add_argument("-w", "--workspace", type=Path, required=True, **many)
        _process_options(c)
        c.set_defaults(func=func)
        return c
    return new


def _process_options(c: argparse.ArgumentParser) -> None:
    add_options(c, RunOptions, ["process"])
    limits = c.add_argument_group("decoding limits (also set by $CURATE_MAX_PIXELS, $CURATE_MAX_FILE_MB, "
                                  "$CURATE_DECODE_MEMORY_MB)")
    limits.add_argument("--max-pixels", type=float, metavar="N", help="refuse images with more pixels (default 250e6; "
                                                                       "JPEGs, decoded at reduced scale, may have 4x more)")
    limits.add_argument("--max-file-mb", type=float, metavar="MB", help="refuse larger files (default 1024)")
    limits.add_argument("--decode-memory-mb", type=float, metavar="MB",
                        help="memory that concurrent large decodes may hold at once (default 1024)")


def _engine(c: argparse.ArgumentParser, embeds: bool = True) -> None:
    """--engine and the registered engines' own options (they reach the steps as RunOptions.engine_options);
    `embeds` False leaves out those only embedding uses."""
    add_options(c, RunOptions, ["engine"], extra={"engine": {"choices": engine_names()}})
    add_engine_options(c, embeds)


def _scan(c: argparse.ArgumentParser) -> None:
    add_options(c, RunOptions, ["scan"])
    _engine(c, embeds=False)


def _run(c: argparse.ArgumentParser) -> None:
    add_options(c, RunOptions, [g for g in RUN_GROUPS if g != "engine"])
    _engine(c)


def _train(c: argparse.ArgumentParser) -> None:
    add_options(c, RunOptions, ["common", "train", "resume", "ddp"])
    _engine(c, embeds=False)  # Ray scans and fills the decoded-image cache; training runs here (or DDP)
    c.add_argument("--distributed-worker", action="store_true", help=argparse.SUPPRESS)  # a torchrun rank


def _embed(c: argparse.ArgumentParser) -> None:
    # `curate embed --batch-size` has always been the embedding batch
    add_options(c, RunOptions, ["model", "embed", "index"],
                flags={"embed_batch_size": ("--batch-size", "--embed-batch-size")})
    _engine(c)


def _search(c: argparse.ArgumentParser) -> None:
    q = c.add_mutually_exclusive_group(required=True)
    q.add_argument("--image", type=Path, help="an image file (anywhere)")
    q.add_argument("--id", type=int, help="a manifest id")
    c.add_argument("-k", type=int, default=10)
    c.add_argument("--kind", choices=["image", "object", "frame"],
                   help="which items to return (default: the query's own kind; images for a file)")
    _where(c, "return only items")


def _where(c: argparse.ArgumentParser, what: str) -> None:
    c.add_argument("--where", metavar="EXPR", help=f"{what} for which this expression over the manifest's columns "
                   "holds, e.g. \"label = 'cat' AND width >= 640\" (SQL, run by DuckDB; see `curate view`)")
    c.add_argument("--view", metavar="NAME", help=f"{what} in this saved view (a named --where; with --where, both)")


def _serve(c: argparse.ArgumentParser) -> None:
    c.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback; any other needs a token)")
    c.add_argument("--port", type=int, default=8000)
    c.add_argument("--token-file", type=Path, help="file whose first line is the API token (else $CURATE_API_TOKEN)")
    c.add_argument("--max-upload-mb", type=float, default=20.0, help="largest query upload (default 20)")
    c.add_argument("--max-batch", type=int, default=32, help="query images embedded in one pass at most (default 32)")


def _view(c: argparse.ArgumentParser) -> None:
    c.add_argument("name", nargs="?", help="the view's name")
    c.add_argument("--where", metavar="EXPR", help="save the view as this expression (checked on the manifest first)")
    c.add_argument("--delete", action="store_true", help="delete the view")


def _select(c: argparse.ArgumentParser) -> None:
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
    _where(c, "draw only from items")
    add_options(c, RunOptions, ["kind"])
    c.add_argument("--by-objects", action="store_true", help="rank images by the diversity of their objects (the "
                   "strategy, filters and --balance label act on the objects and their classes)")


def _tag(c: argparse.ArgumentParser) -> None:
    c.add_argument("tag", help="tag name, e.g. to_label or bad")
    src = c.add_mutually_exclusive_group(required=True)
    src.add_argument("--ids", help="comma-separated manifest ids")
    src.add_argument("--selection", help="tag every image of this selection")
    c.add_argument("--remove", action="store_true")


def _dedup(c: argparse.ArgumentParser) -> None:
    add_options(c, RunOptions, ["kind"])
    c.add_argument("--across", metavar="COLUMN", help="also list the items of other splits that have a copy in the "
                   "train split (splits: this manifest column, or for 'split' the train/ test/ val/ folders)")
    c.add_argument("--threshold", type=float, default=None,
                   help="pair score for near duplicates (default: calibrated for --target-precision, then moved by "
                        "pairs marked in the app; see duplicates.json)")
    c.add_argument("--target-precision", type=float, default=0.95,
                   help="expected share of found pairs that are real duplicates (default 0.95)")
    c.add_argument("--crops", action="store_true", help="also find heavier crops (up to ~half the area cut away)")
    c.add_argument("--flips", action="store_true", help="count left-right mirrored copies as duplicates")
    c.add_argument("-k", type=int, default=5, help="candidate neighbours per image per kind of evidence (default 5)")


def _quality(c: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(QualityConfig):
        c.add_argument(f"--{f.name.replace('_', '-')}", type=float, metavar="T",
                       help=f"threshold of the {f.name} flag (default {f.default}, see curate/quality/checks.py)")


def _map(c: argparse.ArgumentParser) -> None:
    c.add_argument("--method", choices=["auto", "umap", "pca", "tsne"], default="tsne",
                   help="tsne (default): the SSL literature's view, for Explore and `curate eval`; auto/umap/pca "
                        "rebuild the main map as `curate run --map-method` does")
    c.add_argument("--seed", type=int, default=0)


def _label_issues(c: argparse.ArgumentParser) -> None:
    c.add_argument("--labels", type=Path, metavar="CSV", help="import labels from a CSV with columns path,label "
                                                              "(paths relative to the image folder) to use instead of "
                                                              "the class folders")
    c.add_argument("--source", choices=["auto", "folders", "imported"], default="auto",
                   help="labels to check (default: imported ones when there are, else the class folders)")
    c.add_argument("-k", type=int, default=20, help="neighbours that vote (default 20)")
    c.add_argument("--probabilities", choices=["knn+linear", "knn", "linear"], default="knn+linear",
                   help="where the out-of-sample class probabilities come from: the neighbours' vote, a 5-fold "
                        "cross-validated linear model on the embeddings, or (default) their mean")
    c.add_argument("--target-precision", type=float, default=0.8, metavar="P",
                   help="flag as many images as planted label flips estimate can be flagged at this precision "
                        "(default 0.8; see curate/quality/label_trust.py)")
    add_options(c, RunOptions, ["kind"])


def _export(c: argparse.ArgumentParser) -> None:
    c.add_argument("--selection", required=True)
    c.add_argument("--to", type=Path, required=True)
    c.add_argument("--mode", choices=["copy", "symlink", "hardlink", "list", "zip"], default="copy",
                   help="zip: --to is the .zip file to write")
    c.add_argument("--format", default="folder", choices=["folder", "yolo", "coco", "voc", "labelstudio", "crops"],
                   help="folder (default: the files in their class folders; frames as one image each, named by "
                        "video and time), an annotation format with the boxes (a selection of objects: their "
                        "images with only those boxes), or crops (object crops in class folders)")
    _where(c, "export only the selection's items")


def _eval(c: argparse.ArgumentParser) -> None:
    c.add_argument("--no-baseline", action="store_true", help="skip the random-weights baseline")
    c.add_argument("--quick", action="store_true",
                   help="skip the per-layer probes, the invariance test and the fine-tuning transfer")
    c.add_argument("--finetune-steps", type=int, default=None, metavar="N",
                   help="the most steps of each fine-tuning run on 1%% and 10%% of the labels (default 200, fewer "
                        "for small labelled sets: 30 passes, at least 50 steps; 0: skip)")


def _compare_models(c: argparse.ArgumentParser) -> None:
    c.add_argument("-k", type=int, default=10, help="neighbours per image (default 10)")
    c.add_argument("--sample", type=int, default=2000, help="query images, a seeded sample of the shared ones")
    c.add_argument("--show", type=int, default=12, help="the most disagreeing images listed (default 12)")
    c.add_argument("--out", type=Path, help="report JSON (default: the first workspace's reports/compare_models.json)")


def _app(c: argparse.ArgumentParser) -> None:
    c.add_argument("--port", type=int, default=8501)
    c.add_argument("--host", default="localhost", help="address to serve on (default localhost: this machine only); "
                                                       "another needs a password, --secrets with [auth], or --behind-proxy")
    c.add_argument("--root", action="append", default=[], metavar="DIR|URL",
                   help="a folder the browser may name (workspaces, image folders, export targets), or a bucket "
                        "prefix (s3://bucket/prefix) it may build workspaces from, repeatable; default: the "
                        "workspace's parent folder, its image folder, ./workspaces and the workspace's own bucket")
    c.add_argument("--password-file", type=Path, help="file holding the password every browser session signs in "
                                                      "with (or set CURATE_APP_PASSWORD)")
    c.add_argument("--behind-proxy", action="store_true",
                   help="serve a non-local --host without a password: a reverse proxy in front authenticates")
    c.add_argument("--secrets", type=Path, metavar="FILE",
                   help="a Streamlit secrets.toml; with an [auth] section every browser signs in through that OIDC "
                        "provider (st.login) at the gate (docs/team.md, \"Single sign-on\")")
