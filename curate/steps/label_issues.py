"""`curate label-issues`: images whose label disagrees with their embedding neighbourhood ->
label_issues.parquet (id, label_issue, given, suggested, score, cl_issue), and the person's decisions
on them -> label_fixes.parquet (id, label_fixed, decision, decided).

Every labelled image is ranked by its score; `label_issue` flags as many as an estimated precision
allows (`curate.quality.label_trust`: planted flips), none when the encoder is too weak to judge
single labels, and label_issues.json says which, with what would help.

Labels come from the class folders (manifest column `label`) or from a CSV imported into
labels.parquet (id, label), which then takes their place. A confirmed fix is stored beside the
original label, never over it; later runs judge the image by its fixed label.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from curate import storage
from curate.clock import now
from curate.data.items import kinds, of_kind, resolve_kind
from curate.data.manifest import ok_mask
from curate.generations import inputs_of, load_checked, write_sidecar
from curate.index import build_index
from curate.locks import locked
from curate.quality import label_trust
from curate.quality.label_issues import (K, METHOD, PROBABILITIES, TEMPERATURE, class_probabilities,
                                         find_label_issues, self_confidence, suggest_labels)
from curate.progress import Progress
from curate.steps.index import indexed_rows
from curate.steps.options import RunOptions
from curate.workspace import Workspace

SOURCES = ("auto", "folders", "imported")
DECISIONS = ("confirmed", "rejected")
FIX_COLUMNS = {"id": "int64", "label_fixed": "string", "decision": "string", "decided": "string"}


# --- labels -------------------------------------------------------------------------------------
def import_labels(ws: Workspace, csv: str | Path) -> pd.DataFrame:
    """Read a CSV with columns `path,label` (paths relative to the image root) into labels.parquet
    (id, label). Paths not in the manifest are counted in the sidecar; none matching is an error."""
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    if not {"path", "label"} <= set(table.columns):
        raise ValueError(f"{csv} needs columns path,label (it has {', '.join(table.columns)})")
    paths = table["path"].str.strip().str.replace("\\", "/", regex=False).str.removeprefix("./")
    repeated = paths[paths.duplicated()].unique()
    if len(repeated):
        raise ValueError(f"{csv} lists {len(repeated)} paths more than once, e.g. {repeated[0]!r}: keep one label each")
    labels = table["label"].str.strip()
    manifest = ws.manifest()
    ids = pd.Series(manifest["id"].to_numpy(), index=manifest["path"].astype(str)).reindex(paths).to_numpy()
    found = ~np.isnan(ids.astype(float)) & (labels != "").to_numpy()
    if not found.any():
        raise ValueError(f"no path of {csv} is an image of {ws.root} (e.g. {paths.iloc[0] if len(paths) else '-'!r}): "
                         "paths must be relative to the image folder, like the manifest's")
    out = pd.DataFrame({"id": ids[found].astype(np.int64), "label": labels[found].to_numpy()}).astype(
        {"label": "string"}).sort_values("id", ignore_index=True)
    storage.write_parquet(ws.labels_file, out)
    storage.write_json(ws.sidecar(ws.labels_file), {"source": str(Path(csv).resolve()), "n": int(len(out)),
                                                    "unmatched": int((~found).sum()), "created": now()})
    return out


def current_labels(ws: Workspace, source: str = "auto") -> tuple[np.ndarray, str]:
    """((N,) object array of label strings, None where absent; the source used), confirmed fixes on
    top. Source "auto": the imported labels when labels.parquet exists, else the class folders."""
    if source not in SOURCES:
        raise ValueError(f"label source must be one of {', '.join(SOURCES)}, not {source!r}")
    manifest = ws.manifest()
    if source == "imported" or (source == "auto" and ws.labels_file.exists()):
        if not ws.labels_file.exists():
            raise FileNotFoundError(f"no imported labels in {ws.path}: import a CSV with "
                                    "`curate label-issues --labels FILE.csv`")
        imported = pd.read_parquet(ws.labels_file)
        labels, source = np.full(len(manifest), None, dtype=object), "imported"
        labels[imported["id"].to_numpy()] = imported["label"].astype(object).to_numpy()
    else:
        lab = manifest["label"]
        labels, source = np.array(lab.astype(object).where(lab.notna(), None), dtype=object), "folders"
    fixes = confirmed_fixes(ws)
    labels[fixes.index.to_numpy()] = fixes.astype(object).to_numpy()
    labels[~ok_mask(manifest)] = None
    return labels, source


def has_labels(ws: Workspace, kind: str | None = None) -> bool:
    """At least two classes among the usable items of `kind` (what label-issue detection needs)."""
    labels, _ = current_labels(ws)
    labels = labels[of_kind(ws.manifest(), label_kind(ws.manifest(), kind))]
    return len({lab for lab in labels if lab is not None}) >= 2


def label_kind(manifest: pd.DataFrame, kind: str | None) -> str:
    """The items whose labels are judged: the kind asked for, else objects when there are annotations (their
    classes are the labels a person gave; an annotated image's folder is usually a split), else images."""
    if kind is None and (kinds(manifest) == "object").any():
        return "object"
    return resolve_kind(manifest, kind)


# --- detection ----------------------------------------------------------------------------------
def label_issues(ws: Workspace, k: int = K, source: str = "auto", method: str = METHOD,
                 probabilities: str = PROBABILITIES[0], seed: int = 0, target: float = label_trust.TARGET_PRECISION,
                 agreement_min: float = label_trust.AGREEMENT_MIN, kind: str | None = None) -> pd.DataFrame:
    """Flag labelled, embedded images whose label disagrees with their neighbours: out-of-sample
    class probabilities (kNN vote + cross-validated linear model), the images ranked by the
    probability of their given label, and as many of the lowest flagged as planted label flips say
    can be flagged at an expected precision of `target` (`curate.quality.label_trust`); none when
    no cut reaches it or the labels agree with the encoder less than `agreement_min` of the time.
    Writes and returns label_issues.parquet: id, label_issue, given, suggested,
    score (probability of the given label: low = likely wrong), cl_issue (what confident learning's
    `method` flags, the count before issue 29: a longer list to browse, not to trust), one row per
    labelled image with an embedding."""
    if not ws.embeddings_file.exists():
        raise FileNotFoundError(f"no embeddings in {ws.path}: run `curate embed` (or `curate run`) first")
    inputs = inputs_of(ws.path, [ws.embeddings_file.name])
    labels, used = current_labels(ws, source)
    manifest = ws.manifest()
    kind = label_kind(manifest, kind)  # objects and images are judged apart: their labels are different things
    ids = np.intersect1d(indexed_rows(ws), np.flatnonzero((labels != None) & of_kind(manifest, kind)))  # noqa: E711
    classes = sorted(set(labels[ids]))
    if len(classes) < 2:
        raise ValueError(f"label issues need at least 2 labels among the embedded images, found {len(classes)}: "
                         "put the images in class sub-folders or import labels with --labels FILE.csv")
    given = np.searchsorted(classes, labels[ids].astype(str))
    vectors = np.ascontiguousarray(np.asarray(ws.embeddings())[ids], dtype=np.float32)
    index, _ = build_index(vectors, np.arange(len(ids)))  # exact up to 100k rows, IVF above

    def probs_of(y: np.ndarray) -> np.ndarray:
        return class_probabilities(vectors, y, len(classes), probabilities, k=k, index=index, seed=seed)
    probs = probs_of(given)
    flags, trust = label_trust.estimate(given, probs, probs_of, seed=seed, target=target,
                                        agreement_min=agreement_min)
    names = np.asarray(classes, dtype=object)
    table = pd.DataFrame({"id": ids.astype(np.int64), "label_issue": flags, "given": names[given],
                          "suggested": names[suggest_labels(given, probs)],
                          "score": self_confidence(given, probs),
                          "cl_issue": find_label_issues(given, probs, method)}).astype(
        {"given": "string", "suggested": "string"})
    storage.write_parquet(ws.label_issues_file, table)
    embedded = ws.sidecar(ws.embeddings_file)
    write_sidecar(ws.label_issues_file, {
        "k": k, "temperature": TEMPERATURE, "method": method, "probabilities": probabilities, "source": used, "seed": seed,
        "kind": kind,
        "classes": classes,
        "labelled": int(len(table)), "flagged": int(flags.sum()), "cl_flagged": int(table["cl_issue"].sum()),
        "fixes_applied": int(len(confirmed_fixes(ws))),
        # share of images whose neighbours' vote is their own label: low means the embedding separates
        # these classes poorly, and then many correct labels are flagged too
        "agreement": float(np.mean(probs.argmax(1) == given)),
        "trust": {**trust, "message": trust_message(ws, trust, int(flags.sum()))},
        "embeddings_created": storage.read_json(embedded).get("created") if embedded.exists() else None,
        "created": now()}, inputs)
    return table


def trust_message(ws: Workspace, trust: dict, flagged: int) -> str:
    """One sentence for a person: how far the flags can be trusted, and what would help when not at all."""
    target = f"{trust['target']:.0%}"
    if not trust["too_weak"]:
        return (f"{flagged} flagged at an estimated precision of {trust['expected_precision'] or 1:.0%} "
                f"(target {target}; {trust['planted_recall']:.0%} of planted wrong labels caught); the rest are "
                "ranked by score")
    if trust["agreement"] < trust["agreement_min"]:
        why = (f"the labels agree with its prediction {trust['agreement']:.0%} of the time, it takes "
               f"{trust['agreement_min']:.0%} (or the labels are very noisy)")
    else:
        why = (f"at best {trust['best_precision']:.0%} of the lowest-scored labels would be wrong, "
               f"the target is {target}")
    images = ws.root if ws.meta_file.exists() else "IMAGES"  # the step reads only its inputs; the root is a nicety
    return (f"the encoder is too weak to judge single labels: {why}; nothing is flagged, the images are only "
            f"ranked by score. Train longer: `curate run {images} -w {ws.path} --minutes 30 --retrain`")


def top_confusions(table: pd.DataFrame, n: int = 3) -> list[tuple[str, str, int]]:
    """The most frequent (given, suggested, count) among flagged rows of a label_issues table."""
    flagged = table[table["label_issue"]]
    pairs = flagged.groupby(["given", "suggested"]).size().sort_values(ascending=False, kind="stable")
    return [(str(g), str(s), int(c)) for (g, s), c in pairs.head(n).items()]


def review_table(ws: Workspace) -> pd.DataFrame | None:
    """The flagged images, lowest score (most likely wrong) first: id, given, suggested, score,
    decision (null while undecided) and label_fixed; None before `curate label-issues`."""
    if not ws.label_issues_file.exists():
        return None
    found = _read_issues(ws)
    flagged = found[found["label_issue"]].drop(columns="label_issue")
    fixes = read_label_fixes(ws).set_index("id")

    def column(name: str) -> np.ndarray:  # object with None (not pd.NA), so `value == "x"` is a plain bool
        values = fixes[name].reindex(flagged["id"]).astype(object)
        return values.where(values.notna(), None).to_numpy()
    flagged = flagged.assign(decision=column("decision"), label_fixed=column("label_fixed"))
    return flagged.sort_values(["score", "id"], kind="stable").reset_index(drop=True)


def _read_issues(ws: Workspace) -> pd.DataFrame:
    """label_issues.parquet, refused while it is of other embeddings than embeddings.npy holds now."""
    return load_checked(ws, [ws.label_issues_file], lambda: pd.read_parquet(ws.label_issues_file))


# --- decisions ----------------------------------------------------------------------------------
def read_label_fixes(ws: Workspace) -> pd.DataFrame:
    """label_fixes.parquet, the last decision per id: id, label_fixed (null when rejected), decision, decided."""
    if not ws.label_fixes_file.exists():
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in FIX_COLUMNS.items()})
    return pd.read_parquet(ws.label_fixes_file).astype(FIX_COLUMNS)


