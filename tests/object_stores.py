"""Real object-storage servers on loopback for the bucket tests: S3 (moto's server mode), Google Cloud Storage
(gcp-storage-emulator) and Azure Blob Storage (Azurite, from the npm registry). Each yields its endpoint and
the environment a client needs to reach it; nothing here fakes a client call."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from tests.apptest_helpers import free_port

REPO = Path(__file__).resolve().parent.parent
# scripts/test.sh installs Azurite here with npm (git-ignored); any azurite-blob on PATH works too
AZURITE = REPO / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's well-known development account (published by Microsoft for the emulator: not a secret)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3-compatible server in this process (so a test can switch its IAM checks on); its URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@contextlib.contextmanager
def iam_enforced(endpoint: str) -> Iterator[None]:
    """Make moto's server check every request's signature and IAM policy (it does not by default)."""
    previous = requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=10).json()
    try:
        yield
    finally:
        requests.post(f"{endpoint}/moto-api/reset-auth",
                      data=str(previous["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]).encode(), timeout=10)


@contextlib.contextmanager
def gcs_server() -> Iterator[dict]:
    """gcp-storage-emulator on loopback (in memory); the environment gcsfs reaches it with."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        # gcsfs asks a gRPC control API for each bucket's type unless told not to; the emulator has no such API
        yield {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}", "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}
    finally:
        server.stop()


def azurite_command() -> str | None:
    return str(AZURITE) if AZURITE.exists() else shutil.which("azurite-blob")


@contextlib.contextmanager
def azure_server(workdir: Path) -> Iterator[dict]:
    """Azurite's blob service on loopback (in memory); the environment adlfs reaches it with."""
    port = free_port()
    with open(workdir / "azurite.log", "w") as log:
        proc = subprocess.Popen([azurite_command(), "--blobHost", "127.0.0.1", "--blobPort", str(port),
                                 "--inMemoryPersistence", "--skipApiVersionCheck"],
                                cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_port(port, proc, workdir / "azurite.log")
        yield {"AZURE_STORAGE_CONNECTION_STRING":
               f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
               f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"azurite exited:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise AssertionError(f"azurite did not listen on {port} in {timeout:.0f} s:\n{log.read_text()}")


def env_with(extra: dict) -> dict:
    return {**os.environ, **extra}
