"""Select: rank images with any registered strategy under constraints (count or fraction, balance,
dedup, must-include, exclude, label and quality filters), preview the picks against the whole set,
save them; rename, delete and compare saved selections."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from curate.select import STRATEGIES
from curate.select.auto import RULE as AUTO_RULE, ranked_by
from curate.select.params import tunable_params
from curate.steps.select import delete_selection, rename_selection, save_selection
from curate.ui import cache, charts, filtering, state
from curate.ui.gallery import show_grid, show_more_note
from curate.ui.map_view import hideable_flags
from curate.ui.guard import run_page
from curate.ui.kinds import NAMES, kind_switch
from curate.workspace import Workspace, safe_name

PREVIEW_KEY = "select_preview"  # the request (small parameters); the ranking itself is cached
COMPARE_KEY = "select_compare"  # (a, b) names
BALANCE = {"none": "no balancing", "label": "equal share per label", "cluster": "equal share per k-means cluster"}
DEDUP = {"off": "off", "auto": "the workspace's duplicate threshold", "custom": "this cosine threshold:"}


def render(ws: Workspace) -> None:
    st.title("Select")
    kind = kind_switch(ws)
    request = request_form(ws, kind)
    if request is not None:
        st.session_state[PREVIEW_KEY] = request
    request = st.session_state.get(PREVIEW_KEY)
    if request:
        preview(ws, request)
    st.divider()
    list_selections(ws)


def request_form(ws: Workspace, kind: str = "image") -> dict | None:
    """The selection request the user submitted this run (SelectionRequest fields), else None."""
    table = cache.manifest(ws)
    names = STRATEGIES.names()
    strategy = st.selectbox("Strategy", names, index=names.index("auto") if "auto" in names else 0,
                            key="select_strategy",
                            help=f"Every registered strategy. auto: {AUTO_RULE}, the strategies that taught a "
                                 "classifier most at those budgets in curate's selection-lift benchmark.")
    references = ws.selection_names() + [f"tag:{t}" for t in sorted(cache.tags(ws)["tag"].unique())]
    labels = sorted(table["label"].dropna().unique().tolist())
    flags = hideable_flags(cache.image_table(ws))  # quality flags, outlier, duplicate, label_issue
    with st.form("select_form"):
        cols = st.columns(3)
        n = cols[0].number_input(f"{NAMES.get(kind, 'images').capitalize()} (n)", 1, max(1, len(table)), min(100, len(table)), step=10, key="select_n")
        fraction = cols[1].number_input("…or a fraction of the eligible pool", 0.0, 0.99, 0.0, step=0.05,
                                        key="select_fraction", help="Above 0, this replaces n.")
        seed = cols[2].number_input("Seed", 0, 2**31 - 1, 0, key="select_seed")
        params = strategy_params(strategy)
        cols = st.columns(3)
        balance = cols[0].selectbox("Balance", list(BALANCE), format_func=BALANCE.get, key="select_balance")
        dedup = cols[1].selectbox("Skip near-duplicates", list(DEDUP), format_func=DEDUP.get, key="select_dedup",
                                  help="Skip a candidate this similar (cosine) to an image already picked.")
        threshold = cols[2].number_input("Cosine threshold", 0.5, 0.9999, 0.95, step=0.005, format="%.4f",
                                         key="select_dedup_threshold")
        cols = st.columns(3)
        include = cols[0].multiselect("Must include", references, key="select_include",
                                      help="Saved selections or tags whose images are always in.")
        exclude = cols[1].multiselect("Exclude", references, key="select_exclude",
                                      help="Saved selections or tags whose images are never picked, "
                                           "e.g. tag:duplicate.")
        with cols[2]:
            use_basket = st.checkbox(f"Include the basket ({len(state.basket()):,})", key="select_include_basket",
                                     disabled=not state.basket())
        cols = st.columns(2)
        keep_labels = cols[0].multiselect("Only these labels", labels, key="select_labels",
                                          placeholder="all labels" if labels else "no labels", disabled=not labels)
        skip_flags = cols[1].multiselect("Skip images flagged", flags, key="select_skip_flags",
                                         placeholder="nothing skipped" if flags else "no quality checks yet",
                                         disabled=not flags, help=None if flags else
                                         "Compute the checks on the Duplicates & quality page first.")
        if not st.form_submit_button("Preview", type="primary", icon=":material/visibility:"):
            return None
    return {"n": float(fraction) if fraction > 0 else int(n), "strategy": strategy, "seed": int(seed),
            "params": params, "filters": {"labels": keep_labels, "skip_flags": skip_flags,
                                          "where": filtering.active()},
            "include": include, "exclude": exclude, "include_ids": state.basket() if use_basket else [],
            "balance": None if balance == "none" else balance,
            "dedup": {"off": None, "auto": "auto", "custom": float(threshold)}[dedup], "kind": kind}


def strategy_params(strategy: str) -> dict:
    """Inputs for the strategy's own parameters; returns those changed from their defaults."""
    defaults = tunable_params(strategy)
    if not defaults:
        return {}
    cols = st.columns(min(4, len(defaults)))
    out = {}
    for i, (name, default) in enumerate(defaults.items()):
        col, key = cols[i % len(cols)], f"select_param_{strategy}_{name}"
        if isinstance(default, bool):
            value = col.checkbox(name, default, key=key)
        elif isinstance(default, (int, float)):
            value = col.number_input(name, value=default, key=key)
        else:
            value = col.text_input(name, default, key=key)
        if value != default:
            out[name] = value
    return out


