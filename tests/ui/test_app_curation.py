"""The curation pages driven headless by AppTest on a real workspace: search (by id, from any grid,
by upload, by several positives, with negatives, histogram cut-off), select (every strategy,
constraints, rename / delete / compare), duplicates & quality, export (folder after review, zip).
Every test checks what landed on disk or an independent computation, not only what is drawn."""
from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit
from streamlit.testing.v1 import AppTest

from curate.data.tags import add_tag, ids_with_tag
from curate.index.query import combine_queries
from curate.quality.checks import FLAG_COLUMNS, METRIC_COLUMNS
from curate.select import STRATEGIES
from curate.select.auto import resolve_strategy
from curate.session import open_workspace
from curate import storage
from curate.steps.dedup import dedup
from curate.steps.quality import saved_config
from curate.steps.select import SelectionRequest, compute_selection, run_selection
from curate.workspace import Workspace

from tests.apptest_helpers import assert_clean, open_page, start


def captions(at: AppTest) -> list[list[str]]:
    return [list(img.captions) for img in at.image]


def ids_of(grid: list[str]) -> list[int]:
    """Image ids from captions such as `#12 · cat · d=0.1`, `★ keep #3 · dog`, `⊘ #5`."""
    return [int(re.search(r"#(\d+)", c).group(1)) for c in grid]


