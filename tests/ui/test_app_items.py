"""The app on objects and video frames (DESIGN.md section 7): a kind switch on every page that works on
items, object crops with their labels, search by an object returning objects, an object's parent with its
box, a frame's time and its video's strip. Real workspaces (tests/ui/conftest.py), no mocks."""
from __future__ import annotations

import numpy as np

from curate.data.items import kinds
from curate.workspace import Workspace
from tests.apptest_helpers import assert_clean, open_page, start

KIND_PAGES = ("Explore", "Search", "Select", "Duplicates & quality", "Label issues", "Export")


def switch(at):
    """The kind switch of the page shown."""
    found = [w for w in at.get("button_group") if w.label == "Items"]
    assert len(found) == 1, "no kind switch on the page"
    return found[0]


def first_of(path, kind: str) -> int:
    return int(np.flatnonzero(kinds(Workspace(path).manifest()) == kind)[0])


def test_every_page_has_the_kind_switch_and_objects_show_as_crops_with_their_labels(monkeypatch, object_workspace):
    at = start(monkeypatch, object_workspace)
    for page in KIND_PAGES:
        open_page(at, page)
        assert switch(at).value == "image", page  # the default kind, until the user switches
    open_page(at, "Select")
    switch(at).set_value("object").run()
    assert_clean(at)
    at.button(key="FormSubmitter:select_form-Preview").click().run()
    assert_clean(at)
    assert "eligible objects" in at.subheader[0].value
    manifest = Workspace(object_workspace).manifest()
    objects = set(np.flatnonzero(kinds(manifest) == "object").tolist())
    captions = list(at.image[-1].captions)
    shown = [int(c.split(" ")[0][1:]) for c in captions]
    assert shown and set(shown) <= objects  # only objects, each captioned with its class
    labels = set(manifest["label"].iloc[list(objects)].astype(str))
    assert all(c.split(" · ")[1] in labels for c in captions)


def test_search_by_an_object_returns_objects_and_shows_its_box(monkeypatch, object_workspace):
    at = start(monkeypatch, object_workspace)
    open_page(at, "Search")
    assert switch(at).value == "image"  # id 0 is an image
    obj = first_of(object_workspace, "object")
    at.number_input(key="search_id").set_value(obj).run()
    assert_clean(at)
    assert switch(at).value == "object"  # the query's kind
    assert at.subheader[0].value.endswith("nearest objects")
    table = at.dataframe[0].value
    assert len(table) and set(table["kind"]) == {"object"} and obj not in table["id"].tolist()
    details = [m.value for m in at.markdown if "Annotation:" in m.value]
    row = Workspace(object_workspace).manifest().iloc[obj]
    assert details and row["label"] in details[0] and str(row["annotation"]) in details[0]
    assert any("box" in c for img in at.image for c in img.captions)  # the parent image, its box drawn
    switch(at).set_value("image").run()  # the switch overrides: images like this object
    assert_clean(at)
    assert set(at.dataframe[0].value["kind"]) == {"image"}


def test_a_frame_shows_its_time_and_its_videos_strip(monkeypatch, frame_workspace):
    at = start(monkeypatch, frame_workspace)
    open_page(at, "Search")
    manifest = Workspace(frame_workspace).manifest()
    frame = first_of(frame_workspace, "frame") + 1  # the clip's second frame
    at.number_input(key="search_id").set_value(frame).run()
    assert_clean(at)
    assert switch(at).value == "frame"
    assert set(at.dataframe[0].value["kind"]) == {"frame"}
    ms = int(manifest["time_ms"].iloc[frame])
    time_text = f"{ms // 60000:02d}:{ms % 60000 // 1000:02d}.{ms % 1000:03d}"
    header = [m.value for m in at.markdown if m.value.startswith(f"**Frame #{frame}**")]
    assert header and time_text in header[0] and str(manifest["path"].iloc[frame]) in header[0]
    same_video = manifest[(manifest["parent"] == manifest["parent"].iloc[frame]) & (manifest["kind"] == "frame")]
    strip = [list(img.captions) for img in at.image if len(list(img.captions)) == len(same_video)]
    assert strip, "no strip of the video's frames"
    times = [c.removeprefix("▶ ") for c in strip[0]]
    assert times == sorted(times) and f"▶ {time_text}" in strip[0]
    open_page(at, "Explore")
    assert switch(at).value == "frame"  # the choice follows the user from page to page


