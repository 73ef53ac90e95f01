"""`curate serve` (issue 30 part 1): a real uvicorn server on loopback over a real workspace. Its answers are
`open_workspace(WS).search(...)`'s, concurrent uploads are embedded in shared batches, hostile uploads get a
4xx and the server stays up, tokens are checked and throttled, a rebuild swaps generations whole, and
SIGTERM stops it cleanly."""
from __future__ import annotations

import io
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import requests
import uvicorn
from PIL import Image

from curate import storage
from curate.cli import main
from curate.serve.app import ServeConfig, create_app
from curate.session import open_workspace
from tests.apptest_helpers import REPO, free_port

TOKEN = "s3cret-token-for-tests-0123456789"


@contextmanager
def running(ws_path: Path, **config):
    """The service on a free loopback port, in this process (so a test can look at its batcher); stopped after."""
    app = create_app(ws_path, ServeConfig(**config))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def ws(built_workspace_copy) -> Path:
    return built_workspace_copy.path


def _ids(answer: dict) -> list[int]:
    return [r["id"] for r in answer["results"]]


def _image_file(ws: Path, item: int) -> Path:
    session = open_workspace(ws)
    return session.root / str(session.manifest["path"].iloc[item])


def test_answers_are_those_of_the_python_api(ws):
    session = open_workspace(ws)
    with running(ws) as (url, _):
        assert requests.get(f"{url}/health").json() == {"status": "ok", "generation": 1}
        by_id = requests.post(f"{url}/search", json={"id": 7, "k": 12}).json()
        expected = session.search(7, k=12)
        assert _ids(by_id) == expected["id"].tolist()
        assert np.allclose([r["score"] for r in by_id["results"]], expected["similarity"], atol=1e-6)
        assert by_id["results"][0].keys() >= {"id", "path", "score", "label", "kind"}

        ids = requests.post(f"{url}/search", json={"ids": [3, 9], "k": 10}).json()
        assert _ids(ids) == session.similar([3, 9], k=10)["id"].tolist()

        vector = session.embeddings[11] * 3.0  # any length: normalised as the API's vectors are
        by_vector = requests.post(f"{url}/search", json={"vector": vector.tolist(), "k": 5}).json()
        assert _ids(by_vector) == session.search(session.embeddings[11], k=5)["id"].tolist()

        image = _image_file(ws, 21)
        upload = requests.post(f"{url}/search", files={"image": image.open("rb")}, data={"k": "8"}).json()
        assert _ids(upload) == session.search(image, k=8)["id"].tolist() and _ids(upload)[0] == 21

        cats = requests.post(f"{url}/search", json={"id": 7, "k": 6, "where": "label = 'cat'"}).json()
        assert _ids(cats) == session.search(7, k=6, where="label = 'cat'")["id"].tolist()
        assert {r["label"] for r in cats["results"]} == {"cat"}

        row = requests.get(f"{url}/items/21").json()
        assert row["id"] == 21 and row["path"] == str(session.manifest["path"].iloc[21])
        thumb = requests.get(f"{url}/items/21/thumbnail", params={"size": 64})
        assert thumb.headers["content-type"] == "image/png"
        assert max(Image.open(io.BytesIO(thumb.content)).size) == 64
        assert requests.get(f"{url}/openapi.json").json()["info"]["title"] == "curate lookup"


def test_bad_requests_get_a_4xx_that_names_the_problem(ws, tmp_path):
    with running(ws, max_upload_mb=1) as (url, _):
        checks = [
            (requests.post(f"{url}/search", json={"id": 10**6}), 404, "no item 1000000"),
            (requests.post(f"{url}/search", json={"id": 1, "ids": [2]}), 422, "exactly one of"),
            (requests.post(f"{url}/search", json={"id": 1, "where": "colour = 1"}), 400, "no column 'colour'"),
            (requests.post(f"{url}/search", json={"id": 1, "k": 5000}), 422, "less than or equal to 1000"),
            (requests.post(f"{url}/search", json={"vector": [1.0, 2.0]}), 422, "finite numbers"),
            (requests.post(f"{url}/search", data="{not json", headers={"content-type": "application/json"}), 400,
             "not valid JSON"),
            (requests.post(f"{url}/search", data="x", headers={"content-type": "text/plain"}), 415, "multipart"),
            (requests.post(f"{url}/search", files={"image": ("x.jpg", b"\xff\xd8\xff\xe0 broken")}), 422,
             "cannot use this image"),
            (requests.post(f"{url}/search", files={"image": ("big.bin", b"\0" * (2 * 2**20))}), 413, "at most 1 MB"),
            (requests.post(f"{url}/search", files={"image": ("x.png", _png_header_only(15_790, 15_790))}), 413,
             "too large for a query"),
            (requests.post(f"{url}/search", files={"image": _image_file(ws, 0).open("rb")}, data={"box": "5,5,1,1"}),
             422, "x1 > x0"),
            (requests.get(f"{url}/items/5/thumbnail", params={"size": 4096}), 422, "16-512"),
        ]
        for response, status, text in checks:
            assert response.status_code == status and text in response.text, (response.status_code, response.text)
        assert requests.get(f"{url}/health").json()["status"] == "ok"  # still up after all of it


