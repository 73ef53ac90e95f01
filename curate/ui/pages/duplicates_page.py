"""Duplicates & quality: duplicate groups side by side (keeper marked, the rest excluded in one click)
and the image-quality checks as galleries, with threshold sliders that recount live."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from curate.data.tags import add_tag, remove_tag
from curate.quality.checks import FLAG_COLUMNS, METRIC_COLUMNS, QualityConfig, flags
from curate.steps.dedup import clear_marks, mark_pairs, read_marks
from curate.steps.quality import saved_config
from curate.ui import cache, charts, state
from curate.ui.gallery import MAX_GRID, id_captions, show_grid, show_more_note
from curate.data.items import kind_mask
from curate.quality.leaks import leaks, splits_of
from curate.steps.options import RunOptions
from curate.ui.guard import run_page
from curate.ui.kinds import NAMES, kind_switch
from curate.ui.progress import run_step
from curate.workspace import Workspace

VIEWS = ("Duplicates", "Review pairs", "Quality checks")
REVIEW_PAIRS = 12  # unmarked pairs nearest the threshold shown at once
GROUPS_PER_PAGE = 10
MEMBERS_SHOWN = 12  # of one group: a huge near-duplicate cluster is summarised, not drawn in full
DUPLICATE_TAG = "duplicate"  # what "exclude the rest" tags; selections exclude `tag:duplicate`
# flag -> (metric it thresholds, flagged when "below"/"above"/"outside", slider min, max, step)
CHECKS = {
    "dark": ("brightness_p99", "below", 0.0, 1.0, 0.01),
    "bright": ("brightness_p05", "above", 0.0, 1.0, 0.01),
    "blurry": ("sharpness", "below", 0.0, 1.5, 0.01),
    "low_information": ("entropy", "below", 0.0, 8.0, 0.1),
    "odd_aspect_ratio": ("aspect_ratio", "above", 1.0, 10.0, 0.1),
    "odd_size": ("size_ratio", "outside", 1.0, 20.0, 0.5),
    "grayscale": ("channel_spread", "below", 0.0, 0.5, 0.005),
}


def render(ws: Workspace) -> None:
    st.title("Duplicates & quality")
    kind = kind_switch(ws)
    view = st.segmented_control("Show", VIEWS, default=VIEWS[0], key="dq_view") or VIEWS[0]
    if view != VIEWS[2] and not same_kind(ws, kind):
        return
    if view == VIEWS[0]:
        duplicates_view(ws)
    elif view == VIEWS[1]:
        review_view(ws)
    else:
        quality_view(ws, kind)


def same_kind(ws: Workspace, kind: str) -> bool:
    """Whether the saved duplicate scan is of `kind` (items are compared within one kind); if not, say so
    and offer to scan that kind."""
    meta = cache.json_file(ws.sidecar(ws.duplicates_file))
    saved = (meta or {}).get("kind", "image")
    if meta is None or saved == kind:
        return True
    left, right = st.columns([3, 1])
    left.info(f"The saved duplicate groups are of {NAMES.get(saved, saved)}; {NAMES.get(kind, kind)} have not been "
              f"compared yet (`curate dedup -w {ws.path} --kind {kind}`).", icon=":material/info:")
    if right.button(f"Find duplicate {NAMES.get(kind, kind)}", key="dup_run_kind", type="primary"):
        run_step(ws, "dedup", "Looking for duplicates…", options=RunOptions(workspace=ws.path, kind=kind))
        st.rerun()
    return False


# --- duplicates ----------------------------------------------------------------------------------
def duplicates_view(ws: Workspace) -> None:
    table = cache.duplicates(ws)
    if table is None:
        st.info(f"No duplicate scan yet: run `curate dedup -w {ws.path}`.", icon=":material/info:")
        return
    meta = cache.json_file(ws.sidecar(ws.duplicates_file)) or {}
    tags = cache.tags(ws)
    tagged = set(tags.loc[tags["tag"] == DUPLICATE_TAG, "id"].tolist())
    show_summary(table, meta, tagged)
    if table.empty:
        st.success("No duplicates found.", icon=":material/check_circle:")
        return
    bulk_actions(ws, table, tagged)
    across_splits(ws, table)
    kind = st.segmented_control("Kind", ["all", "exact", "near"], default="all", key="dup_kind") or "all"
    groups = group_sizes(table, kind)
    pages = max(1, -(-len(groups) // GROUPS_PER_PAGE))
    page = int(st.number_input(f"Page (of {pages})", 1, pages, 1, key="dup_page")) if pages > 1 else 1
    for group in groups.index[(page - 1) * GROUPS_PER_PAGE:page * GROUPS_PER_PAGE]:
        show_group(ws, table[table["group"] == group], tagged)


def across_splits(ws: Workspace, table: pd.DataFrame) -> None:
    """Items of other splits (test, val) with a copy in train: the duplicates that inflate test scores
    (`curate dedup --across split`). Shown when the items' folders or a `split` column name a train split."""
    splits = splits_of(cache.manifest(ws))
    if "train" not in set(splits) or len({s for s in splits if s}) < 2:
        return
    found = leaks(table, splits)
    with st.expander(f"Copies across splits: {len(found):,} items have a copy in train", icon=":material/call_split:",
                     expanded=bool(len(found))):
        if not len(found):
            st.success("No test or validation item has a copy in train.", icon=":material/check_circle:")
            return
        st.caption("Each leaked item, then the train item it copies. Remove or move them before measuring on "
                   "the test split.")
        shown = found.head(MAX_GRID // 2)
        ids = [int(i) for pair in zip(shown["id"], shown["copy_of"]) for i in pair]
        captions = [f"{s} #{i}" for i, s in zip(ids, [x for sp in shown["split"] for x in (sp, "train")])]
        show_grid(ws, ids, captions, key="dup_across")


def show_summary(table: pd.DataFrame, meta: dict, tagged: set[int]) -> None:
    cols = st.columns(5)
    cols[0].metric("Groups", f"{table['group'].nunique():,}")
    cols[1].metric("Images in groups", f"{len(table):,}")
    cols[2].metric("Removable (non-keepers)", f"{int((~table['keeper']).sum()):,}")
    cols[3].metric(f"Tagged “{DUPLICATE_TAG}”", f"{len(tagged):,}",
                   help=f"Excluded images: selections leave them out with Exclude → tag:{DUPLICATE_TAG}.")
    cols[4].metric("Near threshold", f"{meta['threshold']:.3f}" if meta.get("threshold") is not None else "?",
                   help="Pair score (aligned pixel similarity, lifted a little when the embeddings agree) at or "
                        "above which two images count as near duplicates.")
    if meta.get("threshold") is not None:
        st.caption(f"Near duplicates: pair score ≥ {meta['threshold']:.3f}, {threshold_story(meta)}. Exact duplicates "
                   "have the same bytes. The keeper of each group is its largest image (ties: the sharpest).")


def threshold_story(meta: dict) -> str:
    """How the threshold was chosen, in words, with the precision it is expected to give."""
    source = meta.get("threshold_source", "calibrated" if meta.get("calibrated", True) else "given")
    expected = meta.get("expected_precision")
    precision = f"; expected precision {expected:.0%}" if expected is not None else ""
    if source == "marks":
        wrong = meta.get("marks_disagreeing") or 0
        return (f"set by your {meta.get('marks', 0)} marked pairs ({wrong} disagree with it){precision} "
                "(Review pairs to change)")
    if source == "given":
        return f"set by hand with `curate dedup --threshold`{precision}"
    cal = meta.get("calibration", {})
    return (f"calibrated on this data for {cal.get('target', 0.95):.0%} precision: above it, mirrored other "
            f"images (certainly not duplicates) score {cal.get('null_above', '?')} times against "
            f"{cal.get('pairs_above', '?')} real pairs{precision}")


def bulk_actions(ws: Workspace, table: pd.DataFrame, tagged: set[int]) -> None:
    rest = table.loc[~table["keeper"], "id"]
    cols = st.columns(3)
    if cols[0].button(f"Exclude all {len(rest):,} non-keepers", key="dup_exclude_all", icon=":material/block:",
                      help=f"Tag every non-keeper “{DUPLICATE_TAG}”."):
        added = add_tag(ws, rest, DUPLICATE_TAG)
        st.toast(f"Tagged {added:,} image(s) “{DUPLICATE_TAG}”.")
        st.rerun()
    if cols[1].button("Add all non-keepers to the basket", key="dup_add", icon=":material/add_shopping_cart:",
                      help="Collect the images a de-duplicated dataset would drop, e.g. to inspect or export them."):
        added = state.add_to_basket(rest)
        st.toast(f"Added {added:,} new image(s) to the basket.")
        st.rerun()
    if tagged and cols[2].button(f"Clear the “{DUPLICATE_TAG}” tag ({len(tagged):,})", key="dup_untag",
                                 icon=":material/undo:"):
        removed = remove_tag(ws, None, DUPLICATE_TAG)
        st.toast(f"Untagged {removed:,} image(s).")
        st.rerun()


def group_sizes(table: pd.DataFrame, kind: str) -> pd.Series:
    """Group number -> size for groups of `kind`, largest first."""
    rows = table if kind == "all" else table[table["kind"].astype(str) == kind]
    return rows.groupby("group").size().sort_values(ascending=False, kind="stable")


def show_group(ws: Workspace, members: pd.DataFrame, tagged: set[int]) -> None:
    members = members.sort_values("keeper", ascending=False, kind="stable")  # keeper first
    group = int(members["group"].iloc[0])
    rest = members.loc[~members["keeper"], "id"].tolist()
    left, right = st.columns([4, 1])
    left.markdown(f"**Group {group}** · {members['kind'].iloc[0]} · {len(members):,} images")
    done = all(i in tagged for i in rest)
    if right.button("Rest excluded" if done else "Exclude the rest", key=f"dup_exclude_{group}",
                    icon=":material/block:", disabled=done,
                    help=f"Keep the ★ image, tag the other {len(rest):,} “{DUPLICATE_TAG}”."):
        added = add_tag(ws, rest, DUPLICATE_TAG)
        st.toast(f"Group {group}: tagged {added:,} image(s) “{DUPLICATE_TAG}”.")
        st.rerun()
    ids = members["id"].to_numpy()[:MEMBERS_SHOWN]
    keepers = members["keeper"].to_numpy()[:MEMBERS_SHOWN]
    captions = [f"★ keep {c}" if keep else (f"⊘ {c}" if i in tagged else c)
                for i, c, keep in zip(ids, id_captions(ws, ids), keepers)]
    show_grid(ws, ids, captions, key=f"dup_group_{group}")
    if len(members) > MEMBERS_SHOWN:
        st.caption(f"… and {len(members) - MEMBERS_SHOWN:,} more in this group.")


# --- review pairs --------------------------------------------------------------------------------
def review_view(ws: Workspace) -> None:
    """Pairs nearest the threshold, side by side; marking them same / different moves the threshold."""
    if not ws.duplicate_pairs_file.exists():
        st.info(f"No scored pairs yet: run `curate dedup -w {ws.path}`.", icon=":material/info:")
        return
    meta = cache.json_file(ws.sidecar(ws.duplicates_file)) or {}
    marks = read_marks(ws)
    st.caption(f"Threshold {meta.get('threshold', float('nan')):.3f}: {threshold_story(meta)}. Mark the pairs "
               "below: same image (a duplicate) or different. Your marks decide these pairs and move the threshold "
               "to where the fewest of them disagree; the groups are redrawn at once.")
    cols = st.columns([3, 1])
    cols[0].markdown(f"**{len(marks)}** pair(s) marked · {int(marks['same'].sum()) if len(marks) else 0} same")
    if len(marks) and cols[1].button("Clear marks", key="dup_clear_marks", icon=":material/undo:"):
        clear_marks(ws)
        st.rerun()
    pairs = cache.review_pairs(ws, REVIEW_PAIRS)
    if pairs.empty:
        st.success("No unmarked candidate pairs left.", icon=":material/check_circle:")
        return
    threshold = meta.get("threshold", 1.0)
    for i, pair in enumerate(pairs.itertuples(index=False)):
        show_pair(ws, int(pair.a), int(pair.b), float(pair.score), float(pair.pixel), float(pair.embedding),
                  pair.score >= threshold, i)


def show_pair(ws: Workspace, a: int, b: int, score: float, pixel: float, embedding: float, above: bool,
              i: int) -> None:
    left, right, buttons = st.columns([2, 2, 2])
    captions = id_captions(ws, np.array([a, b]))
    left.image(cache.thumbnail(ws, a), caption=captions[0])
    right.image(cache.thumbnail(ws, b), caption=captions[1])
    emb = "" if np.isnan(embedding) else f", embedding {embedding:.3f}"
    buttons.markdown(f"score **{score:.3f}** ({'above' if above else 'below'} the threshold)  \npixels {pixel:.3f}{emb}")
    if buttons.button("Same image", key=f"dup_same_{a}_{b}", icon=":material/check:"):
        mark_pairs(ws, [(a, b)], same=True)
        st.rerun()
    if buttons.button("Different", key=f"dup_diff_{a}_{b}", icon=":material/close:"):
        mark_pairs(ws, [(a, b)], same=False)
        st.rerun()
    st.divider()


# --- quality -------------------------------------------------------------------------------------
def quality_view(ws: Workspace, kind: str = "image") -> None:
    table = cache.manifest(ws)
    if not all(col in table.columns for col in METRIC_COLUMNS):
        offer_to_compute(ws)
        return
    thresholds(ws, table, kind)


def offer_to_compute(ws: Workspace) -> None:
    st.info("The quality checks (dark, bright, blurry, low information, odd aspect ratio, odd size, greyscale) "
            f"have not been computed for this workspace. They read every image once (`curate quality -w {ws.path}` "
            "does the same).", icon=":material/info:")
    if not st.button("Compute quality checks", key="quality_run", type="primary", icon=":material/play_arrow:"):
        return
    run_step(ws, "quality", "Measuring images…")
    st.rerun()


@st.fragment
def thresholds(ws: Workspace, table: pd.DataFrame, kind: str = "image") -> None:
    """Sliders per check; counts, chart and gallery follow them at once (a fragment: only this reruns)."""
    saved = saved_config(ws) or QualityConfig()
    st.caption("Move a threshold to see how many images it flags; nothing is written until you save.")
    values = {}
    cols = st.columns(4)
    for i, (flag, (metric, side, low, high, step)) in enumerate(CHECKS.items()):
        default = float(min(max(getattr(saved, flag), low), high))
        values[flag] = cols[i % 4].slider(f"{flag}: {metric} {side}", low, high, default, step, key=f"quality_{flag}")
    cfg = QualityConfig(**values)
    metrics = table[list(METRIC_COLUMNS)]
    others = ~kind_mask(table, kind)  # the switch's kind only
    flagged = flags(metrics, cfg)
    flagged.loc[others, :] = False
    counts = {f: int(flagged[f].sum()) for f in FLAG_COLUMNS}
    before = {f: int((v.fillna(False).to_numpy(bool) & ~others).sum()) for f, v in flags(metrics, saved).items()}
    cols = st.columns(len(FLAG_COLUMNS))
    for col, flag in zip(cols, FLAG_COLUMNS):
        col.metric(flag, f"{counts[flag]:,}", delta=counts[flag] - before[flag] or None, delta_color="off")
    st.plotly_chart(charts.flag_bars(counts, before, FLAG_COLUMNS), key="quality_chart")
    if st.button("Save these thresholds", key="quality_save", icon=":material/save:", disabled=cfg == saved,
                 help="Rewrite the flags in the manifest (nothing is re-measured): selections that skip flagged "
                      "images then use them."):
        run_step(ws, "quality", "Rewriting the flags…", cfg=cfg)
        st.rerun()
    gallery(ws, table, flagged, counts)


def gallery(ws: Workspace, table: pd.DataFrame, flagged: pd.DataFrame, counts: dict) -> None:
    cols = st.columns(2)
    check = cols[0].selectbox("Images flagged", FLAG_COLUMNS, format_func=lambda f: f"{f} ({counts[f]:,})",
                              key="quality_check")
    labels = sorted(table["label"].dropna().unique().tolist())
    only = cols[1].multiselect("Labels", labels, key="quality_labels", placeholder="all labels", disabled=not labels)
    metric, side = CHECKS[check][:2]
    hit = flagged[check].fillna(False).to_numpy(bool)
    if only:
        hit &= table["label"].isin(only).to_numpy()
    ids = np.flatnonzero(hit)
    values = table[metric].to_numpy(np.float64, na_value=np.nan)[ids]
    severity = {"below": values, "above": -values, "outside": -np.abs(np.log(np.maximum(values, 1e-9)))}[side]
    ids = ids[np.argsort(severity, kind="stable")]  # the clearest cases first
    if not len(ids):
        st.success(f"No image is flagged {check} at this threshold.", icon=":material/check_circle:")
        return
    value_of = dict(zip(ids.tolist(), table[metric].to_numpy(np.float64, na_value=np.nan)[ids]))
    captions = [f"{c} · {value_of[i]:.3g}" for i, c in zip(ids.tolist(), id_captions(ws, ids[:MAX_GRID]))]
    shown = show_grid(ws, ids, captions, key=f"quality_gallery_{check}")
    show_more_note(shown, len(ids))
    if st.button(f"Add these {len(ids):,} to the basket", key="quality_add", icon=":material/add_shopping_cart:"):
        added = state.add_to_basket(ids)
        st.toast(f"Added {added:,} new image(s) to the basket.")
        st.rerun()


if __name__ == "__main__":
    run_page(render)
