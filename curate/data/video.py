"""Video files in: header facts, frames sampled by time or by change, and one frame at an exact time.
DESIGN.md section 7 (a frame item is its video plus `time_ms`).

Decoding is PyAV's (its wheels bundle FFmpeg): no hand-written decoding, no ffmpeg subprocess.

Decisions:
- `time_ms` is a frame's presentation time, `round(pts * time_base * 1000)` computed exactly (Fractions),
  and `frame_at(path, time_ms)` returns the same pixels as the frame `sample_frames` yielded for it.
- Frames come out upright: the display matrix (phone videos) is applied per frame from `frame.rotation`
  (counter-clockwise degrees, rounded to a multiple of 90). Mirroring in the matrix and non-square pixels
  (sample aspect ratio) are ignored: pixels come out as stored, turned only.
- By time, the ticks are `t0 + k / fps` from the first frame's time `t0`; each keeps the first frame at or
  after it. With `max_frames` and a known duration holding more ticks, the ticks are spread over the whole
  duration (`max_frames` evenly spaced), so a cap never means "only the beginning" (with the duration
  unknown, decoding stops at the `max_frames`-th kept frame).
- By change, the candidates are the tick frames (every frame when `fps` is None), and a candidate is kept
  when it differs from the last kept one by more than `change` (see `difference`); the first is always kept.
  `max_frames` caps the kept frames the same way (spread ticks, else a stop).
- Only kept frames are converted to RGB (the expensive part); the change detector works on a 32x32 grey
  plane that swscale reduces from the decoded frame.
- A damaged file: nothing decodable raises VideoError; a file that stops early (cut, read errors) yields
  the frames before the damage, and the iterator's `problem` says "truncated: ..." (also logged).
"""
from __future__ import annotations

import logging
import math
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image

from curate.data.images import DECODE_MEMORY, MAX_PIXELS_ENV, ImageError, decode_failure, pixel_limit

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm")
THUMB = 32  # side of the grey thumbnail the change detector compares
MAX_BAD_PACKETS = 50  # consecutive packets that fail to decode before a file counts as corrupt from there on
# A decode that ends this much before the stream's stated end counts as truncated: a frame interval or two
# is normal (the duration includes the last frame's display time), a missing second is not.
TRUNCATED_SLACK_MS = 1000
OPEN_TIMEOUT_S = 30.0  # PyAV's open/read timeout: a stalled network file system fails instead of hanging

_ROTATION_IN_DUMP = re.compile(r"rotation of (-?[\d.]+) degrees")
_DUMP_LOCK = threading.Lock()  # FFmpeg's log level is process-wide; see `_stream_rotation`
_TURN = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


class VideoError(ImageError):
    """A video that cannot be used; `str(err)` is the short reason stored in the manifest."""


@dataclass(frozen=True)
class VideoInfo:
    """What the headers say. width/height as displayed (rotation applied); duration_ms, fps and frames None
    when the container does not say; rotation in counter-clockwise degrees (0, 90, 180, 270)."""
    width: int
    height: int
    duration_ms: int | None
    fps: float | None
    frames: int | None
    codec: str
    rotation: int


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its exact presentation time (ms) and its upright RGB pixels."""
    time_ms: int
    image: Image.Image


def is_video_path(path: str | os.PathLike) -> bool:
    """True for a visible file with a video extension (string operations only, like `is_image_path`)."""
    name = os.path.basename(os.fspath(path))
    return os.path.splitext(name)[1].lower() in VIDEO_SUFFIXES and not name.startswith(".")


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read the container and stream headers only (milliseconds; no frame is decoded).

    Raises VideoError for a file that is not a readable video or whose frames exceed the pixel cap."""
    with _open(path) as (container, stream):
        return _info(container, stream)


