"""Exporting images to a folder (curate.export.folder): layout, modes, idempotence, path safety."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from curate import storage
from curate.data.scan import scan_folder
from curate.export import export_files
from curate.steps.export import export_selection
from curate.workspace import Workspace


@pytest.fixture
def root(tmp_path, bundled_images) -> Path:
    """Two real photos in each of three class folders."""
    root = tmp_path / "images"
    for cls in ("airplane", "bird", "deer"):
        (root / cls).mkdir(parents=True)
        for f in sorted((bundled_images / cls).glob("*.jpg"))[:2]:
            shutil.copy(f, root / cls / f.name)
    return root


@pytest.fixture
def rows(root) -> pd.DataFrame:
    manifest, _ = scan_folder(root)
    return manifest[["id", "path", "label", "sha1"]]


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under folder (not following links): kind, inode and mtime, to detect rewrites."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            out[p.relative_to(folder).as_posix()] = (p.is_symlink(), st.st_ino, st.st_mtime_ns)
    return out


def test_copy_keeps_class_folders_and_writes_a_manifest(root, rows, tmp_path):
    target = tmp_path / "out"
    csv = export_files(root, rows, target, "copy")
    assert csv == target.resolve() / "manifest.csv"
    for rel in rows["path"]:
        copy = target / rel
        assert copy.is_file() and not copy.is_symlink()
        assert copy.read_bytes() == (root / rel).read_bytes()
    assert sorted(p.name for p in target.iterdir()) == ["airplane", "bird", "deer", "manifest.csv", "manifest.json",
                                                        "manifest.parquet"]
    table = pd.read_csv(csv)
    assert list(table["id"]) == list(rows["id"]) and list(table["label"]) == list(rows["label"])
    assert list(table["exported"]) == list(rows["path"])
    assert all(Path(s) == (root / p).resolve() for s, p in zip(table["source"], table["path"]))


def test_symlink_mode_links_to_the_sources(root, rows, tmp_path):
    target = tmp_path / "out"
    export_files(root, rows, target, "symlink")
    for rel in rows["path"]:
        link = target / rel
        assert link.is_symlink() and link.resolve() == (root / rel).resolve()


def test_list_mode_writes_only_the_manifest(root, rows, tmp_path):
    target = tmp_path / "out"
    csv = export_files(root, rows, target, "list")
    assert sorted(os.listdir(target)) == ["manifest.csv", "manifest.json", "manifest.parquet"]
    table = pd.read_csv(csv)
    assert len(table) == len(rows) and table["exported"].isna().all()
    assert all(Path(s).is_file() for s in table["source"])


@pytest.mark.parametrize("mode", ["copy", "symlink", "hardlink", "list"])
def test_re_export_is_idempotent(root, rows, tmp_path, mode):
    target = tmp_path / "out"
    export_files(root, rows, target, mode)
    before, csv_before = snapshot(target), (target / "manifest.csv").read_text()
    export_files(root, rows, target, mode)
    after = snapshot(target)
    assert (target / "manifest.csv").read_text() == csv_before
    for name in ("manifest.csv", "manifest.json", "manifest.parquet"):  # rewritten atomically, same content
        del before[name], after[name]
    assert after == before, "no exported file is rewritten"


def test_re_export_refreshes_a_copy_whose_source_changed(root, rows, tmp_path, bundled_images):
    target = tmp_path / "out"
    export_files(root, rows, target, "copy")
    rel = rows["path"].iloc[0]
    shutil.copy(bundled_images / "frog" / "4800.jpg", root / rel)
    export_files(root, rows, target, "copy")
    assert (target / rel).read_bytes() == (root / rel).read_bytes()


def test_switching_modes_on_one_target_replaces_links_and_copies(root, rows, tmp_path):
    target = tmp_path / "out"
    export_files(root, rows, target, "symlink")
    export_files(root, rows, target, "copy")
    rel = rows["path"].iloc[0]
    assert not (target / rel).is_symlink() and (target / rel).read_bytes() == (root / rel).read_bytes()
    assert (root / rel).is_file() and not (root / rel).is_symlink(), "the source is untouched"
    export_files(root, rows, target, "symlink")
    assert (target / rel).is_symlink()


@pytest.mark.parametrize("bad_path", ["../escape.jpg", "airplane/../../escape.jpg", "/etc/hostname", "link_out.jpg"])
def test_paths_escaping_the_root_are_refused_before_anything_is_written(root, rows, tmp_path, bad_path):
    outside = tmp_path / "escape.jpg"
    outside.write_bytes((root / rows["path"].iloc[0]).read_bytes())
    os.symlink(outside, root / "link_out.jpg")
    target = tmp_path / "deep" / "out"
    evil = pd.concat([rows, pd.DataFrame({"id": [99], "path": [bad_path], "label": [None], "sha1": [None]})])
    for mode in ("copy", "symlink", "list"):
        with pytest.raises(PermissionError, match="outside|refusing"):
            export_files(root, evil, target, mode)
    assert sorted(os.listdir(tmp_path)) == ["escape.jpg", "images"], "nothing is written when one path is bad"


def test_a_target_sub_folder_linking_outside_is_refused(root, rows, tmp_path):
    target, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    target.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, target / "bird")
    with pytest.raises(PermissionError, match="leads outside"):
        export_files(root, rows, target, "copy")
    assert os.listdir(elsewhere) == []


def test_exporting_into_the_image_folder_is_refused(root, rows):
    """Symlink mode onto the root itself would replace every image by a link to itself."""
    originals = {rel: (root / rel).read_bytes() for rel in rows["path"]}
    for target, mode in ((root, "symlink"), (root, "copy"), (root / "exports", "copy")):
        with pytest.raises(ValueError, match="inside the image folder"):
            export_files(root, rows, target, mode)
    assert all((root / rel).read_bytes() == data and not (root / rel).is_symlink() for rel, data in originals.items())
    assert not (root / "exports").exists()


def test_unknown_mode_is_refused(root, rows, tmp_path):
    with pytest.raises(ValueError, match="export mode"):
        export_files(root, rows, tmp_path / "out", "move")


def test_export_selection_step_writes_ranked_ok_rows(root, tmp_path):
    """The `curate export` step on a hand-made workspace: rank order, skipped rows left out, sidecar."""
    (root / "bird" / "broken.jpg").write_bytes(b"")
    ws = Workspace.create(tmp_path / "ws", root)
    manifest, _ = scan_folder(ws.root)
    ws.save_manifest(manifest)
    broken = int(manifest.loc[manifest["path"] == "bird/broken.jpg", "id"].iloc[0])
    chosen = pd.DataFrame({"id": [6, broken, 0], "rank": [0, 1, 2], "score": [0.9, 0.5, 0.1]})
    storage.write_parquet(ws.selections_dir / "pick.parquet", chosen)
    storage.write_json(ws.selections_dir / "pick.json", {"strategy": "hand", "seed": 0})

    csv = export_selection(ws, "pick", tmp_path / "out", "copy")
    table = pd.read_csv(csv)
    assert list(table["id"]) == [6, 0] and list(table["rank"]) == [0, 2]
    assert all((tmp_path / "out" / p).is_file() for p in table["path"])
    document = storage.read_json(tmp_path / "out" / "manifest.json")
    assert document["n"] == 2 and document["provenance"]["strategy"] == "hand"
    assert document["provenance"]["selection"] == "pick" and document["provenance"]["mode"] == "copy"
    assert [r["id"] for r in document["images"]] == [6, 0]
    assert list(pd.read_parquet(tmp_path / "out" / "manifest.parquet")["id"]) == [6, 0]


def test_hardlink_mode_shares_the_inode(root, rows, tmp_path):
    target = tmp_path / "out"
    export_files(root, rows, target, "hardlink")
    for rel in rows["path"]:
        link = target / rel
        assert not link.is_symlink() and os.path.samefile(link, root / rel)


def test_zip_export_holds_the_images_and_manifests(root, tmp_path):
    import io
    import zipfile

    from curate.steps.export import zip_selection
    ws = Workspace.create(tmp_path / "ws", root)
    manifest, _ = scan_folder(ws.root)
    ws.save_manifest(manifest)
    buffer = io.BytesIO()
    assert zip_selection(ws, buffer, ids=[3, 1]) == 2
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as zf:
        names = set(zf.namelist())
        paths = manifest["path"].iloc[[3, 1]].tolist()
        assert names == {*paths, "manifest.csv", "manifest.json"}
        assert zf.read(paths[0]) == (root / paths[0]).read_bytes()
        assert list(pd.read_csv(zf.open("manifest.csv"))["id"]) == [3, 1]


def test_zip_refuses_a_path_that_would_unpack_outside(root, tmp_path):
    import io

    from curate.export import export_zip
    with pytest.raises(PermissionError):
        export_zip(root, pd.DataFrame({"id": [0], "path": ["../evil.jpg"]}), io.BytesIO())


def test_a_source_that_became_a_pipe_is_refused_not_read(root, rows, tmp_path):
    """Export and zip read every source: one replaced by a named pipe after the scan would block them forever."""
    from curate.export import export_zip

    victim = root / rows["path"].iloc[0]
    victim.unlink()
    os.mkfifo(victim)
    with pytest.raises(PermissionError, match="not a regular file"):
        export_files(root, rows, tmp_path / "out", "copy")
    assert not (tmp_path / "out").exists()  # refused before anything was written
    with pytest.raises(PermissionError, match="not a regular file"):
        export_zip(root, rows, tmp_path / "out.zip")
