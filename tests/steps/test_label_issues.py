"""Label issues: confident learning checked against hand-computed values, the kNN probabilities
against a brute-force reference, and the whole step on real CIFAR images with planted wrong
labels (folders and an imported CSV), decisions, the skip flag, the CLI and the app page.

The fixture's encoder (a quarter epoch) agrees with 61% of the labels: too weak for the planted-flip
estimate (curate.quality.label_trust) to flag anything, which the step must say. Confident learning's
list (`cl_issue`, the flag before issue 29) is checked as before; the review workflow runs on flags
made with the agreement gate off (`agreement_min=0`)."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from curate import storage
from curate.cli import main
from curate.index import build_index
from curate.quality.label_issues import (class_probabilities, class_thresholds, confident_joint, confident_labels,
                                         find_label_issues, knn_class_probabilities, knn_disagreement,
                                         linear_class_probabilities, self_confidence, suggest_labels)
from curate.select.filters import Filters, filter_mask
from curate.steps.label_issues import (confirm_label_fix, has_labels, import_labels, label_issues,
                                       read_label_fixes, reject_label_issue, review_table, top_confusions)
from curate.steps.scores import image_table
from curate.workspace import Workspace

from tests.apptest_helpers import assert_clean, open_page, start

CLASSES = ("airplane", "frog", "truck")  # 3 classes the briefly trained fixture encoder tells apart best
PER_CLASS = 200
PLANTED = 20  # per class: 10% of the images end up in a wrong class folder


# --- confident learning on hand-made probabilities -------------------------------------------------
# 6 images, 2 classes. Thresholds: t0 = mean(.9, .9, .8) = 0.8667, t1 = mean(.1, .8, .9) = 0.6.
# Confident classes: 0, 0, none (.8 < t0, .2 < t1), 0, 1, 1.  Confident joint (given x confident):
# [[2, 0], [1, 2]]; calibrated to the 3 images of each given label: [[3, 0], [1, 2]].
# Off-diagonal (1, 0) = 1: of the images labelled 1, flag the one with the largest p0 - p1 (image 3).
LABELS = np.array([0, 0, 0, 1, 1, 1])
PROBS = np.array([[.9, .1], [.9, .1], [.8, .2], [.9, .1], [.2, .8], [.1, .9]])


def test_thresholds_confident_classes_and_joint_by_hand():
    assert np.allclose(class_thresholds(LABELS, PROBS), [2.6 / 3, 0.6])
    assert confident_labels(PROBS, class_thresholds(LABELS, PROBS)).tolist() == [0, 0, -1, 0, 1, 1]
    assert np.array_equal(confident_joint(LABELS, PROBS, calibrate=False), [[2, 0], [1, 2]])
    assert np.allclose(confident_joint(LABELS, PROBS), [[3, 0], [1, 2]])


def test_find_label_issues_by_hand():
    expected = [False, False, False, True, False, False]
    assert find_label_issues(LABELS, PROBS).tolist() == expected
    assert find_label_issues(LABELS, PROBS, "prune_by_noise_rate").tolist() == expected
    assert find_label_issues(LABELS, PROBS, "confident_learning").tolist() == expected
    assert knn_disagreement(LABELS, PROBS).tolist() == expected
    assert np.allclose(self_confidence(LABELS, PROBS), [.9, .9, .8, .1, .8, .9])
    assert suggest_labels(LABELS, PROBS).tolist() == [0, 0, 0, 0, 1, 1]  # image 2: no confident class, argmax


def test_prune_by_noise_rate_flags_the_estimated_count_by_largest_margin():
    # 3 classes, 10 images; thresholds t = (0.8, 0.6, 0.5).
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 2])
    probs = np.array([[.9, .05, .05], [.9, .05, .05], [.9, .05, .05],
                      [.5, .45, .05],  # labelled 0, leans to 1 (below t1): not confident, argmax is its label
                      [.8, .1, .1],
                      [.85, .1, .05],  # labelled 1, confidently 0: margin .75
                      [.1, .85, .05], [.05, .85, .1],
                      [.1, .1, .8], [.4, .4, .2]])  # labelled 2, no class confident (.4 < .8, .2 < .5)
    t = class_thresholds(labels, probs)
    assert np.allclose(t, [(.9 * 3 + .5 + .8) / 5, (.1 + .85 + .85) / 3, (.8 + .2) / 2])
    assert confident_labels(probs, t).tolist() == [0, 0, 0, -1, 0, 0, 1, 1, 2, -1]
    # given 1: confident [1 x class 0, 2 x class 1] -> calibrated to 3 images: one image 1 -> 0
    assert np.allclose(confident_joint(labels, probs)[1], [1, 2, 0])
    flags = find_label_issues(labels, probs, "prune_by_noise_rate")
    assert np.flatnonzero(flags).tolist() == [5]
    assert find_label_issues(labels, probs, "knn_disagreement").tolist() == (probs.argmax(1) != labels).tolist()
    with pytest.raises(ValueError, match="unknown method"):
        find_label_issues(labels, probs, "vote")

    # rank_by_self_confidence flags as many (1), but the lowest probability of the given label: after
    # image 9 becomes [.45, .5, .05] (labelled 2, claimed confidently by no class, so out of pruning's
    # reach) it is 9, not 5 (self-confidence .05 < .1); thresholds and joint stay as they were.
    probs[9] = [.45, .5, .05]
    assert confident_labels(probs, class_thresholds(labels, probs))[9] == -1
    assert np.flatnonzero(find_label_issues(labels, probs, "prune_by_noise_rate")).tolist() == [5]
    assert np.flatnonzero(find_label_issues(labels, probs)).tolist() == [9]


# --- out-of-sample kNN probabilities -------------------------------------------------------------
def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_knn_probabilities_match_a_brute_force_reference_without_the_image_itself():
    rng = np.random.default_rng(0)
    x = unit(rng.normal(size=(300, 16)))
    labels = rng.integers(0, 4, 300)
    probs = knn_class_probabilities(x, labels, 4, k=7, temperature=0.1, smoothing=0.0)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    for i in rng.choice(300, 20, replace=False):
        nbrs = np.argsort(-sims[i])[:7]  # 7 others (the self-search of k + 1 drops itself)
        expected = np.bincount(labels[nbrs], weights=np.exp(sims[i, nbrs] / 0.1), minlength=4)
        assert np.allclose(probs[i], expected / expected.sum(), atol=1e-5)
    smoothed = knn_class_probabilities(x, labels, 4, k=7)
    assert np.allclose(smoothed.sum(1), 1, atol=1e-5) and smoothed.min() >= 0.01 / 4 - 1e-7
    index, _ = build_index(x, np.arange(300))  # an index passed in (ids = row positions) gives the same
    assert np.allclose(knn_class_probabilities(x, labels, 4, k=7, index=index), smoothed, atol=1e-6)


def test_an_exact_copy_does_not_vote_for_its_own_label():
    rng = np.random.default_rng(1)
    centre = rng.normal(size=(1, 8))
    x = unit(np.vstack([centre + 0.05 * rng.normal(size=(10, 8)), rng.normal(size=(10, 8))]))
    x[10] = x[0]  # image 10 is image 0 filed under another class
    labels = np.array([0] * 10 + [1] * 10)
    probs = knn_class_probabilities(x, labels, 2, k=5)
    assert probs[0, 0] > 0.95  # the copy labelled 1 was left out: image 0's real neighbours are all 0
    assert probs[10, 0] > 0.95  # and the copy is judged by the cluster it sits in: it is flagged
    assert find_label_issues(labels, probs)[10]


def test_linear_probabilities_are_out_of_fold_and_find_planted_errors():
    """An image's own label never takes part in its linear probabilities (a fold is predicted by a model
    fitted on the others), so changing it leaves its row as it was; and planted wrong labels in
    separable clusters get a low probability of their given label, as with the kNN vote."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 600)
    x = unit(rng.normal(size=(3, 16))[labels] * 2 + rng.normal(size=(600, 16)))
    given = labels.copy()
    wrong = rng.choice(600, 30, replace=False)
    given[wrong] = (labels[wrong] + 1) % 3
    probs = linear_class_probabilities(x, given, 3)
    assert np.allclose(probs.sum(1), 1, atol=1e-5) and probs.min() >= 0.01 / 3 - 1e-7
    changed = given.copy()
    changed[wrong[0]] = (given[wrong[0]] + 1) % 3
    assert np.allclose(linear_class_probabilities(x, changed, 3)[wrong[0]], probs[wrong[0]], atol=1e-6)
    mixed = class_probabilities(x, given, 3)
    assert np.allclose(mixed, (probs + knn_class_probabilities(x, given, 3)) / 2, atol=1e-6)
    flagged = find_label_issues(given, mixed)
    assert flagged[wrong].mean() > 0.9 and flagged.sum() < 40
    with pytest.raises(ValueError, match="knn\\+linear"):
        class_probabilities(x, given, 3, "svm")


