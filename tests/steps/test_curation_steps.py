"""Library pieces behind the curation pages: export plans, selection comparison, strategy parameters."""
from __future__ import annotations

import numpy as np
import pytest

from curate.select import STRATEGIES
from curate.select.params import tunable_params
from curate.steps.compare import compare_selections, overlap
from curate.steps.export import export_selection, plan_export
from curate.steps.select import run_selection
from curate.workspace import Workspace


def test_plan_lists_what_the_export_writes_before_writing_it(built_workspace, tmp_path):
    ws = Workspace(built_workspace)
    chosen = ws.selection("kcenter_100").sort_values("rank")["id"].tolist()
    paths = ws.manifest()["path"].iloc[chosen].tolist()
    plan = plan_export(ws, tmp_path / "out", "copy", selection="kcenter_100", preview=5)
    assert not (tmp_path / "out").exists()
    assert plan.n == 100 and plan.files == paths[:5] and plan.existing == 0 and plan.mode == "copy"
    assert plan.image_bytes == int(ws.manifest()["bytes"].iloc[chosen].sum()) > 0
    export_selection(ws, "kcenter_100", tmp_path / "out", "copy")
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.jpg"))
    assert written == sorted(paths) and sum((tmp_path / "out" / p).stat().st_size for p in paths) == plan.image_bytes
    again = plan_export(ws, tmp_path / "out", "list", ids=chosen[:3])
    assert again.n == 3 and again.files == [] and again.existing == len({p.split("/")[0] for p in paths}) + 3  # class folders + manifests
    assert plan_export(ws, "k.zip", "zip", ids=chosen[:2]).manifests == ["manifest.csv", "manifest.json"]


@pytest.mark.parametrize("inside", ["root", "workspace"])
def test_plan_refuses_a_target_inside_the_images_or_the_workspace(built_workspace, inside):
    ws = Workspace(built_workspace)
    target = (ws.root if inside == "root" else ws.path) / "exported"
    with pytest.raises(ValueError, match="refusing to export"):
        plan_export(ws, target, "list", selection="kcenter_100")
    with pytest.raises(ValueError, match="mode"):
        plan_export(ws, "/tmp/x", "move", selection="kcenter_100")


def test_overlap_by_hand():
    assert overlap([1, 2, 3, 3], [3, 4]) == {"n_a": 3, "n_b": 2, "overlap": 1, "only_a": 2, "only_b": 1,
                                             "jaccard": 0.25}
    assert overlap([], [])["jaccard"] == 1.0


def test_compare_measures_both_selections_on_the_same_pool(built_workspace_copy):
    ws = built_workspace_copy
    run_selection(ws, 100, "random", "rand")
    result = compare_selections(ws, "kcenter_100", "rand")
    k, r = set(ws.selection("kcenter_100")["id"]), set(ws.selection("rand")["id"])
    assert result["overlap"] == len(k & r) and np.isclose(result["jaccard"], len(k & r) / len(k | r))
    a, b = result["metrics"]["kcenter_100"], result["metrics"]["rand"]
    assert a["pool"] == b["pool"] == int(np.any(np.asarray(ws.embeddings()) != 0, axis=1).sum())
    assert a["coverage_radius"] < b["coverage_radius"]  # what k-center optimises
    assert sum(a["label_histogram"]["selected"].values()) == 100
    assert a["label_histogram"]["pool"] == b["label_histogram"]["pool"]


@pytest.mark.parametrize("strategy", STRATEGIES.names())
def test_tunable_params_are_plain_keyword_defaults(strategy):
    params = tunable_params(strategy)
    assert not {"vectors", "n", "seed", "include"} & set(params)
    assert all(isinstance(v, (bool, int, float, str)) for v in params.values())
