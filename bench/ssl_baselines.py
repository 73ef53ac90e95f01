"""Outside baselines for bench/ssl_quality.py: LightlySSL's own SimCLR and LightlyTrain's one-command
SimCLR, each trained for the same wall-clock budget on the same images and scored with the same kNN.

    .venv-bench/bin/python -m bench.ssl_baselines --minutes 5 [--which lightly_ssl,lightly_train]

Needs the benchmark-only packages in bench/requirements.txt (lightly, lightly-train): install them in
their own venv, .venv-bench (bench/README.md). Data, split, bank and scoring are those of
bench/ssl_quality.py: CIFAR-10 train minus the 10% held-out split (holdout_mask over manifest ids),
weighted kNN (cosine, k=200, T=0.1) of the held-out images against a bank of 10,000 training images,
embedded by `embed_images` from the decoded cache at `--image-size` (default 32 px) with ImageNet normalisation. Labels are used
only for scoring.

Baselines (both a standard torchvision resnet18, ImageNet stem, random init, fp32; S = --image-size):
- lightly_ssl: as LightlySSL's examples/pytorch/simclr.py: resnet18 without fc, SimCLRProjectionHead
  (512, 512, 128), NTXentLoss(), SimCLRTransform(input_size=S), SGD lr 0.06, batch 256, shuffle,
  drop_last, a torch DataLoader with workers. The data is a torchvision ImageFolder over a folder of
  symlinks to the training images (class subfolders only because ImageFolder needs them; the labels
  are dropped). The budget is checked after every optimiser step.
- lightly_train: lightly_train.pretrain(method="simclr", model="torchvision/resnet18") on the same
  folder with transform_args image_size (S, S), batch 256, many epochs, and Lightning's
  trainer_args max_time as the budget (checked by Lightning after every step); the exported
  torchvision state_dict is scored.

Each baseline runs in its own subprocess so its peak memory is its own: peak_rss_mb is the training
process's high-water mark (getrusage), tree_pss_mb the peak proportional set size of the training
process plus its dataloader workers, sampled each second. Writes
bench/results/ssl_baselines-<timestamp>.json and prints a markdown table in ssl_quality's format.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
BASELINES = ("lightly_ssl", "lightly_train")
log = logging.getLogger("bench.ssl_baselines")


# ---------------------------------------------------------------- data: the split of ssl_quality
def load_split(images_dir: Path, workdir: Path, bank_n: int, size: int = 32):
    """(workspace, decoded `size` px cache, labels, train ids, held-out ids, bank ids), as ssl_quality."""
    from curate.data.cache import image_cache
    from curate.data.manifest import labels as manifest_labels, ok_mask
    from curate.data.split import holdout_mask
    from curate.steps.scan import scan

    ws, _ = scan(images_dir, workdir / "ws")
    manifest = ws.manifest()
    images = image_cache(ws.root, manifest, size, ws.cache_dir)
    classes = {c: i for i, c in enumerate(sorted(set(manifest["label"].dropna())))}
    y = np.array([classes.get(l, -1) for l in manifest_labels(manifest)])
    held = holdout_mask(manifest["id"].to_numpy(), 0.1, 0)
    usable = ok_mask(manifest)
    train_ids, test = np.flatnonzero(usable & ~held), np.flatnonzero(usable & held)
    bank = np.sort(np.random.default_rng(0).choice(train_ids, min(bank_n, len(train_ids)), replace=False))
    return ws, manifest, images, y, train_ids, test, bank


def training_folder(ws, manifest, train_ids: np.ndarray, folder: Path) -> Path:
    """A folder of symlinks to the training images only (relative paths kept), rebuilt when the ids change."""
    paths = manifest["path"].to_numpy()[train_ids]
    stamp = hashlib.sha1(("\n".join(map(str, paths)) + str(ws.root)).encode()).hexdigest()
    marker = folder / ".ids.sha1"
    if marker.exists() and marker.read_text() == stamp:
        return folder
    if folder.exists():
        for p in sorted(folder.rglob("*"), key=lambda q: -len(q.parts)):
            p.unlink() if p.is_symlink() or p.is_file() else p.rmdir()
    for rel in paths:
        link = folder / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(ws.root) / rel)
    marker.write_text(stamp)
    return folder


# ---------------------------------------------------------------- memory
class TreePeak:
    """Peak summed PSS of this process and its descendants (dataloader workers), sampled every second."""

    def __init__(self, interval: float = 1.0):
        self.peak, self._stop, self._interval = 0, threading.Event(), interval
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        import psutil
        me = psutil.Process()
        total = 0
        for p in [me, *me.children(recursive=True)]:
            try:
                total += p.memory_full_info().pss
            except (psutil.Error, AttributeError):
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self._interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# ---------------------------------------------------------------- baselines (run in a child process)
def train_lightly_ssl(folder: Path, out: Path, seconds: float, workers: int, device: str, size: int = 32):
    """LightlySSL's pytorch SimCLR example, stopped at the wall-clock budget -> (resnet18, steps, images, train_s)."""
    import torch
    import torchvision
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms.simclr_transform import SimCLRTransform
    from torch import nn

    torch.manual_seed(0)
    resnet = torchvision.models.resnet18()
    backbone = nn.Sequential(*list(resnet.children())[:-1])
    head = SimCLRProjectionHead(512, 512, 128)
    backbone.to(device), head.to(device)
    dataset = torchvision.datasets.ImageFolder(str(folder), transform=SimCLRTransform(input_size=size))
    loader = torch.utils.data.DataLoader(dataset, batch_size=256, shuffle=True, drop_last=True,
                                         num_workers=workers, persistent_workers=workers > 0)
    criterion = NTXentLoss()
    optimizer = torch.optim.SGD([*backbone.parameters(), *head.parameters()], lr=0.06)
    log.info("lightly_ssl: %d images, %d workers, %.0f s", len(dataset), workers, seconds)

    steps, t0, done = 0, time.perf_counter(), False
    while not done:
        for (x0, x1), _ in loader:  # ImageFolder labels are dropped
            z0 = head(backbone(x0.to(device)).flatten(start_dim=1))
            z1 = head(backbone(x1.to(device)).flatten(start_dim=1))
            loss = criterion(z0, z1)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            steps += 1
            if steps % 10 == 0:
                log.info("lightly_ssl: step %d loss %.3f (%.0f s)", steps, loss.item(), time.perf_counter() - t0)
            if time.perf_counter() - t0 >= seconds:
                done = True
                break
    train_s = time.perf_counter() - t0
    resnet.fc = nn.Identity()  # shares its layers with `backbone`
    return resnet, steps, steps * 256, train_s


