"""The Streamlit app driven headless by AppTest on a real workspace: every page renders, and the key
paths (search, basket, select + save, export, duplicates, colouring the map) do real work on disk."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from curate.select import select as rank
from curate.ui.map_figure import groups_by_label, scatter
from curate.ui.navigation import PAGES
from curate.workspace import Workspace

from tests.apptest_helpers import assert_clean, open_page, start


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def grid_captions(at: AppTest) -> list[list[str]]:
    """Captions of each thumbnail grid (one st.image element per grid)."""
    return [list(img.captions) for img in at.image]


def basket_caption(at: AppTest) -> str:
    return next(c.value for c in at.sidebar.caption if c.value.startswith("Basket"))


@pytest.fixture
def app(monkeypatch, built_workspace) -> AppTest:
    return start(monkeypatch, built_workspace)


@pytest.fixture
def writable_workspace(tmp_path, built_workspace) -> Path:
    """A copy of the shared workspace for tests that save selections (the training checkpoint is left out)."""
    copy = tmp_path / "ws"
    shutil.copytree(built_workspace, copy, ignore=shutil.ignore_patterns("checkpoint.pt", "cache"))
    return copy


def test_overview_shows_counts_model_and_labels(app, built_workspace):
    assert_clean(app)
    shown = metrics(app)
    manifest = Workspace(built_workspace).manifest()
    assert shown["Images"] == f"{len(manifest):,}" == "2,000"
    assert shown["OK"] == "2,000" and shown["Skipped"] == "0"
    assert shown["Selections"] == "1"
    assert shown["Architecture"] == "resnet10" and shown["Image size"] == "32 px"
    groups = pd.read_parquet(built_workspace / "duplicates.parquet")["group"].nunique()
    assert shown["Duplicate groups"] == str(groups)
    assert any("Every image was readable" in s.value for s in app.success)
    assert any("curate eval" in i.value for i in app.info)  # no eval report in this workspace yet
    # embedding health while training: one panel per figure, one point per check in model/health_log.jsonl
    health = [json.loads(line) for line in (built_workspace / "model" / "health_log.jsonl").read_text().splitlines()]
    spec = next(json.loads(c.proto.spec) for c in app.get("plotly_chart")
                if "effective rank" in json.dumps(json.loads(c.proto.spec).get("layout", {})))
    ranks = next(t for t in spec["data"] if t["name"].startswith("effective rank"))
    assert len(health) >= 2 and ranks["y"] == pytest.approx([r["effective_rank"] for r in health])


@pytest.mark.parametrize("title", [title for _, title, _, _ in PAGES])
def test_every_page_renders(app, title):
    open_page(app, title)


def test_no_workspace_explains_how_to_open_one(monkeypatch, built_workspace, tmp_path):
    at = start(monkeypatch, None)
    assert_clean(at)
    assert "No workspace is open" in at.info[0].value and "curate run IMAGES -w WS" in at.info[0].value
    at.text_input(key="workspace_input").set_value(str(tmp_path / "nowhere")).run()
    assert "curate run IMAGES -w" in at.error[0].value and not at.exception
    at.text_input(key="workspace_input").set_value(str(built_workspace)).run()
    assert_clean(at)
    assert metrics(at)["Images"] == "2,000"


def test_search_by_id_shows_neighbours_with_distances(app):
    open_page(app, "Search")
    app.number_input(key="search_id").set_value(7).run()
    assert_clean(app)
    query, results = grid_captions(app)
    assert query[0].startswith("#7 · ")
    assert len(results) == 12 and all("d=" in c for c in results)
    assert not any(c.startswith("#7 ") for c in results)  # the query is not its own neighbour
    distances = [float(c.rsplit("d=", 1)[1]) for c in results]
    assert distances == sorted(distances)
    app.slider(key="search_k").set_value(20).run()
    assert len(grid_captions(app)[1]) == 20


def test_search_by_upload_and_a_bad_upload(app, bundled_images):
    open_page(app, "Search")
    app.radio(key="search_source").set_value("Upload an image").run()
    image = next((bundled_images / "cat").glob("*.jpg"))
    app.file_uploader(key="search_upload").set_value((image.name, image.read_bytes(), "image/jpeg")).run()
    assert_clean(app)
    results = grid_captions(app)[-1]
    assert len(results) == 12 and all("d=" in c for c in results)
    app.file_uploader(key="search_upload").set_value(("broken.jpg", b"not an image at all", "image/jpeg")).run()
    assert not app.exception
    assert "Could not read broken.jpg" in app.error[0].value


def test_basket_add_from_search_then_clear(app):
    open_page(app, "Search")
    assert basket_caption(app) == "Basket: **0** images"
    app.button(key="search_add").click().run()
    assert_clean(app)
    assert basket_caption(app) == "Basket: **12** images"
    assert len(app.session_state["basket"]) == 12
    app.radio(key="search_source").set_value("Several images").run()  # more like the whole basket
    assert_clean(app)
    query, results = grid_captions(app)
    assert query[0].startswith(f"#{app.session_state['basket'][-1]} ") and len(query) == 12  # newest first
    assert len(results) == 12 and not {int(c[1:].split()[0]) for c in results} & set(app.session_state["basket"])
    open_page(app, "Explore")
    basket_grid = grid_captions(app)[-1]
    assert len(basket_grid) == 12
    assert any(s.value == "Basket · 12 images" for s in app.subheader)
    app.button(key="explore_clear").click().run()
    assert_clean(app)
    assert app.session_state["basket"] == [] and basket_caption(app) == "Basket: **0** images"
    assert not app.image  # no selection on the map, empty basket: no thumbnails


def test_explore_colours_the_map_by_selection(app, built_workspace):
    open_page(app, "Explore")
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert len(spec["data"]) == 10 and all(t["type"] == "scattergl" for t in spec["data"])
    app.selectbox(key="explore_colour").set_value("selection:kcenter_100").run()
    assert_clean(app)
    names = [t["name"] for t in json.loads(app.get("plotly_chart")[0].proto.spec)["data"]]
    assert names == ["other (1,900)", "in selection “kcenter_100” (100)"]


def test_map_selection_points_map_back_to_ids(built_workspace):
    ws = Workspace(built_workspace)
    chart = scatter(ws.projection(), groups_by_label(ws.manifest()["label"], ws.projection()))
    points = [{"curve_number": 1, "point_index": 0}, {"curve_number": 3, "point_index": 5},
              {"curve_number": 1, "point_index": 0}]  # plotly may report a point twice
    labels = ws.manifest()["label"]
    ids = chart.ids_of(points)
    assert len(ids) == 2
    assert labels.iloc[ids[0]] == sorted(labels.unique())[1] and labels.iloc[ids[1]] == sorted(labels.unique())[3]


def test_select_previews_and_saves_a_selection(monkeypatch, writable_workspace):
    at = open_page(start(monkeypatch, writable_workspace), "Select")
    at.number_input(key="select_n").set_value(25)
    button(at, "Preview").click().run()
    assert_clean(at)
    assert float(metrics(at)["Coverage radius"]) > 0
    assert len(grid_captions(at)[0]) == 25
    at.text_input(key="select_name").set_value("ui_pick")
    button(at, "Save selection").click().run()
    assert_clean(at)
    saved = pd.read_parquet(writable_workspace / "selections" / "ui_pick.parquet")
    ws = Workspace(writable_workspace)
    pool = np.flatnonzero(np.any(ws.embeddings() != 0, axis=1))
    expected = pool[rank(np.asarray(ws.embeddings())[pool], 25, "typiclust")]  # the default, auto, at 25 picks
    assert saved["id"].tolist() == expected.tolist() and saved["rank"].tolist() == list(range(25))
    assert ws.selection_meta("ui_pick")["strategy"] == "typiclust"
    assert "ui_pick" in at.dataframe[-1].value["name"].tolist()
    button(at, "Save selection").click().run()  # same name again, "replace" not ticked
    assert "exists" in at.warning[0].value


def test_export_copies_a_selection(app, built_workspace, tmp_path):
    open_page(app, "Export")
    assert app.selectbox(key="export_source").value == "kcenter_100"
    assert app.get("download_button")[0].proto.label == "Download manifest CSV"
    app.text_input(key="export_target").set_value(str(tmp_path / "out"))
    button(app, "Review export").click().run()
    assert_clean(app)
    assert not (tmp_path / "out").exists()  # reviewed, nothing written yet
    app.button(key="export_confirm").click().run()
    assert_clean(app)
    assert "Exported 100 images" in app.success[0].value
    files = sorted((tmp_path / "out").rglob("*.jpg"))
    assert len(files) == 100 and all(f.stat().st_size > 0 for f in files)
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    chosen = pd.read_parquet(built_workspace / "selections" / "kcenter_100.parquet").sort_values("rank")
    assert manifest["id"].tolist() == chosen["id"].tolist()


def test_download_csv_lists_the_selection_rows_in_rank_order(built_workspace):
    from curate.ui.pages.export_page import manifest_csv  # the page module imports without running

    ws = Workspace(built_workspace)
    ids = pd.read_parquet(built_workspace / "selections" / "kcenter_100.parquet").sort_values("rank")["id"].tolist()
    rows = pd.read_csv(io.BytesIO(manifest_csv(ws.manifest(), ids)))
    assert rows["id"].tolist() == ids and rows["rank"].tolist() == list(range(100))
    assert rows["path"].tolist() == ws.manifest()["path"].iloc[ids].tolist()


def test_export_basket_lists_it_without_saving_a_selection(monkeypatch, writable_workspace, tmp_path):
    at = open_page(start(monkeypatch, writable_workspace), "Search")
    at.button(key="search_add").click().run()
    open_page(at, "Export")
    at.selectbox(key="export_source").set_value("\x00basket").run()
    at.radio(key="export_mode").set_value("list")
    at.text_input(key="export_target").set_value(str(tmp_path / "listed"))
    button(at, "Review export").click().run()
    at.button(key="export_confirm").click().run()
    assert_clean(at)
    listed = pd.read_csv(tmp_path / "listed" / "manifest.csv")
    assert listed["id"].tolist() == at.session_state["basket"] and len(listed) == 12
    assert json.loads((tmp_path / "listed" / "manifest.json").read_text())["provenance"]["source"] == "basket"
    assert not (writable_workspace / "selections" / "basket.parquet").exists()
    assert not list((tmp_path / "listed").rglob("*.jpg"))  # list mode writes no image files


def test_export_refuses_a_target_inside_the_image_folder(app, built_workspace):
    open_page(app, "Export")
    inside = Workspace(built_workspace).root / "exported"
    app.text_input(key="export_target").set_value(str(inside))
    button(app, "Review export").click().run()
    assert "Refusing to export" in app.error[0].value and not app.exception
    assert not any(b.key == "export_confirm" for b in app.button)
    assert not inside.exists()


def test_duplicates_page_shows_groups_with_their_keeper(app, built_workspace):
    open_page(app, "Duplicates & quality")
    table = pd.read_parquet(built_workspace / "duplicates.parquet")
    assert metrics(app)["Groups"] == str(table["group"].nunique())
    assert metrics(app)["Removable (non-keepers)"] == f"{int((~table['keeper']).sum()):,}"
    grids = grid_captions(app)
    assert len(grids) == min(10, table["group"].nunique())
    for captions in grids:
        assert captions[0].startswith("★ keep ") and sum(c.startswith("★") for c in captions) == 1
        keeper_id = int(captions[0].split("#")[1].split()[0])
        assert table.loc[table["id"] == keeper_id, "keeper"].item()
