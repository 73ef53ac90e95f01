"""`--where` and views (issue 30 part 3): one SQL expression over the manifest's columns, run by DuckDB with
no access outside the table; the same filter in search, select and export, and clear errors."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from curate.cli import main
from curate.data.where import WhereError, combined, read_views, save_view, where_mask
from curate.session import open_workspace


@pytest.fixture
def table() -> pd.DataFrame:
    return pd.DataFrame({
        "id": np.arange(6),
        "label": pd.array(["cat", "dog", None, "cat", "car", "dog"], dtype="string"),
        "width": [10, 20, 30, 40, 50, 60],
        "captured": pd.to_datetime(["2024-05-01", "2024-06-02", None, "2024-07-01", "2023-01-01", "2024-06-01"]),
        "camera make": pd.array(["Fuji", "Sony", "Fuji", None, "Sony", "Fuji"], dtype="string"),
        "blurry": pd.array([True, None, False, True, True, False], dtype="boolean")})


def test_an_expression_keeps_the_rows_for_which_it_is_true_and_null_is_false(table):
    assert where_mask(table, "label = 'cat' AND width > 15").tolist() == [0, 0, 0, 1, 0, 0]
    assert where_mask(table, "captured >= '2024-06-01'").tolist() == [0, 1, 0, 1, 0, 1]  # a date as text
    assert where_mask(table, '"camera make" = \'Fuji\' OR label IN (\'car\')').tolist() == [1, 0, 1, 0, 1, 1]
    assert where_mask(table, "blurry").tolist() == [1, 0, 0, 1, 1, 0]  # NULL is not true
    assert where_mask(table, "label IS NULL").tolist() == [0, 0, 1, 0, 0, 0]
    assert where_mask(table, None).all() and where_mask(table, "  ").all()


@pytest.mark.parametrize("expression, message", [
    ("labl = 'cat'", "there is no column 'labl'; did you mean label?"),
    ("width >", "does not parse"),
    ("1=1) UNION SELECT 1 --", "does not parse"),
    ("width", "gives bigint values, not true or false"),
    ("label = 3", "cannot be applied"),
])
def test_a_bad_expression_gets_a_message_naming_the_problem(table, expression, message):
    with pytest.raises(WhereError, match=message.replace("?", r"\?")):
        where_mask(table, expression)


def test_an_expression_cannot_read_anything_but_the_table(table, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    for expression in (f"id IN (SELECT a FROM read_csv('{secret}'))", f"id IN (SELECT * FROM '{secret}')",
                       "current_setting('enable_external_access') = 'true'"):
        try:
            mask = where_mask(table, expression)
        except WhereError as err:
            assert "secret" not in str(err) or "disabled" in str(err) or "Permission" in str(err), err
        else:  # a setting may be read, never changed; what it says is no file access
            assert not mask.any()
    with pytest.raises(WhereError):
        where_mask(table, "(SET enable_external_access = true) IS NULL")


def test_views_are_saved_checked_and_combined_with_where(table, tmp_path):
    file = tmp_path / "views.json"
    save_view(file, "fuji", '"camera make" = \'Fuji\'', table)
    with pytest.raises(WhereError, match="no column"):
        save_view(file, "broken", "lens = 'x'", table)  # refused when saved, not when used
    with pytest.raises(WhereError, match="a view name"):
        save_view(file, "../x", "width > 1", table)
    assert read_views(file) == {"fuji": '"camera make" = \'Fuji\''}
    both = combined("width > 25", "fuji", file)
    assert where_mask(table, both).tolist() == [0, 0, 1, 0, 0, 1]
    assert combined("width > 25", None, file) == "width > 25" and combined(None, None, file) is None


def test_search_select_and_export_take_the_same_filter(built_workspace_copy, tmp_path, capsys):
    ws = built_workspace_copy
    manifest = ws.manifest()
    cats = "label = 'cat'"
    found = open_workspace(ws.path).search(0, k=20, where=cats)
    assert len(found) == 20 and (found["label"] == "cat").all()
    assert set(found["id"]) <= set(manifest.loc[manifest["label"] == "cat", "id"])
    unfiltered = open_workspace(ws.path).search(0, k=400)
    expected = unfiltered.loc[unfiltered["label"] == "cat", "id"].tolist()[:20]
    assert found["id"].tolist() == expected  # the filtered search is the unfiltered one, filtered
    similar = open_workspace(ws.path).similar([0, 1], k=10, where="label <> 'cat'")
    assert len(similar) == 10 and not (similar["label"] == "cat").any()

    assert main(["view", "-w", str(ws.path), "cats", "--where", cats]) == 0
    assert json.loads(ws.views_file.read_text()) == {"cats": cats}
    assert main(["select", "-w", str(ws.path), "--n", "12", "--strategy", "kcenter", "--view", "cats",
                 "--name", "kc_cats"]) == 0
    chosen = ws.selection("kc_cats")["id"].to_numpy()
    assert len(chosen) == 12 and (manifest["label"].iloc[chosen] == "cat").all()
    assert main(["export", "-w", str(ws.path), "--selection", "kc_cats", "--to", str(tmp_path / "out"),
                 "--where", "id % 2 = 0"]) == 0
    exported = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert sorted(exported["id"]) == sorted(i for i in chosen if i % 2 == 0)
    capsys.readouterr()
    assert main(["search", "-w", str(ws.path), "--id", "0", "--where", "colour = 'red'"]) == 2
    err = capsys.readouterr().err
    assert "there is no column 'colour'" in err and "Traceback" not in err
    assert main(["search", "-w", str(ws.path), "--id", "0", "--view", "dogs"]) == 2
    assert "no view 'dogs'; views: cats" in capsys.readouterr().err