def preview(ws: Workspace, request: dict) -> None:
    result = cache.selection_preview(ws, request)
    ids, m = result["ids"], result["metrics"]
    st.subheader(f"Preview: {ranked_by(request['strategy'], result['strategy'])}, {len(ids):,} of {m['pool']:,} "
                 f"eligible {NAMES.get(request.get('kind') or 'image', 'images')}")
    cols = st.columns(4)
    cols[0].metric("Coverage radius", f"{m['coverage_radius']:.3f}",
                   help="Largest distance from any eligible image to its nearest selected image (lower covers better).")
    cols[1].metric("Mean distance to selection", f"{m['mean_distance_to_selected']:.3f}")
    labels = m.get("label_histogram")
    cols[2].metric("Labels covered", f"{len(labels['selected']):,} / {len(labels['pool']):,}" if labels else "no labels")
    cols[3].metric("Ranking time", f"{result['seconds']:.2f} s")
    histograms(m)
    save_form(ws, request, result)
    shown = show_grid(ws, ids, key="select_preview")
    show_more_note(shown, len(ids))


def histograms(metrics: dict) -> None:
    """Label and cluster shares of the selection against the pool, side by side."""
    found = [(name, metrics[f"{name}_histogram"]) for name in ("label", "cluster") if f"{name}_histogram" in metrics]
    for col, (name, hist) in zip(st.columns(len(found)) if found else [], found):
        col.plotly_chart(charts.share_bars(hist, f"{name} shares: selection vs pool"), key=f"select_{name}_hist")


def save_form(ws: Workspace, request: dict, result: dict) -> None:
    with st.form("select_save"):
        name = st.text_input("Selection name", f"{result['strategy']}_{len(result['ids'])}", key="select_name")
        overwrite = st.checkbox("Replace a selection of the same name", key="select_overwrite")
        if not st.form_submit_button("Save selection", icon=":material/save:"):
            return
    clean = safe_name(name)  # an invalid name raises ValueError: shown as a message
    if clean in ws.selection_names() and not overwrite:
        st.warning(f"A selection named “{clean}” exists: tick “Replace” to overwrite it, or pick another name.")
        return
    save_selection(ws, clean, result["ids"], result["strategy"], request["params"], request["seed"],
                   metrics=result["metrics"], request=result["request"])
    st.success(f"Saved {len(result['ids']):,} images as selection “{clean}” "
               f"({ws.selection_file(clean)}).", icon=":material/check_circle:")