# --- the step on real images with planted wrong labels ---------------------------------------------
@pytest.fixture(scope="module")
def planted(tmp_path_factory, bundled_images, built_workspace, sample_copier):
    """(workspace path, {relative path: true class}): 3 real CIFAR classes of 200 images, 20 of each
    moved into a wrong class folder, embedded with the shared workspace's encoder."""
    from curate.steps.embed import embed
    from curate.steps.index import build_workspace_index
    from curate.steps.scan import scan

    base = tmp_path_factory.mktemp("planted")
    root = sample_copier(bundled_images, base / "images", CLASSES, PER_CLASS)
    rng = np.random.default_rng(0)
    moved = {}
    picked = {cls: rng.choice(sorted((root / cls).glob("*.jpg")), PLANTED, replace=False) for cls in CLASSES}
    for i, cls in enumerate(CLASSES):
        for f in picked[cls]:
            wrong = CLASSES[(i + 1 + rng.integers(len(CLASSES) - 1)) % len(CLASSES)]
            moved[f"{wrong}/planted_{cls}_{f.name}"] = cls
            f.rename(root / wrong / f"planted_{cls}_{f.name}")
    ws, _ = scan(root, base / "ws")
    embed(ws, model=Workspace(built_workspace).encoder_file)
    build_workspace_index(ws)
    return ws.path, moved


