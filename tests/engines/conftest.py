"""Fixtures of the engine tests: a real one-node Ray cluster, the shared workspace's encoder, and each
engine's options for the contract test (`<name>_engine_options`; none: the engine's defaults)."""
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.apptest_helpers import free_port
from tests.engines.ray_cluster import end_session, ray_start


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory):
    """HOST:PORT of a one-node Ray cluster (2 CPUs, 300 MB object store) run by `ray start --head --block`
    in its own session, so teardown ends exactly the processes it started."""
    pytest.importorskip("ray.data", reason="needs Ray Data: pip install 'ray[data]>=2.40' (requirements-dev.txt)")
    port = free_port()
    # its own temp dir (short: it holds Unix sockets), so no record of this cluster outlives it in /tmp/ray
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    head = ray_start(tmp_path_factory.mktemp("ray") / "ray_start.log", "--head", f"--port={port}", "--num-cpus=2",
                     "--object-store-memory=300000000", "--include-dashboard=false", f"--temp-dir={temp_dir}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        end_session(head)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_engine_options(ray_address) -> dict:
    return {"address": ray_address, "actors": 1}


@pytest.fixture(scope="module")
def encoder(built_workspace) -> Path:
    return built_workspace / "model" / "encoder.pt"
