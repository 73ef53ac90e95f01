"""Scan and embed N images from object storage against the same images in a local folder, in the same run: S3
(moto's server), Google Cloud Storage (gcp-storage-emulator) and Azure Blob Storage (Azurite), each served on
loopback by its own process; then a rescan of each, unchanged.

    python -m bench.storage_scan [--n 10000] [--stores s3,gs,az] [--encoder /tmp/ws_cifar/model/encoder.pt]

The first N CIFAR-10 training JPEGs (class folders kept) are copied into a local folder and uploaded to each
store through its own protocol. Each side runs `curate.steps.scan.scan` (a bucket: listed, mirrored, then
scanned) and `curate.steps.embed.embed` with the same encoder (no training: the comparison is the read path).
Seconds per stage, and the rescan of an unchanged tree. The servers are emulators on this machine, so the bucket
figures are the cost of each protocol, its client and the mirror (and of the emulator, which shares the cores),
not of a network. Prints a markdown table and writes bench/results/storage_scan-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import contextlib
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


@contextlib.contextmanager
def bucket(store: str, work: Path, files: list[Path], folder: Path):
    """(URL, upload seconds) of a bucket holding `files` on a fresh server of `store`; the client environment set."""
    from tests import object_stores as stores

    name, keys = "bench", [f"images/{f.relative_to(folder).as_posix()}" for f in files]
    if store == "s3":
        with stores.s3_server(work) as endpoint:
            os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                              AWS_DEFAULT_REGION="us-east-1")
            import boto3
            client = boto3.client("s3")
            client.create_bucket(Bucket=name)
            seconds, _ = timed(lambda: _each(lambda f, k: client.upload_file(str(f), name, k), files, keys))
            yield f"s3://{name}/images", seconds
    elif store == "gs":
        import requests
        with stores.gcs_server(work) as env:
            os.environ.update(env)
            host = env["STORAGE_EMULATOR_HOST"]
            requests.post(f"{host}/storage/v1/b", json={"name": name}, timeout=10).raise_for_status()
            session = requests.Session()  # one at a time: the emulator's server drops concurrent connections
            seconds, _ = timed(lambda: [session.post(
                f"{host}/upload/storage/v1/b/{name}/o", params={"uploadType": "media", "name": k}, data=f.read_bytes(),
                timeout=60).raise_for_status() for f, k in zip(files, keys)])
            yield f"gs://{name}/images", seconds
    else:
        from azure.storage.blob import BlobServiceClient
        with stores.azure_server(work) as env:
            os.environ.update(env)
            container = BlobServiceClient.from_connection_string(env["AZURE_STORAGE_CONNECTION_STRING"]) \
                .create_container(name)
            seconds, _ = timed(lambda: _each(lambda f, k: container.upload_blob(k, f.read_bytes()), files, keys))
            yield f"az://{name}/images", seconds


def _each(upload, files: list[Path], keys: list[str]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(upload, files, keys))


STORES = {"s3": "S3 (moto)", "gs": "GCS (gcp-storage-emulator)", "az": "Azure Blob (Azurite)"}


def measure(name: str, source, ws: Path, encoder: Path) -> dict:
    from curate.steps.embed import embed
    from curate.steps.scan import scan
    from curate.workspace import Workspace

    options = {"token": "anon"} if str(source).startswith("gs://") else None  # the emulator takes no credentials
    scan_s, (_, summary) = timed(lambda: scan(source, ws, storage_options=options))
    embed_s, _ = timed(lambda: embed(Workspace(ws), model=encoder))
    rescan_s, (_, again) = timed(lambda: scan(source, ws, storage_options=options))
    return {"source": name, "images": summary.ok, "scan s": round(scan_s, 1),
            "scan images/s": round(summary.ok / scan_s), "embed s": round(embed_s, 1),
            "embed images/s": round(summary.ok / embed_s), "rescan (unchanged) s": round(rescan_s, 2),
            "note": again.line()}


def main(argv: list[str] | None = None) -> None:
    # gcsfs asks a gRPC control API for each bucket's type unless told not to (before it is imported)
    os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--stores", default="s3,gs,az", help="which object stores, of s3, gs, az")
    p.add_argument("--gs-max", type=int, default=2_000,
                   help="at most this many images in the GCS bucket: the emulator takes longer for each object it "
                        "already holds (~2 ms more per 1,000), so 10,000 uploads alone would take ~15 minutes")
    p.add_argument("--cifar", type=Path, default=CIFAR)
    p.add_argument("--encoder", type=Path, default=Path("/tmp/ws_cifar/model/encoder.pt"))
    p.add_argument("--work", type=Path, default=Path("/tmp/storage_scan"))
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    facts = machine_facts("cpu", REPO)
    shutil.rmtree(args.work, ignore_errors=True)
    folder = args.work / "images"
    files = sample(args.cifar, args.n, folder)
    rows = [measure("local folder", folder, args.work / "ws_local", args.encoder)]
    print(rows[-1], flush=True)
    for store in args.stores.split(","):
        some = files[:args.gs_max] if store == "gs" else files
        with bucket(store, args.work, some, folder) as (url, upload_s):
            rows.append({**measure(STORES[store], url, args.work / f"ws_{store}", args.encoder),
                         "upload s": round(upload_s, 1)})
        print(rows[-1], flush=True)
    facts["load_avg_end"] = load_average()
    print(f"\n### Scan and embed {args.n:,} images: buckets against a local folder\n")
    print(summary_line(facts) + "\n")
    print(markdown_table(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"storage_scan-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"machine": facts, "rows": rows}, indent=1))
    print(f"\n-> {out}")


if __name__ == "__main__":
    main()