@pytest.fixture
def planted_ws(planted, tmp_path) -> Workspace:
    """A writable copy of the planted workspace (its images are shared, read-only)."""
    shutil.copytree(planted[0], tmp_path / "ws", ignore=shutil.ignore_patterns("cache"))
    return Workspace(tmp_path / "ws")


def planted_mask(ws: Workspace, ids, moved: dict) -> np.ndarray:
    return np.isin(ws.manifest()["path"].to_numpy()[np.asarray(ids)], list(moved))


def test_planted_wrong_labels_are_found_with_precision_above_the_noise_rate(planted_ws, planted):
    moved = planted[1]
    table = label_issues(planted_ws)
    pd.testing.assert_frame_equal(table, pd.read_parquet(planted_ws.label_issues_file), check_dtype=False)
    assert list(table.columns)[:5] == ["id", "label_issue", "given", "suggested", "score"]  # the contract
    assert len(table) == len(CLASSES) * PER_CLASS
    wrong = planted_mask(planted_ws, table["id"], moved)
    meta = storage.read_json(planted_ws.sidecar(planted_ws.label_issues_file))
    trust = meta["trust"]  # a weak encoder: nothing flagged, and the sidecar says why and what helps
    assert trust["too_weak"] and not table["label_issue"].any() and meta["flagged"] == 0
    assert trust["agreement"] < trust["agreement_min"] and "--minutes 30" in trust["message"]
    assert trust["planted"] == 30 and trust["seed"] == 0 and trust["target"] == 0.8
    flags = table["cl_issue"].to_numpy()  # confident learning's longer list, as flagged before
    noise = wrong.mean()
    recall, precision = (flags & wrong).sum() / wrong.sum(), (flags & wrong).sum() / flags.sum()
    assert noise == pytest.approx(0.1)
    assert recall > 0.5 and precision > 2 * noise, (recall, precision)
    # the wrong labels score lower (the neighbours' probability of the given label) than the right ones
    assert table["score"][wrong].median() < table["score"][~wrong].median()
    # most caught images get their real class as the suggestion
    paths = planted_ws.manifest()["path"].to_numpy()[table["id"]]
    caught = np.flatnonzero(flags & wrong)
    assert np.mean([table["suggested"].iloc[i] == moved[paths[i]] for i in caught]) > 0.5
    assert meta["source"] == "folders" and meta["cl_flagged"] == flags.sum() and meta["classes"] == list(CLASSES)
    gated = label_issues(planted_ws, agreement_min=0)  # the gate off: flags, with their estimate
    assert gated["label_issue"].any() and top_confusions(gated)[0][2] >= top_confusions(gated)[-1][2]


