"""Helpers shared by the API tests: clients with chosen limits, error assertions, expected
bodies built from ppo_core (never from the app), ``.npy`` bytes and a raw ASGI caller."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import httpx
import numpy as np
import torch
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from ppo_core import get_convention

JSON = {"content-type": "application/json"}


@contextmanager
def make_client(**settings: Any) -> Iterator[TestClient]:
    """A ``TestClient`` whose lifespan runs, on an app built from ``Settings(**settings)``."""
    settings.setdefault("heavy_concurrency", 1)
    settings.setdefault("log_json", False)
    with TestClient(create_app(Settings(**settings)), raise_server_exceptions=False) as c:
        yield c


def post_text(client: TestClient, path: str, text: str | bytes) -> httpx.Response:
    """POST a raw JSON text (e.g. with ``NaN`` literals, which Python's json.dumps writes)."""
    return client.post(path, content=text, headers=JSON)


def assert_error(
    response: httpx.Response, status: int, loc: Sequence[str | int], msg: str | None = None
) -> dict[str, Any]:
    """The response is ``status`` with a first error at ``loc``; ``msg`` is the exact message,
    or with a trailing ``...`` its prefix. Returns the first error item."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], list) and body["detail"], body
    first = body["detail"][0]
    assert first["loc"] == list(loc), body
    assert set(first) == {"loc", "msg", "type"}, "errors never echo the input"
    if msg is not None:
        if msg.endswith("..."):
            assert first["msg"].startswith(msg[:-3]), first["msg"]
        else:
            assert first["msg"] == msg
    return dict(first)


def approx(values: Any, rel: float = 1e-12, abs_: float = 1e-12) -> Any:
    """Leaves of a nested structure wrapped in ``pytest.approx`` (for whole-body equality)."""
    import pytest

    if isinstance(values, dict):
        return {k: approx(v, rel, abs_) for k, v in values.items()}
    if isinstance(values, list | tuple):
        return [approx(v, rel, abs_) for v in values]
    if isinstance(values, float):
        return pytest.approx(values, rel=rel, abs=abs_)
    return values


def convention_json(name: str, **overrides: Any) -> dict[str, Any]:
    """The ``convention`` object a response carries, built from ppo_core's preset."""
    c = get_convention(name).with_overrides(**overrides)
    knobs = {k: v for k, v in asdict(c).items() if k not in ("name", "library", "source", "notes")}
    return {
        "name": c.name,
        "library": c.library,
        "source": c.source,
        "formula": c.formula(),
        "notes": c.notes,
        "knobs": knobs,
    }


def npy_bytes(array: Any, **save_kwargs: Any) -> bytes:
    """The bytes ``np.save`` writes for ``array``."""
    buf = io.BytesIO()
    np.save(buf, array, **save_kwargs)
    return buf.getvalue()


def as_lists(tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """float64 nested lists of each tensor (the JSON the API takes)."""
    return {k: v.double().tolist() for k, v in tensors.items()}


def assert_no_non_finite(text: str) -> None:
    """The JSON text holds no NaN / Infinity literal (strict JSON cannot carry them)."""

    def refuse(constant: str) -> Any:
        raise AssertionError(f"response JSON holds {constant}: {text[:300]}")

    json.loads(text, parse_constant=refuse)


class ASGIResult:
    """What a raw ASGI call produced, and how much of the request body the app pulled."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.chunks_read = 0


async def call_asgi(
    app: Any,
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]],
    chunks: Iterator[bytes],
) -> ASGIResult:
    """Call ``app`` directly, feeding the request body from ``chunks`` lazily, one ``receive``
    at a time, so a test can see how much of an endless body the app read."""
    result = ASGIResult()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    done = False

    async def receive() -> dict[str, Any]:
        nonlocal done
        if done:
            return {"type": "http.disconnect"}
        chunk = next(chunks, None)
        if chunk is None:
            done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        result.chunks_read += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            result.status = message["status"]
            result.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            result.body += message.get("body", b"")

    await app(scope, receive, send)
    return result
