"""Background runs from the app: build a workspace from a folder of images, follow the run, cancel it.

The run is a `curate.jobs` process (`curate run IMAGES -w WS ...`); what is shown here is read from
the workspace's job/ files, so the progress survives a page reload and every session sees (and can
cancel) the same run. A polling fragment redraws only the progress panel while the run goes on.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from curate import jobs
from curate.data.remote import is_url
from curate.options import to_argv
from curate.pretext import TASKS
from curate.steps.options import DEFAULT_MINUTES, RunOptions
from curate.ui import access, cache, charts, state
from curate.workspace import Workspace

POLL_S = 2.0  # seconds between two looks at the progress file
FIGURE_NAMES = {"loss": "Loss", "img_s": "Images / s", "eta": "Time left", "rank": "Effective rank", "cpu": "CPU share"}  # live figures of the progress file


def run_command(images: str, target: str, minutes: float, tasks: list[str]) -> tuple[Path, list[str]]:
    """(workspace folder, `curate` arguments) of a run on `images`, a folder or a bucket URL; ValueError or
    PermissionError saying what to fix."""
    if not images.strip():
        raise ValueError("Enter the folder of images (or a bucket URL) to build the workspace from.")
    # a bucket: only under the app's bucket prefixes, read with the server's own credentials
    source = access.allowed_url(images.strip()) if is_url(images.strip()) else _folder(images)
    name = source.name if isinstance(source, Path) else source.rsplit("/", 1)[-1]  # a URL comes normalised
    ws = Workspace(access.allowed(target.strip() or Path.cwd() / "workspaces" / name))
    if isinstance(source, Path) and (ws.path == source or ws.path.is_relative_to(source)):
        raise ValueError(f"The workspace {ws.path} would lie inside the image folder: choose a folder outside it.")
    built_from = ws.meta.get("source") or ws.root if ws.exists() else None  # a bucket URL, or a folder
    if built_from is not None and built_from != source:
        raise ValueError(f"{ws.path} is already the workspace of {built_from}: choose another workspace folder.")
    if not ws.exists() and ws.path.is_dir() and any(p != ws.job_dir for p in ws.path.iterdir()):
        raise ValueError(f"{ws.path} is a folder with other files in it: choose a new or empty folder.")
    # no tasks: the default recipe for the images' size (curate.train.presets.default_recipe)
    options = RunOptions(minutes=float(minutes), task=tuple(tasks))
    return ws.path, ["run", str(source), "-w", str(ws.path), *to_argv(options)]


def _folder(images: str) -> Path:
    folder = access.allowed(images.strip()).resolve()  # the browser names only folders inside the app's roots
    if not folder.is_dir():
        raise ValueError(f"Image folder not found: {folder}. Enter an existing folder of images.")
    return folder


def new_run_form(ws: Workspace | None) -> None:
    """Folder of images, workspace folder, budget and tasks; Start launches `curate run` in the background."""
    suggested = str(ws.path) if ws is not None and not ws.exists() else ""
    with st.form("new_run"):
        images = st.text_input("Folder of images, or a bucket URL", key="run_images",
                               placeholder="/path/to/images or s3://bucket/prefix",
                               help="Searched recursively; class sub-folders become labels. A bucket (s3://, "
                                    "gs://, az://) is mirrored into the workspace with this server's credentials.")
        target = st.text_input("Workspace folder", value=suggested, key="run_workspace",
                               placeholder="default: ./workspaces/<name of the image folder>",
                               help="A new or empty folder, or the image folder's existing workspace (trains again).")
        left, right = st.columns([1, 2])
        minutes = left.number_input("Training budget (minutes)", min_value=0.1, max_value=24 * 60.0,
                                    value=DEFAULT_MINUTES, step=1.0, key="run_minutes",
                                    help="Wall-clock time of self-supervised training; embedding and the map follow.")
        tasks = right.multiselect("Pretext tasks", TASKS.names(), default=[], key="run_tasks",
                                  placeholder="automatic: the default recipe for the images' size",
                                  help="Empty: curate's default recipe, chosen by image size (SimCLR, tuned for "
                                       "small images or for photos). Several tasks train one encoder together, "
                                       "with equal weights.")
        start = st.form_submit_button("Start run", key="run_start", type="primary", icon=":material/play_arrow:")
    if not start:
        return
    try:
        path, args = run_command(images, target, float(minutes), list(tasks))
        jobs.start(path, args)
    except (ValueError, RuntimeError, OSError) as err:  # RuntimeError: a run is already going on there;
        # PermissionError (an OSError): a folder or bucket outside the app's roots
        st.error(str(err), icon=":material/error:")
        return
    state.open_next(str(path))
    st.rerun()


def job_panel(path: Path) -> str:
    """The run of workspace `path`: live while it goes on, its outcome once it ended; returns its state."""
    job = jobs.status(path)
    if job["state"] == "running":
        st.fragment(_live, run_every=POLL_S)(path)
    elif job["state"] != "none":
        _ended(job)
    return job["state"]


def _live(path: Path) -> None:
    job = jobs.status(path)
    if job["state"] != "running":
        st.rerun(scope="app")  # the run ended: redraw the whole page with what it wrote
    st.subheader("Run in progress", anchor=False)
    st.caption(f"`curate {' '.join(job.get('args', []))}` · started {job.get('started', '?')}")
    progress = job.get("progress") or {}
    info = dict(progress.get("info") or {})
    stage, unit = info.pop("stage", "starting"), info.pop("unit", "")
    done, total = int(progress.get("done", 0)), int(progress.get("total", 0))
    st.progress(min(1.0, done / total) if total else 0.0,
                text=f"{stage}: {done:,} / {total:,} {unit}" if total else f"{stage}…")
    if info:
        for col, (name, value) in zip(st.columns(len(info)), info.items()):
            col.metric(FIGURE_NAMES.get(name, name), f"{value:.4g}" if isinstance(value, float) else str(value))
    log = cache.train_log(Workspace(path))
    if "loss" in log.columns and len(log) >= 2 and str(stage).startswith("train"):
        loss_col, health_col = st.columns(2)
        loss_col.line_chart(log.set_index("step")[["loss"]], height=200, x_label="step", y_label="loss")
        with health_col:
            show_health_curves(Workspace(path), height=200, compact=True)
    st.code(job.get("log_tail") or "(no output yet)", language=None)
    if job.get("cancelling"):
        st.caption("Cancel requested: the run stops after its current step and keeps what it finished.")
    else:  # a callback: it runs before the fragment redraws, which then says the cancel is under way
        st.button("Cancel run", key="job_cancel", icon=":material/stop_circle:", on_click=_cancel, args=(path,))


def show_health_curves(ws: Workspace, height: int = 260, compact: bool = False) -> None:
    """Embedding health while training (effective rank, uniformity, alignment, nearest-neighbour cosine)."""
    log = cache.health_log(ws)
    if log.empty:
        if not compact:
            st.caption("No embedding-health figures in model/train_log.jsonl (runs before this version, or "
                       "`--health-minutes 0`).")
        return
    if compact:  # the live view: the figure that shows a collapse first
        st.line_chart(log.set_index("step")[["effective_rank"]], height=height, x_label="step",
                      y_label="effective rank")
        return
    st.plotly_chart(charts.health_figure(log, height), key="health_chart")
    st.caption("Measured on the same 256 training images and two fixed augmented views all along. Effective rank: "
               "how many directions the embeddings use (a collapse drops it to 1). Uniformity: how spread they are "
               "(0 = all the same). Alignment: distance between two views of one image (lower = more invariant). "
               "Nearest-neighbour cosine: how alike each image is to its closest other image.")


def _cancel(path: Path) -> None:
    try:
        jobs.cancel(path)
    except ProcessLookupError:  # it ended between the last look and the click: nothing left to stop
        pass


def _ended(job: dict) -> None:
    command = f"`curate {' '.join(job.get('args', []))}`"
    when = job.get("ended", "?")
    if job["state"] == "finished":
        st.success(f"The last run finished ({when}): {command}", icon=":material/check_circle:")
    elif job["state"] == "cancelled":
        st.warning(f"The last run was cancelled ({when}): {command}. What it finished is kept; "
                   "start it again below to go on.", icon=":material/stop_circle:")
    else:
        st.error(f"The last run failed (exit code {job.get('returncode', '?')}): {command}. "
                 "Its log below says why; fix that and start it again.", icon=":material/error:")
    with st.expander("Log of the last run"):
        st.code(job.get("log_tail") or "(no output)", language=None)