def test_the_summary_and_the_sidecar_carry_the_estimate(planted_ws):
    from curate.steps.label_issues import run

    lines = run(planted_ws).lines()
    assert "0 flagged of 600" in lines[0] and "too weak to judge single labels" in lines[1]
    assert "--minutes 30" in lines[1]
    summary = run(planted_ws, target=0.2)  # no cut helps a weak encoder: the agreement gate holds
    assert summary.flagged == 0 and summary.expected_precision is None
    table = label_issues(planted_ws, agreement_min=0, target=0.5)
    trust = storage.read_json(planted_ws.sidecar(planted_ws.label_issues_file))["trust"]
    assert not trust["too_weak"] and trust["expected_precision"] >= 0.5 and trust["target"] == 0.5
    assert trust["message"].startswith(f"{int(table['label_issue'].sum())} flagged at an estimated precision")


def test_imported_csv_labels_replace_the_folder_labels(planted_ws, planted, tmp_path):
    moved = planted[1]
    manifest = planted_ws.manifest()
    truth = [moved.get(p, p.split("/")[0]) for p in manifest["path"]]  # the CSV knows the real classes
    csv = tmp_path / "labels.csv"
    rows = pd.DataFrame({"path": ["./" + p if i % 2 else p for i, p in enumerate(manifest["path"])], "label": truth})
    pd.concat([rows, pd.DataFrame({"path": ["elsewhere/x.jpg"], "label": ["frog"]})]).to_csv(csv, index=False)
    imported = import_labels(planted_ws, csv)
    assert list(imported.columns) == ["id", "label"] and len(imported) == len(manifest)
    assert storage.read_json(planted_ws.sidecar(planted_ws.labels_file))["unmatched"] == 1
    table = label_issues(planted_ws)
    assert table["given"].tolist() == [truth[i] for i in table["id"]]
    assert storage.read_json(planted_ws.sidecar(planted_ws.label_issues_file))["source"] == "imported"
    assert planted_ws.manifest()["label"].equals(manifest["label"])  # the folder labels are untouched
    was_wrong = planted_mask(planted_ws, table["id"], moved)
    assert table["cl_issue"][was_wrong].mean() < 0.4  # correctly labelled now, so mostly not flagged
    folder = label_issues(planted_ws, source="folders")
    assert folder["cl_issue"][was_wrong].mean() > table["cl_issue"][was_wrong].mean()

    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nnowhere/a.jpg,cat\n")
    with pytest.raises(ValueError, match="no path of"):
        import_labels(planted_ws, bad)
    bad.write_text("file,class\na.jpg,cat\n")
    with pytest.raises(ValueError, match="needs columns path,label"):
        import_labels(planted_ws, bad)
    bad.write_text(f"path,label\n{manifest['path'][0]},cat\n{manifest['path'][0]},dog\n")
    with pytest.raises(ValueError, match="more than once"):
        import_labels(planted_ws, bad)


