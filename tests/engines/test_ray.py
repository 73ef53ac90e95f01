"""`curate embed --engine ray` on a real local Ray cluster (started here, 2 CPUs): the same vectors as the
local engine, incremental reruns, a killed encoder actor survived, and clear errors without a cluster."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from curate.cli import main
from curate.engines import create_engine

from tests.apptest_helpers import free_port
from tests.conftest import SHARED, need_shared
from tests.engines.agreement import assert_same_vectors
from tests.engines.ray_cluster import end_session, ray_start

pytestmark = pytest.mark.slow
pytest.importorskip("ray.data", reason="needs Ray Data: pip install 'ray[data]>=2.40' (requirements-dev.txt)")


def _embed(images: Path | str, ws: Path, encoder: Path, *extra: str) -> dict:
    assert main(["embed", str(images), "-w", str(ws), "--model", str(encoder), *extra]) == 0
    return json.loads((ws / "embeddings.json").read_text())


def test_ray_embedding_equals_local_and_stays_incremental(ray_address, encoder, bundled_images, sample_copier,
                                                          tmp_path):
    classes = sorted(p.name for p in bundled_images.iterdir() if p.is_dir())
    images = sample_copier(bundled_images, tmp_path / "images", classes, 30)
    (images / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")  # an unusable row: zero

    t = time.perf_counter()
    local = _embed(images, tmp_path / "local", encoder)
    print(f"local scan + embed of 300 images: {time.perf_counter() - t:.1f}s")
    t = time.perf_counter()  # `--engine ray` scans (reads, hashes, verifies) and embeds on the cluster
    ray = _embed(images, tmp_path / "ray", encoder, "--engine", "ray", "--address", ray_address, "--actors", "1",
                 "--batch-size", "64")
    print(f"ray scan + embed of 300 images: {time.perf_counter() - t:.1f}s")
    manifest = pd.read_parquet(tmp_path / "ray" / "manifest.parquet")
    assert (manifest.status != "ok").sum() == 1 and len(manifest) == 301
    pd.testing.assert_frame_equal(manifest, pd.read_parquet(tmp_path / "local" / "manifest.parquet"))
    local_vectors = np.load(tmp_path / "local" / "embeddings.npy")
    ray_vectors = np.load(tmp_path / "ray" / "embeddings.npy")
    print(f"smallest local-vs-ray cosine: {assert_same_vectors(ray_vectors, local_vectors):.7f}")
    assert (ray["engine"], ray["actors"], local["engine"]) == ("ray", 1, "local")
    for key in ("model", "model_file", "d", "n", "embedded", "newly_embedded", "reused", "image_size"):
        assert ray[key] == local[key], key
    assert (tmp_path / "ray" / "index.faiss").exists()  # `curate embed` went on to build the index
    assert not (tmp_path / "ray" / "embeddings.partial.npy").exists()

    # new images: the same step decides that only they need vectors, whichever engine computes them
    for cls in classes[:2]:
        for f in sorted((bundled_images / cls).glob("*.jpg"))[30:35]:
            shutil.copy2(f, images / cls / f.name)
    local = _embed(images, tmp_path / "local", encoder)
    ray = _embed(images, tmp_path / "ray", encoder, "--engine", "ray", "--address", ray_address, "--actors", "1")
    assert ray["newly_embedded"] == local["newly_embedded"] == 10 and ray["reused"] == local["reused"] == 300
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "ray" / "manifest.parquet"),
                                  pd.read_parquet(tmp_path / "local" / "manifest.parquet"))
    assert_same_vectors(np.load(tmp_path / "ray" / "embeddings.npy"), np.load(tmp_path / "local" / "embeddings.npy"))


def test_ray_embeds_objects_and_frames_as_the_local_engine_does(ray_address, encoder, tmp_path):
    """Objects (crops of their parent photo) and video frames (from the frame store) reach the Ray workers as
    item sources in text, and come back as the local engine's vectors, row for row."""
    coco, clips = need_shared(SHARED / "coco128-detect"), need_shared(SHARED / "videos" / "asl_gestures")
    folder = tmp_path / "items"
    for sub in ("images/train2017", "labels/train2017", "videos"):
        (folder / sub).mkdir(parents=True)
    for img in sorted((coco / "images" / "train2017").glob("*.jpg"))[:6]:
        shutil.copy(img, folder / "images" / "train2017" / img.name)
        label = coco / "labels" / "train2017" / f"{img.stem}.txt"
        if label.exists():
            shutil.copy(label, folder / "labels" / "train2017" / label.name)
    names = yaml.safe_load((coco / "data.yaml").read_text())["names"]
    (folder / "data.yaml").write_text(yaml.safe_dump({"path": ".", "train": "images/train2017", "names": names}))
    shutil.copy(clips / "again.mkv", folder / "videos" / "again.mkv")

    for name, engine in (("local", []), ("ray", ["--engine", "ray", "--address", ray_address, "--actors", "1"])):
        assert main(["scan", str(folder), "-w", str(tmp_path / name), "--annotations", str(folder / "data.yaml"),
                     "--fps", "2"]) == 0
        _embed(folder, tmp_path / name, encoder, *engine)
    manifest = pd.read_parquet(tmp_path / "ray" / "manifest.parquet")
    pd.testing.assert_frame_equal(manifest, pd.read_parquet(tmp_path / "local" / "manifest.parquet"))
    counts = manifest["kind"].value_counts()
    assert counts["image"] == 6 and counts["object"] >= 10 and counts["frame"] >= 3 and counts["video"] == 1
    ray_vectors, local_vectors = (np.load(tmp_path / n / "embeddings.npy") for n in ("ray", "local"))
    embedded = np.flatnonzero(np.any(local_vectors != 0, axis=1))
    assert set(manifest["kind"].iloc[embedded]) == {"image", "object", "frame"}  # the video row itself is not
    assert_same_vectors(ray_vectors, local_vectors)


