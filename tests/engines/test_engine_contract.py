"""The engine contract, for every registered engine: on the same images it gives what `local` gives, the
same manifest rows, the same decoded-image cache and the same embeddings (cosine >= 0.9999, the same zero
rows). An engine that needs a backend to run against gets it from a `<name>_engine_options` fixture
(tests/engines/conftest.py: ray's starts a real local cluster). And `create_engine`'s refusals."""
import argparse
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from curate.data.cache import image_cache
from curate.data.scan import scan_folder
from curate.engines import Engine, create_engine, engine_from_args, engine_names, engine_option_fields
from curate.steps.embed import embed
from curate.steps.scan import scan
from curate.workspace import Workspace

from tests.engines.agreement import assert_same_vectors
from tests.fixtures.bad_images import truncated_jpeg


def engine_under_test(name: str, request) -> Engine:
    try:
        given = request.getfixturevalue(f"{name}_engine_options")
    except pytest.FixtureLookupError:  # an engine that runs as it is
        given = {}
    return create_engine(name, given)


@pytest.fixture(scope="module")
def images(tmp_path_factory, bundled_images, sample_copier):
    """40 real images (4 per class) and one that cannot be read."""
    classes = sorted(p.name for p in bundled_images.iterdir() if p.is_dir())
    root = sample_copier(bundled_images, tmp_path_factory.mktemp("contract") / "images", classes, 4)
    (root / classes[0] / "truncated.jpg").write_bytes(truncated_jpeg())
    return root


@pytest.fixture(scope="module")
def local_ws(images, encoder, tmp_path_factory) -> Workspace:
    """What every engine must reproduce: the local engine's scan and embedding of `images`."""
    ws, _ = scan(images, tmp_path_factory.mktemp("local") / "ws")
    embed(ws, encoder, batch_size=16)
    return ws


@pytest.mark.slow
@pytest.mark.parametrize("name", engine_names())
def test_an_engine_scans_and_embeds_as_local_does(name, request, images, encoder, local_ws, tmp_path):
    engine = engine_under_test(name, request)
    ws, summary = scan(images, tmp_path / "ws", engine=engine)
    assert (summary.ok, summary.skipped) == (40, 1)
    pd.testing.assert_frame_equal(ws.manifest(), local_ws.manifest())  # every column, status and sha1 included

    vectors = embed(ws, encoder, batch_size=16, engine=engine)
    print(f"{name}: smallest cosine to local {assert_same_vectors(vectors, local_ws.embeddings()):.7f}")
    meta = json.loads(ws.sidecar(ws.embeddings_file).read_text())
    local_meta = json.loads(local_ws.sidecar(local_ws.embeddings_file).read_text())
    assert meta["engine"] == name
    for key in ("model", "d", "n", "embedded", "newly_embedded", "reused", "image_size"):
        assert meta[key] == local_meta[key], key


@pytest.mark.slow
@pytest.mark.parametrize("name", engine_names())
def test_the_decode_cache_an_engine_fills_is_the_local_one_byte_for_byte(name, request, small_images, tmp_path):
    """`curate train --engine NAME` fills the decoded-image cache with the engine's `decode_files`: the same
    rows, in the same places, as the local threads (a file that stopped decoding is a zero row on both)."""
    engine = engine_under_test(name, request)
    images = tmp_path / "images"
    shutil.copytree(small_images, images)
    manifest, _ = scan_folder(images)
    broken = images / manifest["path"].iloc[7]
    broken.write_bytes(broken.read_bytes()[:40])  # changed since the scan: no longer decodes
    local = image_cache(images, manifest, 32, tmp_path / "local_cache")
    other = image_cache(images, manifest, 32, tmp_path / "engine_cache", decode_files=engine.decode_files)
    assert other.shape == local.shape == (200, 32, 32, 3)
    assert np.array_equal(other, local) and not other[7].any() and other[8].any()


def test_create_engine_refuses_an_unknown_name_and_another_engines_options():
    with pytest.raises(ValueError, match=r"unknown engine 'spark'; choose one of: local, ray"):
        create_engine("spark")
    with pytest.raises(ValueError, match=r"^--address needs --engine ray$"):
        create_engine("local", {"address": "auto"})
    with pytest.raises(ValueError, match=r"^--address, --actors and --gpus-per-actor need --engine ray$"):
        create_engine("local", {"gpus_per_actor": 1.0, "actors": 2, "address": "auto"})
    with pytest.raises(ValueError, match="unknown engine option"):
        create_engine("local", {"adress": "auto"})
    with pytest.raises(ValueError, match="--actors must be at least 1, not 0"):  # before Ray is looked for
        create_engine("ray", {"actors": 0})
    # the values the CLI leaves at their defaults are no request for another engine
    assert create_engine("local", {"address": None, "actors": None, "gpus_per_actor": 0.0}).name == "local"
    assert engine_from_args(argparse.Namespace(engine=None, address=None, actors=None)).name == "local"


def test_scan_and_train_take_only_the_options_not_about_embedding():
    assert [f.name for f in engine_option_fields()] == ["address", "actors", "gpus_per_actor"]
    assert [f.name for f in engine_option_fields(embeds=False)] == ["address"]
