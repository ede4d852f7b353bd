"""Fixtures for the API tests: a module-scoped ``TestClient`` per module, lifespan running.

The lifespan starts the heavy pools (``/analyze`` runs in a spawn process pool), so each client
is entered as a context manager. ``heavy_concurrency=1`` keeps it to one worker process per
module: the suite runs on two cores.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

# This checkout's app / ppo_core (`pytest tests/api` alone), and the helpers next to this file.
for path in (Path(__file__).resolve().parents[2], Path(__file__).resolve().parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from api_support import make_client  # noqa: E402


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    """The app with default limits (one heavy worker)."""
    with make_client() as c:
        yield c
