"""A workspace folder and its files (see DESIGN.md §3): the one place that knows the layout."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from curate import storage
from curate.clock import now
from curate.data import manifest as mf
from curate.generations import load_checked


@dataclass(frozen=True)
class Workspace:
    """Paths and loaders for one workspace. Cheap to create; loads lazily and caches per instance."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path).expanduser().resolve())

    # --- layout -------------------------------------------------------------------------------
    @property
    def meta_file(self) -> Path: return self.path / "workspace.json"
    @property
    def manifest_file(self) -> Path: return self.path / "manifest.parquet"
    @property
    def embeddings_file(self) -> Path: return self.path / "embeddings.npy"
    @property
    def embedded_keys_file(self) -> Path: return self.path / "embeddings_keys.npy"  # the content each row embeds
    @property
    def partial_embeddings_file(self) -> Path: return self.path / "embeddings.partial.npy"  # a run under way
    @property
    def index_file(self) -> Path: return self.path / "index.faiss"
    @property
    def knn_graph_file(self) -> Path: return self.path / "knn_graph.npz"
    @property
    def projection_file(self) -> Path: return self.path / "projection_umap.npy"
    @property
    def tsne_file(self) -> Path: return self.path / "projection_tsne.npy"
    @property
    def model_dir(self) -> Path: return self.path / "model"
    @property
    def encoder_file(self) -> Path: return self.model_dir / "encoder.pt"
    @property
    def model_config_file(self) -> Path: return self.model_dir / "config.json"
    @property
    def run_config_file(self) -> Path: return self.model_dir / "run_config.json"  # the recipe a resume continues
    @property
    def checkpoint_file(self) -> Path: return self.model_dir / "checkpoint.pt"
    @property
    def train_log_file(self) -> Path: return self.model_dir / "train_log.jsonl"
    @property
    def health_log_file(self) -> Path: return self.model_dir / "health_log.jsonl"
    @property
    def selections_dir(self) -> Path: return self.path / "selections"
    @property
    def quality_file(self) -> Path: return self.path / "quality.json"  # the quality checks' thresholds
    @property
    def fingerprints_file(self) -> Path: return self.path / "fingerprints.npy"
    @property
    def duplicates_file(self) -> Path: return self.path / "duplicates.parquet"
    @property
    def duplicate_pairs_file(self) -> Path: return self.path / "duplicate_pairs.parquet"
    @property
    def duplicate_marks_file(self) -> Path: return self.path / "duplicate_marks.parquet"
    @property
    def duplicate_search_file(self) -> Path: return self.path / "duplicate_search.json"
    @property
    def leaks_file(self) -> Path: return self.path / "duplicates_across.parquet"  # copies across splits
    @property
    def tags_file(self) -> Path: return self.path / "tags.parquet"
    @property
    def scores_file(self) -> Path: return self.path / "scores.parquet"
    @property
    def label_issues_file(self) -> Path: return self.path / "label_issues.parquet"
    @property
    def labels_file(self) -> Path: return self.path / "labels.parquet"  # labels imported from a CSV
    @property
    def label_fixes_file(self) -> Path: return self.path / "label_fixes.parquet"
    @property
    def reports_dir(self) -> Path: return self.path / "reports"
    @property
    def eval_report_file(self) -> Path: return self.reports_dir / "eval.json"
    @property
    def compare_models_file(self) -> Path: return self.reports_dir / "compare_models.json"
    @property
    def cache_dir(self) -> Path: return self.path / "cache"
    @property
    def frame_store_dir(self) -> Path: return self.cache_dir / "frames"  # sampled video frames (curate.data.frames)
    @property
    def annotations_file(self) -> Path: return self.path / "annotations.json"  # where the boxes come from
    @property
    def frames_file(self) -> Path: return self.path / "frames.json"  # how the videos were sampled
    @property
    def mirror_dir(self) -> Path: return self.path / "mirror"  # a bucket's images, mirrored (curate.data.remote)
    @property
    def mirror_file(self) -> Path: return self.path / "mirror.json"  # each mirrored object's version
    @property
    def metadata_file(self) -> Path: return self.path / "metadata.json"  # the --metadata file joined by path
    @property
    def views_file(self) -> Path: return self.path / "views.json"  # saved --where filters (curate.data.where)
    @property
    def locks_dir(self) -> Path: return self.path / "locks"
    @property
    def job_dir(self) -> Path: return self.path / "job"  # the app's background run (curate.jobs)
    @property
    def job_file(self) -> Path: return self.job_dir / "job.json"
    @property
    def job_progress_file(self) -> Path: return self.job_dir / "progress.json"
    @property
    def job_status_file(self) -> Path: return self.job_dir / "status.json"
    @property
    def job_cancel_file(self) -> Path: return self.job_dir / "cancel.json"
    @property
    def job_log_file(self) -> Path: return self.job_dir / "log.txt"

    def sidecar(self, file: Path) -> Path:
        return file.with_suffix(".json")

    def selection_file(self, name: str) -> Path:
        """selections/NAME.parquet (its sidecar NAME.json holds the strategy, parameters and seed)."""
        return self.selections_dir / f"{safe_name(name)}.parquet"

    # --- creation -----------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, root: str | Path) -> "Workspace":
        """Open `path`, creating it for image folder `root` if new; refuses to re-point an existing one."""
        ws = cls(Path(path))
        root = Path(root).expanduser().resolve()
        if ws.meta_file.exists():
            if ws.root != root:
                raise ValueError(f"workspace {ws.path} belongs to {ws.root}, not {root}: "
                                 "use another -w folder, or `curate embed` to embed a new folder into a new workspace")
            return ws
        if not root.is_dir():  # checked before anything is written, so a typo leaves no workspace behind
            raise FileNotFoundError(f"image folder not found: {root} (pass a folder of images)")
        ws.path.mkdir(parents=True, exist_ok=True)
        storage.write_json(ws.meta_file, {"root": str(root), "created": now(), "format": 1})
        return ws

    def exists(self) -> bool:
        return self.meta_file.exists()

    def require(self) -> "Workspace":
        if not self.exists():
            raise FileNotFoundError(f"no workspace at {self.path}: create one with `curate run IMAGES -w {self.path}`")
        return self

    @cached_property
    def meta(self) -> dict:
        return storage.read_json(self.require().meta_file)

    @property
    def root(self) -> Path:
        return Path(self.meta["root"])

    # --- tables and arrays --------------------------------------------------------------------
    def manifest(self) -> pd.DataFrame:
        if not self.manifest_file.exists():
            return mf.empty_manifest()
        return mf.validate(pd.read_parquet(self.manifest_file))

    def save_manifest(self, manifest: pd.DataFrame) -> None:
        storage.write_parquet(self.manifest_file, mf.validate(manifest))

    def embeddings(self, mmap: bool = True) -> np.ndarray:
        self._need(self.embeddings_file, "curate embed")
        return np.load(self.embeddings_file, mmap_mode="r" if mmap else None)

    def map_file(self, method: str = "umap") -> Path:
        """Where the 2-D map of `method` lives: t-SNE beside the main map (UMAP, or the --map-method of the run)."""
        return self.tsne_file if method == "tsne" else self.projection_file

    def projection(self, method: str = "umap") -> np.ndarray:
        """The 2-D map, refused while it is of other embeddings than embeddings.npy holds (`curate.generations`)."""
        file = self.map_file(method)
        self._need(file, "curate map -w WS --method tsne" if method == "tsne" else "curate run")
        return load_checked(self, [file], lambda: np.load(file))

    def model_config(self) -> dict | None:
        file = self.model_config_file
        return storage.read_json(file) if file.exists() else None

    def selection_names(self) -> list[str]:
        return sorted(p.stem for p in self.selections_dir.glob("*.parquet"))

    def selection(self, name: str) -> pd.DataFrame:
        file = self.selection_file(name)
        if not file.exists():
            raise FileNotFoundError(f"no selection named {name!r}; existing: {', '.join(self.selection_names()) or 'none'}")
        return pd.read_parquet(file)

    def selection_meta(self, name: str) -> dict:
        return storage.read_json(self.sidecar(self.selection_file(name)))

    def duplicates(self) -> pd.DataFrame | None:
        """duplicates.parquet (None before `curate dedup`), refused while it is of older embeddings."""
        if not self.duplicates_file.exists():
            return None
        return load_checked(self, [self.duplicates_file], lambda: pd.read_parquet(self.duplicates_file))

    def image_path(self, image_id: int, manifest: pd.DataFrame | None = None) -> Path:
        """Absolute path of a manifest id, guaranteed to lie inside the image root (pass an already
        loaded manifest to avoid re-reading it)."""
        rel = (self.manifest() if manifest is None else manifest)["path"].iloc[int(image_id)]
        return resolve_inside(self.root, rel)

    def _need(self, file: Path, command: str) -> None:
        if not file.exists():
            raise FileNotFoundError(f"{file.name} missing in {self.path}: run `{command}` first")


def resolve_inside(root: Path, rel: str | Path) -> Path:
    """`root/rel` resolved, refusing anything (.., absolute paths, symlinks) that leaves root, and anything
    there that is not a regular file (opening a named pipe blocks forever, a device never ends)."""
    root = Path(root).resolve()
    full = (root / rel).resolve()
    if not full.is_relative_to(root):
        raise PermissionError(f"refusing path outside the image root: {rel}")
    if full.exists() and not full.is_file():
        raise PermissionError(f"refusing {rel}: not a regular file")
    return full


def safe_name(name: str) -> str:
    """A selection or tag name usable as a file name."""
    clean = "".join(c if c.isalnum() or c in "-_." else "_" for c in name.strip()).strip("._")
    if not clean:
        raise ValueError(f"invalid name {name!r}: use letters, digits, '-', '_'")
    return clean
