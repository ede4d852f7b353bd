"""Application factory: ``create_app()`` wires settings, middleware, routers and the page."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from app import __version__, errors
from app.cache import ResponseCache
from app.heavy import HeavyRunner
from app.middleware import BodyLimitMiddleware, RequestContextMiddleware
from app.routes import advantages, analyze, curves, health, lab, losses, page, reference, runs
from app.settings import Settings, get_settings

WARM_UP_DELAY_S = 1.0
"""Seconds after start-up before background warm-up begins (workers, compressed assets)."""


GC_YOUNG_THRESHOLD = 7_000
"""Allocations between collections of the youngest generation (CPython's default: 700)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the FastAPI app from ``settings`` (default: the environment)."""
    settings = settings or get_settings()
    heavy = HeavyRunner(
        settings.heavy_concurrency,
        settings.heavy_queue,
        settings.heavy_timeout_s,
        settings.torch_threads,
        preload=("app.analysis", "app.runs.report"),  # the worker processes' jobs
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not logging.getLogger("app.access").handlers:
            logging.basicConfig(level=logging.INFO, format="%(message)s")
        loop = asyncio.get_running_loop()
        # torch's intra-op threads, set once for the event loop's thread here and for each
        # heavy thread as it starts (app.heavy), never per request: requests toggling the
        # setting around their work could leave it at the wrong value.
        torch.set_num_threads(settings.torch_threads)
        # What is loaded by now (torch, pydantic, FastAPI: ~200k objects) lives as long as the
        # process: move it out of the cyclic collector's sight, or every full collection scans
        # it all (~90 ms here) and lands in the latency of whichever request triggered it.
        gc.collect()
        gc.freeze()
        # Young objects are collected every 7,000 net allocations instead of 700: a request
        # that builds curves allocates ~50 tensors, arrays and dicts, nearly all freed by
        # reference counting, and the default made every 14th request pay a collection (~4 us
        # per never-seen clip-objective query on average; a collection of 7,000 young
        # objects still takes well under a millisecond).
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)

        def warm_up() -> None:
            # Spawn the analyzer's workers and compress plotly.js once, a moment after the
            # server answers: on two cores they would otherwise slow its own start-up.
            heavy.start_processes()
            loop.run_in_executor(None, page.plotly_asset)

        timer = loop.call_later(WARM_UP_DELAY_S, warm_up)
        try:
            yield
        finally:
            timer.cancel()
            heavy.shutdown()

    app = FastAPI(
        title="PPO Explorer",
        version=__version__,
        description="The PPO loss (clipped surrogate, value loss, entropy, KL, advantages) "
        "computed on demand by ppo_core. Every tensor is a (nested) list of finite numbers; "
        "errors are 4xx JSON naming the field and the problem.",
        lifespan=lifespan,
        docs_url=None,  # served by app.routes.page from the bundled Swagger UI: no CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.heavy = heavy
    app.state.response_cache = ResponseCache(settings.response_cache_bytes)
    app.state.batchers = {}  # app.routes.curves.batched_get: one MicroBatcher per path
    errors.install(app)
    for module in (health, curves, losses, advantages, analyze, reference, lab, runs):
        app.include_router(module.router)
    app.include_router(page.router)
    app.mount("/static", StaticFiles(directory=page.STATIC_DIR), name="static")
    app.mount("/docs/assets", StaticFiles(directory=page.SWAGGER_DIR), name="docs-assets")
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "x-request-id"],
            expose_headers=["x-request-id"],
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        RequestContextMiddleware,
        frame_ancestors=settings.frame_ancestors,
        log_json=settings.log_json,
    )
    return app
