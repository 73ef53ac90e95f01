"""`--metadata FILE` (issue 30 parts 3 and 5): a team's columns joined by path onto images and their objects,
read again on a rescan, never able to change ids or paths, and clear messages for files that do not fit."""
from __future__ import annotations

import pandas as pd
import pytest

from curate.cli import main
from curate.data.where import where_mask
from curate.workspace import Workspace


def _scan(images, ws, *extra) -> int:
    return main(["scan", str(images), "-w", str(ws), *extra])


def test_columns_join_by_path_and_a_rescan_reads_the_file_again(small_images, tmp_path, capsys):
    files = sorted(p.relative_to(small_images).as_posix() for p in small_images.rglob("*.jpg"))
    meta = pd.DataFrame({"path": [files[0], "./" + files[1], str(small_images / files[2]), "gone/x.jpg"],
                         "site": ["berlin", "paris", "paris", "rome"], "vehicle": [1, 2, 3, 4]})
    meta.to_parquet(tmp_path / "meta.parquet")
    assert _scan(small_images, tmp_path / "ws", "--metadata", str(tmp_path / "meta.parquet")) == 0
    out = capsys.readouterr().out
    assert "metadata: 2 columns (site, vehicle)" in out and "on 3 of its 4 paths" in out and "'gone/x.jpg'" in out
    m = Workspace(tmp_path / "ws").manifest()
    before = m[["id", "path", "sha1"]].copy()
    by_path = m.set_index("path")
    assert by_path.loc[files[0], "site"] == "berlin" and by_path.loc[files[2], "vehicle"] == 3
    assert by_path["site"].isna().sum() == len(m) - 3
    assert m["path"][where_mask(m, "site = 'paris' AND vehicle >= 2")].tolist() == [files[1], files[2]]

    meta.assign(site=["x", "y", "z", "w"]).drop(columns="vehicle").to_parquet(tmp_path / "meta.parquet")
    assert _scan(small_images, tmp_path / "ws") == 0  # the recorded file, read again: new values, a column gone
    m2 = Workspace(tmp_path / "ws").manifest()
    assert "vehicle" not in m2.columns and m2.set_index("path").loc[files[0], "site"] == "x"
    pd.testing.assert_frame_equal(m2[["id", "path", "sha1"]], before)  # ids and paths untouched


@pytest.mark.parametrize("content, message", [
    ("path,id\n{f},5\n", "column(s) id would replace curate's own"),
    ("path,status\n{f},ok\n", "column(s) status would replace"),
    ("path,site\nnowhere/1.jpg,a\n", "none of its 1 paths matches an item"),
    ("path,site\n{f},a\n{f},b\n", "listed twice"),
    ("file,site\n{f},a\n", "has no `path` column"),
])
def test_a_metadata_file_that_does_not_fit_is_refused_with_the_reason(small_images, tmp_path, capsys, content,
                                                                       message):
    first = sorted(p.relative_to(small_images).as_posix() for p in small_images.rglob("*.jpg"))[0]
    (tmp_path / "meta.csv").write_text(content.format(f=first))
    assert _scan(small_images, tmp_path / "ws", "--metadata", str(tmp_path / "meta.csv")) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "ws" / "manifest.parquet").exists()  # nothing half-joined was written


def test_a_metadata_file_of_another_kind_is_named(small_images, tmp_path, capsys):
    (tmp_path / "meta.xlsx").write_text("x")
    assert _scan(small_images, tmp_path / "ws", "--metadata", str(tmp_path / "meta.xlsx")) == 2
    assert "a .csv or .parquet file" in capsys.readouterr().err
