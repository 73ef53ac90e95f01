"""`curate serve`: nearest-neighbour lookup over HTTP for other programs (DESIGN.md section 8).

    GET  /health                  {"status": "ok", "generation": N}
    POST /search                  JSON {"id": N} | {"ids": [...]} | {"vector": [...]}, or a multipart upload
                                  (file field `image`, form fields `k`, `kind`, `where`, `view`, `box`)
    GET  /items/{id}              the manifest row
    GET  /items/{id}/thumbnail    a PNG (`?size=` 16-512)
    GET  /docs                    OpenAPI

Answers are those of `curate.open_workspace(WS).search(...)` (`similar` for several ids), from one
workspace generation (`curate.serve.current`). Uploads are decoded in a thread pool under the query
caps (`QUERY_MAX_PIXELS`, `max_upload_mb`) and embedded in micro-batches across requests
(`curate.serve.batcher`). With a token every endpoint but /health needs `Authorization: Bearer TOKEN`,
compared in constant time; wrong tokens are throttled per client (`curate.serve.throttle`).
"""
from __future__ import annotations

import asyncio
import hmac
import io
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from curate.data.images import ImageError
from curate.serve.batcher import Batcher
from curate.serve.current import Current
from curate.serve.throttle import Throttle

log = logging.getLogger(__name__)
MAX_K = 1000


@dataclass(frozen=True)
class ServeConfig:
    token: str | None = None  # None: no authentication (loopback only; the CLI refuses other binds without one)
    max_upload_mb: float = 20.0
    max_batch: int = 32
    batch_window_s: float = 0.004
    decode_threads: int = max(1, min(8, os.cpu_count() or 1))
    poll_s: float = 1.0  # how often the workspace's files are checked for a new generation


class SearchRequest(BaseModel):
    """A JSON search: exactly one of id, ids or vector."""
    id: int | None = None
    ids: list[int] | None = None
    vector: list[float] | None = None
    k: int = Field(10, ge=1, le=MAX_K)
    kind: str | None = Field(None, pattern="^(image|object|frame)$")
    where: str | None = Field(None, max_length=2000)
    view: str | None = Field(None, max_length=64)


def create_app(ws_path: str | Path, config: ServeConfig | None = None) -> FastAPI:
    config = config or ServeConfig()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.current = Current(Path(ws_path), config.poll_s)
        app.state.batcher = Batcher(config.max_batch, config.batch_window_s)
        app.state.decoders = ThreadPoolExecutor(config.decode_threads, "curate-decode")
        try:
            yield
        finally:
            await app.state.batcher.close()
            app.state.decoders.shutdown(wait=False, cancel_futures=True)
            app.state.current.close()

    app = FastAPI(title="curate lookup", version="1", lifespan=lifespan,
                  description="Nearest neighbours of an image, an item or a vector in a curate workspace.")
    app.state.config = config
    app.state.throttle = Throttle()
    app.middleware("http")(_authenticate)
    _routes(app)
    return app


async def _authenticate(request: Request, call_next):
    config: ServeConfig = request.app.state.config
    if config.token is None or request.url.path == "/health":
        return await call_next(request)
    throttle: Throttle = request.app.state.throttle
    client = request.client.host if request.client else "unknown"
    wait = throttle.wait(client)
    if wait > 0:
        return JSONResponse({"detail": "too many wrong tokens: wait"}, 429, {"Retry-After": str(math.ceil(wait))})
    given = request.headers.get("authorization", "")
    expected = f"Bearer {config.token}"
    if not hmac.compare_digest(given.encode(), expected.encode()):  # constant time: no timing oracle
        delay = throttle.failed(client, "API token")
        headers = {"WWW-Authenticate": "Bearer"} | ({"Retry-After": str(math.ceil(delay))} if delay else {})
        return JSONResponse({"detail": "a valid `Authorization: Bearer TOKEN` header is needed"}, 401, headers)
    throttle.succeeded(client)
    return await call_next(request)


def _routes(app: FastAPI) -> None:
    @app.get("/health")
    def health(request: Request) -> dict:
        return {"status": "ok", "generation": request.app.state.current.generation}

    @app.post("/search")
    async def search(request: Request) -> dict:
        session = request.app.state.current.current()  # one generation for the whole answer
        kind = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            return await _search_upload(request, session)
        if kind != "application/json":
            raise HTTPException(415, "send JSON ({\"id\": N}, {\"ids\": [...]} or {\"vector\": [...]}) or a "
                                     "multipart form with the image in the field `image`")
        try:
            body = SearchRequest.model_validate(await _json(request))
        except ValidationError as err:  # a ValueError too: answered here as 422, with the fields named
            raise HTTPException(422, "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
                                               for e in err.errors())) from None
        return await run_in_threadpool(_search_json, request.app, session, body)

    @app.get("/items/{item_id}")
    def item(request: Request, item_id: int) -> dict:
        session = request.app.state.current.current()
        row = _row(session, item_id)
        return {k: _plain(v) for k, v in row.items()}

    @app.get("/items/{item_id}/thumbnail")
    def thumbnail(request: Request, item_id: int, size: int = 96) -> Response:
        from curate.data.sources import item_source
        from curate.ui.thumbnails import thumbnail_inside

        if not 16 <= size <= 512:
            raise HTTPException(422, "size is 16-512 px")
        session = request.app.state.current.current()
        row = _row(session, item_id)
        source = item_source(session.root, session.manifest, item_id, session.ws.frame_store_dir)
        png = thumbnail_inside(session.root, str(row["path"]), size, source)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, err: ValueError):  # WhereError, a bad id, a vector of the wrong size
        return JSONResponse({"detail": str(err)}, 400)