class Interrupt(Exception):
    pass


def test_an_interrupted_ray_embedding_resumes_after_its_last_checkpoint(ray_address, encoder, built_workspace,
                                                                        bundled_images, tmp_path):
    from curate.steps.embed import embed
    from curate.steps.scan import scan

    ws, _ = scan(bundled_images, tmp_path / "ws")
    options = {"engine": create_engine("ray", {"address": ray_address, "actors": 1}), "batch_size": 8}

    checkpoint = ws.path / "embeddings.partial.json"

    def crash_after_a_checkpoint(done, total, info):
        # Vectors come back a block (256 rows here) at a time and out of order; the checkpoint is the first
        # row still missing, so it appears once the first block is back, however many came back before it.
        if info.get("stage") == "embed" and checkpoint.exists():
            raise Interrupt

    with pytest.raises(Interrupt):
        embed(ws, encoder, progress=crash_after_a_checkpoint, **options)
    done = json.loads(checkpoint.read_text())["done"]
    assert 256 <= done < 2000 and not ws.embeddings_file.exists()
    seen = []
    resumed = embed(ws, encoder, progress=lambda d, t, i: seen.append(d) if i.get("stage") == "embed" else None,
                    **options)
    assert seen[0] == done and seen[1] > done and seen[-1] == 2000  # it went on from the checkpoint
    assert_same_vectors(resumed, np.load(built_workspace / "embeddings.npy"))


