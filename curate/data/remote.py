"""Images in object storage (`s3://`, `gs://`, `az://`, any fsspec URL): listed and read through fsspec.

A bucket prefix is mirrored into the workspace (`mirror/`, rebuildable like `cache/`), and every later step
(decoding, thumbnails, the app, exports, the lookup service, `--engine ray`) reads the mirror as a local
folder: one read path for every reader, and a rescan that lists and reads nothing new. Each object's version
is its ETag (else size and modification time) from the listing, recorded in `mirror.json`; an object whose
version is unchanged is not downloaded again, a changed one is, a vanished one leaves the mirror (and the scan
marks it removed). Downloads stream into a temp file under the scan's size cap, then rename.

Endpoint and credentials come from the standard environment (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
profiles, ...) or `--storage-options JSON`; neither is ever written into the workspace. S3 calls time out
(connect 5 s, read 30 s) and retry with backoff (4 attempts), so an unreachable bucket fails with a reason
instead of hanging; an object that cannot be read is reported with its reason and the rest go on.
"""
from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from curate import storage
from curate.data.images import is_image_path
from curate.data.video import is_video_path
from curate.progress import Progress, report

log = logging.getLogger(__name__)

# S3 defaults: bounded waits and retries with backoff (botocore's "standard" mode); --storage-options wins
S3_DEFAULTS = {"config_kwargs": {"connect_timeout": 5, "read_timeout": 30,
                                 "retries": {"max_attempts": 4, "mode": "standard"}}}
# the object stores curate reads, each with the fsspec package that reads it (the one table of them)
PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs", "abfss": "adlfs"}
CHUNK = 1 << 20
SMALL_OBJECT = 8 << 20  # up to this size (by the listing), an object is fetched whole in one request
DOWNLOAD_THREADS = 8  # object storage is latency-bound: more requests in flight than cores


def is_url(location) -> bool:
    """True for a remote fsspec URL (s3://, gs://, az://, ...); a local path or file:// is not one."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def parse_storage_options(text: str | None) -> dict:
    if not text:
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--storage-options is not JSON: {err.msg} at character {err.pos}") from None
    if not isinstance(options, dict):
        raise ValueError("--storage-options is a JSON object, e.g. '{\"anon\": true}'")
    return options


def filesystem(url: str, options: dict | None = None):
    """(fsspec filesystem, path inside it) for `url`, with curate's timeouts for S3 under the given options."""
    import fsspec

    protocol = url.split("://", 1)[0]
    merged = dict(options or {})
    if PACKAGES.get(protocol) == "s3fs":
        config = {**S3_DEFAULTS["config_kwargs"], **merged.get("config_kwargs", {})}
        merged = {**merged, "config_kwargs": config}
    try:  # a new instance with no listings cache: a rescan must see the bucket as it is now (ETags, endpoint)
        fs, path = fsspec.core.url_to_fs(url, skip_instance_cache=True, use_listings_cache=False, **merged)
    except ImportError as err:
        raise ValueError(f"reading {protocol}:// needs {PACKAGES.get(protocol, 'its fsspec package')}: pip install "
                         f"{PACKAGES.get(protocol, '')} ({err})") from None
    return fs, path.rstrip("/")


@dataclass
class SyncSummary:
    listed: int = 0
    downloaded: int = 0
    deleted: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)  # (object key, reason)

    def line(self) -> str:
        shown = "; ".join(f"{key}: {why}" for key, why in self.problems[:3])
        more = f"; {len(self.problems) - 3} more in mirror.json" if len(self.problems) > 3 else ""
        bad = f", {len(self.problems)} unreadable ({shown}{more})" if self.problems else ""
        return f"{self.listed} objects listed, {self.downloaded} downloaded, {self.deleted} gone{bad}"


def list_objects(fs, base: str, url: str) -> dict[str, dict]:
    """{relative key: {"version", "size"}} of the images and videos under `base`, the path of `url` in `fs`."""
    protocol = url.split("://", 1)[0]
    try:
        found = fs.find(base, detail=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"nothing at {url}: check the bucket and prefix") from None
    except Exception as err:  # botocore/aiohttp/azure errors: unreachable endpoint, no credentials, access denied
        raise RuntimeError(f"cannot list {url}{endpoint_hint(protocol)}: {_reason(err)}") from None
    out = {}
    for key, info in found.items():
        rel = key[len(base):].lstrip("/")
        if info.get("type", "file") != "file" or not rel or not (is_image_path(rel) or is_video_path(rel)):
            continue
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        modified = _modified(info)
        version = info.get("ETag") or info.get("etag") or info.get("md5Hash") or f"{info.get('size')}@{modified}"
        out[rel] = {"version": str(version).strip('"'), "size": int(info.get("size") or 0)}
    return out


def _modified(info: dict) -> float | None:
    """The object's last modification (seconds since the epoch) from its listing: S3, GCS or Azure's field."""
    when = info.get("LastModified") or info.get("mtime") or info.get("last_modified") or info.get("updated")
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    return when.timestamp() if isinstance(when, datetime) else None


