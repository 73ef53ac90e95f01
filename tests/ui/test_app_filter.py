"""The sidebar filter (issue 30 part 3) in AppTest on a real workspace: a `--where` expression and saved views
filter Explore's map, Search's results and Select's pool; a mistake is shown and filters nothing."""
from __future__ import annotations

from curate.data.where import read_views, where_mask
from curate.session import open_workspace
from tests.apptest_helpers import assert_clean, open_page, start


def test_a_where_filter_and_views_apply_to_explore_search_and_select(monkeypatch, built_workspace_copy):
    ws = built_workspace_copy
    manifest = ws.manifest()
    expression = "label IN ('cat', 'dog') AND id % 3 = 0"
    wanted = set(manifest["id"][where_mask(manifest, expression)])
    at = start(monkeypatch, ws.path)
    at.text_input(key="where_input").set_value(expression).run()
    assert_clean(at)
    assert any(f"**{len(wanted):,}** items match" in c.value for c in at.caption)

    open_page(at, "Explore")
    assert any(c.value.startswith(f"{len(wanted):,} of {len(manifest):,} images on the map") for c in at.caption)

    open_page(at, "Search")
    at.number_input(key="search_id").set_value(0).run()
    assert_clean(at)
    results = at.dataframe[0].value
    assert len(results) and set(results["id"]) <= wanted

    at.text_input(key="where_view_name").set_value("cats and dogs").run()
    next(b for b in at.button if b.label == "Save view").click().run()
    assert read_views(ws.views_file) == {"cats and dogs": expression}
    at.text_input(key="where_input").set_value("").run()
    at.selectbox(key="where_view").set_value("cats and dogs").run()
    assert_clean(at)
    assert any(f"**{len(wanted):,}** items match" in c.value for c in at.caption)


def test_a_mistake_in_the_filter_is_shown_and_filters_nothing(monkeypatch, built_workspace):
    at = start(monkeypatch, built_workspace)
    at.text_input(key="where_input").set_value("colour = 'red'").run()
    assert not at.exception
    assert any("there is no column 'colour'" in e.value for e in at.error)
    open_page_errors = at.switch_page("curate/ui/pages/search_page.py").run()
    assert not open_page_errors.exception
    at.number_input(key="search_id").set_value(0).run()
    results = at.dataframe[0].value
    unfiltered = open_workspace(built_workspace).similar([0], k=len(results))["id"].tolist()
    assert results["id"].tolist() == unfiltered


def test_metadata_columns_colour_the_map_and_count_each_value(monkeypatch, built_workspace_copy, tmp_path):
    """Every `--metadata` column is a colour on Explore: values one colour each with their count in the legend
    (the column's facet), numbers on a colour bar holding each item's own value."""
    import numpy as np
    import pandas as pd

    from curate.cli import main
    from tests.ui.test_app_explore import array, names, set_colour, traces

    ws = built_workspace_copy
    manifest = ws.manifest()
    sites = np.array(["berlin", "paris", "rome"])[manifest["id"].to_numpy() % 3]
    sites[:100] = None  # no value: the grey group
    meta = pd.DataFrame({"path": manifest["path"], "site": sites, "altitude": manifest["id"] * 0.5})
    meta.to_csv(tmp_path / "meta.csv", index=False)
    assert main(["scan", str(ws.root), "-w", str(ws.path), "--metadata", str(tmp_path / "meta.csv")]) == 0
    at = open_page(start(monkeypatch, ws.path), "Explore")
    set_colour(at, "column:site")
    counts = pd.Series(sites[100:]).value_counts()
    assert sorted(names(at)) == sorted(["no site (100)"] + [f"{s} ({n:,})" for s, n in counts.items()])
    set_colour(at, "column:altitude")
    (trace,) = traces(at)
    ids, colours = array(trace["customdata"]), array(trace["marker"]["color"])
    assert np.allclose(colours, ids * 0.5)