def _encoder_actors() -> list[int]:
    """Pids of live encoder actors: Ray titles their processes `ray::MapWorker(MapBatches(Encoder))...`."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:  # not a process, or gone
            continue
        if title.startswith(b"ray::MapWorker") and b"Encoder" in title:
            pids.append(int(entry.name))
    return pids


def test_a_killed_encoder_actor_is_restarted_and_the_job_completes(ray_address, encoder, built_workspace,
                                                                    bundled_images, tmp_path):
    ws = tmp_path / "ws"
    killed: list[tuple[int, int]] = []  # (pid, rows checkpointed when it was killed)
    finished = threading.Event()

    def kill_an_actor_mid_job():
        partial = ws / "embeddings.partial.json"
        while not finished.is_set():
            if partial.exists():  # some rows are done, most are not (2,000 rows, a checkpoint every 512)
                done = json.loads(partial.read_text())["done"]
                for pid in _encoder_actors():
                    os.kill(pid, signal.SIGKILL)
                    killed.append((pid, done))
                if killed:
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_an_actor_mid_job, daemon=True)
    killer.start()
    t = time.perf_counter()
    try:
        meta = _embed(bundled_images, ws, encoder, "--engine", "ray", "--address", ray_address, "--actors", "1",
                      "--batch-size", "32")
    finally:
        finished.set()
        killer.join(timeout=5)
    print(f"ray embed of 2,000 images with one actor killed: {time.perf_counter() - t:.1f}s; killed {killed}")
    assert killed and 0 < killed[0][1] < 2000, "the actor was not killed while the job ran"
    assert killed[0][0] not in _encoder_actors()
    assert meta["newly_embedded"] == 2000 and meta["engine"] == "ray"
    reference = np.load(built_workspace / "embeddings.npy")  # the local engine's vectors of the same images
    assert pd.read_parquet(ws / "manifest.parquet")["path"].tolist() == \
        pd.read_parquet(built_workspace / "manifest.parquet")["path"].tolist()
    assert_same_vectors(np.load(ws / "embeddings.npy"), reference)


def test_an_actor_pool_the_cluster_cannot_hold_is_refused(ray_address, encoder, small_images, tmp_path, capsys):
    # 2 CPUs: two CPU actors would leave none to decode, and Ray would wait for one forever
    rc = main(["embed", str(small_images), "-w", str(tmp_path / "ws"), "--model", str(encoder), "--engine", "ray",
               "--address", ray_address, "--actors", "2"])
    assert rc == 2 and "use --actors 1 or fewer" in capsys.readouterr().err
    assert not (tmp_path / "ws" / "embeddings.npy").exists()


def test_unreachable_cluster_fails_fast_with_a_clear_error(encoder, small_images, tmp_path, capsys, monkeypatch):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    t = time.perf_counter()
    rc = main(["embed", str(small_images), "-w", str(tmp_path / "ws"), "--model", str(encoder), "--engine", "ray",
               "--address", address])
    assert rc == 2 and time.perf_counter() - t < 30
    assert f"cannot reach the Ray cluster at {address} (from --address)" in capsys.readouterr().err
    monkeypatch.setenv("RAY_ADDRESS", address)  # the default address, as `ray job submit` sets it
    rc = main(["embed", str(small_images), "-w", str(tmp_path / "ws"), "--model", str(encoder), "--engine", "ray"])
    assert rc == 2 and f"cannot reach the Ray cluster at {address} (from RAY_ADDRESS)" in capsys.readouterr().err
    assert not any((tmp_path / "ws").glob("embeddings*"))  # refused before any work


def test_a_ray_client_address_is_refused_with_what_works_instead(encoder, small_images, tmp_path, capsys,
                                                                  monkeypatch):
    """Ray Data does not run through Ray Client (tried with Ray 2.60 and `ray[client]`: its streaming executor
    needs a core worker in the driver process), so a ray:// address is refused at once, naming what works."""
    args = ["embed", str(small_images), "-w", str(tmp_path / "ws"), "--model", str(encoder), "--engine", "ray"]
    assert main([*args, "--address", "ray://127.0.0.1:10001"]) == 2
    err = capsys.readouterr().err
    assert "ray://127.0.0.1:10001 (from --address) is a Ray Client address" in err and "ray job submit" in err
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    assert main(args) == 2 and "ray://head:10001 (from RAY_ADDRESS) is a Ray Client" in capsys.readouterr().err
    assert not any((tmp_path / "ws").glob("embeddings*"))