def test_csv_labels_on_unlabelled_images(tmp_path, bundled_images, built_workspace):
    """A flat folder (no class folders) gets its labels from a CSV only."""
    from curate.steps.embed import embed
    from curate.steps.scan import scan

    root = tmp_path / "flat"
    root.mkdir()
    rows = []
    for cls in CLASSES:
        for f in sorted((bundled_images / cls).glob("*.jpg"))[:40]:
            shutil.copy2(f, root / f"{cls}_{f.name}")
            rows.append((f"{cls}_{f.name}", cls))
    ws, _ = scan(root, tmp_path / "ws")
    assert not has_labels(ws)
    with pytest.raises(FileNotFoundError, match="embeddings"):
        label_issues(ws)
    embed(ws, model=Workspace(built_workspace).encoder_file)
    with pytest.raises(ValueError, match="at least 2 labels"):
        label_issues(ws)
    pd.DataFrame(rows, columns=["path", "label"]).to_csv(tmp_path / "l.csv", index=False)
    assert main(["label-issues", "-w", str(ws.path), "--labels", str(tmp_path / "l.csv")]) == 0
    assert has_labels(ws) and len(pd.read_parquet(ws.label_issues_file)) == 120


def test_confirm_and_reject_are_kept_apart_from_the_original_label(planted_ws):
    table = label_issues(planted_ws, agreement_min=0)
    before = planted_ws.manifest()["label"]
    flagged = table[table["label_issue"]].reset_index(drop=True)
    a, b, c = (int(i) for i in flagged["id"][:3])
    fix = str(flagged["suggested"][0])
    assert confirm_label_fix(planted_ws, [a, b], fix) == 2
    assert reject_label_issue(planted_ws, [c]) == 1
    confirm_label_fix(planted_ws, [c], fix)
    reject_label_issue(planted_ws, [b])  # the last decision per image wins
    fixes = read_label_fixes(planted_ws).set_index("id")
    assert fixes.loc[[a, b, c], "decision"].tolist() == ["confirmed", "rejected", "confirmed"]
    assert fixes.loc[a, "label_fixed"] == fix and pd.isna(fixes.loc[b, "label_fixed"]) and len(fixes) == 3
    assert planted_ws.manifest()["label"].equals(before)  # the original labels are never overwritten

    images = image_table(planted_ws)
    assert images.loc[a, "label_fixed"] == fix and pd.isna(images.loc[b, "label_fixed"])
    assert images.loc[a, "label_issue"] and not images.loc[b, "label_issue"]  # rejected: the label is right
    assert images["label_issue"].dtype == bool
    assert images["label_issue"].sum() == table["label_issue"].sum() - 1
    review = review_table(planted_ws).set_index("id")
    assert review.loc[b, "decision"] == "rejected" and review["score"].is_monotonic_increasing

    again = label_issues(planted_ws, agreement_min=0).set_index("id")  # a rerun judges the fixed images by their fixed label
    assert again.loc[a, "given"] == fix and again.loc[c, "given"] == fix
    assert storage.read_json(planted_ws.sidecar(planted_ws.label_issues_file))["fixes_applied"] == 2
    with pytest.raises(ValueError, match="no images with ids"):
        reject_label_issue(planted_ws, [10 ** 6])


def test_skip_flag_label_issue_in_filters_and_cli(planted_ws, capsys):
    with pytest.raises(ValueError, match="curate label-issues"):
        filter_mask(image_table(planted_ws), Filters(skip_flags=["label_issue"]))
    ws = str(planted_ws.path)
    assert main(["label-issues", "-w", ws]) == 0
    line = capsys.readouterr().out
    table = pd.read_parquet(planted_ws.label_issues_file)
    assert f"0 flagged of {len(table)} labelled images" in line and "too weak to judge single labels" in line
    assert main(["label-issues", "-w", ws, "--target-precision", "0.5"]) == 0
    assert storage.read_json(planted_ws.sidecar(planted_ws.label_issues_file))["trust"]["target"] == 0.5
    capsys.readouterr()
    table = label_issues(planted_ws, agreement_min=0)  # flags to filter by

    images = image_table(planted_ws)
    keep = filter_mask(images, Filters(skip_flags=["label_issue"]))
    assert keep.sum() == len(images) - images["label_issue"].sum()
    flagged = table.loc[table["label_issue"], "id"].to_numpy()
    rejected = int(flagged[0])
    reject_label_issue(planted_ws, [rejected])
    pool = len(table) - len(flagged) + 1
    assert main(["select", "-w", ws, "--n", str(pool), "--strategy", "random", "--name", "clean",
                 "--skip-flag", "label_issue"]) == 0
    chosen = set(planted_ws.selection("clean")["id"].tolist())
    assert len(chosen) == pool and rejected in chosen and not chosen & set(flagged[1:].tolist())


