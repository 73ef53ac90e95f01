"""Scan and embed N images from an S3-compatible server (moto's, started here on loopback) against the same images
in a local folder, in the same run; then a rescan of each, unchanged.

    python -m bench.storage_scan [--n 10000] [--cifar ../shared/data/cifar10-train] [--encoder /tmp/ws_cifar/model/encoder.pt]

The first N CIFAR-10 training JPEGs (class folders kept) are copied into a local folder and uploaded to a bucket.
Each side runs `curate.steps.scan.scan` (the bucket: listed, mirrored, then scanned) and `curate.steps.embed.embed`
with the same encoder (no training: the comparison is the read path). Seconds per stage, and the rescan of an
unchanged tree. moto keeps objects in this process's memory and serves them over HTTP on loopback, so the bucket
figures are the cost of the S3 protocol and the mirror, not of a network. Prints a markdown table and writes
bench/results/storage_scan-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.machine import load_average, machine_facts, summary_line
from bench.report import markdown_table

REPO = Path(__file__).resolve().parent.parent
CIFAR = REPO.parent / "shared" / "data" / "cifar10-train"


def sample(cifar: Path, n: int, folder: Path) -> list[Path]:
    classes = sorted(p.name for p in cifar.iterdir() if p.is_dir())
    per = -(-n // len(classes))
    files = []
    for c in classes:
        for f in sorted((cifar / c).glob("*.jpg"))[:per]:
            if len(files) < n:
                (folder / c).mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, folder / c / f.name)
                files.append(folder / c / f.name)
    return files


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main(argv: list[str] | None = None) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    from curate.steps.embed import embed
    from curate.steps.scan import scan
    from curate.workspace import Workspace
    from tests.apptest_helpers import free_port

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--cifar", type=Path, default=CIFAR)
    p.add_argument("--encoder", type=Path, default=Path("/tmp/ws_cifar/model/encoder.pt"))
    p.add_argument("--work", type=Path, default=Path("/tmp/storage_scan"))
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    facts = machine_facts("cpu", REPO)
    shutil.rmtree(args.work, ignore_errors=True)
    folder = args.work / "images"
    files = sample(args.cifar, args.n, folder)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="bench",
                      AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    client = boto3.client("s3")
    client.create_bucket(Bucket="bench")
    upload_s, _ = timed(lambda: list(ThreadPoolExecutor(8).map(
        lambda f: client.upload_file(str(f), "bench", f"images/{f.relative_to(folder).as_posix()}"), files)))
    rows = []
    try:
        for name, source in (("local folder", folder), ("S3 (moto, loopback)", "s3://bench/images")):
            ws = args.work / f"ws_{'local' if name.startswith('local') else 's3'}"
            scan_s, (_, summary) = timed(lambda: scan(source, ws))
            embed_s, _ = timed(lambda: embed(Workspace(ws), model=args.encoder))
            rescan_s, (_, again) = timed(lambda: scan(source, ws))
            rows.append({"source": name, "images": summary.ok, "scan s": round(scan_s, 1),
                         "scan images/s": round(summary.ok / scan_s), "embed s": round(embed_s, 1),
                         "embed images/s": round(summary.ok / embed_s), "rescan (unchanged) s": round(rescan_s, 2),
                         "note": again.line()})
            print(rows[-1], flush=True)
    finally:
        server.stop()
    facts["load_avg_end"] = load_average()
    facts["upload_s"] = round(upload_s, 1)
    print(f"\n### Scan and embed {args.n:,} images: a bucket against a local folder\n")
    print(summary_line(facts) + "\n")
    print(markdown_table(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"storage_scan-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"machine": facts, "rows": rows}, indent=1))
    print(f"\n-> {out}")


if __name__ == "__main__":
    main()
