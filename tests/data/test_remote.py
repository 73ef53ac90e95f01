"""Images in object storage (issue 30 part 2) against a real S3-compatible server started here on loopback
(moto's server mode): `curate run s3://...` works as on a folder, a rescan of an unchanged bucket lists and
reads nothing, changes are picked up with ids kept, credentials stay out of the workspace, and an unreachable
endpoint fails with a reason in seconds."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from curate.cli import main
from curate.session import open_workspace
from curate.workspace import Workspace
from tests.apptest_helpers import assert_clean, free_port, open_page, start
from tests.serve.test_serve import running

# moto is a test-only dependency (requirements-dev.txt, installed by scripts/test.sh, so this runs in CI); s3fs is
# a runtime one and is not skipped for: a missing s3fs must fail here
pytest.importorskip("moto.server", reason="needs moto[server] (requirements-dev.txt)")
import boto3  # noqa: E402 - installed with moto[server]

from tests.object_stores import holding, iam_enforced, s3_server  # noqa: E402

SECRET = "test-secret-key-not-to-be-stored"


@pytest.fixture(scope="module")
def s3_endpoint():
    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def bucket(s3_endpoint, monkeypatch, small_images) -> tuple[str, object, list[str]]:
    """A bucket holding 40 of the bundled images (real JPEGs) and one broken file under photos/."""
    for key, value in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    name = f"b{time.monotonic_ns()}"
    client.create_bucket(Bucket=name)
    keys = []
    for f in sorted(small_images.rglob("*.jpg"))[:40]:
        key = f"photos/{f.relative_to(small_images).as_posix()}"
        client.upload_file(str(f), name, key)
        keys.append(key)
    client.put_object(Bucket=name, Key="photos/cat/broken.jpg", Body=b"\xff\xd8\xff\xe0 not a jpeg")
    client.put_object(Bucket=name, Key="photos/notes.txt", Body=b"not an image")
    return name, client, keys


def test_a_bucket_is_scanned_embedded_and_searched_as_a_folder_is(bucket, small_images, tmp_path, capsys,
                                                                   monkeypatch):
    name, client, keys = bucket
    ws = tmp_path / "ws"
    assert main(["run", f"s3://{name}/photos", "-w", str(ws), "--epochs", "0.3", "--batch-size", "32",
                 "--map-method", "pca"]) == 0
    out = capsys.readouterr().out
    assert "41 objects listed, 41 downloaded, 0 gone;" in out  # the broken JPEG too: the scan judges it
    manifest = Workspace(ws).manifest()
    assert len(manifest) == 41 and (manifest["status"] == "ok").sum() == 40
    local = small_images / Path(keys[3]).relative_to("photos")
    hits = open_workspace(ws).search(local, k=3)
    assert hits["path"].iloc[0] == Path(keys[3]).relative_to("photos").as_posix()  # its own copy, found
    assert not holding(ws, SECRET)  # the endpoint's secret lands in no file of the workspace
    assert json.loads((ws / "workspace.json").read_text())["source"] == f"s3://{name}/photos"

    with running(ws) as (url, _):  # the lookup service (real uvicorn) reads the same mirror
        answer = requests.post(f"{url}/search", files={"image": local.open("rb")}, data={"k": "3"}, timeout=60).json()
        assert [r["id"] for r in answer["results"]] == hits["id"].tolist()
        thumb = requests.get(f"{url}/items/{answer['results'][0]['id']}/thumbnail", timeout=30)
        assert thumb.status_code == 200 and thumb.headers["content-type"].startswith("image/")
    app = start(monkeypatch, ws)  # the app reads the same mirror: its source named, thumbnails shown
    assert_clean(app)
    assert any(f"s3://{name}/photos" in c.value for c in app.caption)
    open_page(app, "Search")
    app.number_input(key="search_id").set_value(int(hits["id"].iloc[0])).run()
    assert_clean(app)
    assert len(app.image[-1].captions) == 12 and all("d=" in c for c in app.image[-1].captions)
    assert main(["select", "-w", str(ws), "--n", "5", "--name", "five"]) == 0
    assert main(["export", "-w", str(ws), "--selection", "five", "--to", str(tmp_path / "out")]) == 0
    exported = sorted((tmp_path / "out").rglob("*.jpg"))
    assert len(exported) == 5
    for f in exported:  # byte for byte the bucket's objects
        key = f"photos/{f.relative_to(tmp_path / 'out').as_posix()}"
        assert f.read_bytes() == client.get_object(Bucket=name, Key=key)["Body"].read()

    mirrored = {p: p.stat().st_mtime_ns for p in (ws / "mirror").rglob("*.jpg")}
    assert main(["scan", f"s3://{name}/photos/", "-w", str(ws)]) == 0  # unchanged (the same source): reads nothing
    assert "41 objects listed, 0 downloaded, 0 gone" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (ws / "mirror").rglob("*.jpg")} == mirrored

    changed, gone = keys[0], keys[1]
    client.put_object(Bucket=name, Key=changed, Body=(small_images / Path(keys[10]).relative_to("photos")).read_bytes())
    client.delete_object(Bucket=name, Key=gone)
    assert main(["scan", f"s3://{name}/photos", "-w", str(ws)]) == 0
    out = capsys.readouterr().out
    assert "40 objects listed, 1 downloaded, 1 gone" in out and "1 changed, 1 removed" in out
    after = Workspace(ws).manifest().set_index("path")
    assert after.loc[Path(gone).relative_to("photos").as_posix(), "status"] == "removed"
    assert after["id"].tolist() == manifest.set_index("path").loc[after.index, "id"].tolist()  # ids kept


def test_storage_options_and_an_unreachable_endpoint(bucket, tmp_path, capsys, monkeypatch):
    name, _, _ = bucket
    ws = tmp_path / "ws"
    options = json.dumps({"key": "testing", "secret": SECRET})
    assert main(["scan", f"s3://{name}/photos", "-w", str(ws), "--storage-options", options]) == 0
    assert not holding(ws, SECRET)
    assert main(["scan", f"s3://{name}/photos", "-w", str(ws), "--storage-options", "{nope"]) == 2
    assert "--storage-options is not JSON" in capsys.readouterr().err

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    t = time.perf_counter()
    assert main(["scan", f"s3://{name}/photos", "-w", str(tmp_path / "ws2")]) == 2
    assert time.perf_counter() - t < 60
    assert "cannot list" in capsys.readouterr().err


def test_a_denied_object_is_reported_and_skipped_and_a_denied_listing_fails(bucket, tmp_path, capsys):
    """moto's server with its IAM checks on: a reader whose policy denies one folder gets every other object and
    a reason for the denied one; a user with no policy at all gets a clear 'access denied' for the listing."""
    name, client, keys = bucket
    iam = boto3.client("iam")
    iam.create_user(UserName="reader")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"]},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{name}/photos/secret/*"}]}
    iam.put_user_policy(UserName="reader", PolicyName="read-but-secret", PolicyDocument=json.dumps(policy))
    reader = iam.create_access_key(UserName="reader")["AccessKey"]
    iam.create_user(UserName="stranger")
    stranger = iam.create_access_key(UserName="stranger")["AccessKey"]
    client.copy_object(Bucket=name, Key="photos/secret/hidden.jpg", CopySource={"Bucket": name, "Key": keys[0]})

    def as_user(key, ws):
        options = json.dumps({"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]})
        return main(["scan", f"s3://{name}/photos", "-w", str(ws), "--storage-options", options])

    with iam_enforced(client.meta.endpoint_url):
        assert as_user(reader, tmp_path / "ws") == 0
        out = capsys.readouterr().out
        assert "42 objects listed, 41 downloaded, 0 gone, 1 unreadable (secret/hidden.jpg: access denied" in out
        t = time.perf_counter()
        assert as_user(stranger, tmp_path / "ws2") == 2
        assert time.perf_counter() - t < 30  # a 403 is not retried
        assert "cannot list" in (err := capsys.readouterr().err) and "access denied" in err
    manifest = Workspace(tmp_path / "ws").manifest()
    assert len(manifest) == 41 and "secret/hidden.jpg" not in set(manifest["path"])
    record = json.loads((tmp_path / "ws" / "mirror.json").read_text())
    assert record["problems"][0]["key"] == "secret/hidden.jpg" and "access denied" in record["problems"][0]["problem"]


def test_the_app_builds_a_workspace_from_a_bucket_under_its_prefixes(bucket, monkeypatch, tmp_path):
    """The app's new-run form takes a bucket URL under `--root s3://...` (here the environment `curate app`
    gives the server), refuses one outside it, and the background run reads the bucket with the server's own
    credentials."""
    from curate import jobs
    from curate.ui.access import BUCKETS_ENV, ROOTS_ENV
    from tests.ui.test_app_explore import fill_run_form, wait_for

    name, _, _ = bucket
    monkeypatch.setenv(ROOTS_ENV, str(tmp_path))
    monkeypatch.setenv(BUCKETS_ENV, f"s3://{name}/photos")
    app = start(monkeypatch, None)
    fill_run_form(app, f"s3://{name}/other", tmp_path / "refused", 0.1)
    assert "outside the buckets this app may read" in app.error[0].value
    assert not (tmp_path / "refused").exists()

    target = tmp_path / "from_bucket"
    app = start(monkeypatch, None)
    fill_run_form(app, f"s3://{name}/photos/", target, 0.1)
    assert_clean(app)
    assert jobs.status(target)["args"][:4] == ["run", f"s3://{name}/photos", "-w", str(target.resolve())]
    status = wait_for(target, lambda s: s["state"] != "running")
    assert status["state"] == "finished" and status["returncode"] == 0, status["log_tail"]
    app.run()
    assert_clean(app)
    assert any(f"s3://{name}/photos" in c.value for c in app.caption)
    assert {m.label: m.value for m in app.metric}["Images"] == "41"
