"""`gs://` and `az://` buckets (issue 30 part 2) against real servers started here on loopback: Google Cloud
Storage's JSON API (gcp-storage-emulator) and Azure Blob Storage (Azurite). The CLI, in its own process as a
user runs it, mirrors the bucket, a rescan of the unchanged bucket lists and reads nothing, and a changed and a
deleted object are picked up with ids kept. The S3 tests (test_remote.py) cover what follows the mirror."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from urllib.parse import quote

import pytest
import requests

from curate.workspace import Workspace
from tests.conftest import REPO
from tests.object_stores import AZURITE_KEY, azure_server, azurite_command, gcs_server, holding

pytest.importorskip("gcp_storage_emulator", reason="needs gcp-storage-emulator (requirements-dev.txt)")


class GcsBucket:
    """A bucket on the emulator, written through the GCS JSON API (the protocol gcsfs reads with)."""

    def __init__(self, env: dict, name: str):
        self.host, self.name, self.env = env["STORAGE_EMULATOR_HOST"], name, env
        requests.post(f"{self.host}/storage/v1/b", json={"name": name}, timeout=10).raise_for_status()
        self.url, self.options = f"gs://{name}/photos", json.dumps({"token": "anon"})

    def put(self, key: str, data: bytes) -> None:
        requests.post(f"{self.host}/upload/storage/v1/b/{self.name}/o", params={"uploadType": "media", "name": key},
                      data=data, timeout=10).raise_for_status()

    def delete(self, key: str) -> None:
        requests.delete(f"{self.host}/storage/v1/b/{self.name}/o/{quote(key, safe='')}", timeout=10).raise_for_status()


class AzureContainer:
    """A container on Azurite, written through Azure's own SDK (the one adlfs reads with)."""

    def __init__(self, env: dict, name: str):
        from azure.storage.blob import BlobServiceClient

        self.env = env
        self.client = BlobServiceClient.from_connection_string(env["AZURE_STORAGE_CONNECTION_STRING"])
        self.container = self.client.create_container(name)
        self.url, self.options = f"az://{name}/photos", None

    def put(self, key: str, data: bytes) -> None:
        self.container.upload_blob(key, data, overwrite=True)

    def delete(self, key: str) -> None:
        self.container.delete_blob(key)


@pytest.fixture(params=["gs", "az"])
def cloud_bucket(request, tmp_path):
    name = f"b{time.monotonic_ns()}"
    if request.param == "gs":
        with gcs_server() as env:
            yield GcsBucket(env, name)
    else:
        if azurite_command() is None:
            pytest.skip("needs Azurite: scripts/test.sh installs it with npm into .cache/azurite")
        with azure_server(tmp_path) as env:
            yield AzureContainer(env, name)


def curate(bucket, *args: str) -> str:
    options = ["--storage-options", bucket.options] if bucket.options else []
    done = subprocess.run([sys.executable, "-m", "curate", *args, *options], env={**os.environ, **bucket.env}, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_gs_or_az_bucket_is_mirrored_rescanned_for_nothing_and_changes_are_seen(cloud_bucket, small_images,
                                                                                  tmp_path):
    files = sorted(small_images.rglob("*.jpg"))[:12]
    for f in files:
        cloud_bucket.put(f"photos/{f.relative_to(small_images).as_posix()}", f.read_bytes())
    cloud_bucket.put("photos/cat/broken.jpg", b"\xff\xd8\xff\xe0 not a jpeg")
    ws = tmp_path / "ws"
    out = curate(cloud_bucket, "scan", cloud_bucket.url, "-w", str(ws))
    assert "13 objects listed, 13 downloaded, 0 gone;" in out
    manifest = Workspace(ws).manifest()
    assert len(manifest) == 13 and (manifest["status"] == "ok").sum() == 12
    for f in files:  # byte for byte the objects
        assert (ws / "mirror" / f.relative_to(small_images)).read_bytes() == f.read_bytes()
    assert json.loads((ws / "workspace.json").read_text())["source"] == cloud_bucket.url
    assert not holding(ws, AZURITE_KEY) and not holding(ws, "AccountKey")  # no key lands in the workspace

    mirrored = {p: p.stat().st_mtime_ns for p in (ws / "mirror").rglob("*.jpg")}
    assert "13 objects listed, 0 downloaded, 0 gone" in curate(cloud_bucket, "scan", cloud_bucket.url, "-w", str(ws))
    assert {p: p.stat().st_mtime_ns for p in (ws / "mirror").rglob("*.jpg")} == mirrored

    changed, gone = (f.relative_to(small_images).as_posix() for f in files[:2])
    cloud_bucket.put(f"photos/{changed}", files[5].read_bytes())
    cloud_bucket.delete(f"photos/{gone}")
    out = curate(cloud_bucket, "scan", cloud_bucket.url, "-w", str(ws))
    assert "12 objects listed, 1 downloaded, 1 gone" in out and "1 changed, 1 removed" in out
    after = Workspace(ws).manifest().set_index("path")
    assert after.loc[gone, "status"] == "removed"
    assert (ws / "mirror" / changed).read_bytes() == files[5].read_bytes()
    assert after["id"].tolist() == manifest.set_index("path").loc[after.index, "id"].tolist()  # ids kept


def test_error_messages_name_the_endpoint_but_never_a_key(monkeypatch):
    from curate.data.remote import endpoint_hint

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "DefaultEndpointsProtocol=http;AccountName=acct;"
                       "AccountKey=c2VjcmV0a2V5==;BlobEndpoint=http://127.0.0.1:1/acct;")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:2")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:3")
    assert endpoint_hint("az") == " (endpoint http://127.0.0.1:1/acct from AZURE_STORAGE_CONNECTION_STRING)"
    assert endpoint_hint("gs") == " (endpoint http://127.0.0.1:2 from STORAGE_EMULATOR_HOST)"
    assert endpoint_hint("s3") == " (endpoint http://127.0.0.1:3 from AWS_ENDPOINT_URL)"
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "team")
    assert endpoint_hint("az") == " (account team)" and endpoint_hint("file") == ""
