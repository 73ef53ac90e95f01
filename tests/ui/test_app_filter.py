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
