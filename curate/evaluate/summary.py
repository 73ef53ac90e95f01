"""The evaluation report (`reports/eval.json`) as a compact table, shared by the CLI and the app.

Example:
    >>> for metric, trained, random_init in summary_rows(report): ...
    >>> print(summary_table(report))
"""
from __future__ import annotations

from curate.evaluate.health import FIGURES, titled

Row = tuple[str, str, str]  # metric, trained model, random-weights baseline ("" when not measured)


def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def _num(value) -> str:
    return "" if value is None else f"{value:.3f}"


def summary_rows(report: dict) -> list[Row]:
    """One row per headline figure present in the report, in reading order."""
    r = report.get
    rows: list[Row] = [] if r("label_free") else [("kNN top-1", _pct(r("knn_top1")), _pct(r("knn_top1_random_init")))]
    if "linear_probe_top1" in report:
        rows.append(("linear probe top-1", _pct(r("linear_probe_top1")), _pct(r("linear_probe_top1_random_init"))))
    if "kmeans_nmi" in report:
        rows.append(("k-means NMI", _num(r("kmeans_nmi")), _num(r("kmeans_nmi_random_init"))))
        rows.append(("k-means ARI", _num(r("kmeans_ari")), _num(r("kmeans_ari_random_init"))))
    health, health_random = r("health") or {}, r("health_random_init") or {}
    for key, name, reading, _ in FIGURES:
        if health.get(key) is not None:
            rows.append((titled(name, reading), _num(health[key]), _num(health_random.get(key))))
    for name, row in (r("finetune") or {}).items():
        rows.append((f"fine-tuned on {name} of the labels ({row['labelled_images']:,} images)",
                     _pct(row["finetune_top1"]), _pct(row.get("finetune_top1_random_init"))))
        rows.append((f"linear probe on the same {name}", _pct(row["linear_probe_top1"]), ""))
    for layer, acc in (r("layer_probe_top1") or {}).items():
        rows.append((f"probe {layer}", _pct(acc), ""))
    inv, rel = r("invariance") or {}, r("invariance_relative") or {}
    for name, sim in inv.items():
        if name != "random_pairs":
            rows.append((f"invariance {name}", f"{sim:.3f} (rel {rel.get(name, float('nan')):.2f})", ""))
    if "random_pairs" in inv:
        rows.append(("similarity of random pairs", _num(inv["random_pairs"]), ""))
    for task, figures in (r("pretext") or {}).items():
        if "accuracy" in figures:
            rows.append((f"{task} accuracy (held out)", _pct(figures["accuracy"]), ""))
    speed = r("speed") or {}
    if "embed_images_per_s" in speed:
        rows.append(("embedding throughput", f"{speed['embed_images_per_s']:,.0f} img/s", ""))
    if "peak_rss_mb" in speed:
        rows.append(("peak memory (RSS)", f"{speed['peak_rss_mb']:,.0f} MiB", ""))
    return rows


def summary_table(report: dict) -> str:
    """Plain-text table of `summary_rows`, columns aligned."""
    rows = [("metric", "trained", "random init"), *summary_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{m:<{widths[0]}}  {t:>{widths[1]}}  {b:>{widths[2]}}".rstrip() for m, t, b in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