def sample_frames(path: str | os.PathLike, fps: float | None = 1.0, max_frames: int | None = None,
                  change: float | None = None) -> Samples:
    """Frames of `path` sampled by time (`fps` ticks per second; None: every frame) or, with `change`, by
    change among those candidates; at most `max_frames`. The video is decoded once, sequentially.

    Returns an iterator of Frame whose `problem` is set once it ends on damage. Raises VideoError (when
    iterated) for a file with no decodable frame."""
    if fps is not None and fps <= 0:
        raise ValueError(f"fps must be positive, not {fps}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, not {max_frames}")
    return Samples(os.fspath(path), fps, max_frames, change)


def frame_at(path: str | os.PathLike, time_ms: int) -> Image.Image:
    """The upright RGB frame whose `time_ms` is `time_ms` (else the last one before it; the first frame
    for a time before it): a seek to the keyframe at or before it, then a decode forward."""
    with _open(path) as (container, stream):
        _check_pixels(stream.codec_context.width, stream.codec_context.height)
        tb = stream.time_base
        target = math.floor((Fraction(time_ms) + Fraction(1, 2)) / 1000 / tb)  # pts of any frame rounding to it
        # The demuxer's index may be by decode time, landing after the target: then back off, then start over.
        for seek_to in (target, target - round(Fraction(2) / tb), None):
            found = _decode_to(container, stream, seek_to, time_ms)
            if found is not None:
                return _to_rgb(found, VideoReformatter())
        raise VideoError("corrupt: no decodable frame")


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two (32, 32) uint8 grey thumbnails, in [0, 1]; 0 for identical frames.

    Measured on ../shared/data/videos: consecutive frames median 0.001-0.002 (p90 0.004 for a fixed camera
    on bottles, 0.023 with cars passing, 0.006 for a signer), the first frames of different gesture clips
    median 0.086 (the same room and signer), a cut between two unrelated scenes 0.15. So ~0.02-0.05
    keeps movement and cuts, and drops a still scene."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()) / 255.0


class Samples(Iterator[Frame]):
    """The iterator `sample_frames` returns: Frames, then `problem` (None, or "truncated: ..." /
    "corrupt: ..." when decoding stopped on damage after some frames) and `decoded` (frames decoded)."""

    def __init__(self, path: str, fps: float | None, max_frames: int | None, change: float | None):
        self.path, self.problem, self.decoded = path, None, 0
        self._frames = self._run(fps, max_frames, change)

    def __next__(self) -> Frame:
        return next(self._frames)

    def _run(self, fps, max_frames, change) -> Iterator[Frame]:
        with _open(self.path) as (container, stream):
            info = _info(container, stream)
            interval = _tick_interval(fps, max_frames, info.duration_ms)
            kept, next_tick, last_thumb, last_ms = 0, None, None, None
            # One scaler for the run: `frame.reformat` / `to_image` build a new swscale context for every
            # frame, 3 of the 4 ms a 768x432 frame's RGB conversion took (now 0.2 ms with `to_ndarray`).
            scaler = VideoReformatter()
            for frame in _decoded(container, stream, self):
                ms = frame_time_ms(frame)
                if ms is None:
                    continue
                self.decoded, last_ms = self.decoded + 1, ms
                if next_tick is not None and ms < next_tick:
                    continue
                if interval is not None:
                    next_tick = _next_tick(next_tick, ms, interval)
                if change is not None:
                    # area averaging: the right reduction for a mean difference, and 20% cheaper than bilinear
                    thumb = scaler.reformat(frame, width=THUMB, height=THUMB, format="gray",
                                            interpolation="AREA").to_ndarray()
                    if last_thumb is not None and difference(thumb, last_thumb) <= change:
                        continue
                    last_thumb = thumb
                yield Frame(ms, _to_rgb(frame, scaler))
                kept += 1
                if max_frames is not None and kept >= max_frames:
                    return
            if self.decoded == 0:
                raise VideoError(self.problem or "corrupt: no decodable frame")
            self._check_end(container, stream, last_ms)

    def _check_end(self, container, stream, last_ms: int) -> None:
        """Flag a decode that ended well before the stream's stated end (a cut file)."""
        end = _end_ms(container, stream)
        if self.problem is None and end is not None and last_ms < end - TRUNCATED_SLACK_MS:
            self.problem = f"truncated: frames end at {last_ms / 1000:.1f} s of {end / 1000:.1f} s"
        if self.problem:
            log.warning("%s: %s", self.path, self.problem)