def confirmed_fixes(ws: Workspace) -> pd.Series:
    """Fixed label by id, for the confirmed decisions."""
    fixes = read_label_fixes(ws)
    fixes = fixes[fixes["decision"] == "confirmed"]
    return pd.Series(fixes["label_fixed"].to_numpy(), index=fixes["id"].to_numpy(), dtype="string")


def confirm_label_fix(ws: Workspace, ids, label: str) -> int:
    """Record that `ids` are mislabeled and truly `label` (the original label stays as it is)."""
    if not str(label).strip():
        raise ValueError("a confirmed fix needs the right label")
    return _decide(ws, ids, str(label).strip(), "confirmed")


def reject_label_issue(ws: Workspace, ids) -> int:
    """Record that the labels of `ids` are right after all: they no longer count as label issues."""
    return _decide(ws, ids, None, "rejected")


def _decide(ws: Workspace, ids, label: str | None, decision: str) -> int:
    ids = sorted({int(i) for i in ids})
    n = len(ws.manifest())
    if any(not 0 <= i < n for i in ids):
        raise ValueError(f"no images with ids {[i for i in ids if not 0 <= i < n][:5]} in {ws.path}")
    with locked(ws.locks_dir, "label_fixes", what="another label review"):  # read-modify-write: one at a time
        fixes = read_label_fixes(ws)
        new = pd.DataFrame({"id": ids, "label_fixed": label, "decision": decision, "decided": now()}).astype(FIX_COLUMNS)
        table = pd.concat([fixes[~fixes["id"].isin(ids)], new], ignore_index=True).sort_values("id", ignore_index=True)
        storage.write_parquet(ws.label_fixes_file, table)
    return len(ids)