def test_ray_is_optional(encoder, small_images, tmp_path, capsys, monkeypatch):
    # the local path never imports ray
    code = ("import sys, curate.cli, curate.engines, curate.steps.embed, curate.steps.scan; "
            "assert 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    # without it, --engine ray names the package to install
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` finds when Ray is not installed
    rc = main(["embed", str(small_images), "-w", str(tmp_path / "ws"), "--model", str(encoder), "--engine", "ray"])
    assert rc == 2 and "pip install 'ray[data]" in capsys.readouterr().err


def test_curate_run_takes_the_engines_as_options(ray_address, small_images, tmp_path):
    """One pipeline, the engines a property of the run: `curate run --engine ray --nproc 2` trains with two
    DDP ranks, embeds on the Ray cluster and finishes every later step as a local run does."""
    from curate.train.launch import cores

    if cores() < 2:
        pytest.skip("two DDP ranks need two CPU cores")
    ws = tmp_path / "ws"
    assert main(["run", str(small_images), "-w", str(ws), "--epochs", "0.4", "--batch-size", "32", "--nproc", "2",
                 "--engine", "ray", "--address", ray_address, "--actors", "1"]) == 0
    trained = json.loads((ws / "model" / "config.json").read_text())["trained"]
    assert (trained["world_size"], trained["nproc"]) == (2, 2)
    embedded = json.loads((ws / "embeddings.json").read_text())
    assert (embedded["engine"], embedded["actors"], embedded["newly_embedded"]) == ("ray", 1, 200)
    for name in ("index.faiss", "projection_umap.npy", "duplicates.parquet", "scores.parquet", "knn_graph.npz"):
        assert (ws / name).exists(), name
    assert np.isfinite(np.load(ws / "projection_umap.npy")).all(1).sum() == 200


def test_a_bucket_embeds_on_the_cluster_as_it_does_locally(ray_address, encoder, small_images, tmp_path,
                                                          monkeypatch):
    """`curate embed s3://... --engine ray`: the driver mirrors the bucket (a real S3-compatible server on
    loopback) and the cluster's workers read the mirror, never the bucket, so they need no credentials; the
    manifest and vectors equal the local engine's on the same bucket."""
    pytest.importorskip("moto.server", reason="needs moto[server] (requirements-dev.txt)")
    import boto3

    from tests.object_stores import s3_server

    with s3_server() as endpoint:
        for key, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(key, value)
        client = boto3.client("s3")
        client.create_bucket(Bucket="ray-bucket")
        for f in sorted(small_images.rglob("*.jpg"))[::5]:
            client.upload_file(str(f), "ray-bucket", f"photos/{f.relative_to(small_images).as_posix()}")
        client.put_object(Bucket="ray-bucket", Key="photos/cat/broken.jpg", Body=b"\xff\xd8\xff\xe0 not a jpeg")
        local = _embed("s3://ray-bucket/photos", tmp_path / "local", encoder)
        ray = _embed("s3://ray-bucket/photos", tmp_path / "ray", encoder, "--engine", "ray", "--address", ray_address,
                     "--actors", "1")
    assert (ray["engine"], local["engine"], ray["n"], ray["newly_embedded"]) == ("ray", "local", 41, 40)
    manifest = pd.read_parquet(tmp_path / "ray" / "manifest.parquet")
    assert (manifest.status == "ok").sum() == 40
    # each workspace has its own mirror, so only the files' mtimes (their download times) differ
    pd.testing.assert_frame_equal(manifest.drop(columns="mtime"),
                                  pd.read_parquet(tmp_path / "local" / "manifest.parquet").drop(columns="mtime"))
    assert_same_vectors(np.load(tmp_path / "ray" / "embeddings.npy"), np.load(tmp_path / "local" / "embeddings.npy"))


def test_work_runs_on_a_node_the_driver_did_not_start(encoder, small_images, tmp_path):
    """Several nodes: a head that runs nothing (`--num-cpus=0`, as Ray advises for large clusters) and a
    worker node that joined it (`ray start --address HEAD`, its own raylet). Every decode task and encoder
    actor runs on the worker node, and the vectors are the local engine's."""
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    head = ray_start(tmp_path / "head.log", "--head", f"--port={port}", "--num-cpus=0",
                      "--object-store-memory=200000000", "--include-dashboard=false", f"--temp-dir={temp_dir}")
    try:
        worker = ray_start(tmp_path / "worker.log", f"--address=127.0.0.1:{port}", "--num-cpus=2",
                            "--object-store-memory=200000000")
        try:
            ray = _embed(small_images, tmp_path / "ray", encoder, "--engine", "ray", "--address", f"127.0.0.1:{port}")
        finally:
            end_session(worker)
    finally:
        end_session(head)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert (ray["engine"], ray["actors"], ray["newly_embedded"]) == ("ray", 1, 200)  # half the cluster's 2 CPUs
    local = _embed(small_images, tmp_path / "local", encoder)
    assert local["newly_embedded"] == 200
    assert_same_vectors(np.load(tmp_path / "ray" / "embeddings.npy"), np.load(tmp_path / "local" / "embeddings.npy"))
