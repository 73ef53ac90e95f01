"""The image under the pointer on the Explore map.

plotly's hover labels hold text only, so the preview is drawn by a few lines of JavaScript beside
the map: on plotly's hover event it shows the point's thumbnail, cut from a sprite sheet of the
workspace's 32 px fingerprint thumbnails (`fingerprints.npy`, written by `curate quality`) and
stretched back to the image's aspect ratio. Sheet k holds ids 1024k .. 1024k + 1023 in a 32 x 32
grid, so the id alone says where a thumbnail is. The browser fetches only the sheets of the points
it hovers: a million-point map costs no more to open than a thousand-point one.

The sheets are served as files of a component folder this process declares (Streamlit serves a
declared component's folder), under a random token: the app's sign-in guards its pages, not that
route, so a sheet's address is only known to a page that was allowed to draw the map.
"""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import secrets
import shutil
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from curate import storage

GRID = 32  # thumbnails per sheet side
PER_SHEET = GRID * GRID
PREVIEW_PX = 128  # the preview's longer side
DONE = "complete"  # marker file: every sheet of the folder is written


def sheet(thumbs: np.ndarray) -> Image.Image:
    """An RGB sprite sheet of up to PER_SHEET (T, T, 3) uint8 YCbCr thumbnails, row-major on a GRID x GRID grid."""
    n, t = len(thumbs), thumbs.shape[1]
    if n > PER_SHEET:
        raise ValueError(f"{n} thumbnails do not fit one sheet of {PER_SHEET}")
    cells = np.zeros((PER_SHEET, t, t, 3), np.uint8)
    cells[:n] = thumbs
    grid = cells.reshape(GRID, GRID, t, t, 3).transpose(0, 2, 1, 3, 4).reshape(GRID * t, GRID * t, 3)
    return Image.fromarray(grid, mode="YCbCr").convert("RGB")


