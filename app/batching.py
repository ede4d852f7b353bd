"""Micro-batching on the event loop: queries that reach the server together share one pass.

A never-seen clip-objective query spends most of its ~0.1 ms in fixed costs (a dozen torch op
dispatches, one autograd pass), not in its 100 points. Under concurrent load many such queries
are waiting at once: uvicorn reads every ready socket in one loop iteration and starts each
request's task; each task reaches its endpoint in its first step and queues its item here. The
first item schedules :meth:`MicroBatcher._flush` two callbacks later (``call_soon`` of a
``call_soon``): by then the loop has run every task already started, and has read its sockets
once more and started the tasks of what arrived meanwhile. The flush runs them all in one call
of ``run``. Under ``wrk -c32`` a batch holds 25 queries on average this way, 12 with a single
``call_soon``.

Alone (one user, no concurrency) a query waits for two loop iterations: a few microseconds.
Nothing waits on a timer, so batching never adds latency to wait for company.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Collect items submitted in one event-loop iteration; answer them with one ``run`` call.

    ``run(items)`` returns one result per item, in order. ``size(item)`` is an item's cost
    (e.g. its points); a flush runs items in chunks of at most ``max_size`` (an item larger
    than that runs alone), so one pass's memory and time stay bounded. If ``run`` raises, every
    item of that chunk gets the exception. An item whose waiter is gone (client disconnected,
    task cancelled) is still computed with its chunk and its result dropped. Used from the
    event loop only, like the response cache.
    """

    def __init__(
        self,
        run: Callable[[Sequence[T]], Sequence[R]],
        *,
        size: Callable[[T], int] = lambda _: 1,
        max_size: int = 64,
    ) -> None:
        self._run = run
        self._size = size
        self.max_size = max_size
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flush_on: asyncio.AbstractEventLoop | None = None
        self.batches = 0
        """Calls of ``run`` so far (for tests and benchmarks)."""
        self.items = 0
        """Items answered so far."""

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if self._flush_on is not loop:  # (a loop that stopped before its flush is replaced)
            # One loop iteration later: the loop reads its sockets once more first, so the
            # requests that arrived meanwhile join (twice the batch under load, measured).
            loop.call_soon(loop.call_soon, self._flush)
            self._flush_on = loop
        self._pending.append((item, future))
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        self._flush_on = None
        chunk: list[tuple[T, asyncio.Future[R]]] = []
        chunk_size = 0
        for entry in pending:
            size = self._size(entry[0])
            if chunk and chunk_size + size > self.max_size:
                self._answer(chunk)
                chunk, chunk_size = [], 0
            chunk.append(entry)
            chunk_size += size
        if chunk:
            self._answer(chunk)

    def _answer(self, chunk: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.batches += 1
        self.items += len(chunk)
        try:
            results = self._run([item for item, _ in chunk])
            if len(results) != len(chunk):
                raise RuntimeError(f"run answered {len(results)} of {len(chunk)} items")
        except Exception as exc:  # every waiter of the chunk learns it (a 500 each)
            for _, future in chunk:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(chunk, results, strict=True):
            if not future.done():
                future.set_result(result)
