"""Representation quality per CPU-minute: each recipe trained for the same wall-clock budget(s) on a
labelled folder minus a held-out split (10% by id hash), scored by weighted kNN on the held-out images.

    python -m bench.ssl_quality --minutes 5 10 30 --recipe default --recipe simclr,simclr.local_crops=4
    python -m bench.ssl_quality --images ../shared/data/caltech101 --minutes 10 30   # photos
    python -m bench.ssl_quality --all-tasks --minutes 2       # every registered task with its preset
    python -m bench.ssl_quality --floor-only                  # just the random-weights rows
    python -m bench.ssl_quality --minutes 5 10 30 --baselines lightly_train   # + LightlyTrain, same run
    python -m bench.ssl_quality --minutes 30 --curve 5 10 --baselines lightly_train --baseline-minutes 5 10 30
    python -m bench.ssl_quality --minutes 120 --curve 5 10 15 30 60 90 --bank 50000   # kNN against minutes

With --curve, each run also keeps its encoder at those minutes (TrainConfig.snapshot_minutes) and
scores every snapshot after training, off the clock: one run's curve, whose schedule spans the whole
budget (so a point before the end is an encoder whose learning rate has not decayed yet: a separate
run with that budget would score at least as well).

Each (recipe, budget) is a separate training run from scratch with that budget (the schedule spans
it), as a user running `curate train --minutes M` would get. Every run ends with the floors: the
default backbone with random weights, and the baselines' torchvision resnet18 with random weights at
their resolution, scored the same way.

--baselines trains LightlyTrain / LightlySSL (bench/ssl_baselines.py, in .venv-bench) after curate's
recipes for each budget, on the same split, bank and resolution, and adds their rows to the table.

A recipe is `default` (what `curate train` picks for these images), or a preset name
(curate/pretext/presets) optionally followed by overrides, e.g. `simclr,stem=small,batch_size=512`,
`simclr,simclr.local_crops=4` (a task's parameter) or `simclr,image_size=64`. Prints a markdown table and
writes bench/results/ssl_quality-<timestamp>.json. Labels are used only for scoring.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import re
from pathlib import Path

import numpy as np
import torch
import yaml

from curate.data.cache import image_cache
from curate.data.manifest import labels as manifest_labels, ok_mask
from curate.data.split import holdout_mask
from curate.embed import embed_images
from curate.evaluate import weighted_knn
from curate.models import BackboneSpec, build_backbone
from curate.steps.scan import scan
from curate.train import train
from curate.train.config import auto_image_size, auto_stem
from curate.train.presets import config_from_dict, default_recipe, load_preset
from curate.train.trainer import snapshot_file
from curate.transforms.views import IMAGENET_MEAN, IMAGENET_STD

from bench.machine import load_average, machine_facts, summary_line
from bench.measure import PeakMemory

REPO = Path(__file__).resolve().parent.parent
log = logging.getLogger("bench.ssl_quality")


def recipe_config(recipe: str, minutes: float, image_size: int):
    """'default' or 'preset,key=value,...' -> TrainConfig with the budget and holdout set."""
    name, *overrides = recipe.split(",")
    d = default_recipe(image_size) if name == "default" else load_preset(name)
    d = {**d, "image_size": d.get("image_size") or image_size}
    for item in overrides:
        key, _, value = item.partition("=")
        task, dot, param = key.strip().partition(".")
        if dot:  # TASK.PARAM=VALUE sets a parameter of one of the preset's tasks
            spec = next(t for t in d["tasks"] if t["name"] == task)
            spec.setdefault("params", {})[param] = yaml.safe_load(value)
        else:
            d[key.strip()] = yaml.safe_load(value)
    cfg = config_from_dict(d)
    cfg.minutes, cfg.epochs, cfg.holdout = minutes, None, 0.1
    if not cfg.stem:
        from curate.models.vit import VIT_SIZES, vit_stem
        cfg.stem = vit_stem(cfg.image_size) if cfg.backbone in VIT_SIZES else auto_stem(cfg.image_size)
    return cfg


def score(backbone, images, bank, test, y, flip: bool = False) -> float:
    emb = {}
    for split, rows in (("bank", bank), ("test", test)):
        emb[split] = embed_images(backbone, images, rows, IMAGENET_MEAN, IMAGENET_STD, flip=flip)
    return weighted_knn(emb["bank"], y[bank], emb["test"], y[test])


class Data:
    """The folder's manifest, labels, split and decoded caches (one per training resolution)."""

    def __init__(self, images: Path, workdir: Path, bank: int):
        self.ws, _ = scan(images, workdir / "ws")
        self.manifest = self.ws.manifest()
        ok = self.manifest[ok_mask(self.manifest)]
        self.auto_size = auto_image_size(float(np.median(np.minimum(ok["width"], ok["height"]))))
        names = manifest_labels(self.manifest)
        classes = {c: i for i, c in enumerate(sorted({n for n in names if n is not None}))}
        self.y = np.array([classes.get(n, -1) for n in names])
        held = holdout_mask(self.manifest["id"].to_numpy(), 0.1, 0)
        usable = ok_mask(self.manifest) & (self.y >= 0)
        self.train_ids, self.test = np.flatnonzero(usable & ~held), np.flatnonzero(usable & held)
        rng = np.random.default_rng(0)
        self.bank = np.sort(rng.choice(self.train_ids, min(bank, len(self.train_ids)), replace=False))
        self._caches = {}

    def images(self, size: int) -> np.ndarray:
        if size not in self._caches:
            self._caches[size] = image_cache(self.ws.root, self.manifest, size, self.ws.cache_dir)
        return self._caches[size]

    def knn(self, backbone, size: int, flip: bool = False) -> float:
        return score(backbone, self.images(size), self.bank, self.test, self.y, flip)