def frame_time_ms(frame: av.VideoFrame) -> int | None:
    """A decoded frame's presentation time in ms, exactly rounded (None when it has no timestamp)."""
    pts = frame.pts if frame.pts is not None else frame.dts
    return None if pts is None else round(pts * frame.time_base * 1000)


def _tick_interval(fps: float | None, max_frames: int | None, duration_ms: int | None) -> Fraction | None:
    """Milliseconds between ticks: 1000 / fps, widened to spread `max_frames` over the duration."""
    if fps is None:
        return None
    interval = Fraction(1000) / Fraction(fps)
    if max_frames is not None and duration_ms and duration_ms / interval > max_frames:
        interval = Fraction(duration_ms, max_frames)
    return interval


def _next_tick(tick: Fraction | None, ms: int, interval: Fraction) -> Fraction:
    """The first tick after a frame at `ms` kept for `tick` (None: the first frame, where ticks start).
    A gap longer than a tick (variable frame rate, a still scene) skips ticks, in one step."""
    start = ms if tick is None else tick
    return start + interval * (math.floor((ms - start) / interval) + 1)


def _decode_to(container, stream, seek_to: int | None, time_ms: int) -> av.VideoFrame | None:
    """Seek (None: to the start) and decode forward to the frame for `time_ms`; None when the seek landed
    after it (the caller seeks earlier)."""
    try:
        if seek_to is None:
            container.seek(0, backward=True, any_frame=False)  # av.time_base units: the file's beginning
        else:
            container.seek(seek_to, stream=stream, backward=True, any_frame=False)
    except av.FFmpegError as err:  # no keyframe at or before it in the index: seek earlier
        if seek_to is None:
            raise VideoError(f"corrupt: cannot seek: {_short(err)}") from None
        return None
    best = None
    for frame in _decoded(container, stream, None):
        ms = frame_time_ms(frame)
        if ms is None:
            continue
        if ms > time_ms:  # past it: the frame before, or (from the start) the first frame
            return best if best is not None else frame if seek_to is None else None
        best = frame
        if ms == time_ms:
            return frame
    return best


def _decoded(container, stream, report: Samples | None) -> Iterator[av.VideoFrame]:
    """Every frame of `stream` in presentation order, surviving damage: a packet that fails to decode is
    skipped (MAX_BAD_PACKETS in a row end the decode), a read error ends it; `report.problem` says why."""
    packets, bad = container.demux(stream), 0
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except (av.FFmpegError, OSError) as err:  # the file ends or cannot be read from here on
            _note(report, f"truncated: {_short(err)}")
            break
        try:
            frames = packet.decode()
        except av.FFmpegError as err:
            bad += 1
            _note(report, f"corrupt: {_short(err)}")
            if bad >= MAX_BAD_PACKETS:
                break
            continue
        bad = 0
        yield from frames
    try:
        yield from stream.decode(None)  # the frames still inside the decoder
    except av.FFmpegError:
        pass


def _note(report: Samples | None, problem: str) -> None:
    if report is not None and report.problem is None:
        report.problem = problem


