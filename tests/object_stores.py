"""Real object-storage servers on loopback for the bucket tests and the storage benchmark, each in its own
process: S3 (moto's server mode), Google Cloud Storage (gcp-storage-emulator) and Azure Blob Storage (Azurite,
from the npm registry). Each yields its endpoint or the environment a client needs to reach it; nothing here
fakes a client call."""
from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from tests.apptest_helpers import free_port, stop

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # moto_server and gcp-storage-emulator come with their packages
# scripts/test.sh installs Azurite here with npm (git-ignored); any azurite-blob on PATH works too
AZURITE = REPO / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's well-known development account (published by Microsoft for the emulator: not a secret)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@contextlib.contextmanager
def s3_server(workdir: Path | None = None) -> Iterator[str]:
    """moto's S3-compatible server, in its own process; its URL."""
    port = free_port()
    with _serving([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], port, workdir):
        yield f"http://127.0.0.1:{port}"


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
def gcs_server(workdir: Path | None = None) -> Iterator[dict]:
    """gcp-storage-emulator (in memory), in its own process; the environment gcsfs reaches it with."""
    port = free_port()
    with _serving([str(BIN / "gcp-storage-emulator"), "start", "-H", "127.0.0.1", "--port", str(port), "-M", "-q"],
                  port, workdir):
        # gcsfs asks a gRPC control API for each bucket's type unless told not to; the emulator has no such API
        yield {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}", "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}


def azurite_command() -> str | None:
    return str(AZURITE) if AZURITE.exists() else shutil.which("azurite-blob")


@contextlib.contextmanager
def azure_server(workdir: Path | None = None) -> Iterator[dict]:
    """Azurite's blob service (in memory), in its own process; the environment adlfs reaches it with."""
    port = free_port()
    with _serving([azurite_command(), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
                   "--skipApiVersionCheck", "--disableTelemetry"], port, workdir):
        yield {"AZURE_STORAGE_CONNECTION_STRING":
               f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
               f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"}


@contextlib.contextmanager
def _serving(command: list[str], port: int, workdir: Path | None) -> Iterator[None]:
    """Run `command` in its own session (logging to workdir or a temp dir) until it listens on `port`; end it after."""
    with tempfile.TemporaryDirectory(prefix="store") as scratch:
        folder = Path(workdir or scratch)
        log = folder / f"{Path(command[0]).name}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(command, cwd=folder, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_for_port(port, proc, log)
            yield
        finally:
            stop(proc)


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{log.stem} exited:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise AssertionError(f"{log.stem} did not listen on {port} in {timeout:.0f} s:\n{log.read_text()}")


def holding(folder: Path, text: str) -> list[Path]:
    """Every file under `folder` whose bytes contain `text` (manifests, logs, checkpoints: all of them)."""
    return [f for f in folder.rglob("*") if f.is_file() and text.encode() in f.read_bytes()]
