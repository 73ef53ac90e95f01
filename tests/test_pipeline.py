"""The declared steps are true: each runs alone on a workspace holding only the files it declares it
reads, and writes every file it declares it writes; a seeded step records the --seed it was given."""
import json
import shutil

import pytest

from curate.pipeline import EXTRA_STEPS, STEPS, run_step, step
from curate.steps.options import RunOptions
from curate.workspace import Workspace

# small settings so that every step runs in seconds on the bundled images
OPTIONS = dict(epochs=0.05, batch_size=64, health_minutes=0.0, retrain=True, select=("random:20:r20",), seed=5)
SEEDED = {  # step -> where it records its seed
    "train": lambda ws: json.loads(ws.run_config_file.read_text())["seed"],
    "map": lambda ws: json.loads(ws.sidecar(ws.projection_file).read_text())["seed"],
    "tsne": lambda ws: json.loads(ws.sidecar(ws.tsne_file).read_text())["seed"],
    "dedup": lambda ws: json.loads(ws.sidecar(ws.duplicates_file).read_text())["search"]["seed"],
    "label-issues": lambda ws: json.loads(ws.sidecar(ws.label_issues_file).read_text())["seed"],
    "select": lambda ws: ws.selection_meta("r20")["seed"],
}


def only_reads(source, target, reads) -> Workspace:
    """A workspace folder at `target` holding only `reads` of `source` (IMAGES: the image folder, which
    workspace.json names)."""
    target.mkdir()
    for name in reads:
        if name == "IMAGES":
            continue
        src = source / name
        assert src.exists(), f"{name} is declared as read but the full workspace has none"
        if src.is_dir():
            shutil.copytree(src, target / name)
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / name)
    return Workspace(target)


@pytest.mark.slow
@pytest.mark.parametrize("name", [s.name for s in STEPS + EXTRA_STEPS])
def test_each_step_runs_on_what_it_reads_and_writes_what_it_declares(name, quick_run_workspace, tmp_path):
    declared = step(name)
    ws = only_reads(quick_run_workspace, tmp_path / "ws", declared.reads)
    before = {f: (ws.path / f).stat().st_mtime_ns for f in declared.writes if (ws.path / f).exists()}
    summary = run_step(ws, name, RunOptions(images=Workspace(quick_run_workspace).root, workspace=ws.path, **OPTIONS))
    assert summary.lines() and all(isinstance(line, str) for line in summary.lines())
    for f in declared.writes:
        assert (ws.path / f).exists(), f"step {name} declares it writes {f}, but did not"
        if f in before and not (ws.path / f).is_dir():
            assert (ws.path / f).stat().st_mtime_ns > before[f], f"step {name} left {f} as it was"
    if name in SEEDED:  # --seed reaches every seeded step
        assert SEEDED[name](ws) == 5


def test_step_names_are_unique_and_every_step_declares_what_it_touches():
    names = [s.name for s in STEPS + EXTRA_STEPS]
    assert len(names) == len(set(names))
    assert all(s.reads and s.writes for s in STEPS + EXTRA_STEPS)
    with pytest.raises(ValueError, match="unknown step 'nope'"):
        step("nope")