def list_selections(ws: Workspace) -> None:
    st.subheader("Saved selections")
    table = cache.selections_summary(ws)
    if table.empty:
        st.caption(f"None yet. Save one above, or run `curate select -w {ws.path} --n 100`.")
        return
    st.dataframe(table, hide_index=True, column_config={
        "coverage radius": st.column_config.NumberColumn(format="%.3f")})
    names = table["name"].tolist()
    rename_col, delete_col = st.columns(2)
    with rename_col.form("select_rename_form"):
        old = st.selectbox("Selection", names, key="select_rename_from")
        new = st.text_input("New name", key="select_rename_to")
        if st.form_submit_button("Rename", icon=":material/edit:"):
            try:
                rename_selection(ws, old, safe_name(new))  # an empty or invalid name: ValueError, shown by the guard
            except FileExistsError:
                st.error(f"A selection named “{safe_name(new)}” exists already: pick another name.")
            else:
                st.session_state.pop(COMPARE_KEY, None)
                st.rerun()
    with delete_col.form("select_delete_form"):
        doomed = st.selectbox("Selection", names, key="select_delete_name")
        sure = st.checkbox("Yes, delete it (its files are removed)", key="select_delete_sure")
        if st.form_submit_button("Delete", icon=":material/delete:"):
            if not sure:
                st.warning("Tick the box to confirm the deletion.")
            else:
                delete_selection(ws, doomed)
                st.session_state.pop(COMPARE_KEY, None)
                st.rerun()
    if len(names) >= 2:
        compare(ws, names)


def compare(ws: Workspace, names: list[str]) -> None:
    st.subheader("Compare two selections")
    with st.form("select_compare_form"):
        cols = st.columns(2)
        a = cols[0].selectbox("First", names, index=0, key="select_compare_a")
        b = cols[1].selectbox("Second", names, index=1, key="select_compare_b")
        if st.form_submit_button("Compare", icon=":material/compare_arrows:"):
            st.session_state[COMPARE_KEY] = (a, b)
    pair = st.session_state.get(COMPARE_KEY)
    if not pair or not all(name in names for name in pair):
        return
    a, b = pair
    if a == b:
        st.info("Pick two different selections to compare.")
        return
    result = cache.comparison(ws, a, b)
    cols = st.columns(4)
    cols[0].metric("Overlap", f"{result['overlap']:,}")
    cols[1].metric("Jaccard", f"{result['jaccard']:.3f}", help="Shared images / images in either.")
    cols[2].metric(f"Only in {a}", f"{result['only_a']:,}")
    cols[3].metric(f"Only in {b}", f"{result['only_b']:,}")
    st.dataframe(side_by_side(result["metrics"]), key="select_compare_table")
    for name in ("label", "cluster"):
        hists = {sel: m[f"{name}_histogram"] for sel, m in result["metrics"].items() if f"{name}_histogram" in m}
        if len(hists) == 2:
            columns = {sel: h["selected"] for sel, h in hists.items()} | {"pool": hists[a]["pool"]}
            st.plotly_chart(charts.share_bars(columns, f"{name} shares"), key=f"select_compare_{name}")


def side_by_side(metrics: dict[str, dict]) -> pd.DataFrame:
    """One column per selection: size, coverage radius, mean distance, labels and clusters covered."""
    rows = {}
    for name, m in metrics.items():
        rows[name] = {"images": m["n"], "coverage radius": round(m["coverage_radius"], 4),
                      "mean distance to selection": round(m["mean_distance_to_selected"], 4),
                      **{f"{g}s covered": len(m[f"{g}_histogram"]["selected"])
                         for g in ("label", "cluster") if f"{g}_histogram" in m}}
    return pd.DataFrame(rows)


if __name__ == "__main__":
    run_page(render)
