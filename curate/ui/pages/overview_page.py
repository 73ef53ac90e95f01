"""Overview: what is in the workspace, how the encoder was trained, how good it is; and building a new
workspace from a folder of images with a background run (its progress survives a page reload)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from curate.evaluate.health import FIGURES, LOWER_IS_BETTER
from curate.evaluate.summary import summary_rows
from curate.ui import cache, runs, state
from curate.ui.compare_view import show_compare
from curate.ui.guard import errors_as_messages, show_no_workspace
from curate.workspace import Workspace

MAX_LABEL_BARS = 50
EVAL_METRICS = [  # label, report key, number format (the random-weights figure, if any, is `<key>_random_init`)
    ("kNN top-1", "knn_top1", ".1%"), ("Linear probe top-1", "linear_probe_top1", ".1%"),
    ("k-means NMI", "kmeans_nmi", ".3f"), ("k-means ARI", "kmeans_ari", ".3f"),
]
HEALTH_METRICS = [(name.capitalize(), key, fmt) for key, name, _, fmt in FIGURES]  # label, key, format
EVAL_PLOTS = [("summary", "Trained vs random weights"), ("layer_probes", "Per-layer linear probes"),
              ("training_curves", "Training losses"), ("training_health", "Embedding health while training"),
              ("embedding_map", "2-D map by label"), ("projections", "UMAP, t-SNE and PCA of the same images")]


def main() -> None:
    """The open workspace (if any) and its run, then the form that starts a new run."""
    st.title("Overview")
    ws = state.current_workspace()
    job = "none"
    with errors_as_messages():
        if ws is not None:
            job = runs.job_panel(ws.path)
        if ws is None:
            show_no_workspace()
        elif ws.exists():
            render(ws)
        elif job != "running":
            ws.require()  # raises the message that says how to create it
    st.divider()
    with st.expander("Build a new workspace from a folder of images", expanded=ws is None or not ws.exists(),
                     icon=":material/add_circle:"):
        with errors_as_messages():
            runs.new_run_form(ws)


def render(ws: Workspace) -> None:
    source = ws.meta.get("source")  # a bucket URL: its objects are mirrored into the workspace
    origin = f"`{source}` (mirrored in `{ws.root}`)" if source else f"`{ws.root}`"
    st.caption(f"Workspace `{ws.path}` · images from {origin}")
    table = cache.manifest(ws)
    if table.empty:
        st.warning(f"The manifest is empty: run `curate scan IMAGES -w {ws.path}`.")
        return
    show_counts(ws, table)
    left, right = st.columns(2)
    with left:
        show_skipped(table)
    with right:
        show_labels(table)
    st.divider()
    show_model(ws)
    show_eval(ws)
    st.divider()
    show_compare(ws)


def show_counts(ws: Workspace, table: pd.DataFrame) -> None:
    status = table["status"].astype(str)
    ok, removed = int((status == "ok").sum()), int((status == "removed").sum())
    dups = cache.duplicates(ws)
    cols = st.columns(6)
    cols[0].metric("Images", f"{len(table):,}")
    cols[1].metric("OK", f"{ok:,}")
    cols[2].metric("Skipped", f"{len(table) - ok - removed:,}")
    cols[3].metric("Removed", f"{removed:,}")
    cols[4].metric("Selections", f"{len(ws.selection_names()):,}")
    cols[5].metric("Duplicate groups", "–" if dups is None else f"{dups['group'].nunique():,}")


def show_skipped(table: pd.DataFrame) -> None:
    st.subheader("Skipped images")
    status = table["status"].astype(str)
    skipped = status[(status != "ok") & (status != "removed")]
    if skipped.empty:
        st.success("Every image was readable.", icon=":material/check_circle:")
        return
    reasons = skipped.value_counts().rename_axis("reason").reset_index(name="images")
    st.dataframe(reasons, hide_index=True)


def show_labels(table: pd.DataFrame) -> None:
    st.subheader("Labels")
    ok = table[table["status"].astype(str) == "ok"]
    if ok["label"].isna().all():
        st.info("No labels: the images are not in class sub-folders.")
        return
    counts = ok["label"].astype(object).fillna("(no label)").value_counts()
    if len(counts) > MAX_LABEL_BARS:
        st.caption(f"The {MAX_LABEL_BARS} largest of {len(counts):,} labels.")
    bars = counts.head(MAX_LABEL_BARS).rename_axis("label").reset_index(name="images")
    st.bar_chart(bars, x="label", y="images", height=260)


def show_model(ws: Workspace) -> None:
    st.subheader("Encoder")
    config = cache.json_file(ws.model_config_file)
    if config is None:
        st.info(f"No trained encoder yet: run `curate train IMAGES -w {ws.path}`.")
        return
    trained = config.get("trained", {})
    tasks = ", ".join(f"{t['name']}×{t.get('weight', 1)}" for t in config.get("tasks", []))
    cols = st.columns(6)
    cols[0].metric("Architecture", config.get("architecture", "?"))
    cols[1].metric("Image size", f"{config.get('image_size', '?')} px")
    cols[2].metric("Steps", f"{trained.get('steps', 0):,}")
    cols[3].metric("Images seen", f"{trained.get('images_seen', 0):,}")
    cols[4].metric("Images / s", f"{trained.get('images_per_s', 0):,}")
    final = (trained.get("final_losses") or {}).get("loss")
    cols[5].metric("Final loss", "–" if final is None else f"{final:.4f}")
    st.caption(f"Tasks: {tasks or '?'} · trained {trained.get('elapsed_s', '?')} s on "
               f"{trained.get('train_images', '?')} images · created {config.get('created', '?')}")
    show_loss_curve(ws)
    st.markdown("**Embedding health while training**")
    runs.show_health_curves(ws)


def show_loss_curve(ws: Workspace) -> None:
    log = cache.train_log(ws)
    losses = [c for c in log.columns if c == "loss" or c.endswith("/loss")] if not log.empty else []
    if "step" not in log.columns or not losses:
        st.caption("No training log (model/train_log.jsonl) to plot.")
        return
    if len(log) < 2:  # a line needs two points: a very short run logs only its first step
        last = log.iloc[-1]
        st.caption(f"Training loss logged once (step {int(last['step'])}): {float(last['loss']):.4f}. "
                   "Longer runs log every 10 steps and draw a curve here.")
        return
    st.line_chart(log.set_index("step")[losses], height=260, x_label="step", y_label="loss")


def show_eval(ws: Workspace) -> None:
    st.subheader("Evaluation")
    report = cache.json_file(ws.eval_report_file)
    if report is None:
        st.info(f"No evaluation report yet: run `curate eval -w {ws.path}` (kNN and probes with labelled images, "
                "a label-free health report without).")
        return
    if report.get("label_free"):  # no labels: the health figures take the headline places
        figures, metrics = {**{f"{k}_random_init": v for k, v in (report.get("health_random_init") or {}).items()},
                            **(report.get("health") or {})}, HEALTH_METRICS
    else:
        figures, metrics = report, EVAL_METRICS
    cols = st.columns(6)
    for col, (label, key, fmt) in zip(cols, metrics):
        if figures.get(key) is not None:
            base = figures.get(f"{key}_random_init")
            delta = None if base is None else f"{figures[key] - base:+{fmt}} vs random"
            col.metric(label, f"{figures[key]:{fmt}}", delta=delta, delta_color="inverse" if key in LOWER_IS_BETTER
                       else "normal", help="delta: against the same architecture with random weights"
                       if base is not None else None)
    cols[4].metric("Test images", f"{report.get('test_images', 0):,}")
    cols[5].metric("Classes", f"{report.get('classes', 0):,}" if report.get("classes") else "no labels")
    st.caption(f"{report.get('protocol', '')} · created {report.get('created', '?')}")
    rows = summary_rows(report)
    if len(rows) > 1:
        table = pd.DataFrame(rows, columns=["metric", "trained", "random init"])
        st.dataframe(table, hide_index=True, height=35 * (len(table) + 1) + 3)  # every row, no inner scroll
    for part, why in (report.get("skipped") or {}).items():
        st.caption(f"{part}: {why}")
    show_eval_plots(ws, report.get("plots") or {})


def show_eval_plots(ws: Workspace, names: dict[str, str]) -> None:
    """The report's PNGs, two a row, in a fixed reading order."""
    shown = [(title, cache.report_png(ws, names[key])) for key, title in EVAL_PLOTS if key in names]
    shown = [(title, png) for title, png in shown if png is not None]
    for start in range(0, len(shown), 2):
        for col, (title, png) in zip(st.columns(2), shown[start:start + 2]):
            col.image(png, caption=title, width="stretch")


if __name__ == "__main__":
    main()