def _search_json(app: FastAPI, session, body: SearchRequest) -> dict:
    given = [f for f in ("id", "ids", "vector") if getattr(body, f) is not None]
    if len(given) != 1:
        raise HTTPException(422, "give exactly one of id, ids or vector")
    where = _where(session, body.where, body.view)
    if body.id is not None:
        _row(session, body.id)
        table = session.search(int(body.id), k=body.k, kind=body.kind, where=where)
    elif body.ids is not None:
        if not 1 <= len(body.ids) <= 256:
            raise HTTPException(422, "ids: 1 to 256 ids")
        for i in body.ids:
            _row(session, i)
        table = session.similar(body.ids, k=body.k, kind=body.kind, where=where)
    else:
        vector = np.asarray(body.vector, np.float32)
        d = session.embeddings.shape[1]
        if vector.shape != (d,) or not np.isfinite(vector).all():
            raise HTTPException(422, f"vector: {d} finite numbers (the workspace's embedding size)")
        table = session.search(vector / max(float(np.linalg.norm(vector)), 1e-12), k=body.k, kind=body.kind,
                               where=where)
    return _answer(app, table)


async def _search_upload(request: Request, session) -> dict:
    config: ServeConfig = request.app.state.config
    limit = int(config.max_upload_mb * 2**20)
    length = request.headers.get("content-length")
    if length is None:
        raise HTTPException(411, "send the upload with a Content-Length")
    if not length.isdigit() or int(length) > limit + 64 * 1024:
        raise HTTPException(413, f"an upload is at most {config.max_upload_mb:g} MB")
    form = await request.form(max_files=1, max_fields=8, max_part_size=64 * 1024)
    upload = form.get("image")
    if upload is None or isinstance(upload, str):
        raise HTTPException(422, "the multipart field `image` must hold the image file")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"an upload is at most {config.max_upload_mb:g} MB")
    k = _form_int(form.get("k"), 10, 1, MAX_K, "k")
    kind = form.get("kind") or None
    if kind not in (None, "image", "object", "frame"):
        raise HTTPException(422, "kind is image, object or frame")
    where = _where(session, form.get("where") or None, form.get("view") or None)
    box = _form_box(form.get("box"))
    if not session.ws.encoder_file.exists():
        raise HTTPException(409, "this workspace has no encoder to embed an upload with: search by id or vector")
    loop = asyncio.get_running_loop()
    try:
        image = await loop.run_in_executor(request.app.state.decoders, session.decode_for_embedding,
                                           io.BytesIO(data), box)
    except ImageError as err:
        raise HTTPException(422 if "too large" not in str(err) else 413, f"cannot use this image: {err}") from None
    vector = await request.app.state.batcher.embed(session, image)
    table = await run_in_threadpool(session.search, vector, k, kind, where)
    return _answer(request.app, table)


def _answer(app: FastAPI, table) -> dict:
    results = [{"id": int(r.id), "path": str(r.path), "score": float(r.similarity), "distance": float(r.distance),
                "label": None if _missing(r.label) else str(r.label), "kind": str(r.kind)}
               for r in table.itertuples(index=False)]
    return {"results": results, "generation": app.state.current.generation}


def _where(session, where: str | None, view: str | None) -> str | None:
    from curate.data.where import combined

    return combined(where, view, session.ws.views_file)


def _row(session, item_id: int) -> dict:
    manifest = session.manifest
    if not 0 <= int(item_id) < len(manifest):
        raise HTTPException(404, f"no item {item_id}: ids go from 0 to {len(manifest) - 1}")
    return manifest.iloc[int(item_id)].to_dict()


def _plain(value):
    """A manifest value as JSON: numpy scalars as numbers, missing values as null, timestamps as ISO text."""
    if _missing(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value


def _missing(value) -> bool:
    try:
        return value is None or bool(value != value)  # NaN, NaT and pd.NA are not equal to themselves
    except (TypeError, ValueError):
        return False


async def _json(request: Request):
    try:
        return await request.json()
    except ValueError:
        raise HTTPException(400, "the body is not valid JSON") from None


def _form_int(value, default: int, low: int, high: int, name: str) -> int:
    if value in (None, ""):
        return default
    if not str(value).isdigit() or not low <= int(value) <= high:
        raise HTTPException(422, f"{name} is a whole number from {low} to {high}")
    return int(value)


def _form_box(value) -> tuple[float, float, float, float] | None:
    """`box=x0,y0,x1,y1` (pixels of the uploaded image) or None."""
    if value in (None, ""):
        return None
    try:
        box = tuple(float(v) for v in str(value).split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or not all(math.isfinite(v) for v in box) or box[2] <= box[0] or box[3] <= box[1]:
        raise HTTPException(422, "box is x0,y0,x1,y1 in the uploaded image's pixels, with x1 > x0 and y1 > y0")
    return box