def write_sheets(thumbs: np.ndarray, aspect: np.ndarray, folder: Path) -> int:
    """`sheet_K.jpg` and `aspect_K.json` (width / height of each of its images, 1 where unknown) for
    every PER_SHEET rows of `thumbs` (N, T, T, 3) into `folder`; returns the number of sheets."""
    folder.mkdir(parents=True, exist_ok=True)
    count = -(-len(thumbs) // PER_SHEET)
    for k in range(count):
        rows = slice(k * PER_SHEET, (k + 1) * PER_SHEET)
        with storage.atomic_path(folder / f"sheet_{k}.jpg") as tmp:  # a browser never reads half a sheet
            sheet(np.asarray(thumbs[rows])).save(tmp, "JPEG", quality=85)
        ratios = [round(float(r), 3) if np.isfinite(r) and r > 0 else 1.0 for r in aspect[rows]]
        with storage.atomic_path(folder / f"aspect_{k}.json") as tmp:
            tmp.write_text(json.dumps(ratios))
    (folder / DONE).touch()
    return count


@lru_cache(maxsize=1)
def served_folder() -> tuple[str, Path]:
    """(URL path, folder) where this process serves sheets: a declared component's folder, a random token
    inside it. Declared once per process (Streamlit's component registry is per process)."""
    import streamlit as st
    import streamlit.components.v1 as components

    root = Path(tempfile.mkdtemp(prefix="curate-hover-"))
    atexit.register(shutil.rmtree, root, True)  # the sheets are this process's: gone when it ends
    token = secrets.token_urlsafe(16)
    (root / token).mkdir()
    (root / "index.html").write_text("<!doctype html>")  # a component folder needs a page; never shown
    name = components.declare_component("hover_sheets", path=str(root)).name
    base = st.get_option("server.baseUrlPath").strip("/")
    return f"{'/' + base if base else ''}/component/{name}/{token}", root / token


@dataclass(frozen=True)
class Sheets:
    """Where the hover script reads a workspace's sheets; they may still be being written."""
    url: str  # ends with "/"
    folder: Path

    @property
    def ready(self) -> bool:
        return (self.folder / DONE).exists()


def prepare_sheets(ws, fingerprints: Path, sizes: np.ndarray) -> Sheets | None:
    """The sheets of `ws` for these fingerprints (None without fingerprints), written by a background thread
    the first time: at 1M images that takes about 20 s, which the map should not wait for (a sheet the
    browser asks for early is simply not there yet, and the script asks again on the next hover).
    `sizes` (N, 2): width, height of each image (row = id)."""
    if not fingerprints.exists():
        return None
    stat = fingerprints.stat()
    key = hashlib.blake2s(f"{ws.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode() + sizes.tobytes(),
                          digest_size=8).hexdigest()  # new thumbnails or image sizes: new sheets
    url, folder = served_folder()
    sheets = Sheets(f"{url}/{key}/", folder / key)
    if not sheets.ready:
        thumbs = np.load(fingerprints, mmap_mode="r")
        with np.errstate(divide="ignore", invalid="ignore"):
            aspect = sizes[:, 0] / sizes[:, 1]
        threading.Thread(target=_write_quietly, args=(thumbs, aspect[:len(thumbs)], sheets.folder),
                         name=f"hover-sheets-{key}", daemon=True).start()
    return sheets


def _write_quietly(thumbs: np.ndarray, aspect: np.ndarray, folder: Path) -> None:
    with contextlib.suppress(FileNotFoundError):  # the app exited meanwhile and removed the served folder
        write_sheets(thumbs, aspect, folder)


SCRIPT = """<script>
const doc = window.parent.document, BASE = %(base)s, GRID = %(grid)d, SIDE = %(side)d;
const aspects = {};
const mine = [];  // (graph div, hover handler, unhover handler): removed when this frame goes
function preview() {
  let el = doc.getElementById("curate-hover");
  if (!el) {
    el = doc.createElement("div");
    el.id = "curate-hover";
    el.style.cssText = "position:fixed;z-index:100000;pointer-events:none;display:none;background-repeat:no-repeat;"
      + "border:1px solid #999;box-shadow:0 2px 10px rgba(0,0,0,.35);background-color:#fff";
    doc.body.appendChild(el);
  }
  return el;
}
function aspect(k) {  // null while sheet k is not written yet (its ratios are written after it)
  if (!(k in aspects)) aspects[k] = fetch(BASE + "aspect_" + k + ".json")
    .then(r => { if (!r.ok) throw new Error(r.status); return r.json(); })
    .catch(() => { delete aspects[k]; return null; });  // ask again on the next hover
  return aspects[k];
}
async function show(ev) {
  const p = ev.points && ev.points[0];
  if (!p || p.customdata === undefined || p.customdata === null) return;
  const id = Number(p.customdata), k = Math.floor(id / (GRID * GRID)), cell = id %% (GRID * GRID);
  const ratios = await aspect(k);
  if (!ratios) { hide(); return; }
  const r = ratios[cell] || 1;  // width / height
  const w = r >= 1 ? SIDE : Math.max(8, Math.round(SIDE * r)), h = r >= 1 ? Math.max(8, Math.round(SIDE / r)) : SIDE;
  const el = preview();
  Object.assign(el.style, {width: w + "px", height: h + "px", backgroundImage: "url(" + BASE + "sheet_" + k + ".jpg)",
    backgroundSize: (GRID * w) + "px " + (GRID * h) + "px",
    backgroundPosition: (-(cell %% GRID) * w) + "px " + (-Math.floor(cell / GRID) * h) + "px"});
  const e = ev.event || {clientX: 0, clientY: 0}, view = doc.defaultView;
  el.style.left = Math.min(e.clientX + 18, view.innerWidth - w - 8) + "px";
  el.style.top = Math.min(e.clientY + 18, view.innerHeight - h - 8) + "px";
  el.dataset.id = String(id);
  el.style.display = "block";
}
function hide() { preview().style.display = "none"; }
function attach() {
  doc.querySelectorAll(".js-plotly-plot").forEach(gd => {
    if (gd.__curateHover || !gd.on || !(gd.data || []).some(t => t.customdata)) return;
    gd.__curateHover = true;
    gd.on("plotly_hover", show);
    gd.on("plotly_unhover", hide);
    mine.push(gd);
  });
}
attach();
setInterval(attach, 1000);  // the map is redrawn (new div) when the view changes
window.addEventListener("unload", () => {
  mine.forEach(gd => { gd.removeListener("plotly_hover", show); gd.removeListener("plotly_unhover", hide);
                       gd.__curateHover = false; });
  hide();
});
</script>"""


def hover_previews(url: str) -> None:
    """Draw nothing visible: the script that shows each hovered point's image (sheets at `url`)."""
    import streamlit.components.v1 as components

    components.html(SCRIPT % {"base": json.dumps(url), "grid": GRID, "side": PREVIEW_PX}, height=0)
