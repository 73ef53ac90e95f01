"""Scanning folders into the manifest: bad inputs, rescan semantics, the `curate scan` command."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from curate.cli import main
from curate.data.manifest import MANIFEST_COLUMNS, validate
from curate.data.scan import scan_folder
from fixtures.bad_images import IGNORED, write_bad_folder

pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


@pytest.fixture(scope="module")
def bad(tmp_path_factory, bundled_images):
    root = tmp_path_factory.mktemp("scan") / "bad"
    return root, write_bad_folder(root, bundled_images / "cat" / "4800.jpg")


@pytest.fixture
def photos(tmp_path, bundled_images, sample_copier) -> Path:
    """Six real photos in two class folders, in a folder the test may change."""
    return sample_copier(bundled_images, tmp_path / "photos", ("cat", "dog"), 3)


def by_path(manifest: pd.DataFrame) -> dict[str, dict]:
    return {row["path"]: row for row in manifest.to_dict("records")}


def test_bad_inputs_are_ingested_or_reported_never_fatal(bad):
    root, expect = bad
    manifest, summary = scan_folder(root)
    validate(manifest)
    rows = by_path(manifest)
    assert set(rows) == set(expect), "every image-named file gets exactly one row"
    for rel, want in expect.items():
        row = rows[rel]
        assert row["status"].startswith(want.status), (rel, row["status"])
        if want.status == "ok":
            assert (row["width"], row["height"]) == want.size, rel
            assert row["bytes"] > 0 and len(row["sha1"]) == 40, rel
        else:
            assert (row["width"], row["height"]) == (0, 0), rel
    for ignored in IGNORED:
        assert ignored not in rows
    n_ok = sum(e.status == "ok" for e in expect.values())
    n_bad = len(expect) - n_ok
    assert (summary.total, summary.ok, summary.skipped, summary.added) == (len(expect), n_ok, n_bad, len(expect))
    assert f"{n_ok} ok, {n_bad} skipped" in summary.line()


def test_labels_and_unicode_names_survive_a_parquet_round_trip(bad, tmp_path):
    root, _ = bad
    manifest, _ = scan_folder(root)
    manifest.to_parquet(tmp_path / "m.parquet", index=False)
    back = validate(pd.read_parquet(tmp_path / "m.parquet"))
    row = by_path(back)["café/日本語 ✓.png"]
    assert row["label"] == "café" and row["status"] == "ok"
    assert (root / row["path"]).is_file()


def test_rescan_of_an_unchanged_folder_changes_nothing(bad):
    root, _ = bad
    first, _ = scan_folder(root)
    again, summary = scan_folder(root, first)
    pd.testing.assert_frame_equal(first, again)
    assert (summary.added, summary.changed, summary.removed) == (0, 0, 0)


def test_file_name_that_is_not_utf8_is_reported_not_fatal(tmp_path, bundled_images):
    root = tmp_path / "imgs"
    root.mkdir()
    shutil.copy(bundled_images / "cat" / "4800.jpg", root / "fine.jpg")
    try:
        with open(os.fsencode(root) + b"/caf\xe9.jpg", "wb") as f:
            f.write((bundled_images / "cat" / "4801.jpg").read_bytes())
    except (OSError, UnicodeError):
        pytest.skip("this file system insists on UTF-8 names")
    manifest, summary = scan_folder(root)
    manifest.to_parquet(tmp_path / "m.parquet", index=False)  # the crash this guards against
    rows = by_path(manifest)
    assert rows["caf\\xe9.jpg"]["status"].startswith("bad file name")
    assert rows["fine.jpg"]["status"] == "ok" and summary.skipped == 1
    again, _ = scan_folder(root, manifest)
    assert by_path(again)["caf\\xe9.jpg"]["id"] == rows["caf\\xe9.jpg"]["id"]


def test_rescan_keeps_ids_for_added_changed_removed_and_returning_files(photos, bundled_images):
    first, s1 = scan_folder(photos)
    assert list(first["id"]) == list(range(6)) and s1.added == 6
    ids = {r["path"]: r["id"] for r in first.to_dict("records")}
    last = max(ids, key=ids.get)  # the file holding the largest id, to check ids are not reused

    # remove the newest file, change one, add two
    removed_bytes = (photos / last).read_bytes()
    (photos / last).unlink()
    changed = "cat/4800.jpg"
    old_row = by_path(first)[changed]
    (photos / changed).write_bytes((bundled_images / "bird" / "4800.jpg").read_bytes())
    os.utime(photos / changed, ns=(old_row["mtime"] + 10**9, old_row["mtime"] + 10**9))
    (photos / "new").mkdir()
    for name in ("b.jpg", "a.jpg"):
        shutil.copy(bundled_images / "frog" / "4800.jpg", photos / "new" / name)

    second, s2 = scan_folder(photos, roundtrip(first))
    validate(second)
    rows = by_path(second)
    assert (s2.added, s2.changed, s2.removed, s2.total) == (2, 1, 1, 7)
    assert rows[last]["status"] == "removed" and rows[last]["id"] == ids[last]
    assert rows[changed]["id"] == ids[changed]
    assert rows[changed]["sha1"] != old_row["sha1"] and rows[changed]["bytes"] != old_row["bytes"]
    assert rows["new/a.jpg"]["id"] == 6 and rows["new/b.jpg"]["id"] == 7  # after the max, in path order
    for path, image_id in ids.items():
        assert rows[path]["id"] == image_id, "ids are never renumbered"

    # a rescan does not count the same removal twice
    third, s3 = scan_folder(photos, roundtrip(second))
    assert (s3.added, s3.changed, s3.removed) == (0, 0, 0)
    assert by_path(third)[last]["status"] == "removed"

    # the file comes back: its old id, ok again
    (photos / last).write_bytes(removed_bytes)
    fourth, s4 = scan_folder(photos, roundtrip(third))
    validate(fourth)
    assert by_path(fourth)[last]["id"] == ids[last] and by_path(fourth)[last]["status"] == "ok"
    assert (s4.added, s4.changed, s4.removed, len(fourth)) == (0, 1, 0, 8)
    assert (fourth["id"].to_numpy() == np.arange(8)).all()


def test_touching_a_file_rereads_it_but_is_not_a_change(photos):
    first, _ = scan_folder(photos)
    os.utime(photos / "dog" / "4800.jpg", ns=(1, 10**18))
    second, summary = scan_folder(photos, first)
    assert summary.changed == 0
    assert by_path(second)["dog/4800.jpg"]["mtime"] == 10**18
    assert by_path(second)["dog/4800.jpg"]["sha1"] == by_path(first)["dog/4800.jpg"]["sha1"]


def test_a_good_file_turning_bad_keeps_its_id_with_a_reason(photos):
    first, _ = scan_folder(photos)
    target = photos / "cat" / "4801.jpg"
    target.write_bytes(target.read_bytes()[:200])
    second, summary = scan_folder(photos, first)
    row = by_path(second)["cat/4801.jpg"]
    assert row["id"] == by_path(first)["cat/4801.jpg"]["id"]
    assert row["status"].startswith("unreadable") and summary.changed == 1 and summary.skipped == 1


def test_scan_refuses_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        scan_folder(tmp_path / "nope")


def test_empty_folder_gives_an_empty_valid_manifest(tmp_path):
    manifest, summary = scan_folder(tmp_path)
    assert list(manifest.columns) == MANIFEST_COLUMNS and len(validate(manifest)) == 0
    assert summary.total == 0


def test_cli_scan_of_bad_folder_succeeds_and_lists_reasons(bad, tmp_path, capsys):
    root, expect = bad
    ws = tmp_path / "ws"
    assert main(["scan", str(root), "-w", str(ws)]) == 0
    out = capsys.readouterr().out
    n_ok = sum(e.status == "ok" for e in expect.values())
    assert f"{len(expect)} files: {n_ok} ok, {len(expect) - n_ok} skipped" in out
    assert "skipped bad/empty.jpg: empty file" in out
    assert "skipped bad/truncated.jpg: unreadable: image file is truncated" in out
    assert "skipped links/outside.jpg: outside the image folder" in out
    assert (ws / "manifest.parquet").is_file()

    assert main(["scan", str(root), "-w", str(ws)]) == 0  # rescan through the saved manifest
    assert "0 new, 0 changed, 0 removed" in capsys.readouterr().out


def test_cli_scan_of_a_folder_without_readable_images_fails_cleanly(tmp_path, capsys):
    root = tmp_path / "junk"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"")
    (root / "b.png").write_text("not a png")
    assert main(["scan", str(root), "-w", str(tmp_path / "ws")]) == 2
    err = capsys.readouterr().err
    assert "no readable images" in err and "2 skipped" in err


def roundtrip(manifest: pd.DataFrame) -> pd.DataFrame:
    """The manifest as the next scan sees it: saved to parquet and read back."""
    import io

    buf = io.BytesIO()
    manifest.to_parquet(buf, index=False)
    return validate(pd.read_parquet(io.BytesIO(buf.getvalue())))


def test_a_missing_folder_leaves_no_workspace_behind(tmp_path):
    from curate.steps.scan import scan
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        scan(tmp_path / "nope", tmp_path / "ws")
    assert not (tmp_path / "ws").exists()


def test_special_files_named_like_images_are_reported_never_opened(tmp_path, bundled_images):
    """A named pipe called x.jpg would block `open` forever: the scan skips it from its stat, with a reason."""
    root = tmp_path / "images"
    root.mkdir()
    good = next(bundled_images.rglob("*.jpg"))
    shutil.copy2(good, root / "good.jpg")
    os.mkfifo(root / "pipe.jpg")
    os.symlink("/dev/zero", root / "zero.png")  # outside the folder: refused as such before its kind matters
    os.symlink(root / "pipe.jpg", root / "link_to_pipe.jpg")  # inside, but leads to the pipe
    manifest, summary = scan_folder(root)  # returns at all: nothing blocked
    status = dict(zip(manifest["path"], manifest["status"]))
    assert status["good.jpg"] == "ok" and summary.ok == 1
    assert status["pipe.jpg"] == status["link_to_pipe.jpg"] == "not a regular file: named pipe"
    assert status["zero.png"].startswith("outside the image folder")


def test_readers_refuse_a_file_that_became_a_pipe_after_the_scan(tmp_path, bundled_images):
    from curate.workspace import resolve_inside

    root = tmp_path / "images"
    root.mkdir()
    os.mkfifo(root / "a.jpg")
    with pytest.raises(PermissionError, match="not a regular file"):
        resolve_inside(root, "a.jpg")
    shutil.copy2(next(bundled_images.rglob("*.jpg")), root / "b.jpg")
    assert resolve_inside(root, "b.jpg") == (root / "b.jpg").resolve()
    assert resolve_inside(root, "missing.jpg") == (root / "missing.jpg").resolve()  # a missing file is the caller's


def test_app_thumbnail_of_a_pipe_is_a_placeholder(tmp_path):
    import io

    from PIL import Image

    from curate.ui.thumbnails import thumbnail_inside

    os.mkfifo(tmp_path / "a.jpg")
    png = thumbnail_inside(tmp_path, "a.jpg", 96)
    assert Image.open(io.BytesIO(png)).size == (96, 96)  # the grey placeholder, not a hang


def test_scanning_large_pngs_decodes_each_once_within_the_memory_budget(tmp_path):
    """Four 6,000 x 6,000 PNGs (108 MB each decoded) scanned by four threads in a fresh process: the
    decodes share the budget and the header re-read does not decode again, so the process peaks at
    about one decode above its start (it peaked at two to three before)."""
    import subprocess
    import sys

    from PIL import Image

    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (6000, 6000), (40 * i, 90, 200)).save(folder / f"big_{i}.png", compress_level=1)
    script = ("from pathlib import Path\n"
              "def hwm():\n"
              "    return next(int(l.split()[1]) for l in Path('/proc/self/status').read_text().splitlines()"
              " if l.startswith('VmHWM'))\n"
              "from curate.data.scan import scan_folder\n"
              "import curate.data.images as images\n"
              "images.DECODE_MEMORY.limit = 250 * 2**20\n"
              "start = hwm()\n"
              f"manifest, _ = scan_folder({str(folder)!r}, workers=4)\n"
              "print((manifest['status'] == 'ok').sum(), (hwm() - start) // 1024)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    ok, grew_mb = (int(v) for v in out.stdout.split())
    assert ok == 4 and grew_mb < 200, out.stdout  # one decode is 108 MB (+ its 8-bit copy for the check)


def test_pixel_and_file_size_caps_are_configurable(tmp_path):
    """`--max-pixels` (JPEGs, decoded at reduced scale, may have 4x more) and `--max-file-mb` refuse with
    a reason that names the cap; the defaults take all of these."""
    import subprocess
    import sys

    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(images / "small.png")  # 1,600 px
    Image.fromarray(rng.integers(0, 255, (50, 50, 3), np.uint8)).save(images / "wide.png")  # 2,500 px
    Image.fromarray(rng.integers(0, 255, (60, 60, 3), np.uint8)).save(images / "photo.jpg")  # 3,600 px
    Image.fromarray(rng.integers(0, 255, (1000, 1000, 3), np.uint8)).save(images / "noise.png")  # ~3 MB

    def reasons(*flags: str) -> dict[str, str]:
        ws = tmp_path / f"ws{len(flags)}"
        done = subprocess.run([sys.executable, "-m", "curate", "scan", str(images), "-w", str(ws), *flags],
                              capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                                                   if not k.startswith("CURATE_MAX")})
        assert done.returncode == 0, done.stderr
        manifest = pd.read_parquet(ws / "manifest.parquet")
        return dict(zip(manifest["path"], manifest["status"]))

    assert set(reasons().values()) == {"ok"}
    capped = reasons("--max-pixels", "2000", "--max-file-mb", "2")
    assert capped["small.png"] == "ok" and capped["photo.jpg"] == "ok"  # a JPEG may have 4 x 2,000
    assert capped["wide.png"].startswith("too large: 50x50 is more than 2,000 pixels") and "--max-pixels" in capped["wide.png"]
    assert capped["noise.png"].startswith("too large:") and "at most 2 MB per file" in capped["noise.png"]


def test_listing_matches_a_sorted_os_walk(tmp_path):
    """The scan's own scandir walk lists what a sorted os.walk lists, in the same order: a folder's files
    by name, then its sub-folders; hidden files and folders and non-images left out, folder links not followed."""
    from curate.data.images import is_image_path
    from curate.data.scan import list_images

    root = tmp_path / "tree"
    for rel in ("b.jpg", "a.PNG", "z/1.jpg", "a_dir/x.webp", "a_dir/deep/y.jpg", "a_dir/deep/notes.txt",
                ".hidden/h.jpg", "a_dir/.h.jpg", "m.jpg/inside.jpg", "ü/ñ.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    (root / "linked_dir").symlink_to(root / "z", target_is_directory=True)
    (root / "link.jpg").symlink_to(root / "b.jpg")
    (root / "broken.jpg").symlink_to(root / "gone.jpg")

    expected = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        expected += [Path(dirpath, f) for f in sorted(filenames) if is_image_path(Path(f))]
    assert list_images(root) == expected
    assert {p.relative_to(root).as_posix() for p in expected} == {
        "b.jpg", "a.PNG", "z/1.jpg", "a_dir/x.webp", "a_dir/deep/y.jpg", "m.jpg/inside.jpg", "ü/ñ.jpg", "link.jpg",
        "broken.jpg"}
