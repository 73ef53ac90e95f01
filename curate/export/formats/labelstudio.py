"""Label Studio export: `tasks.json` (a JSON list of tasks to import) and `label_config.xml` (the
labeling interface those tasks fit), images under `images/<path>`.

A task is `{"data": {"image": URL, "path": manifest path}, "predictions": [...]}`. The first prediction
(model_version "curate") holds the boxes as `rectanglelabels` regions: x, y, width, height in percent of
the image, with `original_width`/`original_height` in pixels, from_name "label", to_name "image" (the
names in label_config.xml). A region's `meta.text` carries its curate annotation key and, where curate
suggests another class (a label issue), the suggestion; a second prediction ("curate-suggested") holds
the same boxes with the suggested classes, so a reviewer can switch between the two in the editor.
Format: https://labelstud.io/guide/task_format and /guide/predictions.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath
from typing import Mapping
from urllib.parse import quote

import pandas as pd

from curate import storage
from curate.export.formats.boxes import ImageBoxes, WrittenAnnotations, clean, images_with_boxes

URL_PREFIX = "/data/local-files/?d="  # Label Studio's local files storage; ?d= is relative to its document root
FROM_NAME, TO_NAME = "label", "image"


def image_target(path: str) -> str:
    """Where the image of manifest path `path` goes, relative to the export folder."""
    return str(PurePosixPath("images", path))


def label_config(classes: list[str]) -> str:
    """The labeling interface: one image, rectangles with the given classes."""
    view = ET.Element("View")
    ET.SubElement(view, "Image", name=TO_NAME, value="$image")
    rects = ET.SubElement(view, "RectangleLabels", name=FROM_NAME, toName=TO_NAME)
    for name in classes:
        ET.SubElement(rects, "Label", value=name)
    ET.indent(view)
    return ET.tostring(view, encoding="unicode") + "\n"


def region(row, item: ImageBoxes, label: str, region_id: str, notes: list[str]) -> dict:
    """One rectanglelabels result of a prediction, in percent of the image."""
    w, h = item.width, item.height
    value = {"x": clean(row.x0 / w * 100), "y": clean(row.y0 / h * 100), "width": clean((row.x1 - row.x0) / w * 100),
             "height": clean((row.y1 - row.y0) / h * 100), "rotation": 0, "rectanglelabels": [label]}
    return {"id": region_id, "type": "rectanglelabels", "from_name": FROM_NAME, "to_name": TO_NAME,
            "original_width": w, "original_height": h, "image_rotation": 0, "value": value,
            "meta": {"text": notes}}


def task(item: ImageBoxes, url: str, suggested: Mapping[str, str]) -> dict:
    """The task of one image: its URL and the boxes as predictions."""
    rows = list(item.boxes.itertuples(index=False))
    result, alternative = [], []
    for k, row in enumerate(rows):
        suggestion = suggested.get(row.annotation)
        notes = [f"curate annotation: {row.annotation}"]
        if suggestion is not None and suggestion != row.label:
            notes.append(f"curate suggests: {suggestion}")
        result.append(region(row, item, row.label, f"b{k}", notes))
        alternative.append(region(row, item, suggestion or row.label, f"s{k}", notes))
    predictions = [{"model_version": "curate", "result": result}]
    if any(suggested.get(row.annotation) not in (None, row.label) for row in rows):
        predictions.append({"model_version": "curate-suggested", "result": alternative})
    return {"data": {"image": url, "path": item.path}, "predictions": predictions}


def write_labelstudio(images: pd.DataFrame, boxes: pd.DataFrame, classes: list[str], target: str | Path,
                      url_prefix: str = URL_PREFIX, suggested: Mapping[str, str] | None = None
                      ) -> WrittenAnnotations:
    """Write `tasks.json` and `label_config.xml` under `target` (tables: see curate.export.formats.boxes).

    url_prefix: put before each image's place under `target` (URL-quoted) to make `data.image`; the
        default serves `target` through Label Studio's local files storage (document root = `target`).
    suggested: {annotation key: suggested class}, curate's label-issue suggestions to show the reviewer.
    Copy each image to `target / result.images[path]`.
    """
    target, suggested = Path(target), dict(suggested or {})
    items = images_with_boxes(images, boxes, classes)
    placed = {item.path: image_target(item.path) for item in items}
    tasks = [task(item, url_prefix + quote(placed[item.path]), suggested) for item in items]
    extra = sorted(set(suggested.values()) - set(classes))
    files = [target / "tasks.json", target / "label_config.xml"]
    storage.write_json(files[0], tasks)
    storage.write_text(files[1], label_config(list(classes) + extra))
    return WrittenAnnotations(files, placed)
