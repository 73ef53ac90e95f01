"""The app's workspace picker, background runs from Overview, and the Explore map (colours, filters,
tags, basket), driven headless by AppTest on real workspaces; every check reads what was drawn or
what was written to disk."""
from __future__ import annotations

import base64
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from curate import jobs
from curate.generations import write_sidecar
from curate.project.maps import pca_2d
from curate.quality.checks import FLAG_COLUMNS
from curate.steps.index import indexed_rows
from curate.ui.pages.explore_page import colour_options
from curate.workspace import Workspace

from tests.apptest_helpers import assert_clean, open_page, start
RUN_TIMEOUT_S = 600


def traces(at: AppTest) -> list[dict]:
    return json.loads(at.get("plotly_chart")[0].proto.spec)["data"]


def names(at: AppTest) -> list[str]:
    return [t["name"] for t in traces(at)]


def array(value) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array {dtype, bdata} (base64)."""
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value)


def plotted(at: AppTest) -> tuple[int, int]:
    """(images on the map, images with a map position) from the caption above the map, checked against
    the points the figure really holds."""
    caption = next(c.value for c in at.caption if " images on the map" in c.value)
    shown, total = (int(x.replace(",", "")) for x in re.match(r"([\d,]+) of ([\d,]+) images", caption).groups())
    drawn = re.search(r"([\d,]+) of them are drawn", caption)  # a thinned map draws a share of its images
    assert sum(len(array(t["customdata"])) for t in traces(at)) == (int(drawn[1].replace(",", "")) if drawn else shown)
    return shown, total


def count_in(name: str) -> int:
    return int(name.rsplit("(", 1)[1].rstrip(")").replace(",", ""))


def set_colour(at: AppTest, option: str) -> AppTest:
    at.selectbox(key="explore_colour").set_value(option).run()
    assert_clean(at)
    return at


def apply_filters(at: AppTest, **values) -> AppTest:
    for key, value in values.items():
        widget = at.slider(key=f"explore_f_{key}") if key in ("uniqueness", "typicality") else \
            at.multiselect(key=f"explore_f_{key}")
        widget.set_value(value)
    at.button(key="explore_f_apply").click().run()
    assert_clean(at)
    return at


def copy_workspace(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("checkpoint.pt", "cache"))
    return target


def wait_for(ws: Path, done, timeout: float = RUN_TIMEOUT_S) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        status = jobs.status(ws)
        if done(status):
            return status
        assert status["state"] in ("running", "none"), status.get("log_tail")
        time.sleep(0.5)
    raise AssertionError(f"timed out; the job is {jobs.status(ws)['state']}: {jobs.status(ws).get('log_tail')}")


def stage(status: dict) -> str:
    return str((status.get("progress") or {}).get("info", {}).get("stage", ""))


def fill_run_form(at: AppTest, images: Path, workspace: Path, minutes: float) -> AppTest:
    at.text_input(key="run_images").set_value(str(images))
    at.text_input(key="run_workspace").set_value(str(workspace))
    at.number_input(key="run_minutes").set_value(minutes)
    at.multiselect(key="run_tasks").set_value(["simclr"])
    return at.button(key="run_start").click().run()


# --- workspace picker and background runs ------------------------------------------------------
def test_picker_lists_nearby_workspaces_and_opens_one(monkeypatch, tmp_path, built_workspace):
    first = copy_workspace(built_workspace, tmp_path / "near" / "first")
    second = copy_workspace(built_workspace, tmp_path / "near" / "second")
    (tmp_path / "near" / "not_a_workspace").mkdir()
    in_cwd = copy_workspace(built_workspace, tmp_path / "cwd" / "workspaces" / "third")
    monkeypatch.chdir(tmp_path / "cwd")
    at = start(monkeypatch, first)
    picker = at.selectbox(key="workspace_pick")
    assert sorted(picker.options) == ["first", "second", "third"]  # beside the open one, and in ./workspaces
    assert picker.value == str(first)
    picker.set_value(str(second)).run()
    assert_clean(at)
    assert at.text_input(key="workspace_input").value == str(second)
    assert any(f"Workspace `{second}`" in c.value for c in at.caption)
    at.selectbox(key="workspace_pick").set_value(str(in_cwd)).run()
    assert any(f"Workspace `{in_cwd}`" in c.value for c in at.caption)
    at.text_input(key="workspace_input").set_value(str(first)).run()  # typing a path moves the picker too
    assert at.selectbox(key="workspace_pick").value == str(first)


def test_new_run_form_refuses_a_missing_folder_or_a_workspace_inside_it(monkeypatch, tmp_path, small_images):
    at = start(monkeypatch, None)
    fill_run_form(at, tmp_path / "nowhere", tmp_path / "ws", 1)
    assert "Image folder not found" in at.error[0].value and not at.exception
    fill_run_form(at, small_images, small_images / "ws", 1)
    assert "inside the image folder" in at.error[0].value
    assert not (tmp_path / "ws").exists() and not (small_images / "ws").exists()
    assert jobs.status(tmp_path / "ws") == {"state": "none"}


def test_run_command_without_tasks_leaves_the_recipe_to_the_default(tmp_path, small_images):
    from curate.ui.runs import run_command

    ws, args = run_command(str(small_images), str(tmp_path / "ws"), 3, [])
    assert args == ["run", str(small_images.resolve()), "-w", str(ws), "--minutes", "3"]  # no --task
    assert run_command(str(small_images), str(tmp_path / "ws"), 3, ["byol", "rotation"])[1][-4:] == \
        ["--task", "byol", "--task", "rotation"]


@pytest.mark.slow
def test_a_run_started_in_the_app_goes_on_in_the_background_and_finishes(monkeypatch, tmp_path, small_images):
    target = tmp_path / "new_ws"
    at = start(monkeypatch, None)
    fill_run_form(at, small_images, target, 0.1)
    assert_clean(at)
    status = jobs.status(target)
    assert status["state"] == "running"
    assert status["args"] == ["run", str(small_images.resolve()), "-w", str(target.resolve()), "--minutes", "0.1",
                              "--task", "simclr"]
    assert at.text_input(key="workspace_input").value == str(target.resolve())  # the new workspace is open
    assert any(s.value == "Run in progress" for s in at.subheader)
    assert at.get("progress") and at.button(key="job_cancel")

    wait_for(target, lambda s: stage(s) != "" or s["state"] != "running")
    reloaded = start(monkeypatch, target)  # a new session (a reloaded tab) reads the same job files
    if jobs.status(target)["state"] == "running":
        assert any(s.value == "Run in progress" for s in reloaded.subheader)
        bar = reloaded.get("progress")[0].proto
        assert bar.text.split(":")[0] in {"scan", "quality", "train", "embed"} or bar.text.startswith("decode")

    status = wait_for(target, lambda s: s["state"] != "running")
    assert status["state"] == "finished" and status["returncode"] == 0, status["log_tail"]
    at.run()
    assert_clean(at)
    assert "The last run finished" in at.success[0].value
    shown = {m.label: m.value for m in at.metric}
    assert shown["Images"] == "200" and shown["OK"] == "200" and shown["Architecture"] == "resnet10"
    open_page(at, "Explore")
    assert plotted(at) == (200, 200)


@pytest.mark.slow
def test_cancel_stops_a_running_job(monkeypatch, tmp_path, small_images):
    target = tmp_path / "cancel_ws"
    at = start(monkeypatch, None)
    fill_run_form(at, small_images, target, 5)
    wait_for(target, lambda s: stage(s).startswith("train"))
    at.run()
    assert any(m.label == "Loss" for m in at.metric)  # the trainer's live figures
    at.button(key="job_cancel").click().run()
    assert_clean(at)
    status = jobs.status(target)
    assert status["state"] == "cancelled" or status.get("cancelling")
    status = wait_for(target, lambda s: s["state"] != "running", timeout=180)
    assert status["state"] == "cancelled" and status["returncode"] == 130
    assert not (target / "embeddings.npy").exists()  # it stopped in training, before embedding
    at.run()
    assert "The last run was cancelled" in at.warning[0].value
    assert not [b for b in at.button if b.key == "job_cancel"]


# --- Explore: colours, map, filters ------------------------------------------------------------
def test_every_colour_option_draws_the_map(monkeypatch, built_workspace_copy):
    ws = built_workspace_copy
    at = open_page(start(monkeypatch, ws.path), "Explore")
    labels = sorted(ws.manifest()["label"].unique())
    dups = ws.duplicates()
    expected = {
        "label": lambda n: n == [f"{label} (200)" for label in labels],
        "cluster": lambda n: len(n) == 10 and all(x.startswith("cluster ") for x in n),
        "tag": lambda n: n == ["untagged (2,000)"],
        "selections": lambda n: n == ["in no selection (1,900)", "kcenter_100 (100)"],
        "basket": lambda n: n == ["other (2,000)", "in the basket (0)"],
        "selection:kcenter_100": lambda n: n == ["other (1,900)", "in selection “kcenter_100” (100)"],
        "duplicate": lambda n: n[0] == f"no duplicate ({2000 - len(dups):,})"
        and sum(count_in(x) for x in n[1:]) == len(dups),
    }
    for option in colour_options(ws, ws.manifest()):
        set_colour(at, option)
        step = next((b for b in at.button if str(b.key).startswith("explore_compute_")), None)
        if step is not None:  # scores or quality flags not computed yet: the page offers to
            assert names(at)[0] == f"{labels[0]} (200)"  # meanwhile coloured by label
            step.click().run()
            assert_clean(at)
        drawn = names(at)
        assert sum(count_in(n) for n in drawn) == 2000, (option, drawn)
        if option in expected:
            assert expected[option](drawn), (option, drawn)
    table = pd.read_parquet(ws.scores_file)
    assert len(table) == 2000 and {"uniqueness", "typicality", "outlier"} <= set(table.columns)
    manifest = ws.manifest()
    assert set(FLAG_COLUMNS) <= set(manifest.columns)

    set_colour(at, "uniqueness")
    (trace,) = traces(at)
    ids, colours = array(trace["customdata"]), array(trace["marker"]["color"])
    assert np.allclose(colours, table.set_index("id")["uniqueness"].reindex(ids).to_numpy(), atol=1e-6)
    set_colour(at, "outlier")
    outliers = int(table["outlier"].sum())
    assert names(at) == [f"not an outlier ({2000 - outliers:,})", f"outlier ({outliers:,})"]
    set_colour(at, "quality")
    clean = int((~manifest[list(FLAG_COLUMNS)].fillna(False).to_numpy(bool).any(axis=1)).sum())
    assert names(at)[0] == f"no flag ({clean:,})" or clean == 0
    set_colour(at, "cluster")
    at.number_input(key="explore_k").set_value(4).run()
    assert len(names(at)) == 4


def test_pca_map_is_the_pca_of_the_embeddings(monkeypatch, built_workspace):
    ws = Workspace(built_workspace)
    at = open_page(start(monkeypatch, built_workspace), "Explore")
    at.selectbox(key="explore_projection").set_value("pca").run()
    assert_clean(at)
    rows = indexed_rows(ws)
    expected = np.full((len(ws.manifest()), 2), np.nan, np.float32)
    expected[rows] = pca_2d(np.asarray(ws.embeddings())[rows])
    for trace in traces(at):
        ids = array(trace["customdata"]).astype(np.int64)
        assert np.allclose(array(trace["x"]), expected[ids, 0], atol=1e-4)
        assert np.allclose(array(trace["y"]), expected[ids, 1], atol=1e-4)
    assert plotted(at) == (2000, 2000)


def test_filters_change_the_points_on_the_map(monkeypatch, built_workspace_copy):
    from curate.steps.quality import quality
    from curate.steps.scores import compute_scores

    ws = built_workspace_copy
    manifest = quality(ws)
    scores = compute_scores(ws)
    at = open_page(start(monkeypatch, ws.path), "Explore")
    assert plotted(at) == (2000, 2000)

    apply_filters(at, labels=["cat", "dog"])
    assert plotted(at) == (400, 2000) and names(at) == ["cat (200)", "dog (200)"]
    apply_filters(at, labels=[])
    assert plotted(at) == (2000, 2000)

    flagged = manifest[list(FLAG_COLUMNS)].fillna(False).to_numpy(bool).any(axis=1) | \
        scores.set_index("id")["outlier"].reindex(manifest["id"]).to_numpy(bool)
    assert 0 < flagged.sum() < 2000
    apply_filters(at, flags=[*FLAG_COLUMNS, "outlier"])
    assert plotted(at) == (2000 - int(flagged.sum()), 2000)
    apply_filters(at, flags=[])

    slider = at.slider(key="explore_f_uniqueness")
    low, high = slider.min, slider.max
    cut = round(float(np.median(scores["uniqueness"])), 2)
    apply_filters(at, uniqueness=(low, cut))
    inside = int(((scores["uniqueness"] >= low) & (scores["uniqueness"] <= cut)).sum())
    assert 0 < inside < 2000 and plotted(at) == (inside, 2000)
    assert any(e.label.startswith("Filters (on)") for e in at.expander)
    apply_filters(at, uniqueness=(low, high), labels=["cat"])
    assert plotted(at) == (200, 2000)


def test_tagging_the_basket_writes_tags_and_the_tag_filter_uses_them(monkeypatch, built_workspace_copy):
    ws = built_workspace_copy
    at = start(monkeypatch, ws.path, basket=[3, 1, 4, 15, 9])
    assert_clean(at)
    at.text_input(key="sidebar_tag_name").set_value("to_label")
    at.button(key="sidebar_tag_add").click().run()
    assert_clean(at)
    tags = pd.read_parquet(ws.tags_file)
    assert sorted(tags.loc[tags["tag"] == "to_label", "id"]) == [1, 3, 4, 9, 15]
    assert "`to_label` 5" in [c.value for c in at.sidebar.caption]

    open_page(at, "Explore")
    apply_filters(at, tags=["to_label"])
    assert plotted(at) == (5, 2000)
    assert sorted(int(i) for t in traces(at) for i in array(t["customdata"])) == [1, 3, 4, 9, 15]
    apply_filters(at, tags=[], skip_tags=["to_label"])
    assert plotted(at) == (1995, 2000)
    apply_filters(at, skip_tags=[])
    set_colour(at, "tag")
    assert names(at) == ["untagged (1,995)", "to_label (5)"]

    at.session_state["basket"] = [3, 1]
    at.text_input(key="sidebar_tag_name").set_value("to_label")
    at.button(key="sidebar_tag_remove").click().run()  # untag the basket
    at.text_input(key="sidebar_tag_name").set_value("bad")
    at.button(key="sidebar_tag_add").click().run()
    assert_clean(at)
    tags = pd.read_parquet(ws.tags_file)
    assert sorted(tags.loc[tags["tag"] == "to_label", "id"]) == [4, 9, 15]
    assert sorted(tags.loc[tags["tag"] == "bad", "id"]) == [1, 3]
    assert "`to_label` 3 · `bad` 2" in [c.value for c in at.sidebar.caption]
    assert names(at) == ["untagged (1,995)", "to_label (3)", "bad (2)"]
    apply_filters(at, tags=["bad"])
    assert plotted(at) == (2, 2000)


def test_basket_grid_and_removing_from_the_basket(monkeypatch, built_workspace):
    at = open_page(start(monkeypatch, built_workspace, basket=[10, 20, 30, 40, 50, 60]), "Explore")
    assert any(s.value == "Basket · 6 images" for s in at.subheader)
    grid = list(at.image[-1].captions)
    assert [int(c[1:].split()[0]) for c in grid] == [60, 50, 40, 30, 20, 10]  # newest first
    at.multiselect(key="explore_remove_ids").set_value([20, 50])
    at.button(key="explore_remove").click().run()
    assert_clean(at)
    assert at.session_state["basket"] == [10, 30, 40, 60]
    assert [int(c[1:].split()[0]) for c in at.image[-1].captions] == [60, 40, 30, 10]
    assert "Basket: **4** images" in [c.value for c in at.sidebar.caption]
    set_colour(at, "basket")
    assert names(at) == ["other (1,996)", "in the basket (4)"]
    at.button(key="explore_clear").click().run()
    assert at.session_state["basket"] == [] and not at.image


# --- speed on a large workspace -----------------------------------------------------------------
def synthetic_workspace(path: Path, n: int, seed: int = 0) -> Workspace:
    """A workspace of `n` images with everything Explore reads (manifest with quality flags,
    embeddings, map, scores, tags), made of random arrays: the app's own cost, not the pipeline's."""
    from curate import storage

    rng = np.random.default_rng(seed)
    (path.parent / "images").mkdir(parents=True)
    ws = Workspace.create(path, path.parent / "images")
    labels = np.array([f"class{i:03d}" for i in range(100)])[rng.integers(0, 100, n)]
    manifest = pd.DataFrame({"id": np.arange(n), "path": [f"{c}/{i}.jpg" for i, c in enumerate(labels)],
                             "label": labels, "width": 32, "height": 32, "bytes": 1000, "sha1": "-", "status": "ok",
                             "mtime": 0})
    for flag in FLAG_COLUMNS:
        manifest[flag] = rng.random(n) < 0.02
    ws.save_manifest(manifest.astype({c: "string" for c in ("path", "label", "sha1", "status")}))
    vectors = rng.normal(size=(n, 32)).astype(np.float32)
    storage.write_npy(ws.embeddings_file, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    storage.write_npy(ws.projection_file, rng.normal(size=(n, 2)).astype(np.float32))
    storage.write_parquet(ws.scores_file, pd.DataFrame({"id": np.arange(n), "uniqueness": rng.random(n),
                                                        "typicality": rng.random(n), "outlier": rng.random(n) < 0.01}))
    storage.write_parquet(ws.tags_file, pd.DataFrame({"id": np.arange(0, n, 7), "tag": "to_label"}))
    return ws


def test_pages_open_in_under_two_seconds_on_50k_images(monkeypatch, tmp_path):
    ws = synthetic_workspace(tmp_path / "big" / "ws", 50_000)
    at = open_page(start(monkeypatch, ws.path), "Explore")  # the first load fills the caches
    assert plotted(at) == (50_000, 50_000)
    for colour in ("uniqueness", "quality", "tag", "cluster", "label"):
        set_colour(at, colour)  # each view drawn once
    for title in ("Overview", "Explore"):
        began = time.perf_counter()
        open_page(at, title)
        assert time.perf_counter() - began < 2.0, title
    began = time.perf_counter()
    set_colour(at, "uniqueness")  # a view seen before comes from the cache
    assert time.perf_counter() - began < 2.0
    assert plotted(at) == (50_000, 50_000)


def test_map_draws_after_a_rescan_added_images_it_has_no_points_for(monkeypatch, tmp_path, built_workspace_copy,
                                                                     bundled_images):
    """Between a rescan and the next embedding the manifest is longer than the map: the new images
    are left off the map (and counted nowhere) instead of the page failing on the shapes."""
    from curate import storage
    from curate.steps.scan import scan

    ws = built_workspace_copy
    root = tmp_path / "images"
    shutil.copytree(bundled_images, root)  # same files, same mtimes: the rescan keeps every id
    for i, src in enumerate(sorted((bundled_images / "cat").glob("*.jpg"))[:3]):
        shutil.copy(src, root / "cat" / f"added_{i}.jpg")
    storage.write_json(ws.meta_file, {**storage.read_json(ws.meta_file), "root": str(root)})
    scan(root, ws.path)
    assert len(ws.manifest()) == 2003 and len(ws.projection()) == 2000
    at = open_page(start(monkeypatch, ws.path), "Explore")
    for option in ("label", "cluster"):
        set_colour(at, option)
        assert_clean(at)
        assert sum(count_in(n) for n in names(at)) == 2000, (option, names(at))


def test_a_million_point_map_draws_a_share_and_the_lasso_takes_every_image(monkeypatch, tmp_path):
    """At 1M images the browser gets MAX_DRAWN points, an even share of every group (legends count all),
    filters bring the undrawn ones back, and a box or lasso selects every image inside it, drawn or not."""
    from curate.ui.map_figure import MAX_DRAWN

    n = 1_000_000
    ws = synthetic_workspace(tmp_path / "huge" / "ws", n)
    began = time.perf_counter()
    at = open_page(start(monkeypatch, ws.path), "Explore")
    first_s = time.perf_counter() - began
    assert plotted(at) == (n, n)
    drawn = sum(len(array(t["customdata"])) for t in traces(at))
    assert 0.97 * MAX_DRAWN < drawn <= 1.03 * MAX_DRAWN
    assert sum(count_in(name) for name in names(at)) == n  # the legend counts every image
    shares = [len(array(t["customdata"])) / count_in(t["name"]) for t in traces(at)]
    assert max(shares) - min(shares) < 0.05  # every label keeps its share
    began = time.perf_counter()
    set_colour(at, "uniqueness")
    assert plotted(at) == (n, n) and time.perf_counter() - began < 20
    print(f"1M-image Explore: first load {first_s:.1f}s, recolour {time.perf_counter() - began:.1f}s")

    apply_filters(at, labels=["class007"])  # one label: ~10,000 images, all drawn
    shown, _ = plotted(at)
    assert shown == int((ws.manifest()["label"] == "class007").sum())
    assert "of them are drawn" not in next(c.value for c in at.caption if " images on the map" in c.value)


def test_a_box_or_lasso_on_a_thinned_map_takes_every_image_inside_it(built_workspace):
    from curate.ui.map_figure import groups_by_label, scatter

    ws = Workspace(built_workspace)
    xy = ws.projection()
    chart = scatter(xy, groups_by_label(ws.manifest()["label"], xy), max_drawn=500)
    assert chart.drawn < 600 and chart.shown == 2000
    (x0, y0), (x1, y1) = np.nanpercentile(xy, 20, axis=0), np.nanpercentile(xy, 60, axis=0)
    in_box = set(np.flatnonzero((xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)).tolist())
    got = chart.ids_selected({"points": [], "box": [{"x": [x1, x0], "y": [y0, y1]}], "lasso": []})
    assert set(got) == in_box and len(in_box) > 100
    triangle = {"x": [x0, x1, x0], "y": [y0, y0, y1]}  # the lower-left half of the box
    got = chart.ids_selected({"points": [], "box": [], "lasso": [triangle]})
    rel = (xy[:, 0] - x0) / (x1 - x0) + (xy[:, 1] - y0) / (y1 - y0)
    expected = set(np.flatnonzero((xy[:, 0] >= x0) & (xy[:, 1] >= y0) & (rel <= 1)).tolist())
    assert len(set(got) ^ expected) <= 2 and len(expected) > 50  # points on the edge may go either way
    clicked = chart.ids_of([{"curve_number": 0, "point_index": 0}])
    assert chart.ids_selected({"points": [{"curve_number": 0, "point_index": 0}]}) == clicked


def test_explore_draws_a_map_that_lags_behind_the_manifest(monkeypatch, built_workspace_copy):
    """Mixed generations: a rescan added images the saved map does not have yet (the map file is one
    generation older than the manifest). Explore draws the images it has, says how many, no error."""
    ws = built_workspace_copy
    xy = np.load(ws.projection_file)
    meta = json.loads(ws.sidecar(ws.projection_file).read_text())
    np.save(ws.projection_file, xy[:-50])  # the map from before the last 50 ids, of the same embeddings
    write_sidecar(ws.projection_file, meta, meta["inputs"])
    at = open_page(start(monkeypatch, ws), "Explore")
    assert_clean(at)
    shown = next(c.value for c in at.caption if "images on the map" in c.value)
    mapped = int(np.isfinite(xy[:-50]).all(1).sum())
    assert shown.startswith(f"{mapped:,} of {mapped:,} images on the map"), shown


def test_tsne_map_is_computed_on_request_then_drawn(monkeypatch, built_workspace_copy):
    """t-SNE is offered before it exists: the page says so, draws the UMAP meanwhile, and one click
    writes projection_tsne.npy (a checked file of these embeddings) and draws it."""
    ws = built_workspace_copy
    at = open_page(start(monkeypatch, ws.path), "Explore")
    at.selectbox(key="explore_projection").set_value("tsne").run()
    assert_clean(at)
    assert any("No t-SNE map yet" in i.value for i in at.info)
    umap_xy = ws.projection()
    trace = traces(at)[0]
    ids = array(trace["customdata"]).astype(np.int64)
    assert np.allclose(array(trace["x"]), umap_xy[ids, 0], atol=1e-4)  # the UMAP until t-SNE is computed
    at.button(key="explore_compute_tsne").click().run(timeout=300)
    assert_clean(at)
    tsne_xy = ws.projection("tsne")
    assert ws.tsne_file.exists() and np.isfinite(tsne_xy[indexed_rows(ws)]).all()
    assert not any("No t-SNE map yet" in i.value for i in at.info)
    for trace in traces(at):
        ids = array(trace["customdata"]).astype(np.int64)
        assert np.allclose(array(trace["x"]), tsne_xy[ids, 0], atol=1e-4)
    assert plotted(at) == (2000, 2000)
