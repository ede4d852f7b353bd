"""Heavy work off the event loop, bounded: a fixed pool, a bounded queue, a timeout.

Requests over the inline threshold run in a thread pool (NumPy / torch release the GIL); the
batch analyzer runs in a process pool, because parsing a 50 MB JSON body holds the GIL for
about a second and would stall every other request. When ``concurrency + queue`` requests are
already admitted, a new one is refused at once with 503 and ``Retry-After`` instead of
queueing without end; one that runs past the timeout gets 503 too.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import multiprocessing
import os
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")


SHUTDOWN_GRACE_S = 5.0
"""Seconds a worker process may take to exit on its own at shutdown before it is terminated."""

STARTUP_TIMEOUT_S = 120.0
"""How long a request may wait for freshly spawned worker processes to finish importing."""


class Overloaded(Exception):
    """The heavy pool is full or a job timed out: answer 503 with ``Retry-After``."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


def _init_worker(parent_pid: int, preload: tuple[str, ...]) -> None:
    """Each worker: import the modules its jobs need now (not on the first request), and exit
    on its own if the server process dies without shutting the pool down (e.g. SIGKILL)."""
    for module in preload:
        importlib.import_module(module)

    gc.collect()
    gc.freeze()  # as in the server (app.main): imported modules stay out of full collections

    def watch_parent() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(0)

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()


def _set_torch_threads(count: int) -> None:
    import torch

    torch.set_num_threads(count)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _call_with_file(path: str, fn: Callable[..., T], *args: Any) -> T:
    """In a worker: ``fn`` on the bytes the server wrote to ``path``."""
    with open(path, "rb") as f:
        data = f.read()
    return fn(data, *args)


def _noop() -> None:
    """Submitted once per worker at start-up so the pool spawns and warms up early."""


class HeavyRunner:
    """Admission control plus the executors for heavy work."""

    def __init__(
        self,
        concurrency: int,
        queue: int,
        timeout_s: float,
        torch_threads: int = 1,
        preload: tuple[str, ...] = (),
    ) -> None:
        self.concurrency = concurrency
        self.torch_threads = torch_threads
        self.preload = preload
        """Modules each worker process imports as it starts (the heavy jobs' own modules)."""
        self.capacity = concurrency + queue
        self.timeout_s = timeout_s
        self._admitted = 0
        self._threads: ThreadPoolExecutor | None = None
        self._processes: ProcessPoolExecutor | None = None
        self._warming: list[Future[None]] = []

    @property
    def admitted(self) -> int:
        """Requests currently running or waiting."""
        return self._admitted

    def start_processes(self) -> None:
        """Create the process pool and warm each worker up (in the background)."""
        if self._processes is None:
            ctx = multiprocessing.get_context("spawn")
            self._processes = ProcessPoolExecutor(
                self.concurrency,
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(os.getpid(), self.preload),
            )
            self._warming = [self._processes.submit(_noop) for _ in range(self.concurrency)]

    def shutdown(self) -> None:
        """Stop both pools; they are created afresh if the app is started again."""
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None
        if self._processes is not None:
            self._discard_processes(self._processes)
            # The pool's queues hold 5 semaphores, unregistered from the resource tracker when
            # they are collected; uvicorn ends the process by re-raising SIGTERM (no atexit),
            # so collect them now or the tracker warns of leaked semaphores.
            gc.collect()

    def _discard_processes(self, pool: ProcessPoolExecutor) -> None:
        """Shut a pool down and terminate its workers: called after uvicorn has drained the
        requests in flight (or when a worker died), so nothing a client waits for is lost."""
        procs = getattr(pool, "_processes", None)  # private, but the only handle on workers
        workers = list(procs.values()) if isinstance(procs, dict) else []
        # Ask the workers to exit (a sentinel each, after the queue is cancelled) and give them
        # a moment: a terminated worker leaves the pool's semaphores to the resource tracker,
        # which then warns of leaks at exit. Only a worker that does not exit is terminated.
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in workers:
            proc.join(timeout=SHUTDOWN_GRACE_S)
        for proc in workers:
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        manager = getattr(pool, "_executor_manager_thread", None)  # closes the pool's queues
        if manager is not None:
            manager.join(timeout=SHUTDOWN_GRACE_S)
        if self._processes is pool:
            self._processes = None
            self._warming = []

    def check_capacity(self) -> None:
        """Raise :class:`Overloaded` (503) when no heavy slot is free."""
        if self._admitted >= self.capacity:
            raise Overloaded(f"server busy: {self._admitted} heavy requests in progress")

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold one heavy slot for a long-lived request (a lab stream), or answer 503."""
        self.check_capacity()
        self._admitted += 1
        try:
            yield
        finally:
            self._admitted -= 1

    def _thread_pool(self) -> ThreadPoolExecutor:
        """The heavy threads, created on first use (and again after a shutdown)."""
        if self._threads is None:
            # torch's intra-op thread count is a per-thread setting (OpenMP): set it once as
            # each heavy thread starts, never per request.
            self._threads = ThreadPoolExecutor(
                self.concurrency,
                thread_name_prefix="heavy",
                initializer=_set_torch_threads,
                initargs=(self.torch_threads,),
            )
        return self._threads

    def step(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run one short piece of an admitted request on the heavy threads (no admission)."""
        return asyncio.get_running_loop().run_in_executor(self._thread_pool(), fn, *args)

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._run(self._thread_pool(), fn, *args)

    async def in_process(self, fn: Callable[..., T], *args: Any) -> T:
        self.start_processes()
        pool = self._processes
        assert pool is not None
        try:
            return await self._run(pool, fn, *args, ready=self._warming)
        except BrokenProcessPool:
            # A worker died (e.g. killed for memory): replace the pool rather than fail forever.
            self._discard_processes(pool)
            raise Overloaded("a worker process exited unexpectedly; retry the request") from None

    async def in_process_with_data(
        self, fn: Callable[..., T], data: bytes | bytearray, *args: Any
    ) -> T:
        """``fn(data, *args)`` in a worker process, ``data`` handed over through a private
        temporary file rather than pickled down the pool's pipe (a 170 MB upload: 0.05 s
        against 0.4 s); the file is deleted when the job ends."""
        self.check_capacity()
        try:
            fd, path = tempfile.mkstemp(prefix="ppo-explorer-", suffix=".upload")
        except OSError:  # no writable temporary directory: down the pipe, slower but served
            return await self.in_process(fn, bytes(data), *args)
        try:
            await asyncio.to_thread(_write_all, fd, data)
            return await self.in_process(_call_with_file, path, fn, *args)
        finally:
            os.unlink(path)

    async def _run(
        self,
        executor: Executor,
        fn: Callable[..., T],
        *args: Any,
        ready: Sequence[Future[None]] = (),
    ) -> T:
        self.check_capacity()
        self._admitted += 1
        try:
            if ready and not all(f.done() for f in ready):
                # Workers are still importing torch (seconds after start-up): wait for them
                # apart from the request's own time limit, which is for the computation.
                warm = asyncio.gather(*(asyncio.wrap_future(f) for f in ready))
                try:
                    await asyncio.wait_for(warm, STARTUP_TIMEOUT_S)
                except TimeoutError:
                    raise Overloaded("worker processes are still starting; retry") from None
            future = asyncio.get_running_loop().run_in_executor(executor, fn, *args)
            try:
                return await asyncio.wait_for(future, self.timeout_s)
            except TimeoutError:
                raise Overloaded(f"request took longer than {self.timeout_s:g} s") from None
        finally:
            self._admitted -= 1
