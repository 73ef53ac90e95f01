"""Label issues: images whose label disagrees with their neighbours in embedding space, most likely
wrong first, each with a suggested label. A person confirms a fix (kept beside the original label,
in label_fixes.parquet) or rejects the suggestion (the image stops counting as a label issue)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from curate.quality.label_issues import K
from curate.quality.label_trust import TARGET_PRECISION
from curate.steps.label_issues import confirm_label_fix, has_labels, reject_label_issue
from curate.ui import cache, state
from curate.ui.guard import run_page
from curate.ui.kinds import kind_rows
from curate.ui.progress import run_step
from curate.workspace import Workspace

SHOW = ("Undecided", "Confirmed", "Rejected", "All")
PER_PAGE = 12
PER_ROW = 4
THUMB = 128  # px: big enough to judge a label by


def render(ws: Workspace) -> None:
    st.title("Label issues")
    table = kind_rows(ws, cache.label_review(ws))  # the kind switch: one kind of item at a time
    if table is None:
        offer_to_run(ws)
        return
    meta = cache.json_file(ws.sidecar(ws.label_issues_file)) or {}
    summary(ws, table, meta)
    trust = meta.get("trust") or {}
    if trust.get("too_weak"):
        st.warning(trust["message"][:1].upper() + trust["message"][1:], icon=":material/warning:")
    if table.empty:
        if not trust.get("too_weak"):
            st.success("No label issue found at the target precision.", icon=":material/check_circle:")
        return
    cols = st.columns(2)
    show = cols[0].segmented_control("Show", SHOW, default=SHOW[0], key="labels_show") or SHOW[0]
    givens = sorted(table["given"].astype(str).unique().tolist())
    only = cols[1].multiselect("Given labels", givens, key="labels_given", placeholder="all labels")
    rows = table if show == "All" else table[table["decision"].fillna("undecided") == show.lower()]
    if only:
        rows = rows[rows["given"].isin(only)]
    if rows.empty:
        st.info(f"No {show.lower()} label issue{' with these labels' if only else ''}.", icon=":material/info:")
        return
    pages = max(1, -(-len(rows) // PER_PAGE))
    page = int(st.number_input(f"Page (of {pages})", 1, pages, 1, key="labels_page")) if pages > 1 else 1
    shown = rows.iloc[(page - 1) * PER_PAGE:page * PER_PAGE]
    classes = meta.get("classes") or sorted(set(table["given"].astype(str)) | set(table["suggested"].astype(str)))
    for start in range(0, len(shown), PER_ROW):
        for col, row in zip(st.columns(PER_ROW), shown.iloc[start:start + PER_ROW].itertuples()):
            with col:
                card(ws, row, classes)
    st.caption(f"Showing {len(shown):,} of {len(rows):,}, lowest score first.")
    if st.button(f"Add these {len(rows):,} to the basket", key="labels_basket", icon=":material/add_shopping_cart:"):
        added = state.add_to_basket(rows["id"])
        st.toast(f"Added {added:,} new image(s) to the basket.")
        st.rerun()


def offer_to_run(ws: Workspace) -> None:
    if not has_labels(ws):
        st.info("Label issues need labelled images: put the images in class sub-folders (one folder per label), "
                f"or import labels from a CSV with `curate label-issues -w {ws.path} --labels FILE.csv` "
                "(columns path,label).", icon=":material/info:")
        return
    st.info("Label issues have not been looked for in this workspace. This compares each image's label with "
            f"the labels of its nearest neighbours (`curate label-issues -w {ws.path}` does the same).",
            icon=":material/info:")
    if st.button("Find label issues", key="labels_run", type="primary", icon=":material/play_arrow:"):
        run_step(ws, "label-issues", "Comparing labels with their neighbours…")
        st.rerun()


def summary(ws: Workspace, table: pd.DataFrame, meta: dict) -> None:
    decided = table["decision"].fillna("undecided").value_counts()
    cols = st.columns(6)
    cols[0].metric("Flagged", f"{len(table):,}", help=f"Of {meta.get('labelled', 0):,} labelled images.")
    cols[1].metric("Undecided", f"{int(decided.get('undecided', 0)):,}")
    cols[2].metric("Confirmed", f"{int(decided.get('confirmed', 0)):,}", help="Fixed: the new label is kept in "
                   "label_fixes.parquet (column label_fixed), the original label is left as it is.")
    cols[3].metric("Rejected", f"{int(decided.get('rejected', 0)):,}", help="The label was right: these no longer "
                   "count as label issues (flag label_issue).")
    cols[4].metric("Agree with neighbours", f"{meta['agreement']:.0%}" if "agreement" in meta else "?",
                   help="Share of labelled images whose neighbours mostly carry the same label. When it is low the "
                        "embedding separates these classes poorly, and correct labels get flagged too.")
    trust = meta.get("trust") or {}
    precision = trust.get("expected_precision")
    cols[5].metric("Estimated precision", "—" if precision is None else f"{precision:.0%}",
                   help=f"Share of the flagged labels expected to be wrong, measured by planting label flips in a "
                        f"copy of the labels (target {trust.get('target', 0.8):.0%}; "
                        "curate label-issues --target-precision). — : nothing flagged.")
    source = "imported labels (labels.parquet)" if meta.get("source") == "imported" else "the class folders"
    st.caption(f"Labels from {source}. Each image's label is compared with those of its {meta.get('k', '?')} "
               "nearest neighbours (similarity-weighted votes, the image itself left out) and a cross-validated "
               "linear model; the images whose label they find least likely are flagged, as many as label flips "
               "planted in a copy of the labels say can be flagged at the target precision. Score: the "
               f"probability of the given label (low: likely wrong). Computed {meta.get('created', '?')}.")
    if st.button("Look again", key="labels_rerun", icon=":material/refresh:",
                 help="Recompute, e.g. after new embeddings; confirmed fixes count as the images' labels."):
        run_step(ws, "label-issues", "Comparing labels with their neighbours…", k=int(meta.get("k", K)),
                 target=float((meta.get("trust") or {}).get("target", TARGET_PRECISION)))
        st.rerun()


def card(ws: Workspace, row, classes: list[str]) -> None:
    """One flagged image: thumbnail, given -> suggested, score, the label to confirm, Confirm / Reject."""
    image_id = int(row.id)
    with st.container(border=True):
        st.image(cache.thumbnail(ws, image_id, THUMB), width=THUMB)
        st.markdown(f"**#{image_id}** · {row.given} → **{row.suggested}**")
        status = {"confirmed": f"✓ fixed to {row.label_fixed}", "rejected": "✗ label kept"}.get(row.decision, "")
        st.caption(f"score {row.score:.3f}" + (f" · {status}" if status else ""))
        default = row.label_fixed if row.decision == "confirmed" else row.suggested
        options = classes if default in classes else [*classes, default]
        label = st.selectbox("Right label", options, index=options.index(default), key=f"labels_fix_{image_id}",
                             label_visibility="collapsed")
        left, right = st.columns(2)
        if left.button("Confirm", key=f"labels_confirm_{image_id}", icon=":material/check:", width="stretch",
                       help="The label is wrong: keep the chosen one as its fix."):
            confirm_label_fix(ws, [image_id], label)
            st.toast(f"#{image_id}: {row.given} → {label}.")
            st.rerun()
        if right.button("Reject", key=f"labels_reject_{image_id}", icon=":material/close:", width="stretch",
                        help="The given label is right."):
            reject_label_issue(ws, [image_id])
            st.toast(f"#{image_id}: {row.given} kept.")
            st.rerun()


if __name__ == "__main__":
    run_page(render)
