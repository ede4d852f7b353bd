"""Helpers shared by the browser tests (conftest's UI fixture and the tests that drive their
own contexts): one poller and one "every panel drew" condition."""

from __future__ import annotations

import time
from typing import Any

ALL_RENDERED = (
    "!!window.__ppo && Object.keys(window.__ppo.rendered).length >= 10 && "
    "Object.values(window.__ppo.rendered).every(n => n > 0)"
)
"""True once every panel of the page has drawn at least once."""


def wait_until(page: Any, expression: str, timeout: float = 20.0) -> Any:
    """Poll the JavaScript ``expression`` in ``page`` until it is truthy; return its value, or
    fail naming the expression after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(f"() => {expression}")
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {expression}")
        time.sleep(0.02)