def train_lightly_train(folder: Path, out: Path, seconds: float, workers: int, device: str, epochs: int,
                        size: int = 32):
    """lightly_train.pretrain(method="simclr", model="torchvision/resnet18") under Lightning's max_time."""
    import lightly_train
    import torch
    import torchvision
    from torch import nn

    t0 = time.perf_counter()
    lightly_train.pretrain(
        out=str(out), data=str(folder), model="torchvision/resnet18", method="simclr",
        epochs=epochs, batch_size=256, num_workers=workers, accelerator=device, devices=1,
        transform_args={"image_size": (size, size)},
        trainer_args={"max_time": {"seconds": seconds}},
        overwrite=True, seed=0,
    )
    wall = time.perf_counter() - t0
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    steps = int(ckpt["global_step"])
    timer = next((v for k, v in ckpt.get("callbacks", {}).items() if k.startswith("Timer")), None)
    train_s = float(timer["time_elapsed"]["train"]) if timer else wall
    resnet = torchvision.models.resnet18()
    resnet.load_state_dict(torch.load(out / "exported_models" / "exported_last.pt", map_location="cpu",
                                      weights_only=True))
    resnet.fc = nn.Identity()
    return resnet, steps, steps * 256, train_s


def child(args) -> None:
    """Train one baseline, score it, write its row to args.row_out."""
    os.environ.setdefault("LIGHTLY_TRAIN_EVENTS_DISABLED", "1")  # no usage analytics calls
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from bench.ssl_quality import score

    split = np.load(args.workdir / "baselines" / "split.npz")
    out = args.workdir / "baselines" / args.child
    out.mkdir(parents=True, exist_ok=True)
    seconds = args.minutes * 60
    t = time.perf_counter()
    with TreePeak() as tree:
        if args.child == "lightly_ssl":
            model, steps, seen, train_s = train_lightly_ssl(Path(str(split["folder"])), out, seconds,
                                                            args.workers, args.device, args.image_size)
        else:
            model, steps, seen, train_s = train_lightly_train(Path(str(split["folder"])), out, seconds,
                                                              args.workers, args.device, args.lt_epochs,
                                                              args.image_size)
    peak_rss = rss_peak_mb()
    images = np.load(str(split["cache"]), mmap_mode="r")
    model = model.to(args.device).eval()
    with torch.inference_mode():
        acc = score(model, images, split["bank"], split["test"], split["y"])
    row = {"recipe": args.child, "px": args.image_size, "minutes": args.minutes, "steps": steps, "images_seen": seen,
           "train img/s": round(seen / train_s, 1) if train_s > 0 else 0.0,
           "peak_rss_mb": round(peak_rss), "tree_pss_mb": round(tree.peak / 2**20),
           "knn_top1": round(acc, 4), "train_s": round(train_s, 1), "wall_s": round(time.perf_counter() - t, 1)}
    args.row_out.write_text(json.dumps(row))
    log.info("%s: kNN %.2f%%", args.child, 100 * acc)


