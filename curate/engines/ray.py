"""The `ray` engine: the per-file work of `curate scan`, the decoded-image cache and `curate embed`, run on a
Ray cluster.

Embedding: Ray Data streams the rows through two stages: parallel tasks decode the files (with the decode
cache's own `decode_row`, so the pixels match the local engine's), and a pool of actors runs the encoder,
each loading it once. Scanning: parallel tasks run scan's own `inspect_file` (read, hash, verify, header).
Only that work happens here; the steps decide which files need it and write the files, whichever engine
ran (DESIGN.md section 6).

Workers open the images by absolute path, so on a multi-node cluster the image folder must be mounted at
the same path on every node, and curate installed there; the encoder's weights travel through Ray's object
store. `ray` is imported only when this engine runs.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from curate.engines.base import EmbedJob, Engine, register
from curate.options import option
from curate.progress import Progress, report

log = logging.getLogger(__name__)

INSTALL = "pip install 'ray[data]>=2.40'"
# A killed decode task is rerun, a killed actor restarted and its batch resubmitted, this many times.
# Bounded, not Ray Data's default of forever: a batch that crashes its worker every time fails the job.
RETRIES = 4
DECODE_ROWS = 64  # images per decode call: enough to amortise a call's overhead, small enough to spread
MAX_BLOCKS = 2000  # input blocks of rows at most (each is one object in Ray's store)
INSPECT_ROWS = 32  # files per scan task call (each is read whole, hashed and test-decoded)


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run.

    address: None joins the cluster RAY_ADDRESS names, else starts a Ray instance inside this process;
        "auto" joins the cluster `ray start` made on this machine; "HOST:PORT" (a head node's GCS port)
        joins that one. "ray://HOST:PORT" (Ray Client) is refused: Ray Data does not run through it.
    actors: encoder actors (default: one per `gpus_per_actor` GPUs of the cluster, else half its CPUs,
        leaving the other half to decoding).
    gpus_per_actor: GPUs each actor reserves (0: CPU actors; fractions share a GPU).
    """
    address: str | None = option(None, "Ray cluster to join: auto or HOST:PORT (default: RAY_ADDRESS, else start "
                                       "Ray in this process; ray:// Ray Client addresses cannot run Ray Data)",
                                 "engine:ray")
    actors: int | None = option(None, "Ray encoder actors (default: one per --gpus-per-actor GPUs, else half the "
                                      "cluster's CPUs)", "engine:ray:embed", type=int)
    gpus_per_actor: float = option(0.0, "GPUs per Ray encoder actor (default 0: CPU actors)", "engine:ray:embed",
                                   type=float)

    def __post_init__(self):
        if self.actors is not None and self.actors < 1:
            raise ValueError(f"--actors must be at least 1, not {self.actors}")
        if self.gpus_per_actor < 0:
            raise ValueError(f"--gpus-per-actor must be 0 or more, not {self.gpus_per_actor}")


@register("ray")
class RayEngine(Engine):
    """Files read, decoded and embedded by Ray tasks and actors; the step's own encoder stays unused on the CPU."""
    Options = RayOptions

    def check(self) -> None:
        import_ray()  # fail before any work when Ray is missing or the cluster does not answer
        check_address(self.options.address)

    def inspect_files(self, paths: list[Path]) -> Iterator[dict]:
        return inspect_files(paths, self.options.address)

    def decode_files(self, paths: list[Path], size: int) -> Iterator[np.ndarray]:
        return decode_files(paths, size, self.options.address)

    def embed(self, job: EmbedJob, out: np.ndarray, done: int, on_chunk, progress) -> dict:
        from curate.data.sources import item_sources

        sources = item_sources(job.ws.root, job.manifest, job.ws.cache_dir / "frames")
        paths = [str(sources[i]) for i in job.rows]  # an image's path, or a frame's or object's Source as text
        used = embed_rows(paths, job.encoder_file, job.config, out, done, job.batch_size, self.options, on_chunk,
                          progress)
        return {"engine": self.name, "actors": used}

    def device(self, requested: str) -> str:
        return "cpu"  # the actors load their own copies, on a GPU when --gpus-per-actor asks for one

    @staticmethod
    def describe(fields) -> str:
        actors = fields.get("actors")
        return f"on Ray, {actors} encoder actor{'s' if actors != 1 else ''}" if actors else ""