def issue_columns(ws: Workspace) -> dict[str, pd.Series]:
    """The columns `image_table` adds, each a Series by id: label_issue (rejected ones False),
    suggested_label, label_issue_score (from label_issues.parquet) and label_fixed (the confirmed
    label, from label_fixes.parquet). Only those whose file exists."""
    cols = {}
    fixes = read_label_fixes(ws)
    if ws.label_issues_file.exists():
        found = _read_issues(ws).set_index("id")
        rejected = fixes.loc[fixes["decision"] == "rejected", "id"]
        cols["label_issue"] = found["label_issue"].astype(bool) & ~found.index.isin(rejected)
        cols["suggested_label"] = found["suggested"]
        cols["label_issue_score"] = found["score"]
    if ws.label_fixes_file.exists():
        cols["label_fixed"] = confirmed_fixes(ws)
    return cols


@dataclass(frozen=True)
class LabelIssuesSummary:
    flagged: int = 0
    labelled: int = 0
    imported: bool = False  # labels from labels.parquet (else the class folders)
    agreement: float = 0.0
    confusions: tuple[tuple[str, str, int], ...] = ()  # the most frequent (given, suggested, count)
    file: Path | None = None
    skipped: str | None = None  # why nothing was checked (no labels)
    expected_precision: float | None = None  # of the flagged set (None: nothing flagged)
    trust: str = ""  # label_trust's verdict in a sentence (label_issues.json trust.message)

    def lines(self) -> list[str]:
        if self.skipped:
            return [f"label issues skipped: {self.skipped}"]
        top = ", ".join(f"{given}->{suggested} {n}" for given, suggested, n in self.confusions)
        return [f"label issues: {self.flagged} flagged of {self.labelled} labelled images "
                f"({'imported labels' if self.imported else 'class folders'}; {self.agreement:.0%} agree with their "
                f"neighbours){'; most often ' + top if top else ''} -> {self.file}",
                *([f"label issues: {self.trust}"] if self.trust else [])]


def run(ws: Workspace, options: RunOptions | None = None, progress: Progress | None = None, k: int = K,
        source: str = "auto", probabilities: str = PROBABILITIES[0], required: bool = False,
        target: float = label_trust.TARGET_PRECISION) -> LabelIssuesSummary:
    """The label-issues step; in `curate run` (required False) skipped when the images carry no labels."""
    kind = options.kind if options else None
    if not required and not has_labels(ws, kind):
        return LabelIssuesSummary(skipped="the images carry fewer than 2 labels")
    seed = (options.seed or 0) if options else 0
    table = label_issues(ws, k=k, source=source, probabilities=probabilities, seed=seed, target=target, kind=kind)
    meta = storage.read_json(ws.sidecar(ws.label_issues_file))
    return LabelIssuesSummary(int(table["label_issue"].sum()), len(table), meta["source"] == "imported",
                              meta["agreement"], tuple(top_confusions(table)), ws.label_issues_file,
                              expected_precision=meta["trust"]["expected_precision"], trust=meta["trust"]["message"])