def test_search_by_a_box_of_an_uploaded_image_finds_that_object(monkeypatch, object_workspace):
    ws = Workspace(object_workspace)
    manifest = ws.manifest()
    obj = first_of(object_workspace, "object")
    box = [int(round(float(manifest[c].iloc[obj]))) for c in ("x0", "y0", "x1", "y1")]
    at = start(monkeypatch, object_workspace)
    open_page(at, "Search")
    switch(at).set_value("object").run()
    at.radio(key="search_source").set_value("Upload an image").run()
    image = ws.root / str(manifest["path"].iloc[obj])
    at.file_uploader(key="search_upload").set_value((image.name, image.read_bytes(), "image/jpeg")).run()
    for name, value in zip(("x0", "y0", "x1", "y1"), box):  # the box inputs come with the upload
        at.number_input(key=f"search_box_{name}").set_value(value)
    at.run()
    assert_clean(at)
    assert any("box" in c for img in at.image for c in img.captions)
    results = at.dataframe[0].value
    assert set(results["kind"]) == {"object"} and int(results["id"].iloc[0]) == obj  # the box is that object


def test_export_page_writes_the_basket_with_its_boxes_in_an_annotation_format(monkeypatch, object_workspace, tmp_path):
    from pycocotools.coco import COCO

    manifest = Workspace(object_workspace).manifest()
    objects = np.flatnonzero(kinds(manifest) == "object")[:3].tolist()
    monkeypatch.setenv("CURATE_ROOTS", str(tmp_path))  # the browser writes only inside the app's roots
    at = start(monkeypatch, object_workspace)
    at.session_state["basket"] = objects
    open_page(at, "Export")
    switch(at).set_value("object").run()
    at.get("button_group")[-1].set_value("With annotations").run()
    assert_clean(at)
    at.selectbox(key="export_format").set_value("coco")
    at.text_input(key="export_annotated_target").set_value(str(tmp_path / "out"))
    at.button(key="FormSubmitter:export_annotated-Export").click().run()
    assert_clean(at)
    assert any("as coco" in s.value for s in at.success)
    coco = COCO(str(tmp_path / "out" / "annotations" / "instances.json"))
    assert len(coco.getAnnIds()) == 3


def test_a_dragged_box_is_read_in_the_uploaded_images_pixels():
    """The canvas draws a 640 px preview over the whole image's pixel axes, so a Plotly box selection is
    already in image pixels; it is ordered, clamped to the image and rounded, and an empty one is no box."""
    from curate.ui.charts import box_canvas, selected_box

    preview = np.zeros((240, 320, 3), np.uint8)
    fig = box_canvas(preview, (1600, 1200))
    image = fig.data[0]
    assert (image.dx, image.dy) == (5.0, 5.0) and image.x0 == 2.5  # pixel centres of the full image
    assert tuple(fig.layout.xaxis.range) == (0, 1600) and tuple(fig.layout.yaxis.range) == (1200, 0)
    assert not fig.layout.shapes and box_canvas(preview, (1600, 1200), (1, 2, 3, 4)).layout.shapes[0].x1 == 3
    assert selected_box({"box": [{"x": [900.4, 100.6], "y": [50, 700]}]}, (1600, 1200)) == (101, 50, 900, 700)
    assert selected_box({"box": [{"x": [-40, 2000], "y": [1100, 1300]}]}, (1600, 1200)) == (0, 1100, 1600, 1200)
    assert selected_box({"box": [{"x": [5, 5.2], "y": [1, 9]}]}, (1600, 1200)) is None  # no width
    assert selected_box({"box": []}, (1600, 1200)) is None and selected_box(None, (1600, 1200)) is None
    two = {"box": [{"x": [0, 10], "y": [0, 10]}, {"x": [20, 40], "y": [30, 50]}]}
    assert selected_box(two, (1600, 1200)) == (20, 30, 40, 50)  # the last one dragged
