"""FastAPI dependencies: the settings and the heavy runner of the app serving a request, and
where a computation runs (inline when small, on the heavy threads when large)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from app.heavy import HeavyRunner
from app.settings import Settings

T = TypeVar("T")

INLINE_ELEMENTS = 65_536
"""Requests with at most this many input numbers are computed on the event loop (tens of
microseconds to a millisecond); larger ones go to the heavy thread pool."""


def app_settings(request: Request) -> Settings:
    """The settings the app was built with (limits, knobs)."""
    settings: Settings = request.app.state.settings
    return settings


def heavy_runner(request: Request) -> HeavyRunner:
    """The app's bounded pools for heavy work."""
    runner: HeavyRunner = request.app.state.heavy
    return runner


SettingsDep = Annotated[Settings, Depends(app_settings)]
HeavyDep = Annotated[HeavyRunner, Depends(heavy_runner)]


async def compute(heavy: HeavyRunner, elements: int, fn: Callable[[], T]) -> T:
    """Run ``fn`` inline when the request is small, else in the bounded heavy thread pool."""
    if elements <= INLINE_ELEMENTS:
        return fn()
    return await heavy.in_thread(fn)
