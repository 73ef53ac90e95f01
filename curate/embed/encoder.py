"""Load an exported encoder and turn cached images into L2-normalised vectors."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from curate import storage
from curate.models import BackboneSpec, build_backbone
from curate.progress import Progress, report
from curate.train.device import autocast_factory, pick_device
from curate.transforms import normalize, to_float


def backbone_spec(config: dict) -> BackboneSpec:
    """The BackboneSpec a config.json describes (its `backbone` entry; older configs: architecture + stem)."""
    if "backbone" in config:
        return BackboneSpec.from_dict(config["backbone"])
    return BackboneSpec(config["architecture"], config["stem"], config.get("image_size"))


def load_encoder(encoder_file: str | Path, device: str = "auto") -> tuple[torch.nn.Module, dict]:
    """(backbone in eval mode, its config.json) from `.../encoder.pt` and the config beside it."""
    encoder_file = Path(encoder_file)
    config_file = encoder_file.with_name("config.json")
    if not encoder_file.exists():
        raise FileNotFoundError(f"no encoder at {encoder_file}: train one with `curate train`")
    if not config_file.exists():
        raise FileNotFoundError(f"{config_file} missing: an encoder needs its config.json beside it")
    config = storage.read_json(config_file)
    return build_encoder(config, torch.load(encoder_file, map_location="cpu", weights_only=True), device), config


def build_encoder(config: dict, state: dict, device: str = "auto") -> torch.nn.Module:
    """The backbone `config` describes with weights `state` (an encoder.pt's contents), in eval mode on `device`."""
    model = build_backbone(backbone_spec(config))
    model.load_state_dict(state)
    return model.to(pick_device(device)).eval()


def file_fingerprint(path: str | Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


@torch.no_grad()
def embed_images(model: torch.nn.Module, images: np.ndarray, rows: np.ndarray, mean, std, batch_size: int = 256,
                 precision: str = "auto", progress: Progress | None = None, out: np.ndarray | None = None,
                 done: int = 0, on_chunk=None, flip: bool = False) -> np.ndarray:
    """Embed images[rows] ((N, S, S, 3) uint8) -> (len(rows), D) float32, L2-normalised.

    `flip`: the mean of the image's and its mirror image's features (flip-invariant vectors at
    twice the cost; training already treats the two as the same image).

    `out`/`done`/`on_chunk` let a caller write into a memmap and resume after `done` rows.
    """
    device = next(model.parameters()).device
    autocast = autocast_factory(device, precision)
    rows = np.asarray(rows)
    for start in range(done, len(rows), batch_size):
        idx = rows[start:start + batch_size]
        x = normalize(to_float(torch.from_numpy(images[idx]).to(device)), mean, std)
        with autocast():
            feats = model(x)
            if flip:
                feats = F.normalize(feats.float(), dim=1) + F.normalize(model(x.flip(-1)).float(), dim=1)
        feats = F.normalize(feats.float(), dim=1).cpu().numpy()
        if out is None:
            out = np.zeros((len(rows), feats.shape[1]), dtype=np.float32)
        out[start:start + len(idx)] = feats
        if on_chunk is not None:
            on_chunk(start + len(idx))
        report(progress, start + len(idx), len(rows), stage="embed", unit="img")
    if out is None:
        raise ValueError("no images to embed")
    return out