def score_snapshots(data: Data, cfg, run_dir: Path) -> dict[str, float]:
    """kNN of each encoder snapshot a run kept: {"M min": accuracy}."""
    curve = {}
    for minutes in sorted(cfg.snapshot_minutes):
        file = snapshot_file(run_dir, minutes)
        if file.exists():
            backbone = build_backbone(BackboneSpec(cfg.backbone, cfg.stem))
            backbone.load_state_dict(torch.load(file, map_location="cpu", weights_only=True)["backbone"])
            curve[f"{minutes:g} min"] = round(data.knn(backbone.eval(), cfg.image_size), 4)
            log.info("snapshot at %g min: kNN %.2f%%", minutes, 100 * curve[f"{minutes:g} min"])
    return curve


def random_resnet18() -> torch.nn.Module:
    """torchvision's resnet18 as the outside baselines train it (ImageNet stem), untrained, features out."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    model.fc = torch.nn.Identity()
    return model.eval()


def table_columns(rows: list[dict]) -> list[str]:
    """The printed table's columns: every scalar key, the kNN columns (budgets and snapshots) together,
    in order of minutes, where the first of them appeared."""
    keys = list(dict.fromkeys(k for r in rows for k, v in r.items() if not isinstance(v, dict)))
    knn = [k for k in keys if re.fullmatch(r"kNN [\d.]+ min( \(snapshot\))?", k)]
    if not knn:
        return keys
    others = [k for k in keys if k not in knn]
    at = sum(1 for k in keys[:keys.index(knn[0])] if k not in knn)
    return others[:at] + sorted(knn, key=lambda k: float(k.split()[1])) + others[at:]


def run_recipe(data: Data, recipe: str, budgets: list[float], workdir: Path, curve: list[float] = ()) -> dict:
    """Train `recipe` once per budget, from scratch; one table row with kNN per budget (and its curve)."""
    row = {"recipe": recipe}
    for minutes in budgets:
        cfg = recipe_config(recipe, minutes, data.auto_size)
        cfg.snapshot_minutes = [m for m in curve if m < minutes]
        log.info("%s: training %.1f min at %d px", recipe, minutes, cfg.image_size)
        out = workdir / "runs" / f"{recipe.replace(',', '_').replace('=', '-')}_{minutes:g}"
        with PeakMemory() as mem:  # training only: its own high-water mark
            result = train(data.images(cfg.image_size), data.train_ids, cfg, out)
        acc = data.knn(result.backbone, cfg.image_size)
        row.update({"backbone": cfg.backbone, "px": cfg.image_size, "train img/s": round(result.images_per_s, 1),
                    "epochs": round(result.images_seen / len(data.train_ids), 1), "peak_rss_mb": round(mem.rss_mb),
                    f"kNN {minutes:g} min": round(acc, 4),
                    "effective rank": None if not result.health else round(result.health["effective_rank"], 1)})
        log.info("%s, %g min: kNN %.2f%%", recipe, minutes, 100 * acc)
        if cfg.snapshot_minutes:
            snapshots = score_snapshots(data, cfg, out)
            row[f"curve {minutes:g} min"] = {**snapshots, f"{minutes:g} min": round(acc, 4)}
            for point, snap in snapshots.items():  # for the table; a run given that budget scores at least as well
                row.setdefault(f"kNN {point} (snapshot)", snap)
    row["kNN flip-avg (last)"] = round(data.knn(result.backbone, cfg.image_size, flip=True), 4)
    return row


def plot_curves(result: dict, path: Path, goal: float = 0.70) -> bool:
    """kNN against minutes of training for each run that kept a curve, with the random-weights floor and
    the goal; False when `result` holds no curve."""
    from matplotlib.figure import Figure

    curves = [(r["recipe"], k, v) for r in result["rows"] for k, v in r.items() if k.startswith("curve ")]
    if not curves:
        return False
    fig = Figure(figsize=(6.4, 4.0), dpi=120)
    ax = fig.add_subplot()
    for recipe, key, points in curves:
        minutes = [float(m.split()[0]) for m in points]
        ax.plot(minutes, [100 * v for v in points.values()], "o-", label=f"{recipe} ({key.removeprefix('curve ')} run)")
    floor = next((v for r in result["rows"] if r["recipe"].startswith("(random") for k, v in r.items()
                  if k.startswith("kNN ")), None)
    if floor is not None:
        ax.axhline(100 * floor, color="grey", ls=":", label="random weights")
    ax.axhline(100 * goal, color="tab:red", ls="--", label=f"goal {100 * goal:.0f}%")
    ax.set(xlabel="minutes of training", ylabel="held-out kNN top-1 (%)",
           title=f"{Path(result['images']).name}: {result['train']:,} training images, {result['test']:,} held out")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return True


def run_baseline(name: str, data: Data, budgets: list[float], workdir: Path, images: Path, size: int) -> dict:
    """One outside baseline (bench/ssl_baselines.py in .venv-bench) per budget, as a row of this table."""
    import subprocess

    python = REPO / ".venv-bench" / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"--baselines needs {python} with bench/requirements.txt installed (bench/README.md)")
    row = {"recipe": name}
    for minutes in budgets:
        out = workdir / "baselines" / f"{name}_{minutes:g}.json"
        cmd = [str(python), "-m", "bench.ssl_baselines", "--which", name, "--minutes", str(minutes), "--images",
               str(images), "--bank", str(len(data.bank)), "--workdir", str(workdir), "--image-size", str(size),
               "--json-out", str(out)]
        log.info("%s: training %.1f min at %d px (.venv-bench)", name, minutes, size)
        if subprocess.run(cmd, cwd=REPO).returncode != 0:  # keep curate's rows, already paid for
            log.error("%s at %g min failed (its output above); its cell stays empty", name, minutes)
            row.setdefault("failed", []).append(minutes)
            continue
        got = json.loads(out.read_text())["rows"][0]
        row.update({"backbone": "torchvision resnet18", "px": size, "train img/s": got["train img/s"],
                    "epochs": round(got["images_seen"] / len(data.train_ids), 1), "peak_rss_mb": got["peak_rss_mb"],
                    f"kNN {minutes:g} min": got["knn_top1"]})
    return row


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", action="append", help="default | preset[,key=value...] (repeatable; default: default)")
    p.add_argument("--all-tasks", action="store_true", help="add every registered pretext task (its preset)")
    p.add_argument("--floor-only", action="store_true", help="score only the random-weights floor (no training)")
    p.add_argument("--minutes", type=float, nargs="+", default=[5.0], help="training budget(s), one run each")
    p.add_argument("--images", type=Path, default=REPO.parent / "shared" / "data" / "cifar10-train")
    p.add_argument("--curve", type=float, nargs="+", default=[], help="also score each run's encoder at these minutes")
    p.add_argument("--baselines", default="", help="also train these outside baselines per budget: lightly_train, "
                                                     "lightly_ssl (comma-separated; needs .venv-bench)")
    p.add_argument("--baseline-minutes", type=float, nargs="+", default=None,
                   help="budgets for --baselines (default: --minutes); e.g. --minutes 30 --curve 5 10 "
                        "--baseline-minutes 5 10 30 gives every column in one run of ours")
    p.add_argument("--baseline-size", type=int, help="image size for --baselines (default: the default recipe's)")
    p.add_argument("--plot", type=Path, help="only draw the curves of this results JSON (a PNG beside it)")
    p.add_argument("--bank", type=int, default=10_000, help="kNN bank: this many training images")
    p.add_argument("--workdir", type=Path, default=None, help="manifest + decode cache (default /tmp/curate-ssl-bench-<folder>)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if args.plot:
        plot_curves(json.loads(args.plot.read_text()), args.plot.with_suffix(".png"))
        return
    workdir = args.workdir or Path(f"/tmp/curate-ssl-bench-{args.images.resolve().name}")
    facts = machine_facts("auto", REPO)
    data = Data(args.images, workdir, args.bank)
    log.info("%d training images, %d held out, bank %d, %d px by default", len(data.train_ids), len(data.test),
             len(data.bank), data.auto_size)

    recipes = [] if args.floor_only else list(args.recipe or ([] if args.all_tasks else ["default"]))
    if args.all_tasks:
        from curate.pretext import TASKS
        recipes += [t for t in TASKS.names() if t not in recipes]
    rows = [run_recipe(data, recipe, args.minutes, workdir, args.curve) for recipe in recipes]
    # The floor every recipe has to clear (the default backbone with random weights, same protocol) and the
    # resolution the baselines get: the default recipe's (32 px for CIFAR-10, 64 for photos).
    cfg = recipe_config("default", 1, data.auto_size)
    for name in filter(None, (b.strip() for b in args.baselines.split(","))):
        rows.append(run_baseline(name, data, args.baseline_minutes or args.minutes, workdir, args.images,
                                 args.baseline_size or cfg.image_size))

    torch.manual_seed(0)
    untrained = build_backbone(BackboneSpec(cfg.backbone, cfg.stem)).eval()
    acc = data.knn(untrained, cfg.image_size)
    budgets = sorted({*args.minutes, *(args.baseline_minutes or [])})
    rows.append({"recipe": "(random weights, no training)", "backbone": cfg.backbone, "px": cfg.image_size,
                 **{f"kNN {m:g} min": round(acc, 4) for m in budgets}})
    log.info("random weights: kNN %.2f%%", 100 * acc)
    # the baselines' own floor: their backbone (torchvision resnet18, ImageNet stem) untrained, at their resolution
    size = args.baseline_size or cfg.image_size
    acc = data.knn(random_resnet18(), size)
    rows.append({"recipe": "(random weights, no training)", "backbone": "torchvision resnet18", "px": size,
                 **{f"kNN {m:g} min": round(acc, 4) for m in budgets}})
    log.info("random weights, torchvision resnet18 at %d px: kNN %.2f%%", size, 100 * acc)

    facts["load_avg_end"] = load_average()
    print(summary_line(facts))
    header = table_columns(rows)
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join("" if r.get(h) is None else str(r[h]) for h in header) + " |")
    for r in rows:  # each curve as its own table: minutes of training -> kNN
        for key, points in ((k, v) for k, v in r.items() if k.startswith("curve ")):
            print(f"\n{r['recipe']}, {key}:\n| minutes | kNN |\n|---|---|")
            print("\n".join(f"| {m.split()[0]} | {100 * acc:.1f}% |" for m, acc in points.items()))
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    result = {"rows": rows, "images": str(args.images), "train": int(len(data.train_ids)), "bank": int(len(data.bank)),
              "test": int(len(data.test)), "protocol": "weighted kNN k=200 T=0.1", "machine": facts}
    (out_dir / f"ssl_quality-{stamp}.json").write_text(json.dumps(result, indent=2))
    if plot_curves(result, out_dir / f"ssl_quality-{stamp}.png"):
        print(f"curve: {out_dir / f'ssl_quality-{stamp}.png'}")


if __name__ == "__main__":
    main()