def sync(url: str, mirror: Path, record_file: Path, options: dict | None = None, max_bytes: int | None = None,
         progress: Progress | None = None) -> SyncSummary:
    """Mirror the images and videos under `url` into `mirror`: new and changed objects downloaded, vanished ones
    deleted, unchanged ones not touched; `record_file` keeps each object's version (never the credentials)."""
    fs, base = filesystem(url, options)
    report(progress, 0, 1, stage="list", unit="listing")  # a listing can take long: say it has begun
    listed = list_objects(fs, base, url)
    report(progress, 1, 1, stage="list", unit="listing")
    record = storage.read_json(record_file).get("objects", {}) if record_file.exists() else {}
    todo = [rel for rel, info in listed.items()
            if record.get(rel, {}).get("version") != info["version"] or not (mirror / rel).is_file()]
    summary = SyncSummary(listed=len(listed))
    done: dict[str, dict] = {rel: record[rel] for rel in listed if rel in record and rel not in todo}

    def fetch(rel: str) -> tuple[str, str | None]:
        size = listed[rel]["size"]
        if max_bytes is not None and size > max_bytes:
            return rel, f"too large: {size:,} bytes (the cap: --max-file-mb)"
        try:
            _download(fs, f"{base}/{rel}", mirror / rel, max_bytes, size)
        except Exception as err:
            return rel, _reason(err)
        return rel, None

    with ThreadPoolExecutor(DOWNLOAD_THREADS) as pool:
        for n, (rel, problem) in enumerate(pool.map(fetch, todo)):
            if problem is None:
                done[rel] = listed[rel]
                summary.downloaded += 1
            else:
                summary.problems.append((rel, problem))
                log.warning("skipped %s/%s: %s", url, rel, problem)
            report(progress, n + 1, len(todo), stage="download", unit="file")
    summary.deleted = _prune(mirror, set(done))
    storage.write_json(record_file, {"source": url, "objects": done,
                                     "problems": [{"key": k, "problem": p} for k, p in summary.problems]})
    return summary


def _download(fs, key: str, target: Path, max_bytes: int | None, size: int) -> None:
    """Fetch one object into `target` (temp file, then rename). A small object is one GET (`cat_file`: no HEAD
    first, which halves the requests for typical photos); a large one streams in chunks under the cap. The mirror
    file keeps its own (download) time: stamping the object's, at S3's one-second resolution, could hide a
    same-size rewrite from the next scan."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with storage.atomic_path(target) as tmp:
        if size <= SMALL_OBJECT:
            data = fs.cat_file(key)
            if max_bytes is not None and len(data) > max_bytes:
                raise ValueError(f"too large: {len(data):,} bytes (the cap: --max-file-mb)")
            tmp.write_bytes(data)
            return
        with fs.open(key, "rb", block_size=CHUNK) as src, open(tmp, "wb") as out:
            total = 0
            while chunk := src.read(CHUNK):
                total += len(chunk)
                if max_bytes is not None and total > max_bytes:
                    raise ValueError(f"too large: more than {max_bytes:,} bytes (the cap: --max-file-mb)")
                out.write(chunk)


def _prune(mirror: Path, keep: set[str]) -> int:
    """Delete mirrored files whose object is gone (or unreadable now); returns how many."""
    gone = 0
    for path in list(mirror.rglob("*")) if mirror.exists() else []:
        if path.is_file() and path.relative_to(mirror).as_posix() not in keep and not path.name.startswith("."):
            path.unlink()
            gone += 1
    return gone


def _reason(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    denied = ("AccessDenied", "Forbidden", "AuthorizationFailure", "AuthorizationPermissionMismatch",
              "AuthenticationFailed")  # S3, GCS, Azure
    if isinstance(err, PermissionError) or any(word in text for word in denied):
        return f"access denied ({text.splitlines()[0][:160]})"
    return f"{type(err).__name__}: {text.splitlines()[0][:200]}"


def endpoint_hint(protocol: str) -> str:
    """Where the standard environment points this protocol's client (never a key), for error messages."""
    package = PACKAGES.get(protocol)
    if package == "gcsfs" and os.environ.get("STORAGE_EMULATOR_HOST"):
        return f" (endpoint {os.environ['STORAGE_EMULATOR_HOST']} from STORAGE_EMULATOR_HOST)"
    if package == "adlfs":
        parts = dict(part.split("=", 1) for part in os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "").split(";")
                     if "=" in part)
        if "BlobEndpoint" in parts:
            return f" (endpoint {parts['BlobEndpoint']} from AZURE_STORAGE_CONNECTION_STRING)"
        account = parts.get("AccountName") or os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
        return f" (account {account})" if account else ""
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
    return f" (endpoint {endpoint} from AWS_ENDPOINT_URL)" if endpoint and package == "s3fs" else ""
