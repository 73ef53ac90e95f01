"""Results: what a benchmark returns, the markdown tables printed at the end, the JSON files written."""
from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from curate import storage


@dataclass
class BenchResult:
    """Rows of one benchmark's table (dicts, same keys in the same order) and notes printed under it."""

    rows: list[dict]
    notes: list[str] = field(default_factory=list)


def fmt(value) -> str:
    """A table cell: thousands separators, about 3 significant digits, '—' for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        size = abs(value)
        spec = ",.0f" if size >= 100 else ".1f" if size >= 10 else ".2f" if size >= 1 else ".3f"
        return format(value, spec)
    return str(value).replace("|", "\\|")


def markdown_table(rows: list[dict]) -> str:
    """GitHub markdown table; columns are the keys in order of first appearance."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def render(results: dict) -> str:
    """The whole report as markdown: machine line, then one section per benchmark."""
    from bench.machine import summary_line

    out = [f"## curate speed benchmarks ({'quick' if results['config']['quick'] else 'full'} run, "
           f"{results['created']})", "", summary_line(results["machine"]), ""]
    for name, section in results["benchmarks"].items():
        out += [f"### {name}: {section['title']}", ""]
        if section.get("error"):
            out += [f"FAILED: {section['error']}", ""]
            continue
        out += [markdown_table(section["rows"]), ""]
        mem = f"peak RSS {section['peak_rss_mb']:,.0f} MB"
        if "peak_gpu_mb" in section:
            mem += f", peak GPU memory {section['peak_gpu_mb']:,.0f} MB"
        out += [f"- {note}" for note in section["notes"]]
        out += [f"- {mem} ({section['peak_rss_scope']} scope); wall time {section['wall_s']:.0f} s", ""]
    return "\n".join(out)


def write_results(results: dict, out_dir: Path) -> Path:
    """bench/results/<timestamp>.json and latest.json (atomic writes); returns the timestamped path."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"{stamp}.json"
    text = json.dumps(results, indent=2, default=_plain)  # not sorted: row keys are the table's column order
    for target in (path, out_dir / "latest.json"):
        with storage.atomic_path(target) as tmp:
            tmp.write_text(text)
    return path


def _plain(obj):
    """numpy scalars and paths -> JSON."""
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)