def _png_header_only(width: int, height: int) -> bytes:
    """A 1 kB PNG that claims width x height pixels (a decompression bomb's header; its data is cut short)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100_000)) + \
        chunk(b"IEND", b"")


def test_concurrent_uploads_are_embedded_in_shared_batches(ws):
    session = open_workspace(ws)
    files = [_image_file(ws, i).read_bytes() for i in range(0, 320, 20)]
    with running(ws, batch_window_s=0.05) as (url, app):
        def ask(data: bytes) -> list[int]:
            return _ids(requests.post(f"{url}/search", files={"image": ("q.jpg", data)}, data={"k": "5"}).json())

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(ask, files))
        batches = app.state.batcher.batches
    assert sum(batches) == len(files) and max(batches) > 1, batches  # fewer forward passes than requests
    for data, answer in zip(files, answers):  # and the same answers as one at a time
        assert answer == session.search(io.BytesIO(data), k=5)["id"].tolist()


def test_a_token_guards_every_endpoint_and_wrong_ones_are_throttled(ws, caplog):
    with running(ws, token=TOKEN) as (url, app):
        assert requests.get(f"{url}/health").status_code == 200  # a load balancer's probe needs no token
        good = {"Authorization": f"Bearer {TOKEN}"}
        for paths in (("/items/1", "/items/1/thumbnail", "/docs"), ("/openapi.json", "/items/2")):
            for path in paths:  # three misses are free (typos); the right token then clears them
                assert requests.get(f"{url}{path}").status_code == 401, path
            assert requests.get(f"{url}{paths[0]}", headers=good).status_code == 200
        assert requests.post(f"{url}/search", json={"id": 1}).status_code == 401
        assert requests.post(f"{url}/search", json={"id": 1}, headers=good).status_code == 200
        app.state.throttle.base = 30.0
        wrong = [requests.get(f"{url}/items/1", headers={"Authorization": f"Bearer guess{i}"}) for i in range(5)]
        assert [r.status_code for r in wrong][:4] == [401, 401, 401, 401]
        assert wrong[4].status_code == 429 and int(wrong[4].headers["Retry-After"]) >= 29
        # locked out: even the right token waits, so guessing cannot go on
        assert requests.get(f"{url}/items/1", headers=good).status_code == 429
    assert sum("wrong API token from 127.0.0.1" in r.getMessage() for r in caplog.records) >= 4


def test_a_rebuild_is_served_whole_and_a_half_written_one_never(ws):
    session = open_workspace(ws)
    expected = session.search(4, k=10)["id"].tolist()
    embeddings = ws / "embeddings.npy"
    with running(ws, poll_s=0.1) as (url, app):
        vectors = np.load(embeddings)
        storage.write_npy(embeddings, vectors[::-1].copy())  # new vectors (atomically, as `curate embed` writes
        # them), their sidecar and the index not yet rewritten: a rebuild half done
        time.sleep(1.0)
        answer = requests.post(f"{url}/search", json={"id": 4, "k": 10}).json()
        assert answer["generation"] == 1 and _ids(answer) == expected  # the old generation, whole
        storage.write_npy(embeddings, vectors)  # the rebuild "finished": files that belong together again
        from curate.steps.index import build_workspace_index

        build_workspace_index(open_workspace(ws).ws)
        deadline = time.monotonic() + 30
        while requests.get(f"{url}/health").json()["generation"] < 2:
            assert time.monotonic() < deadline, "the new generation was not loaded"
            time.sleep(0.1)
        answer = requests.post(f"{url}/search", json={"id": 4, "k": 10}).json()
        assert answer["generation"] >= 2 and _ids(answer) == open_workspace(ws).search(4, k=10)["id"].tolist()


def test_cli_refuses_a_public_bind_without_a_token_and_sigterm_stops_it(ws, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CURATE_API_TOKEN", raising=False)
    assert main(["serve", "-w", str(ws), "--host", "0.0.0.0"]) == 2
    assert "needs an API token" in capsys.readouterr().err
    short = tmp_path / "short"
    short.write_text("abc\n")
    assert main(["serve", "-w", str(ws), "--host", "0.0.0.0", "--token-file", str(short)]) == 2
    assert "at least 16 characters" in capsys.readouterr().err

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "curate", "serve", "-w", str(ws), "--port", str(port)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
                time.sleep(0.2)
        server.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status says SIGTERM, as a
        # process manager expects of a stopped service
        assert server.wait(timeout=20) in (0, -signal.SIGTERM)
        log = server.stdout.read()
        assert "Shutting down" in log and "Finished server process" in log and "Traceback" not in log
    finally:
        if server.poll() is None:
            server.kill()
