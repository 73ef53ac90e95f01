"""The decoded-image cache: row-aligned with manifest ids, rebuilt on change, resumable."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from curate.data.cache import decode_square, image_cache
from curate.data.scan import scan_folder

SIZE = 16


class Crash(Exception):
    """Stands in for a kill -9 between two chunks of a build."""


@pytest.fixture
def folder(tmp_path, bundled_images, sample_copier) -> Path:
    """Ten real photos plus one empty file sorted among them (so a zero row sits mid-array)."""
    root = sample_copier(bundled_images, tmp_path / "imgs", ("ship", "truck"), 5)
    (root / "ship" / "4802b.jpg").write_bytes(b"")
    return root


def recorder():
    calls = []
    return calls, lambda done, total, info: calls.append(done)


def test_rows_follow_manifest_ids_with_zero_rows_for_skipped_images(folder, tmp_path):
    manifest, _ = scan_folder(folder)
    (folder / "truck" / next(iter(sorted(p.name for p in (folder / "truck").iterdir())))).unlink()
    manifest, _ = scan_folder(folder, manifest)  # one row `removed`, one `empty file`
    assert set(manifest["status"]) == {"ok", "empty file", "removed"}

    arr = image_cache(folder, manifest, SIZE, tmp_path / "cache", chunk=4)
    assert arr.shape == (len(manifest), SIZE, SIZE, 3) and arr.dtype == np.uint8
    for row in manifest.itertuples():
        if row.status == "ok":
            assert (arr[row.id] == decode_square(folder / row.path, SIZE)).all(), row.path
        else:
            assert not arr[row.id].any(), row.path


def test_second_call_reuses_the_cache_without_decoding(folder, tmp_path):
    manifest, _ = scan_folder(folder)
    first = np.array(image_cache(folder, manifest, SIZE, tmp_path / "cache", chunk=4))
    calls, progress = recorder()
    again = image_cache(folder, manifest, SIZE, tmp_path / "cache", progress=progress, chunk=4)
    assert calls == [] and (np.asarray(again) == first).all()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        f"images_{SIZE}.json", f"images_{SIZE}.keys.npy", f"images_{SIZE}.lock", f"images_{SIZE}.npy"]


def test_rebuilt_when_an_image_changes(folder, tmp_path, bundled_images):
    manifest, _ = scan_folder(folder)
    image_cache(folder, manifest, SIZE, tmp_path / "cache")
    changed = "ship/4800.jpg"
    shutil.copy(bundled_images / "horse" / "4800.jpg", folder / changed)
    manifest, summary = scan_folder(folder, manifest)
    assert summary.changed == 1
    calls, progress = recorder()
    arr = image_cache(folder, manifest, SIZE, tmp_path / "cache", progress=progress)
    assert calls, "a new fingerprint must rebuild the cache"
    row = int(manifest.loc[manifest["path"] == changed, "id"].iloc[0])
    assert (arr[row] == decode_square(bundled_images / "horse" / "4800.jpg", SIZE)).all()


def test_a_rebuild_decodes_only_new_and_changed_images(folder, tmp_path, bundled_images, monkeypatch):
    import curate.data.cache as cache_module

    manifest, _ = scan_folder(folder)
    image_cache(folder, manifest, SIZE, tmp_path / "cache")
    shutil.copy(bundled_images / "horse" / "4800.jpg", folder / "ship" / "4800.jpg")  # changed in place
    shutil.copy(bundled_images / "horse" / "4801.jpg", folder / "truck" / "new.jpg")  # added
    manifest, _ = scan_folder(folder, manifest)
    decoded = []

    def counting(path, size):  # the real decoder, counted
        decoded.append(Path(path).relative_to(folder).as_posix())
        return decode_square(path, size)

    monkeypatch.setattr(cache_module, "decode_square", counting)
    arr = image_cache(folder, manifest, SIZE, tmp_path / "cache")
    assert sorted(decoded) == ["ship/4800.jpg", "truck/new.jpg"]
    monkeypatch.undo()
    fresh = image_cache(folder, manifest, SIZE, tmp_path / "fresh")  # from scratch: the same pixels
    assert (np.asarray(arr) == np.asarray(fresh)).all()


def test_rebuilt_when_an_unreadable_file_is_added(folder, tmp_path):
    """A skipped file leaves the fingerprint alone but adds a manifest row: the cache must grow too."""
    manifest, _ = scan_folder(folder)
    image_cache(folder, manifest, SIZE, tmp_path / "cache")
    (folder / "zzz.jpg").write_text("not an image")
    manifest, _ = scan_folder(folder, manifest)
    arr = image_cache(folder, manifest, SIZE, tmp_path / "cache")
    assert len(arr) == len(manifest) and not arr[-1].any()


def test_interrupted_build_resumes_from_its_last_chunk(folder, tmp_path):
    manifest, _ = scan_folder(folder)
    cache = tmp_path / "cache"

    def crash_after_first_chunk(done, total, info):
        raise Crash(done)

    with pytest.raises(Crash):
        image_cache(folder, manifest, SIZE, cache, progress=crash_after_first_chunk, chunk=4)
    assert (cache / f"images_{SIZE}.partial.npy").exists() and not (cache / f"images_{SIZE}.npy").exists()

    calls, progress = recorder()
    arr = image_cache(folder, manifest, SIZE, cache, progress=progress, chunk=4)
    assert calls == [8, len(manifest)], "the first chunk (rows 0-3) is not decoded again"
    fresh = image_cache(folder, manifest, SIZE, tmp_path / "fresh", chunk=4)
    assert (np.asarray(arr) == np.asarray(fresh)).all()
    assert not any(p.name.startswith(f"images_{SIZE}.partial") for p in cache.iterdir())


def test_partial_build_of_another_manifest_is_not_resumed(folder, tmp_path, bundled_images):
    manifest, _ = scan_folder(folder)
    cache = tmp_path / "cache"

    def crash(done, total, info):
        raise Crash(done)

    with pytest.raises(Crash):
        image_cache(folder, manifest, SIZE, cache, progress=crash, chunk=4)
    shutil.copy(bundled_images / "horse" / "4801.jpg", folder / "ship" / "4800.jpg")  # row 0 changes
    manifest, _ = scan_folder(folder, manifest)
    calls, progress = recorder()
    arr = image_cache(folder, manifest, SIZE, cache, progress=progress, chunk=4)
    assert calls[0] == 4, "a stale partial build must start over from row 0"
    assert (arr[0] == decode_square(folder / "ship" / "4800.jpg", SIZE)).all()


def test_empty_manifest_gives_an_empty_cache(tmp_path):
    manifest, _ = scan_folder(tmp_path)
    arr = image_cache(tmp_path, manifest, SIZE, tmp_path / "cache")
    assert arr.shape == (0, SIZE, SIZE, 3)
