"""Frame items from videos: each video of the folder is decoded once, sequentially, and the frames kept by
time (`fps`, capped by `max_frames`) or by change become manifest rows.

A frame's row: `parent` its video's id, `path` the video's path, `time_ms` its exact presentation time
(`curate.data.video.frame_at` at that time gives the same pixels), `label` the video's class folder. The
kept frames go into the frame store (`cache/frames/VIDEO_TIME.png`, at most FRAME_STORE_SIDE a side)
as they are decoded, so the decode cache, thumbnails and quality checks read them back instead of
decoding the video again. A video is sampled again only when its content or the sampling changed;
frames keep their ids by (video, time).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from curate import storage
from curate.data.items import frame_key, kinds, merge_derived
from curate.data.sources import FRAME_STORE_SIDE, frame_store_file, shrink
from curate.progress import Progress, report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameSampling:
    fps: float = 1.0  # frames kept per second of video
    max_frames: int | None = 300  # per video; more would be spread over its whole length
    change: float | None = None  # keep a frame only when it differs this much from the last kept one


def sample_videos(manifest: pd.DataFrame, root: Path, store_dir: Path, sampling: FrameSampling,
                  record: dict, progress: Progress | None = None) -> tuple[pd.DataFrame, dict, dict]:
    """The manifest with the frames of its videos; (manifest, counts, record).

    `record` is what the last sampling wrote ({"sampling": ..., "videos": {id: sha1}}): a video whose
    content and sampling are unchanged keeps its frames without being decoded."""
    from curate.data.video import VideoError, sample_frames

    found = kinds(manifest)
    videos = manifest[found == "video"]
    same_sampling = record.get("sampling") == asdict(sampling)
    done = {int(k): v for k, v in record.get("videos", {}).items()} if same_sampling else {}
    todo = [(int(i), p, s, lab) for i, p, s, lab, st in
            zip(videos["id"], videos["path"], videos["sha1"], videos["label"], videos["status"])
            if st == "ok" and done.get(int(i)) != s]
    gone = [int(i) for i, st in zip(videos["id"], videos["status"]) if st != "ok"]
    rows, sampled, status = [], {}, {}
    for n, (vid, path, sha, label) in enumerate(todo):
        try:
            kept = _sample_one(vid, root / path, store_dir, sampling, sample_frames)
        except VideoError as err:
            status[vid] = str(err)
            log.warning("skipped video %s: %s", path, err)
            kept = []
        rows += [_frame_row(vid, path, sha, label, t, w, h) for t, w, h in kept]
        if vid not in status:
            sampled[vid] = sha
        report(progress, n + 1, len(todo), stage="sample frames", unit="video")
    table = pd.DataFrame(rows, columns=list(_frame_row(0, "", "", None, 0, 0, 0)))
    merged, counts = merge_derived(manifest, table, "frame", parents=np.array([v for v, *_ in todo] + gone))
    for vid, reason in status.items():
        merged.loc[merged["id"] == vid, "status"] = reason
    videos_done = {k: v for k, v in done.items() if k not in gone and k not in status}
    return merged, {**counts, "videos": len(todo)}, {"sampling": asdict(sampling),
                                                     "videos": {**videos_done, **sampled}}


def _sample_one(vid: int, path: Path, store_dir: Path, sampling: FrameSampling, sample_frames) -> list[tuple]:
    """Decode one video, keep its frames in the store; [(time_ms, width, height)] of the kept frames."""
    kept = []
    samples = sample_frames(path, fps=sampling.fps, max_frames=sampling.max_frames, change=sampling.change)
    for frame in samples:
        w, h = frame.image.size
        img = shrink(frame.image, FRAME_STORE_SIDE)
        with storage.atomic_path(frame_store_file(store_dir, vid, frame.time_ms)) as tmp:
            img.save(tmp, format="PNG", compress_level=1)
        kept.append((int(frame.time_ms), w, h))
    if samples.problem:  # a damaged video still gives the frames before the damage
        log.warning("video %s: %s (%d frames kept)", path, samples.problem, len(kept))
    return kept


def _frame_row(vid: int, path: str, video_sha, label, time_ms: int, width: int, height: int) -> dict:
    return {"key": frame_key(vid, time_ms), "path": path, "label": label, "width": width, "height": height,
            "bytes": 0, "sha1": hashlib.sha1(f"{video_sha}@{time_ms}".encode()).hexdigest(), "status": "ok",
            "mtime": 0, "parent": vid, "time_ms": time_ms}
