"""The lookup service under load: requests/s and p50/p99 latency at 1, 8 and 32 concurrent clients, for queries by
id and by uploaded image, on 50,000 and 1,000,000 vectors, next to the same queries made in-process through the
Python API (the floor), with dynamic batching on and off.

    python -m bench.serve_lookup [--workspace /tmp/ws_cifar] [--million /tmp/serve_1m] [--seconds 8]

- 50,000: a real workspace (`--workspace`, default the 50,000 CIFAR-10 images with their encoder).
- 1,000,000: built once under `--million` from it: its manifest and vectors repeated 20 times (each copy's
  vectors with a little noise, renormalised), its encoder, and the index `curate embed` would build for 1M
  (`build_workspace_index`).
- Each server is `curate serve` in its own process on loopback; the clients are threads of this process with one
  keep-alive `requests.Session` each, sending for `--seconds` per cell. Queries: ids drawn at random (seeded);
  uploads are the workspace's own JPEGs (real files, ~1 kB CIFAR images; the server decodes and embeds each).
- Floor: `open_workspace(WS).search(...)` in this process with the same number of threads (decode + embed +
  search for an upload), no HTTP.
- "batching off" is the same server with `--max-batch 1`.
Prints a markdown table and writes bench/results/serve_lookup-<timestamp>.json (with the load average).
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.machine import load_average, machine_facts, summary_line
from bench.report import markdown_table

REPO = Path(__file__).resolve().parent.parent
CLIENTS = (1, 8, 32)


def million_workspace(source: Path, target: Path, copies: int = 20) -> Path:
    """`copies` x the source workspace's rows (1M from 50,000), vectors jittered, with the source's encoder."""
    import pandas as pd

    from curate import storage
    from curate.steps.index import build_workspace_index
    from curate.workspace import Workspace

    if (target / "index.faiss").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    src = Workspace(source)
    ws = Workspace.create(target, src.root)
    manifest = src.manifest()
    n = len(manifest)
    big = pd.concat([manifest] * copies, ignore_index=True)
    big["id"] = np.arange(len(big))
    storage.write_parquet(ws.manifest_file, big)
    vectors = np.load(src.embeddings_file, mmap_mode="r")
    out = np.lib.format.open_memmap(ws.embeddings_file.with_suffix(".tmp.npy"), "w+", np.float32, (n * copies,
                                                                                                     vectors.shape[1]))
    rng = np.random.default_rng(0)
    for c in range(copies):
        block = np.asarray(vectors, np.float32) + (0 if c == 0 else 0.05 * rng.standard_normal(vectors.shape,
                                                                                                 np.float32))
        zero = ~np.asarray(vectors).any(axis=1)
        block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        block[zero] = 0
        out[c * n:(c + 1) * n] = block
    out.flush()
    del out
    ws.embeddings_file.with_suffix(".tmp.npy").rename(ws.embeddings_file)
    meta = storage.read_json(src.sidecar(src.embeddings_file))
    storage.write_json(ws.sidecar(ws.embeddings_file), {k: meta[k] for k in ("d", "image_size") if k in meta}
                       | {"n": n * copies, "model_file": str(src.encoder_file)})
    ws.model_dir.mkdir(parents=True, exist_ok=True)
    for f in (src.encoder_file, src.model_config_file):
        shutil.copy2(f, ws.model_dir / f.name)
    build_workspace_index(ws)
    return target


def start_server(ws: Path, port: int, max_batch: int) -> subprocess.Popen:
    import requests

    server = subprocess.Popen([sys.executable, "-m", "curate", "serve", "-w", str(ws), "--port", str(port),
                               "--max-batch", str(max_batch)], cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                return server
        except requests.ConnectionError:
            time.sleep(0.3)
    server.kill()
    raise RuntimeError(f"curate serve on {ws} did not start")


def load_cell(call, payloads: list, clients: int, seconds: float) -> dict:
    """`clients` threads calling `call(session_or_none, payload)` in a loop for `seconds`: rate and latency."""
    import requests

    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client(c: int) -> None:
        session = requests.Session()
        mine, i = [], c
        while time.perf_counter() < stop:
            t = time.perf_counter()
            call(session, payloads[i % len(payloads)])
            mine.append(time.perf_counter() - t)
            i += clients
        with lock:
            latencies.extend(mine)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    elapsed = time.perf_counter() - t0
    ms = np.array(latencies) * 1e3
    return {"requests/s": round(len(ms) / elapsed, 1), "p50 ms": round(float(np.percentile(ms, 50)), 2),
            "p99 ms": round(float(np.percentile(ms, 99)), 2), "requests": len(ms)}


def http_calls(url: str, k: int):
    def by_id(session, item):
        r = session.post(f"{url}/search", json={"id": int(item), "k": k})
        r.raise_for_status()

    def upload(session, data):
        r = session.post(f"{url}/search", files={"image": ("q.jpg", data)}, data={"k": str(k)})
        r.raise_for_status()
    return {"id": by_id, "upload": upload}


def floor_calls(ws: Path, k: int):
    from curate.session import open_workspace

    api = open_workspace(ws)
    api.manifest, api.embeddings, api.index, api.encoder  # noqa: B018 - loaded before timing
    return {"id": lambda _, item: api.search(int(item), k=k), "upload": lambda _, data: api.search(io.BytesIO(data), k=k)}


def queries(ws: Path, n: int = 256, seed: int = 0) -> dict:
    from curate.session import open_workspace

    api = open_workspace(ws)
    ok = np.flatnonzero(api.embeddings.any(axis=1) if len(api.embeddings) <= 100_000 else
                        (api.manifest["status"] == "ok").to_numpy())
    rng = np.random.default_rng(seed)
    ids = rng.choice(ok, n, replace=False)
    files = [api.root / str(api.manifest["path"].iloc[int(i)]) for i in ids[:64]]
    return {"id": ids.tolist(), "upload": [f.read_bytes() for f in files]}


def measure_size(label: str, ws: Path, seconds: float, k: int, port: int) -> list[dict]:
    import requests

    payloads = queries(ws)
    rows = []
    floor = floor_calls(ws, k)
    for kind in ("id", "upload"):
        for clients in CLIENTS:
            rows.append({"vectors": label, "query": kind, "clients": clients, "server": "in-process API (floor)",
                         **load_cell(floor[kind], payloads[kind], clients, seconds)})
            print(rows[-1], flush=True)
    del floor
    for max_batch, name in ((32, "curate serve"), (1, "curate serve, batching off")):
        server = start_server(ws, port, max_batch)
        try:
            calls = http_calls(f"http://127.0.0.1:{port}", k)
            for kind in (("id", "upload") if max_batch > 1 else ("upload",)):
                calls[kind](requests, payloads[kind][0])  # warm: the first request loads lazily
                for clients in CLIENTS:
                    rows.append({"vectors": label, "query": kind, "clients": clients, "server": name,
                                 **load_cell(calls[kind], payloads[kind], clients, seconds)})
                    print(rows[-1], flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, default=Path("/tmp/ws_cifar"), help="the 50,000-item workspace")
    p.add_argument("--million", type=Path, default=Path("/tmp/serve_1m"), help="where the 1M workspace is built")
    p.add_argument("--seconds", type=float, default=8.0, help="per cell")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--port", type=int, default=8791)
    p.add_argument("--skip-million", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    facts = machine_facts("cpu", REPO)
    rows = measure_size("50,000", args.workspace, args.seconds, args.k, args.port)
    if not args.skip_million:
        t = time.perf_counter()
        big = million_workspace(args.workspace, args.million)
        facts["million_build_s"] = round(time.perf_counter() - t, 1)
        rows += measure_size("1,000,000", big, args.seconds, args.k, args.port)
    facts["load_avg_end"] = load_average()
    print(f"\n### curate serve: requests/s and latency, k={args.k}, {args.seconds:g} s per cell\n")
    print(summary_line(facts) + "\n")
    print(markdown_table(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"serve_lookup-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"machine": facts, "rows": rows, "args": {k: str(v) for k, v in vars(args).items()}},
                              indent=1))
    print(f"\n-> {out}")


if __name__ == "__main__":
    main()
