"""Safe decoding (curate.data.images) on generated bad inputs and real CIFAR-10 photos."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curate.data import images
from curate.data.images import ImageError, decode_failure, fit_square, image_size, is_image_path, load_rgb, to_rgb
from fixtures.bad_images import BLUE, EXIF_SIZE, HUGE_SIDE, RED, write_bad_folder

DECODABLE_ONLY_IN_SCAN = ("links/",)  # link policy belongs to the scan, which knows the image root


@pytest.fixture(scope="module")
def bad(tmp_path_factory, bundled_images):
    root = tmp_path_factory.mktemp("images") / "bad"
    expect = write_bad_folder(root, bundled_images / "cat" / "4800.jpg")
    return root, {rel: e for rel, e in expect.items() if not rel.startswith(DECODABLE_ONLY_IN_SCAN)}


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_every_fixture_decodes_to_rgb_or_gives_its_reason(bad):
    root, expect = bad
    for rel, want in expect.items():
        if want.status == "ok":
            img = load_rgb(root / rel, max_side=256 if rel.startswith("huge/") else None)
            assert img.mode == "RGB", rel
            if not rel.startswith("huge/"):
                assert img.size == want.size, rel
            assert image_size(root / rel) == want.size, rel
        else:
            with pytest.raises(ImageError) as err:
                load_rgb(root / rel)
            assert str(err.value).startswith(want.status), (rel, str(err.value))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_reasons_are_specific(bad):
    root, _ = bad
    reasons = {}
    for rel in ("bad/truncated.jpg", "bad/broken_stream.png", "bad/text_renamed.jpg", "bad/bomb.png"):
        with pytest.raises(ImageError) as err:
            load_rgb(root / rel)
        reasons[rel] = str(err.value)
    assert "truncated" in reasons["bad/truncated.jpg"]
    assert reasons["bad/broken_stream.png"] == "corrupt: broken data stream when reading image file"
    assert reasons["bad/text_renamed.jpg"] == "not an image: unrecognised format"
    assert "40000x40000" in reasons["bad/bomb.png"]
    with pytest.raises(ImageError, match="^missing: file not found$"):
        load_rgb(root / "no_such_file.jpg")


def test_exif_orientation_gives_upright_pixels(bad):
    root, _ = bad
    with Image.open(root / "modes/exif_rot6.jpg") as raw:
        assert raw.size == EXIF_SIZE[::-1]  # stored landscape
    arr = np.asarray(load_rgb(root / "modes/exif_rot6.jpg"), dtype=int)
    w, h = EXIF_SIZE
    assert arr.shape == (h, w, 3)
    assert np.abs(arr[h // 4, w // 2] - RED).max() < 40  # top half red
    assert np.abs(arr[3 * h // 4, w // 2] - BLUE).max() < 40  # bottom half blue
    assert load_rgb(root / "modes/exif_rot6.jpg", max_side=16).size == (8, 16)  # downscaled, still portrait


def test_colour_modes_convert_faithfully(bad):
    root, _ = bad
    cmyk = np.asarray(load_rgb(root / "modes/cmyk.jpg"), dtype=int)
    assert np.abs(cmyk.reshape(-1, 3).mean(0) - RED).max() < 30

    grey16 = np.asarray(load_rgb(root / "modes/grey16.png"))[..., 0].ravel().astype(int)
    assert grey16[0] == 0 and grey16[-1] == 255 and np.all(np.diff(grey16) >= 0)  # full ramp, in order

    palette = np.asarray(load_rgb(root / "modes/palette_alpha.png"))
    assert (palette[:, :8] == (0, 255, 0)).all() and (palette[:, 8:] == 255).all()  # transparent -> white

    rgba = np.asarray(load_rgb(root / "modes/rgba.png"))
    assert (rgba[:, :8] == (0, 0, 255)).all() and (rgba[:, 8:] == 255).all()

    assert (np.asarray(load_rgb(root / "modes/grey.png")) == 77).all()
    assert (np.asarray(load_rgb(root / "café/日本語 ✓.png")) == (10, 200, 30)).all()


def test_real_photo_formats_decode_to_the_same_pixels(bad, bundled_images):
    root, _ = bad
    reference = np.asarray(load_rgb(bundled_images / "cat" / "4800.jpg"), dtype=int)
    for lossless in ("formats/photo.bmp", "formats/photo.tiff"):
        assert (np.asarray(load_rgb(root / lossless), dtype=int) == reference).all(), lossless
    webp = np.asarray(load_rgb(root / "formats/photo.webp"), dtype=int)
    assert np.abs(webp - reference).mean() < 12  # lossy re-encode: close, not equal


def test_sixteen_bit_scaling_is_fixed_per_mode_not_stretched_per_image():
    dark = Image.fromarray(np.full((4, 4), 2570, dtype=np.uint16))  # 2570 / 65535 of full scale
    assert dark.mode == "I;16"
    assert (np.asarray(to_rgb(dark)) == 10).all()
    small = Image.fromarray(np.full((4, 4), 10, dtype=np.int32), mode="I")  # 8-bit data in 32-bit storage
    assert (np.asarray(to_rgb(small)) == 10).all()
    floats = Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32), mode="F")
    assert (np.asarray(to_rgb(floats)) == 128).all()


def test_huge_jpeg_decodes_at_reduced_scale_without_gigabytes(bad):
    """20000x20000 (1.2 GB as RGB) must cost megabytes: measured in a fresh process, whose peak RSS
    is not hidden by whatever this test session allocated before."""
    root, _ = bad
    script = (
        "import importlib.util, json, resource, sys\n"
        "spec = importlib.util.spec_from_file_location('images', sys.argv[1])\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "before = rss(); img = m.load_rgb(sys.argv[2], max_side=256)\n"
        "print(json.dumps({'grow': rss() - before, 'size': img.size, 'mode': img.mode,\n"
        "                  'pixel': img.getpixel((5, 5)), 'shown': m.image_size(sys.argv[2])}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, images.__file__, str(root / "huge/solid.jpg")],
                         capture_output=True, text=True, timeout=60, check=True)
    result = json.loads(out.stdout)
    assert result["shown"] == [HUGE_SIDE, HUGE_SIDE]
    assert result["size"] == [256, 256] and result["mode"] == "RGB"
    assert all(abs(c - 128) <= 2 for c in result["pixel"])  # mid-grey, as encoded
    assert result["grow"] < 150 * 2**20, f"decode grew RSS by {result['grow'] / 2**20:.0f} MiB"


def test_fit_square_crops_centre_to_exact_shape():
    img = Image.new("RGB", (60, 20), (0, 0, 0))
    img.paste((255, 255, 255), (20, 0, 40, 20))  # white centre third
    out = fit_square(img, 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert (out[:, 2:14] == 255).all()


def test_decode_failure_names_file_system_errors_plainly():
    assert decode_failure(PermissionError(13, "Permission denied")) == "unreadable: Permission denied"
    assert decode_failure(IsADirectoryError(21, "Is a directory")) == "unreadable: Is a directory"
    truncated = OSError("image file is truncated (3 bytes not processed)")  # Pillow's wording: no errno
    assert decode_failure(truncated) == "unreadable: image file is truncated (3 bytes not processed)"
    assert decode_failure(struct.error("unpack requires a buffer of 4 bytes")).startswith("corrupt: unpack")
    assert decode_failure(MemoryError()) == "too large: out of memory while decoding"


@pytest.mark.parametrize("name, wanted", [("a.JPG", True), ("b.tiff", True), ("c.txt", False),
                                          (".DS_Store", False), ("._a.jpg", False), ("noext", False),
                                          (".jpg", False), ("x.y.PNG", True)])
def test_is_image_path(name, wanted):
    assert is_image_path(Path(name)) is wanted and is_image_path(f"some/dir.jpg/{name}") is wanted


def test_decoding_is_thread_safe(bundled_images):
    """Decoding on a pool (as scan and cache do) gives the same pixels as decoding one by one."""
    from concurrent.futures import ThreadPoolExecutor

    files = sorted((bundled_images / "dog").glob("*.jpg"))[:64]
    serial = [np.asarray(load_rgb(f)) for f in files]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda f: np.asarray(load_rgb(f)), files))
    assert all((a == b).all() for a, b in zip(serial, parallel))


def test_large_decodes_share_one_memory_budget(tmp_path):
    """Four threads decoding four 4,000 x 4,000 PNGs (about 96 MB each at its peak) under a 150 MB budget:
    at most one holds memory at a time, every image still decodes, and one image larger than the
    whole budget decodes alone instead of waiting forever."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from curate.data import images

    rng = np.random.default_rng(0)
    files = []
    for i in range(4):
        f = tmp_path / f"big{i}.png"
        Image.fromarray(np.repeat(rng.integers(0, 255, (4000, 1, 3), dtype=np.uint8), 4000, axis=1)).save(f)
        files.append(f)
    budget = images.MemoryBudget(150 * 2**20)
    saved = images.DECODE_MEMORY
    images.DECODE_MEMORY = budget
    try:
        with ThreadPoolExecutor(4) as pool:
            decoded = list(pool.map(lambda f: images.load_rgb(f, max_side=64), files))
        assert [im.size for im in decoded] == [(64, 64)] * 4
        assert images.decode_bytes((4000, 4000), "RGB") <= budget.peak <= budget.limit and budget.used == 0
        budget.limit = 10 * 2**20  # smaller than one image: it runs alone
        done = threading.Event()
        threading.Thread(target=lambda: (images.load_rgb(files[0], max_side=64), done.set())).start()
        assert done.wait(30)
    finally:
        images.DECODE_MEMORY = saved
