"""Object annotations out: YOLO, COCO, Pascal VOC and Label Studio writers, one module each, all taking
the same tables (see `curate.export.formats.boxes`) and writing annotation files only: the caller copies
each image to the place the writer returns for it. Reading what a writer wrote
(`curate.data.annotations.read_annotations`) gives the same boxes back. docs/annotations.md.
"""
from curate.export.formats.boxes import WrittenAnnotations
from curate.export.formats.coco import write_coco
from curate.export.formats.labelstudio import write_labelstudio
from curate.export.formats.voc import write_voc
from curate.export.formats.yolo import write_yolo

WRITERS = {"yolo": write_yolo, "coco": write_coco, "voc": write_voc, "labelstudio": write_labelstudio}

__all__ = ["WRITERS", "WrittenAnnotations", "write_coco", "write_labelstudio", "write_voc", "write_yolo"]
