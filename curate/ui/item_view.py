"""What one item is, beyond its thumbnail: an object's crop beside its parent image with the box drawn,
its label and annotation; a frame's video, time and the strip of that video's frames."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from curate.data.items import video_frames
from curate.ui import cache
from curate.ui.gallery import show_grid
from curate.ui.kinds import kind_of
from curate.workspace import Workspace

CROP = 192  # px: the object's crop
PARENT = 480  # px: the long side of the parent image with the box
STRIP = 72  # px: each frame of the video strip
STRIP_MAX = 40  # frames drawn in the strip: a long video shows those around the chosen one


def time_text(time_ms: int) -> str:
    """`mm:ss.mmm` of a time in milliseconds (minutes keep counting past 59)."""
    minutes, rest = divmod(int(time_ms), 60_000)
    return f"{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def show_item(ws: Workspace, item_id: int) -> None:
    """The detail of an object or a frame (nothing for an image: its thumbnail says it all)."""
    kind = kind_of(ws, item_id)
    if kind == "object":
        show_object(ws, int(item_id))
    elif kind == "frame":
        show_frame(ws, int(item_id))


def show_object(ws: Workspace, item_id: int) -> None:
    row = cache.manifest(ws).iloc[item_id]
    crop, parent = st.columns([1, 2])
    crop.image(cache.thumbnail(ws, item_id, CROP), caption=f"object #{item_id} (crop with context)", width=CROP)
    box = ", ".join(f"{float(row[c]):.0f}" for c in ("x0", "y0", "x1", "y1"))
    parent_id = "" if pd.isna(row["parent"]) else f"#{int(row['parent'])} "
    parent.image(cache.boxed_parent(ws, item_id, PARENT), caption=f"in {parent_id}{row['path']} · box {box}")
    label = row["label"] if isinstance(row["label"], str) else "no label"
    crop.markdown(f"**Label:** {label}  \n**Annotation:** `{row['annotation']}`")


def show_frame(ws: Workspace, item_id: int) -> None:
    table = cache.manifest(ws)
    row = table.iloc[item_id]
    st.markdown(f"**Frame #{item_id}** of `{row['path']}` at **{time_text(int(row['time_ms']))}**")
    ids = video_frames(table, int(row["parent"])).tolist()
    if item_id in ids and len(ids) > STRIP_MAX:
        at = ids.index(item_id)
        start = min(max(0, at - STRIP_MAX // 2), len(ids) - STRIP_MAX)
        ids = ids[start:start + STRIP_MAX]
    times = table["time_ms"].to_numpy()
    captions = [("▶ " if i == item_id else "") + time_text(int(times[i])) for i in ids]
    st.caption(f"The video's {len(video_frames(table, int(row['parent']))):,} frames, in time order:")
    show_grid(ws, ids, captions, limit=STRIP_MAX, size=STRIP, key=f"strip_{item_id}", search=False)