def import_ray():
    """The `ray` module with Ray Data, or a RuntimeError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra `ray[data]` brings pyarrow and friends)
    except ImportError as err:
        raise RuntimeError(f"--engine ray needs Ray Data, which is not installed ({err}): {INSTALL}") from None
    return ray


def embed_rows(paths: list[str], encoder_file: Path, config: dict, out: np.ndarray, done: int = 0,
               batch_size: int = 256, options: RayOptions = RayOptions(),
               on_chunk: Callable[[int], None] | None = None, progress: Progress | None = None) -> int:
    """Write the vector of the image at paths[k] into out[k] ((len(paths), D) float32, L2-normalised)
    for every k >= done; return the number of encoder actors used.

    `on_chunk(k)` is called whenever out[:k] is complete (results arrive out of order, so k is the
    first position still missing), letting the caller checkpoint and resume after k rows.
    """
    ray = import_ray()
    if done >= len(paths):
        return 0
    size = int(config["image_size"])
    with connected(ray, options.address), _data_settings(ray, preserve_order=False):
        actors = options.actors or default_actors(ray.cluster_resources(), options.gpus_per_actor)
        check_fits(ray.cluster_resources(), actors, options.gpus_per_actor)
        log.info("ray: %d rows, %d encoder actor(s) (%g GPU each)", len(paths) - done, actors, options.gpus_per_actor)
        report(progress, done, len(paths), stage="embed", unit="img")  # the actors take a while to start
        weights = [ray.put(Path(encoder_file).read_bytes())]  # in a list, so Ray hands the actors the ref itself
        with warnings.catch_warnings():
            # Ray 2.60 deprecates per-call remote args (removal planned for 2.64, hence the pin in
            # requirements-dev.txt) and offers no other way to bound retries.
            warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
            rows = ray.data.from_pandas(_row_blocks(paths, done))
            pixels = rows.map_batches(decode_batch, fn_kwargs={"size": size}, batch_size=DECODE_ROWS,
                                      batch_format="numpy", num_cpus=1, max_retries=RETRIES)
            vectors = pixels.map_batches(
                Encoder, fn_constructor_args=(weights, config, "cuda" if options.gpus_per_actor else "cpu"),
                batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
                num_cpus=1, num_gpus=options.gpus_per_actor or None, max_restarts=RETRIES, max_task_retries=RETRIES)
        finished = np.zeros(len(paths), bool)
        finished[:done] = True
        frontier, computed = done, 0
        for batch in vectors.iter_batches(batch_size=None, batch_format="numpy"):
            pos = batch["pos"]
            out[pos] = batch["vector"]
            finished[pos] = True
            computed += len(pos)
            while frontier < len(paths) and finished[frontier]:
                frontier += 1
            if on_chunk is not None:
                on_chunk(frontier)
            report(progress, done + computed, len(paths), stage="embed", unit="img")
    if computed != len(paths) - done:
        raise RuntimeError(f"ray returned {computed} vectors for {len(paths) - done} images")
    return actors


def inspect_files(paths: list[Path], address: str | None = None) -> Iterator[dict]:
    """`curate.data.scan.inspect_file` of each path, in the order given, computed by Ray tasks."""
    for batch in _in_order(paths, address, inspect_batch, INSPECT_ROWS, "pandas"):
        for info in batch.drop(columns="pos").to_dict("records"):
            yield {k: (None if k == "sha1" and not isinstance(v, str) else v) for k, v in info.items()}


def decode_files(paths: list[Path], size: int, address: str | None = None) -> Iterator[np.ndarray]:
    """`curate.data.cache.decode_row` of each path (zero pixels where it fails), in the order given,
    decoded by Ray tasks: what the decode cache writes, row by row."""
    for batch in _in_order(paths, address, decode_batch, DECODE_ROWS, "numpy", {"size": size}):
        yield from batch["pixels"]


def _in_order(paths: list[Path], address: str | None, fn, batch_size: int, batch_format: str,
              fn_kwargs: dict | None = None) -> Iterator:
    """`fn` over {"pos", "path"} batches of `paths` as Ray tasks, its result batches in the paths' order
    (the caller pairs results with its files by position); nothing to do: no cluster is reached."""
    if not paths:
        return
    ray = import_ray()
    with connected(ray, address), _data_settings(ray, preserve_order=True):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")  # see embed_rows
            rows = ray.data.from_pandas(_row_blocks([str(p) for p in paths], 0))
            results = rows.map_batches(fn, fn_kwargs=fn_kwargs or {}, batch_size=batch_size, batch_format=batch_format,
                                       num_cpus=1, max_retries=RETRIES)
        yield from results.iter_batches(batch_size=None, batch_format=batch_format)


def inspect_batch(batch: pd.DataFrame) -> pd.DataFrame:
    """{"pos", "path"} -> {"pos", and inspect_file's bytes, sha1, width, height, status}."""
    from curate.data.scan import inspect_file

    infos = pd.DataFrame([inspect_file(Path(p)) for p in batch["path"]], index=batch.index)
    return pd.concat([batch[["pos"]], infos], axis=1)


def default_actors(resources: dict, gpus_per_actor: float) -> int:
    """One actor per `gpus_per_actor` GPUs, or half the CPUs (decode tasks need the other half)."""
    if gpus_per_actor:
        return max(1, int(resources.get("GPU", 0) // gpus_per_actor))
    return max(1, int(resources.get("CPU", 1)) // 2)


def check_fits(resources: dict, actors: int, gpus_per_actor: float) -> None:
    """Refuse an actor pool the cluster cannot hold next to one decode task: Ray would wait for it forever."""
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    if actors + 1 > cpus:
        raise ValueError(f"the Ray cluster has {cpus:g} CPUs: {actors} encoder actor(s) take one each and decoding "
                         f"needs one more (use --actors {max(1, int(cpus) - 1)} or fewer, on at least 2 CPUs)")
    if actors * gpus_per_actor > gpus:
        raise ValueError(f"{actors} encoder actor(s) x {gpus_per_actor:g} GPU need more than the {gpus:g} GPUs of "
                         "the Ray cluster: lower --actors or --gpus-per-actor")


def decode_batch(batch: dict, size: int) -> dict:
    """{"pos", "path"} -> {"pos", "pixels": (B, size, size, 3) uint8}; a file that no longer decodes
    gives zero pixels, as in the local decode cache."""
    from curate.data.cache import decode_row

    pixels = np.zeros((len(batch["path"]), size, size, 3), np.uint8)
    for k, path in enumerate(batch["path"]):
        img = decode_row(path, size)  # a path or a Source's text (curate.data.sources)
        if img is not None:
            pixels[k] = img
    return {"pos": batch["pos"], "pixels": pixels}


class Encoder:
    """A Ray Data callable class: each actor builds the encoder once, then embeds batch after batch."""

    def __init__(self, weights: list, config: dict, device: str):
        import ray
        import torch

        from curate.embed.encoder import build_encoder

        state = torch.load(io.BytesIO(ray.get(weights[0])), map_location="cpu", weights_only=True)
        self.net = build_encoder(config, state, device)
        self.mean, self.std = config["normalization"]["mean"], config["normalization"]["std"]

    def __call__(self, batch: dict) -> dict:
        """{"pos", "pixels"} -> {"pos", "vector": (B, D) float32}, by the local engine's `embed_images`."""
        from curate.embed.encoder import embed_images

        pixels = batch["pixels"]
        vectors = embed_images(self.net, pixels, np.arange(len(pixels)), self.mean, self.std, batch_size=len(pixels))
        return {"pos": batch["pos"], "vector": vectors}


@contextlib.contextmanager
def connected(ray, address: str | None):
    """Be connected to Ray for the block: reuse this process's connection, else join or start one and
    disconnect afterwards. An address nobody answers at fails at once, not after Ray's endless retries."""
    if ray.is_initialized():
        yield
        return
    target = check_address(address)
    try:
        if target == "local":
            ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        else:
            ray.init(address=target, log_to_driver=False, logging_level=logging.WARNING)
    except ConnectionError as err:  # e.g. a cluster with token authentication (Ray >= 2.59) joined without it
        raise RuntimeError(f"cannot connect to the Ray cluster at {target}: {err}; if it uses token "
                           "authentication, set RAY_AUTH_MODE=token and give this machine its token") from None
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _data_settings(ray, preserve_order: bool):
    """Ray Data's settings for one run, restored afterwards (its DataContext is global to the process)."""
    context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars, context.execution_options.preserve_order
    context.enable_progress_bars = False  # progress goes through curate's own `progress`
    context.execution_options.preserve_order = preserve_order
    try:
        yield
    finally:
        context.enable_progress_bars, context.execution_options.preserve_order = saved


def check_address(address: str | None, timeout_s: float = 5.0) -> str:
    """The address `ray.init` is to be given ("local": start an instance in this process), after checking
    that something there accepts connections; RuntimeError if not.

    None: RAY_ADDRESS when set (as under `ray job submit`), else a new local instance, never the cluster
    a past `ray start` left recorded on this machine (ray.init(None) would join that one, and wait
    forever if it is gone). "auto": Ray's own lookup, RAY_ADDRESS then that record.
    """
    source = "--address"
    if address is None:
        address, source = os.environ.get("RAY_ADDRESS") or "local", "RAY_ADDRESS"
    elif address == "auto":
        address, source = _auto_address(), "Ray's record of the last `ray start` here (or RAY_ADDRESS)"
    if address in ("local", "auto"):
        return address
    if address.startswith("ray://"):  # Ray 2.60: its streaming executor needs a core worker in this process
        raise RuntimeError(f"{address} (from {source}) is a Ray Client address, and Ray Data, which --engine ray runs "
                           "on, does not run through Ray Client. Run curate on a node of the cluster (--address auto, "
                           "or the head's HOST:6379), or submit it there: ray job submit --address http://HEAD:8265 "
                           "-- curate embed IMAGES -w WS --engine ray")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"a Ray address is auto or HOST:PORT, not {address!r} (from {source})")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise RuntimeError(f"cannot reach the Ray cluster at {address} (from {source}): {err.strerror or err}; "
                           "start one with `ray start --head` there, or check the address") from None
    return address


def _auto_address() -> str:
    """The cluster --address auto means, found as ray.init would find it, so that a stale record fails fast."""
    try:
        from ray._private.services import get_ray_address_from_environment  # private: no public equivalent
    except ImportError:
        return "auto"  # left to ray.init
    try:
        return get_ray_address_from_environment("auto", None)
    except ConnectionError as err:
        raise RuntimeError(f"--address auto: {err}") from None


def _row_blocks(paths: list[str], done: int) -> list[pd.DataFrame]:
    """The rows still to embed as tables ({"pos", "path"}), one Ray block each: small enough that decoding
    spreads over the cluster, at most ~MAX_BLOCKS of them so the driver's bookkeeping stays small."""
    todo = len(paths) - done
    rows = max(DECODE_ROWS * 4, -(-todo // MAX_BLOCKS))
    return [pd.DataFrame({"pos": np.arange(start, min(start + rows, len(paths))), "path": paths[start:start + rows]})
            for start in range(done, len(paths), rows)]
