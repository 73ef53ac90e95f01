"""Dynamic batching: query images that arrive together are embedded in one forward pass.

A CPU embeds 8 images in one pass far faster than in 8 passes (the weights are read once, the matrix
products are wider). Each request awaits `embed(session, image)`; one worker task takes the first
waiting image, then whatever else arrives within `window_s` (up to `max_batch`), and embeds the images
that share a session (a workspace generation) in one call on the model thread. A lone request pays at
most `window_s` extra.
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class Batcher:
    max_batch: int = 32
    window_s: float = 0.004
    batches: list[int] = field(default_factory=list)  # the size of each batch run (the last 1,000): for tests
    _queue: asyncio.Queue | None = None
    _worker: asyncio.Task | None = None
    _model_thread: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "curate-embed"))

    async def embed(self, session, image) -> np.ndarray:
        """(D,) embedding of a decoded PIL `image` by `session.embed_images`, batched with concurrent calls."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run())
        done = asyncio.get_running_loop().create_future()
        await self._queue.put((session, image, done))
        return await done

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            waiting = [await self._queue.get()]
            deadline = loop.time() + self.window_s
            while len(waiting) < self.max_batch:
                try:
                    waiting.append(await asyncio.wait_for(self._queue.get(), max(0.0, deadline - loop.time())))
                except asyncio.TimeoutError:
                    break
            for session in {id(w[0]): w[0] for w in waiting}.values():  # one generation per forward pass
                group = [w for w in waiting if w[0] is session]
                await self._embed_group(loop, session, group)

    async def _embed_group(self, loop, session, group) -> None:
        try:
            vectors = await loop.run_in_executor(self._model_thread, session.embed_images, [w[1] for w in group])
        except Exception as err:  # every waiting request gets the error, the worker goes on
            log.exception("embedding a batch of %d query images failed", len(group))
            for _, _, done in group:
                if not done.done():
                    done.set_exception(err)
            return
        self.batches = (self.batches + [len(group)])[-1000:]
        for (_, _, done), vector in zip(group, vectors):
            if not done.done():  # a client that went away
                done.set_result(vector)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._model_thread.shutdown(wait=False, cancel_futures=True)