# ---------------------------------------------------------------- parent
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=5.0, help="wall-clock training budget per baseline")
    p.add_argument("--which", default=",".join(BASELINES), help="comma-separated: " + ", ".join(BASELINES))
    p.add_argument("--images", type=Path, default=REPO.parent / "shared" / "data" / "cifar10-train")
    p.add_argument("--bank", type=int, default=10_000, help="kNN bank: this many training images")
    p.add_argument("--max-test", type=int, default=None,
                   help="score only the first N held-out images (smoke tests; default all)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/curate-ssl-bench"),
                   help="manifest + decode cache (shared with ssl_quality), symlink folder, runs")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="dataloader workers for both (the LightlySSL example uses 8; default min(8, cores))")
    p.add_argument("--lt-epochs", type=int, default=1000,
                   help="lightly_train epochs: only sets its LR schedule, max_time stops the run")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--image-size", type=int, default=32, help="training and scoring resolution (default 32)")
    p.add_argument("--json-out", type=Path, help="also write the results JSON here (bench.ssl_quality --baselines)")
    p.add_argument("--child", choices=BASELINES, help=argparse.SUPPRESS)
    p.add_argument("--row-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    handler = logging.StreamHandler()  # bench's own logger only: lightly_train logs through its own handlers
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    bench_log = logging.getLogger("bench")
    bench_log.setLevel(logging.INFO)
    bench_log.addHandler(handler)
    if args.child:
        return child(args)

    which = [w.strip() for w in args.which.split(",") if w.strip()]
    unknown = set(which) - set(BASELINES)
    if unknown:
        p.error(f"unknown baseline(s) {sorted(unknown)}; choose from {BASELINES}")

    ws, manifest, images, y, train_ids, test, bank = load_split(args.images, args.workdir, args.bank, args.image_size)
    test = test[:args.max_test]
    base = args.workdir / "baselines"
    base.mkdir(parents=True, exist_ok=True)
    folder = training_folder(ws, manifest, train_ids, base / "train-images")
    np.savez(base / "split.npz", bank=bank, test=test, y=y, folder=str(folder),
             cache=str(Path(ws.cache_dir) / f"images_{args.image_size}.npy"))
    log.info("%d training images (symlinked in %s), %d held out, bank %d", len(train_ids), folder, len(test), len(bank))

    rows, failed = [], []
    for name in which:
        row_out = base / f"{name}.row.json"
        row_out.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "bench.ssl_baselines", "--child", name, "--row-out", str(row_out),
               "--minutes", str(args.minutes), "--workdir", str(args.workdir), "--workers", str(args.workers),
               "--lt-epochs", str(args.lt_epochs), "--device", args.device, "--image-size", str(args.image_size)]
        log.info("%s: training %.2f min in a subprocess", name, args.minutes)
        rc = subprocess.call(cmd, cwd=REPO)
        if rc != 0 or not row_out.exists():
            log.error("%s failed (exit %d)", name, rc)
            failed.append(name)
            continue
        rows.append(json.loads(row_out.read_text()))

    if rows:
        header = list(rows[0])
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for r in rows:
            print("| " + " | ".join(str(r[h]) for h in header) + " |")
    from importlib.metadata import version
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"ssl_baselines-{stamp}.json"
    result = json.dumps({
        "rows": rows, "failed": failed, "bank": int(len(bank)), "test": int(len(test)),
        "train": int(len(train_ids)), "protocol": "weighted kNN k=200 T=0.1",
        "backbone": "torchvision resnet18 (ImageNet stem), random init, fp32",
        "workers": args.workers, "device": args.device, "lt_epochs": args.lt_epochs,
        "versions": {k: version(k) for k in ("lightly", "lightly-train", "torch", "torchvision")},
        "cpu_count": os.cpu_count(), "load_avg": os.getloadavg(),
    }, indent=2)
    for target in (path, args.json_out):
        if target:
            target.write_text(result)
    log.info("wrote %s", path)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