def shown(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def submit(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click().run()
    return at


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def array(values) -> np.ndarray:
    """A plotly data array from a figure's JSON: a list, or plotly 6's base64 typed array."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"]))
    return np.asarray(values)


def pool_vectors(path) -> np.ndarray:
    return np.asarray(Workspace(Path(path)).embeddings(), dtype=np.float32)


# --- search ---------------------------------------------------------------------------------------
def test_search_similar_from_any_grid(monkeypatch, built_workspace):
    at = open_page(start(monkeypatch, built_workspace), "select_page.py")
    at.number_input(key="select_n").set_value(10)
    submit(at, "Preview")
    target = ids_of(captions(at)[0])[3]
    at.selectbox(key="select_preview_pick").set_value(target)
    at.button(key="select_preview_search").click().run()  # the Select preview's "Search similar"
    assert_clean(at)
    assert [t.value for t in at.title] == ["Search"] and at.number_input(key="search_id").value == target
    query, results = captions(at)[:2]
    expected = open_workspace(built_workspace).search(target, 12)
    assert ids_of(query) == [target] and ids_of(results) == expected["id"].tolist()
    assert np.allclose([float(c.rsplit("d=", 1)[1]) for c in results], expected["distance"], atol=2e-3)

    hop = ids_of(results)[5]  # and again from the results grid itself
    at.switch_page("curate/ui/pages/search_page.py")  # AppTest would otherwise re-request the page it last opened
    at.selectbox(key="search_results_pick").set_value(hop)
    at.button(key="search_results_search").click().run()
    assert_clean(at)
    assert ids_of(captions(at)[0]) == [hop]
    assert ids_of(captions(at)[1]) == open_workspace(built_workspace).search(hop, 12)["id"].tolist()

    keep = ids_of(captions(at)[1])[2]  # the same popover puts one image in the basket
    at.selectbox(key="search_results_pick").set_value(keep)
    at.button(key="search_results_basket").click().run()
    assert_clean(at)
    assert at.session_state["basket"] == [keep]


def test_search_by_upload_finds_the_image_itself_and_a_non_image_gets_a_message(monkeypatch, built_workspace,
                                                                                bundled_images):
    at = open_page(start(monkeypatch, built_workspace), "search_page.py")
    at.radio(key="search_source").set_value("Upload an image").run()
    image = sorted((bundled_images / "cat").glob("*.jpg"))[3]
    at.file_uploader(key="search_upload").set_value((image.name, image.read_bytes(), "image/jpeg")).run()
    assert_clean(at)
    results = captions(at)[-1]
    manifest = Workspace(built_workspace).manifest()
    own_id = int(manifest.index[manifest["path"] == f"cat/{image.name}"][0])
    assert len(results) == 12 and ids_of(results)[0] == own_id  # the same picture, embedded the same way
    assert float(results[0].rsplit("d=", 1)[1]) < 0.01

    at.file_uploader(key="search_upload").set_value(("notes.png", b"%PDF-1.4 definitely not a picture",
                                                      "image/png")).run()
    assert not at.exception
    assert "Could not read notes.png" in at.error[0].value
    assert not at.image  # no results for an unreadable upload


def test_several_positives_mean_max_and_negatives(monkeypatch, built_workspace):
    session = open_workspace(built_workspace)
    labels = session.manifest["label"]
    a, b = int(labels.index[labels == "airplane"][0]), int(labels.index[labels == "frog"][0])
    at = open_page(start(monkeypatch, built_workspace), "search_page.py")
    at.radio(key="search_source").set_value("Several images").run()
    at.text_input(key="search_pos_ids").set_value(f"{a}, {b}").run()
    assert_clean(at)
    positives, results = captions(at)[:2]
    assert ids_of(positives) == [a, b]
    x = session.embeddings
    by_mean = session.search(combine_queries(x[[a, b]]), 14)  # the mean query, searched the plain way
    assert ids_of(results) == [i for i in by_mean["id"] if i not in (a, b)][:12]

    at.radio(key="search_mode").set_value("max").run()
    assert_clean(at)
    results = ids_of(captions(at)[1])
    merged = pd.concat([session.search(a, 14), session.search(b, 14)]).groupby("id")["similarity"].max()
    merged = merged.drop([a, b], errors="ignore").reset_index().sort_values(["similarity", "id"],
                                                                          ascending=[False, True])
    assert results == merged["id"].head(12).tolist()
    assert set(results) <= set(session.search(a, 14)["id"]) | set(session.search(b, 14)["id"])  # their neighbours

    negative = results[0]
    at.text_input(key="search_neg").set_value(str(negative)).run()
    assert_clean(at)
    grid = captions(at)[1]
    penalised = ids_of(grid)
    assert negative not in penalised
    expected = np.maximum(x[penalised] @ x[a], x[penalised] @ x[b]) - 1.0 * (x[penalised] @ x[negative])
    assert np.allclose([float(c.rsplit("s=", 1)[1]) for c in grid], expected, atol=2e-3)


def test_histogram_cutoff_sends_every_result_above_it_to_the_basket(monkeypatch, built_workspace):
    at = open_page(start(monkeypatch, built_workspace), "search_page.py")
    at.number_input(key="search_id").set_value(7).run()
    (histogram,) = [c for c in charts(at) if c["data"][0]["type"] == "histogram"]
    assert len(array(histogram["data"][0]["x"])) == 1000  # the 1,000 best results are scored
    x = pool_vectors(built_workspace)
    sims = x @ x[7]
    sims[7] = -np.inf
    ranked = np.sort(sims)[::-1]
    # the slider moves in steps of 0.001: of the grid values near the 40th result, the one farthest
    # from every similarity, so float noise between faiss and numpy cannot move an image across it
    grid = [round(float(ranked[40]) + j / 1000, 3) for j in range(-10, 11)]
    grid = [c for c in grid if 10 < np.count_nonzero(sims >= c) < 1000]
    cut = max(grid, key=lambda c: np.abs(sims - c).min())
    assert np.abs(sims - cut).min() > 1e-5
    at.slider(key="search_cut").set_value(cut).run()
    assert_clean(at)
    expected = set(np.flatnonzero(sims >= cut).tolist())
    assert 10 < len(expected) < 1000
    assert at.button(key="search_add_cut").label.startswith(f"Add the {len(expected):,} results")
    at.button(key="search_add_cut").click().run()
    assert_clean(at)
    assert set(at.session_state["basket"]) == expected and len(at.session_state["basket"]) == len(expected)


# --- select ---------------------------------------------------------------------------------------
def test_every_strategy_previews_and_saves(monkeypatch, built_workspace_copy):
    ws = built_workspace_copy
    at = open_page(start(monkeypatch, ws), "select_page.py")
    assert at.selectbox(key="select_strategy").value == "auto"  # the default: the benchmark's winner by budget
    for strategy in STRATEGIES.names():
        at.selectbox(key="select_strategy").set_value(strategy).run()
        at.number_input(key="select_n").set_value(20)
        submit(at, "Preview")
        assert_clean(at)
        preview = ids_of(captions(at)[0])
        if strategy == "auto":
            assert at.subheader[0].value.startswith("Preview: typiclust (auto's choice for this budget), 20 of")
        expected = compute_selection(ws, SelectionRequest(n=20, strategy=strategy)).ids.tolist()
        assert preview == expected, strategy
        for chart in charts(at)[:2]:  # label and cluster shares, selection against the pool
            assert [t["name"] for t in chart["data"]] == ["selected", "pool"]
            assert np.isclose(array(chart["data"][0]["y"]).sum(), 1) and np.isclose(array(chart["data"][1]["y"]).sum(), 1)
        at.text_input(key="select_name").set_value(f"ui_{strategy}")
        submit(at, "Save selection")
        assert_clean(at)
        saved = ws.selection(f"ui_{strategy}").sort_values("rank")["id"].tolist()
        meta = ws.selection_meta(f"ui_{strategy}")
        assert saved == expected and meta["request"]["strategy"] == strategy and meta["request"]["n"] == 20
        assert meta["strategy"] == resolve_strategy(strategy, 20)  # auto: the strategy that ranked it
        assert f"{meta['metrics']['coverage_radius']:.3f}" == shown(at)["Coverage radius"]


def test_constraints_exclude_tag_balance_fraction_and_basket(monkeypatch, built_workspace_copy):
    ws = built_workspace_copy
    bad = list(range(0, 2000, 20))  # 100 images, 10 of each class
    add_tag(ws, bad, "bad")
    basket = [1999, 1501, 703, 404, 5]
    at = start(monkeypatch, ws)
    at.session_state["basket"] = basket
    open_page(at, "select_page.py")
    at.multiselect(key="select_exclude").set_value(["tag:bad"])
    at.selectbox(key="select_balance").set_value("label")
    at.number_input(key="select_fraction").set_value(0.05)
    at.checkbox(key="select_include_basket").check()
    submit(at, "Preview")
    assert_clean(at)
    at.text_input(key="select_name").set_value("constrained")
    submit(at, "Save selection")
    assert_clean(at)
    chosen = ws.selection("constrained").sort_values("rank")["id"].tolist()
    assert len(chosen) == round(0.05 * (2000 - len(bad)))  # a fraction of the eligible pool
    assert chosen[:5] == basket  # must-includes come first
    assert not set(chosen) & set(bad)
    counts = ws.manifest()["label"].iloc[chosen].value_counts()
    assert len(counts) == 10 and counts.max() - counts.min() <= 1  # balanced by label
    request = ws.selection_meta("constrained")["request"]
    assert request["exclude"] == ["tag:bad"] and request["balance"] == "label" and request["include_ids"] == basket


def test_rename_delete_and_compare_selections(monkeypatch, built_workspace_copy):
    ws = built_workspace_copy
    run_selection(ws, 100, "random", "rand")
    k = set(ws.selection("kcenter_100")["id"].tolist())
    r = set(ws.selection("rand")["id"].tolist())
    at = open_page(start(monkeypatch, ws), "select_page.py")
    at.selectbox(key="select_compare_a").set_value("kcenter_100")
    at.selectbox(key="select_compare_b").set_value("rand")
    submit(at, "Compare")
    assert_clean(at)
    figures = shown(at)
    assert figures["Overlap"] == f"{len(k & r):,}" and figures["Jaccard"] == f"{len(k & r) / len(k | r):.3f}"
    assert figures["Only in kcenter_100"] == f"{len(k - r):,}"
    table = at.dataframe[-1].value
    assert list(table.columns) == ["kcenter_100", "rand"] and table.loc["images"].tolist() == [100, 100]
    # k-center minimises the coverage radius: it must cover the same pool better than random picks
    assert table.loc["coverage radius", "kcenter_100"] < table.loc["coverage radius", "rand"]
    assert [t["name"] for t in charts(at)[-1]["data"]] == ["kcenter_100", "rand", "pool"]

    at.selectbox(key="select_rename_from").set_value("rand")
    at.text_input(key="select_rename_to").set_value("random 100")
    submit(at, "Rename")
    assert_clean(at)
    assert ws.selection_names() == ["kcenter_100", "random_100"]
    assert set(ws.selection("random_100")["id"].tolist()) == r and ws.selection_meta("random_100")["strategy"] == "random"
    at.selectbox(key="select_rename_from").set_value("kcenter_100")
    at.text_input(key="select_rename_to").set_value("random_100")
    submit(at, "Rename")
    assert "exists already" in at.error[0].value and not at.exception
    assert ws.selection_names() == ["kcenter_100", "random_100"]

    at.selectbox(key="select_delete_name").set_value("random_100")
    submit(at, "Delete")
    assert "confirm" in at.warning[0].value and ws.selection_names() == ["kcenter_100", "random_100"]
    at.checkbox(key="select_delete_sure").check()
    submit(at, "Delete")
    assert_clean(at)
    assert ws.selection_names() == ["kcenter_100"]
    assert not (ws.selections_dir / "random_100.json").exists()
    assert at.dataframe[-1].value["name"].tolist() == ["kcenter_100"]


# --- duplicates & quality ---------------------------------------------------------------------------
def planted_duplicates(ws: Workspace) -> pd.DataFrame:
    """Duplicate groups at a pair-score threshold set so ~20 pairs qualify."""
    dedup(ws)
    pairs = pd.read_parquet(ws.path / "duplicate_pairs.parquet")
    threshold = float(np.sort(pairs.loc[~pairs["null"], "score"])[-20])
    return dedup(ws, threshold=threshold)


def test_exclude_the_rest_tags_the_non_keepers(monkeypatch, built_workspace_copy):
    ws = built_workspace_copy
    table = planted_duplicates(ws)
    assert table["group"].nunique() >= 2
    at = open_page(start(monkeypatch, ws), "duplicates_page.py")
    first = ids_of(captions(at)[0])
    group = int(table.loc[table["id"] == first[0], "group"].item())
    members = table[table["group"] == group]
    rest = set(members.loc[~members["keeper"], "id"].tolist())
    assert members.loc[members["keeper"], "id"].tolist() == [first[0]]
    at.button(key=f"dup_exclude_{group}").click().run()
    assert_clean(at)
    assert set(ids_with_tag(ws, "duplicate").tolist()) == rest
    grid = captions(at)[0]
    assert grid[0].startswith("★ keep") and all(c.startswith("⊘ ") for c in grid[1:])
    assert shown(at)["Tagged “duplicate”"] == f"{len(rest):,}" and at.button(key=f"dup_exclude_{group}").disabled

    at.button(key="dup_exclude_all").click().run()
    assert_clean(at)
    all_rest = set(table.loc[~table["keeper"], "id"].tolist())
    assert set(ids_with_tag(ws, "duplicate").tolist()) == all_rest

    open_page(at, "select_page.py")  # a selection excluding tag:duplicate never picks them
    pool = int(np.any(pool_vectors(ws.path) != 0, axis=1).sum())
    at.multiselect(key="select_exclude").set_value(["tag:duplicate"])
    at.number_input(key="select_n").set_value(pool - len(all_rest))
    submit(at, "Preview")
    at.text_input(key="select_name").set_value("deduplicated")
    submit(at, "Save selection")
    assert_clean(at)
    chosen = set(ws.selection("deduplicated")["id"].tolist())
    assert len(chosen) == pool - len(all_rest) and not chosen & all_rest


def test_review_pairs_marks_move_the_threshold(monkeypatch, built_workspace_copy):
    ws = built_workspace_copy
    dedup(ws)
    before = storage.read_json(ws.sidecar(ws.duplicates_file))["threshold"]
    at = open_page(start(monkeypatch, ws), "duplicates_page.py")
    at.segmented_control(key="dq_view").set_value("Review pairs").run()
    assert_clean(at)
    same = [b for b in at.button if b.key and b.key.startswith("dup_same_")]
    assert same, "pairs near the threshold are offered for review"
    a, b = (int(v) for v in same[-1].key.split("_")[2:])
    same[-1].click().run()  # the lowest-scoring pair shown: a person says it is the same image
    assert_clean(at)
    marks = pd.read_parquet(ws.path / "duplicate_marks.parquet")
    assert marks[["a", "b"]].values.tolist() == [[a, b]] and marks["same"].tolist() == [True]
    meta = storage.read_json(ws.sidecar(ws.duplicates_file))
    assert meta["threshold_source"] == "marks" and meta["threshold"] <= marks["score"].item()
    assert meta["threshold"] <= before or marks["score"].item() >= before
    table = ws.duplicates()
    assert table.loc[table["id"] == a, "group"].item() == table.loc[table["id"] == b, "group"].item()
    assert "1** pair(s) marked" in at.markdown[0].value or any("1** pair(s) marked" in m.value for m in at.markdown)
    at.button(key="dup_clear_marks").click().run()
    assert_clean(at)
    assert not (ws.path / "duplicate_marks.parquet").exists()
    assert storage.read_json(ws.sidecar(ws.duplicates_file))["threshold_source"] == "calibrated"


def test_quality_checks_compute_filter_recount_and_save(monkeypatch, built_workspace_copy):
    ws = built_workspace_copy
    # the shared workspace ran `dedup`, which measures the checks: start from a manifest without them
    ws.save_manifest(ws.manifest().drop(columns=[*METRIC_COLUMNS, *FLAG_COLUMNS]))
    (ws.path / "quality.json").unlink(missing_ok=True)
    assert "sharpness" not in ws.manifest().columns
    at = open_page(start(monkeypatch, ws), "duplicates_page.py")
    at.segmented_control(key="dq_view").set_value("Quality checks").run()
    assert "have not been computed" in at.info[0].value
    at.button(key="quality_run").click().run()
    assert_clean(at)
    manifest = ws.manifest()
    assert set(METRIC_COLUMNS) | set(FLAG_COLUMNS) <= set(manifest.columns)
    figures = shown(at)
    assert all(figures[f] == f"{int(manifest[f].sum()):,}" for f in FLAG_COLUMNS)

    sharp = manifest["sharpness"].to_numpy(np.float64)
    threshold = float(np.round(np.nanpercentile(sharp, 10), 2))
    expected = int((sharp < threshold).sum())
    assert expected != int(manifest["blurry"].sum())
    at.slider(key="quality_blurry").set_value(threshold).run()
    assert_clean(at)
    assert shown(at)["blurry"] == f"{expected:,}"

    at.selectbox(key="quality_check").set_value("blurry").run()
    grid = ids_of(captions(at)[0])
    assert len(grid) == min(60, expected) and all(sharp[i] < threshold for i in grid)
    assert list(sharp[grid]) == sorted(sharp[grid])  # the blurriest first
    at.multiselect(key="quality_labels").set_value(["cat"]).run()
    cats = ids_of(captions(at)[0])
    assert cats and set(manifest["label"].iloc[cats]) == {"cat"}
    assert len(cats) == min(60, int(((sharp < threshold) & (manifest["label"] == "cat")).sum()))

    at.button(key="quality_save").click().run()
    assert_clean(at)
    assert saved_config(ws).blurry == threshold and int(ws.manifest()["blurry"].sum()) == expected

    open_page(at, "select_page.py")  # the saved flags are a selection filter now
    ok = set(np.flatnonzero(~ws.manifest()["blurry"].fillna(False).to_numpy(bool)).tolist())
    at.selectbox(key="select_strategy").set_value("random").run()  # outside the form: reruns at once
    at.multiselect(key="select_skip_flags").set_value(["blurry"])
    at.number_input(key="select_n").set_value(2000 - expected)
    submit(at, "Preview")
    at.text_input(key="select_name").set_value("sharp")
    submit(at, "Save selection")
    assert_clean(at)
    assert set(ws.selection("sharp")["id"].tolist()) == ok


# --- export ---------------------------------------------------------------------------------------
def test_folder_export_shows_the_plan_then_writes_it(monkeypatch, built_workspace, tmp_path):
    ws = Workspace(built_workspace)
    chosen = ws.selection("kcenter_100").sort_values("rank")["id"].tolist()
    paths = ws.manifest()["path"].iloc[chosen].tolist()
    at = open_page(start(monkeypatch, built_workspace), "export_page.py")
    at.radio(key="export_mode").set_value("symlink")
    at.text_input(key="export_target").set_value(str(tmp_path / "out"))
    submit(at, "Review export")
    assert_clean(at)
    assert not (tmp_path / "out").exists()  # reviewed only
    figures = shown(at)
    assert figures["Images"] == "100" and figures["Mode"] == "symlink" and figures["Already in the folder"] == "0"
    total = int(ws.manifest()["bytes"].iloc[chosen].sum())
    assert figures["Image data"] == f"{total / 1e3:,.1f} kB"
    assert at.code[-1].value.splitlines() == paths[:10] + ["…", "manifest.csv", "manifest.parquet", "manifest.json"]

    at.button(key="export_confirm").click().run()
    assert_clean(at)
    links = sorted((tmp_path / "out").rglob("*.jpg"))
    assert len(links) == 100 and all(f.is_symlink() and f.resolve().is_relative_to(ws.root) for f in links)
    assert pd.read_csv(tmp_path / "out" / "manifest.csv")["id"].tolist() == chosen
    assert pd.read_parquet(tmp_path / "out" / "manifest.parquet")["id"].tolist() == chosen
    provenance = json.loads((tmp_path / "out" / "manifest.json").read_text())["provenance"]
    assert provenance["selection"] == "kcenter_100" and provenance["mode"] == "symlink"
    assert not any(b.key == "export_confirm" for b in at.button)  # done: the plan is cleared

    at.text_input(key="export_target").set_value(str(tmp_path / "other"))
    submit(at, "Review export")
    at.button(key="export_cancel").click().run()
    assert_clean(at)
    assert not any(b.key == "export_confirm" for b in at.button) and not (tmp_path / "other").exists()


def test_zip_download_offers_the_selection_and_refuses_above_the_limit(monkeypatch, built_workspace):
    offered = {}
    real = streamlit.download_button

    def spy(label, data, *args, **kwargs):
        offered[kwargs.get("key")] = data
        return real(label, data, *args, **kwargs)

    monkeypatch.setattr(streamlit, "download_button", spy)
    ws = Workspace(built_workspace)
    chosen = ws.selection("kcenter_100").sort_values("rank")["id"].tolist()
    paths = ws.manifest()["path"].iloc[chosen].tolist()
    at = open_page(start(monkeypatch, built_workspace), "export_page.py")
    at.segmented_control(key="export_dest").set_value("Zip download").run()
    assert_clean(at)
    archive = zipfile.ZipFile(io.BytesIO(offered["export_zip"]()))
    assert archive.namelist() == paths + ["manifest.csv", "manifest.json"]
    assert archive.read(paths[0]) == (ws.root / paths[0]).read_bytes()
    assert pd.read_csv(archive.open("manifest.csv"))["id"].tolist() == chosen

    monkeypatch.setenv("CURATE_MAX_ZIP_MB", "0")
    offered.clear()
    at.run()
    assert_clean(at)
    assert "too much for a download" in at.warning[0].value and "Folder" in at.warning[0].value
    assert "export_zip" not in offered
