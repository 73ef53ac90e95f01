"""curate.data.video on the real clips in ../shared/data/videos and on fixtures encoded here with PyAV:
rotated, variable frame rate, AVI/WebM, audio only, cut, random bytes, empty."""
from __future__ import annotations

import shutil
import subprocess
import time
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from curate.data import video
from curate.data.images import ImageError
from curate.data.video import VideoError, frame_at, is_video_path, probe, sample_frames
from tests.conftest import SHARED

VIDEOS = SHARED / "videos"
W, H = 64, 48
# Writing a display matrix is new in PyAV (Stream.set_display_rotation, 2026); reading it is older (av>=14)
needs_rotation_writer = pytest.mark.skipif(not hasattr(av.video.stream.VideoStream, "set_display_rotation"),
                                           reason="this PyAV cannot write a display matrix for the fixture")


@pytest.fixture(scope="module")
def clips():
    folder = VIDEOS / "asl_gestures"
    if not folder.is_dir():
        pytest.skip(f"needs ../shared/data/videos (absent at {VIDEOS}); it is present in CI")
    return sorted(folder.glob("*.mkv"))


def upright_pattern(i: int) -> np.ndarray:
    """(H, W, 3) frame i as it should be displayed: a white block top-left, a grey level that counts frames."""
    a = np.full((H, W, 3), (i * 9) % 200, np.uint8)
    a[: H // 3, : W // 4] = 255
    return a


def encode(path, n=20, pts=None, time_base=Fraction(1, 1000), rotation=0, codec="libx264", audio=False):
    """A small clip written by PyAV; `rotation` counter-clockwise degrees in the display matrix, the stored
    pixels turned the other way so that the displayed frames are `upright_pattern`."""
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=25)
        w, h = (H, W) if rotation in (90, 270) else (W, H)
        s.width, s.height, s.pix_fmt, s.time_base = w, h, "yuv420p", time_base
        s.codec_context.time_base = time_base  # else the encoder rounds every pts to its 1/rate grid
        if rotation:
            s.set_display_rotation(rotation)
        for i in range(n):
            stored = np.rot90(upright_pattern(i), k=-rotation // 90).copy()
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            frame.pts, frame.time_base = (pts[i] if pts else i * 40), time_base
            for packet in s.encode(frame):
                out.mux(packet)
        for packet in s.encode():
            out.mux(packet)
    return path


def write_audio_only(path):
    with av.open(str(path), "w") as out:
        s = out.add_stream("flac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        for packet in [*s.encode(frame), *s.encode()]:
            out.mux(packet)
    return path


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img)


def test_suffixes():
    assert is_video_path("a/b/Clip.MP4") and is_video_path("x.webm") and not is_video_path("a/._x.mp4")
    assert not is_video_path("photo.jpg")
    assert issubclass(VideoError, ImageError)


def test_probe_real_clips(clips):
    t = time.perf_counter()
    info = probe(clips[0])
    assert (time.perf_counter() - t) < 1.0  # headers only (~2 ms quiet)
    assert (info.width, info.height, info.codec, info.rotation) == (640, 480, "h264", 0)
    assert info.fps == pytest.approx(30.0) and 1000 < info.duration_ms < 10_000
    car = probe(VIDEOS / "car-detection.mp4")
    assert (car.width, car.height, car.frames, car.duration_ms) == (768, 432, 377, 30160)


def test_sampled_frames_are_exact(clips):
    """frame_at(time_ms) gives back the very pixels sample_frames yielded, mkv and mp4."""
    for path in [*clips[:3], VIDEOS / "bottle-detection.mp4"]:
        frames = list(sample_frames(path, fps=1.0, max_frames=4))
        assert frames and frames[0].image.mode == "RGB"
        for f in frames:
            assert np.array_equal(pixels(frame_at(path, f.time_ms)), pixels(f.image)), (path.name, f.time_ms)


def test_by_time_ticks_and_cap(clips):
    times = [f.time_ms for f in sample_frames(clips[0], fps=1.0)]
    assert times[0] == 33 and all(b - a >= 1000 - 34 for a, b in zip(times, times[1:]))  # 30 fps: a frame's slack
    info = probe(clips[0])
    capped = [f.time_ms for f in sample_frames(clips[0], fps=30.0, max_frames=4)]
    assert len(capped) == 4 and capped[-1] > info.duration_ms / 2  # spread over the clip, not its start


def test_by_change_keeps_fewer_distinct_frames(clips):
    every = sample_frames(clips[0], fps=None, change=0.0)
    all_frames = list(every)
    kept = list(sample_frames(clips[0], fps=None, change=0.05))
    assert 1 <= len(kept) < len(all_frames) <= every.decoded
    thumbs = [np.asarray(f.image.convert("L").resize((32, 32))) for f in kept]
    assert kept[0].time_ms == all_frames[0].time_ms
    assert all(video.difference(a, b) > 0.02 for a, b in zip(thumbs, thumbs[1:]))
    assert len(list(sample_frames(clips[0], fps=None, change=0.0, max_frames=5))) == 5


def test_difference_measure():
    a = np.zeros((32, 32), np.uint8)
    assert video.difference(a, a) == 0.0 and video.difference(a, a + 255) == 1.0


@needs_rotation_writer
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_video_comes_out_upright(tmp_path, rotation):
    path = encode(tmp_path / f"rot{rotation}.mp4", n=5, rotation=rotation)
    info = probe(path)
    assert (info.rotation, info.width, info.height) == (rotation, W, H)
    frames = list(sample_frames(path, fps=None))
    assert len(frames) == 5
    for i, f in enumerate(frames):
        assert f.image.size == (W, H)
        assert np.abs(pixels(f.image).astype(int) - upright_pattern(i)).mean() < 6  # lossy, but upright
        assert np.array_equal(pixels(frame_at(path, f.time_ms)), pixels(f.image))


@needs_rotation_writer
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg binary for the cross-check")
def test_rotation_agrees_with_ffmpeg(tmp_path):
    path = encode(tmp_path / "rot90.mp4", n=2, rotation=90)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", str(tmp_path / "f.png")], check=True)
    theirs = np.asarray(Image.open(tmp_path / "f.png").convert("RGB")).astype(int)
    ours = pixels(next(iter(sample_frames(path, fps=None))).image).astype(int)
    assert theirs.shape == ours.shape and np.abs(theirs - ours).mean() < 3


@pytest.mark.parametrize("suffix,time_base", [(".mkv", Fraction(1, 1000)), (".mp4", Fraction(1, 90000))])
def test_variable_frame_rate_times_are_exact(tmp_path, suffix, time_base):
    ms = [0, 40, 53, 140, 141, 400, 433, 1000, 1017, 1900, 2000, 2011]  # irregular gaps, a 1 ms one among them
    pts = [round(Fraction(t, 1000) / time_base) + (7 if time_base.denominator > 1000 else 0) for t in ms]
    path = encode(tmp_path / f"vfr{suffix}", n=len(ms), pts=pts, time_base=time_base)
    frames = list(sample_frames(path, fps=None))
    expected = [round(p * time_base * 1000) for p in pts]
    assert [f.time_ms for f in frames] == expected
    for f in frames:
        assert np.array_equal(pixels(frame_at(path, f.time_ms)), pixels(f.image)), f.time_ms
    by_time = [f.time_ms for f in sample_frames(path, fps=1.0)]
    assert by_time == [expected[0], expected[7], expected[10]]  # first frame at or after 0, 1 and 2 s


def test_frame_at_between_frames_gives_the_one_before(tmp_path):
    path = encode(tmp_path / "cfr.mkv", n=10)
    assert np.array_equal(pixels(frame_at(path, 95)), pixels(frame_at(path, 80)))
    assert np.array_equal(pixels(frame_at(path, 10_000)), pixels(frame_at(path, 360)))


@pytest.mark.parametrize("suffix,codec", [(".avi", "mpeg4"), (".webm", "libvpx-vp9")])
def test_other_containers(tmp_path, suffix, codec):
    path = encode(tmp_path / f"clip{suffix}", n=10, codec=codec)
    assert probe(path).codec in ("mpeg4", "vp9", "libvpx-vp9")
    frames = list(sample_frames(path, fps=5.0))
    assert len(frames) == 2
    for f in frames:
        assert np.array_equal(pixels(frame_at(path, f.time_ms)), pixels(f.image))


def test_bad_files_have_reasons(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "random.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, np.uint8).tobytes())
    write_audio_only(tmp_path / "sound.mkv")
    cases = {"empty.mp4": "empty file", "random.mp4": "corrupt:", "sound.mkv": "no video stream",
             "absent.mp4": "missing:"}
    for name, reason in cases.items():
        with pytest.raises(VideoError, match=f"^{reason}"):
            probe(tmp_path / name)
        with pytest.raises(VideoError, match=f"^{reason}"):
            list(sample_frames(tmp_path / name))


def test_cut_file_yields_what_is_there(tmp_path, clips):
    data = clips[0].read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    samples = sample_frames(cut, fps=1.0)
    frames = list(samples)
    assert frames and samples.problem.startswith("truncated")
    whole = sample_frames(clips[0], fps=1.0)
    assert list(whole) and whole.problem is None
    (tmp_path / "header.mkv").write_bytes(data[:2000])  # headers and no frame at all
    with pytest.raises(VideoError):
        list(sample_frames(tmp_path / "header.mkv"))


def test_frames_over_the_pixel_cap_are_refused(tmp_path, monkeypatch):
    path = encode(tmp_path / "small.mkv", n=2)
    monkeypatch.setenv("CURATE_MAX_PIXELS", str(W * H - 1))
    with pytest.raises(VideoError, match="^too large"):
        probe(path)
    with pytest.raises(VideoError, match="^too large"):
        frame_at(path, 0)


def test_next_tick_skips_a_long_gap_in_one_step():
    assert video._next_tick(None, 33, Fraction(1000)) == 1033
    assert video._next_tick(Fraction(1033), 1040, Fraction(1000)) == 2033
    assert video._next_tick(Fraction(1033), 10**9, Fraction(1, 1000)) == 10**9 + Fraction(1, 1000)
