"""Hover previews on the Explore map: the sprite sheets put id i where the script looks for it, on
the real thumbnails of a real workspace, and the Explore page serves them to its hover script."""
from __future__ import annotations

import json
import re
import time

import numpy as np
from PIL import Image

from curate.ui.hover import GRID, PER_SHEET, sheet, write_sheets
from curate.workspace import Workspace

from tests.apptest_helpers import assert_clean, open_page, start


def test_a_sheet_puts_id_i_in_row_i_div_grid_and_column_i_mod_grid(built_workspace):
    thumbs = np.load(Workspace(built_workspace).fingerprints_file)[:PER_SHEET]
    grid = np.asarray(sheet(thumbs))
    t = thumbs.shape[1]
    assert grid.shape == (GRID * t, GRID * t, 3)
    for i in (0, 1, GRID, 777, PER_SHEET - 1):
        expected = np.asarray(Image.fromarray(thumbs[i], mode="YCbCr").convert("RGB"))
        row, col = divmod(i, GRID)
        assert np.array_equal(grid[row * t:(row + 1) * t, col * t:(col + 1) * t], expected), i


def test_write_sheets_covers_every_id_with_its_aspect_ratio(built_workspace, tmp_path):
    ws = Workspace(built_workspace)
    thumbs = np.load(ws.fingerprints_file)
    sizes = ws.manifest()[["width", "height"]].to_numpy(np.float64)
    count = write_sheets(thumbs, sizes[:, 0] / sizes[:, 1], tmp_path)
    assert count == -(-len(thumbs) // PER_SHEET) == 2  # 2,000 images
    last = json.loads((tmp_path / "aspect_1.json").read_text())
    assert len(last) == len(thumbs) - PER_SHEET and all(r == 1.0 for r in last)  # CIFAR: square images
    with Image.open(tmp_path / "sheet_1.jpg") as img:
        assert img.size == (GRID * thumbs.shape[1],) * 2 and img.format == "JPEG"
    assert not list(tmp_path.glob("*.tmp"))


def test_explore_serves_the_sheets_to_its_hover_script(monkeypatch, built_workspace):
    at = open_page(start(monkeypatch, built_workspace), "Explore")
    assert_clean(at)
    scripts = [e.proto.srcdoc for e in at.get("iframe") if "curate-hover" in e.proto.srcdoc]
    assert len(scripts) == 1, "no hover script on the Explore page"
    base = re.search(r'BASE = "([^"]+)"', scripts[0])[1]
    assert re.fullmatch(r"/component/[\w.]+/[\w-]{20,}/[0-9a-f]{16}/", base), base  # a random token in the path
    from curate.ui.hover import DONE, served_folder
    folder = served_folder()[1] / base.rstrip("/").rsplit("/", 1)[1]
    _wait_for(folder / DONE)  # written by a background thread
    assert (folder / "sheet_0.jpg").exists() and (folder / "aspect_1.json").exists()


def test_the_sheets_are_written_in_the_background(built_workspace, tmp_path):
    """The map does not wait for the sheets (at 1M images they take about 20 s): `prepare_sheets` returns while a
    thread writes them, and the folder is complete once the thread is done."""
    from curate.ui.hover import DONE, prepare_sheets

    ws = Workspace(built_workspace)
    thumbs = np.load(ws.fingerprints_file)
    many = tmp_path / "fingerprints.npy"
    np.save(many, np.tile(thumbs, (25, 1, 1, 1)))  # 50,000 thumbnails: 49 sheets, about a second of writing
    sizes = np.tile(ws.manifest()[["width", "height"]].to_numpy(np.float64), (25, 1))
    sheets = prepare_sheets(ws, many, sizes)
    assert not sheets.ready and not (sheets.folder / DONE).exists()  # returned before the writing ended
    _wait_for(sheets.folder / DONE)
    assert sheets.ready and len(list(sheets.folder.glob("sheet_*.jpg"))) == 49
    assert len(json.loads((sheets.folder / "aspect_48.json").read_text())) == 50_000 - 48 * PER_SHEET
    assert prepare_sheets(ws, many, sizes) == sheets  # the same thumbnails: the same, finished sheets


def _wait_for(path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} not written in {seconds} s"
        time.sleep(0.05)