# --- the app page --------------------------------------------------------------------------------
def test_page_runs_the_detection_then_confirms_and_rejects(monkeypatch, planted_ws):
    at = open_page(start(monkeypatch, planted_ws), "labels_page.py")
    at.button(key="labels_run").click().run()  # no label_issues.parquet yet: the page computes it
    assert_clean(at)
    assert any("too weak to judge single labels" in w.value and "--minutes 30" in w.value for w in at.warning)
    assert at.metric[0].value == "0" and {m.label: m.value for m in at.metric}["Estimated precision"] == "—"
    label_issues(planted_ws, agreement_min=0)  # flags to review, as a stronger encoder would give
    at.run()
    assert not at.warning and {m.label: m.value for m in at.metric}["Estimated precision"].endswith("%")
    review = review_table(planted_ws)
    first, second = int(review["id"][0]), int(review["id"][1])  # lowest score first, as drawn
    assert len(at.image) == min(12, len(review))
    assert at.metric[0].value == f"{len(review):,}"

    at.button(key=f"labels_confirm_{first}").click().run()
    assert_clean(at)
    fixes = read_label_fixes(planted_ws).set_index("id")
    assert fixes.loc[first, "decision"] == "confirmed" and fixes.loc[first, "label_fixed"] == review["suggested"][0]
    other = next(c for c in CLASSES if c not in (review["given"][1], review["suggested"][1]))
    at.selectbox(key=f"labels_fix_{second}").set_value(other)
    at.button(key=f"labels_confirm_{second}").click().run()
    assert read_label_fixes(planted_ws).set_index("id").loc[second, "label_fixed"] == other
    third = int(review["id"][2])
    at.button(key=f"labels_reject_{third}").click().run()
    assert_clean(at)
    fixes = read_label_fixes(planted_ws).set_index("id")
    assert fixes.loc[third, "decision"] == "rejected" and len(fixes) == 3
    assert planted_ws.manifest()["label"].iloc[first] == review["given"][0]  # the original label is kept
    assert {m.label: m.value for m in at.metric}["Confirmed"] == "2"
    assert first not in [int(c.split()[0][1:]) for c in _card_titles(at)]  # undecided view: decided ones leave

    at.segmented_control(key="labels_show").set_value("Confirmed").run()
    assert_clean(at)
    assert sorted(int(c.split()[0][1:]) for c in _card_titles(at)) == sorted([first, second])


def test_page_looks_again_with_the_neighbours_it_was_run_with(monkeypatch, planted_ws):
    label_issues(planted_ws, k=7)  # as `curate label-issues -k 7` leaves it
    before = storage.read_json(planted_ws.sidecar(planted_ws.label_issues_file))
    at = open_page(start(monkeypatch, planted_ws), "labels_page.py")
    at.button(key="labels_rerun").click().run()  # the declared step again, with the k it was run with
    assert_clean(at)
    after = storage.read_json(planted_ws.sidecar(planted_ws.label_issues_file))
    assert after["generation"] != before["generation"] and after["k"] == 7
    assert at.metric[0].value == f"{len(review_table(planted_ws)):,}"


def _card_titles(at) -> list[str]:
    """`#12 · cat → dog` lines of the cards on screen (the markdown bold removed)."""
    return [m.value.replace("*", "") for m in at.markdown if m.value.startswith("**#")]


def test_page_without_labels_says_how_to_get_them(monkeypatch, built_workspace_copy):
    ws = built_workspace_copy
    manifest = ws.manifest()
    manifest["label"] = pd.Series([None] * len(manifest), dtype="string")
    ws.save_manifest(manifest)
    at = open_page(start(monkeypatch, ws), "labels_page.py")
    assert any("--labels FILE.csv" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == "labels_run"]