class _open:
    """`with _open(path) as (container, stream)`: the first video stream, threaded decoding, and a
    VideoError with a reason for anything that is not a readable video."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def __enter__(self):
        try:
            if os.path.getsize(self.path) == 0:
                raise VideoError("empty file")
            self.container = av.open(self.path, timeout=OPEN_TIMEOUT_S)
        except VideoError:
            raise
        except av.FFmpegError as err:
            raise VideoError(f"corrupt: {_short(err)}") from None
        except Exception as err:  # the file system's errors (missing, unreadable) become the image reasons
            raise VideoError(decode_failure(err)) from None
        if not self.container.streams.video:
            self.container.close()
            raise VideoError("no video stream")
        stream = self.container.streams.video[0]
        stream.thread_type = "AUTO"  # frame and slice threads, as the ffmpeg tool uses
        return self.container, stream

    def __exit__(self, *exc):
        self.container.close()
        return False


def _info(container, stream) -> VideoInfo:
    ctx = stream.codec_context
    if not ctx.width or not ctx.height:
        raise VideoError("corrupt: the video stream has no frame size")
    _check_pixels(ctx.width, ctx.height)
    rotation = _stream_rotation(container, stream)
    width, height = (ctx.height, ctx.width) if rotation in (90, 270) else (ctx.width, ctx.height)
    rate = stream.average_rate or stream.guessed_rate
    return VideoInfo(width=width, height=height, duration_ms=_duration_ms(container, stream),
                     fps=float(rate) if rate else None, frames=stream.frames or None, codec=ctx.name,
                     rotation=rotation)


def _duration_ms(container, stream) -> int | None:
    """The video stream's own duration, else Matroska's DURATION tag, else the container's."""
    if stream.duration:
        return round(stream.duration * stream.time_base * 1000)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    match = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d+)?)", tag.strip()) if tag else None
    if match:
        h, m, s = match.groups()
        return round((int(h) * 3600 + int(m) * 60 + float(s)) * 1000)
    return round(container.duration / 1000) if container.duration else None


def _end_ms(container, stream) -> int | None:
    """Where the stream's frames should end (ms): its start plus its duration, when both are known."""
    duration = _duration_ms(container, stream)
    if duration is None:
        return None
    start = round(stream.start_time * stream.time_base * 1000) if stream.start_time is not None else 0
    return start + duration


def _stream_rotation(container, stream) -> int:
    """The display rotation from the headers, counter-clockwise degrees in (0, 90, 180, 270).

    PyAV reads the display matrix only from decoded frames (`frame.rotation`); from the headers it is
    in FFmpeg's format dump, which FFmpeg logs only while its log level lets it through. The level is
    process-wide, hence the lock; the dump costs ~0.1 ms."""
    legacy = stream.metadata.get("rotate")  # FFmpeg before 6 exported the rotation as a tag (clockwise)
    if legacy:
        return _quarter(-float(legacy))
    with _DUMP_LOCK:
        old = av.logging.get_level()
        av.logging.set_level(av.logging.INFO)
        try:
            dump = container.dumps_format()
        finally:
            av.logging.set_level(old)
    stream_part = dump.split(f"Stream #0:{stream.index}", 1)[-1].split("Stream #0:", 1)[0]
    match = _ROTATION_IN_DUMP.search(stream_part)
    return _quarter(float(match.group(1))) if match else 0


def _quarter(degrees: float) -> int:
    return int(round(degrees / 90.0)) % 4 * 90


def _to_rgb(frame: av.VideoFrame, scaler: VideoReformatter) -> Image.Image:
    """The frame as upright RGB, under the shared decode-memory budget (4K is 25 MB, 8K 100 MB). The same
    conversion in `sample_frames` and `frame_at` (swscale's defaults), so both give the same pixels."""
    _check_pixels(frame.width, frame.height)
    with DECODE_MEMORY.hold(frame.width * frame.height * 6):
        image = Image.fromarray(scaler.reformat(frame, format="rgb24").to_ndarray())
        turn = _TURN.get(_quarter(frame.rotation))
        return image if turn is None else image.transpose(turn)


def _check_pixels(width: int, height: int) -> None:
    limit = pixel_limit(None)
    if width * height > limit:
        raise VideoError(f"too large: {width}x{height} frames are more than {limit:,} pixels"
                         f" (the cap: --max-pixels / ${MAX_PIXELS_ENV})")


def _short(err: BaseException) -> str:
    text = getattr(err, "strerror", None) or str(err).strip() or type(err).__name__
    return text.splitlines()[0][:200]
