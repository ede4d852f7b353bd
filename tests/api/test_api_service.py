"""The service around the endpoints: body limit (refused before being read whole), overload
503 with Retry-After, a heavy pool that survives a dead worker and a restart, security
headers and X-Request-ID on every response, CORS closed unless configured."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from api_support import assert_error, call_asgi, make_client, npy_bytes
from fastapi.testclient import TestClient

from app.heavy import HeavyRunner, Overloaded
from app.main import create_app
from app.settings import Settings

ANALYZE = "/api/v1/analyze"
POLICY = "/api/v1/policy-loss"
SMALL_ANALYZE = {"logprobs": [0.0, 0.1], "old_logprobs": [0.0, 0.0], "advantages": [1.0, -1.0]}
LIMIT = 4096


@pytest.fixture(scope="module")
def limited() -> Iterator[TestClient]:
    """Tiny limits, so they are cheap to hit: one heavy slot and no queue (a second heavy
    request is refused at once), 4 KiB bodies, 100 elements per tensor."""
    with make_client(
        heavy_concurrency=1, heavy_queue=0, max_body_bytes=LIMIT, max_tensor_elements=100
    ) as c:
        yield c


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition()`` (a wait for the server's state, not a timing assertion)."""
    for _ in range(2000):
        if condition():
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


# --- body size ----------------------------------------------------------------------------


def endless(chunk_size: int = 1024) -> Iterator[bytes]:
    return itertools.repeat(b" " * chunk_size)


@pytest.mark.parametrize("path", [POLICY, ANALYZE])
def test_413_from_content_length_reads_nothing(limited: TestClient, path: str) -> None:
    headers = [("content-type", "application/json"), ("content-length", str(10**12))]
    res = asyncio.run(call_asgi(limited.app, "POST", path, headers, endless()))
    assert res.status == 413
    assert json.loads(res.body) == {
        "detail": [
            {
                "loc": [],
                "msg": f"request body over the limit of {LIMIT} bytes",
                "type": "body_too_large",
            }
        ]
    }
    assert res.chunks_read == 0
    assert res.headers["x-content-type-options"] == "nosniff" and "x-request-id" in res.headers


MULTIPART_START = (
    b'--x\r\nContent-Disposition: form-data; name="logprobs"; filename="lp.npy"\r\n'
    b"Content-Type: application/octet-stream\r\n\r\n"
)


@pytest.mark.parametrize(
    ("path", "content_type", "start"),
    [
        (POLICY, "application/json", b"["),
        (ANALYZE, "application/json", b"["),
        (ANALYZE, "multipart/form-data; boundary=x", MULTIPART_START),
    ],
)
def test_413_streamed_body_stops_at_the_limit(
    limited: TestClient, path: str, content_type: str, start: bytes
) -> None:
    # No Content-Length (chunked): an endless body is cut off just past the limit.
    chunks = itertools.chain([start], endless())
    res = asyncio.run(
        call_asgi(limited.app, "POST", path, [("content-type", content_type)], chunks)
    )
    assert res.status == 413
    assert json.loads(res.body)["detail"][0]["type"] == "body_too_large"
    assert res.chunks_read <= LIMIT // 1024 + 2


def test_body_over_limit(limited: TestClient) -> None:
    body = b"[" + b"0," * LIMIT + b"0]"
    r = limited.post(POLICY, content=body, headers={"content-type": "application/json"})
    assert_error(r, 413, [], f"request body over the limit of {LIMIT} bytes")


def test_body_under_the_limit_is_served(limited: TestClient) -> None:
    r = limited.post(POLICY, json={"logprobs": [0.0], "old_logprobs": [0.0], "advantages": [1.0]})
    assert r.status_code == 200, r.text


# --- element limit ------------------------------------------------------------------------


def test_tensor_over_element_limit_1d(limited: TestClient) -> None:
    body = {"logprobs": [0.0] * 101, "old_logprobs": [0.0] * 101, "advantages": [0.0] * 101}
    r = limited.post(POLICY, json=body)
    assert_error(r, 422, ["body", "logprobs"], "logprobs: has over 100 elements, over the limit")


def test_tensor_over_element_limit_2d(limited: TestClient) -> None:
    rows = [[0.0] * 11] * 10
    r = limited.post(POLICY, json={"logprobs": rows, "old_logprobs": rows, "advantages": rows})
    assert_error(r, 422, ["body", "logprobs"], "logprobs: has 110 elements, over the limit of 100")


def test_npy_over_element_limit(limited: TestClient) -> None:
    files = {
        name: (f"{name}.npy", npy_bytes(np.zeros(101))) for name in ("logprobs", "old_logprobs")
    }
    r = limited.post(ANALYZE, files=files)
    assert_error(r, 422, ["body", "logprobs"], "logprobs: has 101 elements, over the limit of 100")


# --- heavy pool ---------------------------------------------------------------------------


def test_503_with_retry_after_when_heavy_pool_is_full(limited: TestClient) -> None:
    heavy: HeavyRunner = limited.app.state.heavy  # type: ignore[attr-defined]
    gate = threading.Event()
    held = limited.portal.start_task_soon(heavy.in_thread, gate.wait)  # type: ignore[union-attr]
    try:
        wait_until(lambda: heavy.admitted == 1, "the slot to be taken")
        r = limited.post(ANALYZE, json=SMALL_ANALYZE)
        assert_error(r, 503, [], "server busy: 1 heavy requests in progress")
        assert r.json()["detail"][0]["type"] == "overloaded"
        assert r.headers["retry-after"] == "1"
        assert "x-request-id" in r.headers
        assert "script-src 'self'" in r.headers["content-security-policy"]
        # A busy server refuses a JSON body before reading it.
        sent = []

        def body() -> Iterator[bytes]:
            for i in range(100):
                sent.append(i)
                yield b'{"logprobs": [' if i == 0 else b"0.0, " * 1000

        r = limited.post(ANALYZE, content=body(), headers={"content-type": "application/json"})
        assert r.status_code == 503
        assert len(sent) < 100, "the whole body was read before the 503"
    finally:
        gate.set()
    held.result(timeout=30)
    assert heavy.admitted == 0
    r = limited.post(ANALYZE, json=SMALL_ANALYZE)
    assert r.status_code == 200, r.text


def test_dead_worker_is_replaced(limited: TestClient) -> None:
    heavy: HeavyRunner = limited.app.state.heavy  # type: ignore[attr-defined]
    with pytest.raises(Overloaded, match="worker process exited unexpectedly"):
        limited.portal.call(heavy.in_process, os._exit, 3)  # type: ignore[union-attr]
    r = limited.post(ANALYZE, json=SMALL_ANALYZE)
    assert r.status_code == 200, r.text


def test_heavy_timeout_is_overloaded() -> None:
    runner = HeavyRunner(concurrency=1, queue=0, timeout_s=0.05)
    gate = threading.Event()
    try:
        with pytest.raises(Overloaded, match=r"took longer than 0\.05 s"):
            asyncio.run(runner.in_thread(gate.wait))
    finally:
        gate.set()
        runner.shutdown()
    assert runner.admitted == 0


def test_heavy_runner_serves_after_a_shutdown(limited: TestClient) -> None:
    # What a second lifespan of the same app does (e.g. a test harness restarting it).
    limited.app.state.heavy.shutdown()  # type: ignore[attr-defined]
    r = limited.post(ANALYZE, json=SMALL_ANALYZE)
    assert r.status_code == 200, r.text


def test_lab_steps_run_on_the_heavy_threads() -> None:
    runner = HeavyRunner(concurrency=1, queue=0, timeout_s=5.0)

    async def thread_name() -> str:
        return await runner.step(lambda: threading.current_thread().name)

    try:
        assert asyncio.run(thread_name()).startswith("heavy")
    finally:
        runner.shutdown()


def test_lab_stream_client_leaving_mid_step(monkeypatch: pytest.MonkeyPatch) -> None:
    entered, release, closed = threading.Event(), threading.Event(), threading.Event()

    def slow_steps(config: object, algorithms: object) -> Iterator[None]:
        try:
            entered.set()
            release.wait(30)  # the step is running on a heavy thread when the client leaves
            yield None
        finally:
            closed.set()

    monkeypatch.setattr("app.routes.lab.iterate_lab", slow_steps)
    app = create_app(Settings(heavy_concurrency=1, log_json=False))

    async def leave_mid_step() -> None:
        calls = 0

        async def receive() -> dict[str, object]:
            nonlocal calls
            calls += 1
            if calls == 1:
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.get_running_loop().run_in_executor(None, entered.wait, 30)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            pass

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/api/v1/lab/stream",
            "raw_path": b"/api/v1/lab/stream",
            "root_path": "",
            "query_string": b"iterations=1",
            "headers": [],
            "client": ("testclient", 50000),
            "server": ("testserver", 80),
            "state": {},
        }
        try:
            await app(scope, receive, send)
        finally:
            release.set()
        # The loop keeps running while the step finishes: its generator must then be closed.
        await asyncio.get_running_loop().run_in_executor(None, closed.wait, 30)

    try:
        asyncio.run(leave_mid_step())
    finally:
        release.set()
        app.state.heavy.shutdown()
    assert closed.is_set(), "the step generator was not closed once its step finished"
    assert app.state.heavy.admitted == 0


# --- headers ------------------------------------------------------------------------------

REQUESTS = [
    ("GET", "/healthz", None, 200),
    ("GET", "/api/v1/clip-objective", None, 200),
    ("POST", POLICY, {"logprobs": []}, 422),
    ("GET", "/no-such-page", None, 404),
    ("GET", POLICY, None, 405),
    ("POST", ANALYZE, "text", 422),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), REQUESTS)
def test_security_headers_and_request_id_on_every_response(
    limited: TestClient, method: str, path: str, body: object, status: int
) -> None:
    kwargs: dict[str, object] = {"json": body}
    if isinstance(body, str):
        kwargs = {"content": body, "headers": {"content-type": "text/plain"}}
    r = limited.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert r.status_code == status, r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "default-src 'self'" in csp and "object-src 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])
    if status >= 400:
        assert isinstance(r.json()["detail"], list)


def test_request_id_kept_from_client_when_sane(limited: TestClient) -> None:
    assert (
        limited.get("/healthz", headers={"x-request-id": "trace-42"}).headers["x-request-id"]
        == "trace-42"
    )
    replaced = limited.get("/healthz", headers={"x-request-id": "x" * 65}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)


def test_request_ids_are_unique(limited: TestClient) -> None:
    ids = {limited.get("/healthz").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_cors_closed_by_default(limited: TestClient) -> None:
    origin = {"origin": "https://evil.example"}
    r = limited.get("/healthz", headers=origin)
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers
    preflight = limited.options(POLICY, headers=origin | {"access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_open_for_configured_origins_only() -> None:
    allowed = "https://tools.example"
    with make_client(cors_origins=[allowed], frame_ancestors="'self'") as c:
        r = c.get("/healthz", headers={"origin": allowed})
        assert r.headers["access-control-allow-origin"] == allowed
        assert "x-request-id" in r.headers["access-control-expose-headers"].lower()
        assert "frame-ancestors 'self'" in r.headers["content-security-policy"]
        foreign = c.get("/healthz", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in foreign.headers
        preflight = c.options(
            POLICY,
            headers={
                "origin": allowed,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == allowed
        assert "POST" in preflight.headers["access-control-allow-methods"]


def test_cors_is_right_for_every_origin_on_a_cached_path() -> None:
    # Two allowed origins and a foreign one ask the same cached curve: each gets its own
    # Access-Control-Allow-Origin (the cache holds bodies, not another origin's headers).
    first, second = "https://a.example", "https://b.example"
    url = "/api/v1/clip-objective?points=5&epsilon=0.17"
    with make_client(cors_origins=[first, second]) as c:
        r1 = c.get(url, headers={"origin": first})
        r2 = c.get(url, headers={"origin": second})
        r3 = c.get(url, headers={"origin": "https://evil.example"})
        r4 = c.get(url)
        assert r1.content == r2.content == r3.content == r4.content
        assert r1.headers["access-control-allow-origin"] == first
        assert r2.headers["access-control-allow-origin"] == second
        assert "access-control-allow-origin" not in r3.headers
        assert "access-control-allow-origin" not in r4.headers
        assert len(c.app.state.response_cache) == 1  # type: ignore[attr-defined]


def test_start_up_freezes_what_is_loaded_out_of_the_collector() -> None:
    """Full cyclic collections over torch / pydantic / FastAPI's ~200k objects took ~90 ms and
    set the p99 of small requests; the app moves them to the permanent generation at start."""
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    with make_client() as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 50_000
    gc.unfreeze()


def test_the_heavy_runner_does_not_import_its_users() -> None:
    # app.heavy runs whatever it is given; the worker processes' preload comes from create_app.
    import ast
    from pathlib import Path

    import app.heavy

    tree = ast.parse(Path(app.heavy.__file__).read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    } | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name and name.startswith("app.")}, imported


def test_data_handed_to_a_worker_through_a_file_that_is_then_deleted(
    limited: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    heavy: HeavyRunner = limited.app.state.heavy  # type: ignore[attr-defined]
    data = bytes(range(256)) * 1000
    assert limited.portal.call(heavy.in_process_with_data, len, data) == len(data)  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="invalid literal"):  # the worker's error, raised here
        limited.portal.call(heavy.in_process_with_data, int, b"not a number")  # type: ignore[union-attr]
    assert list(tmp_path.iterdir()) == []

    def no_temporary_directory(*args: object, **kwargs: object) -> None:
        raise PermissionError("read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", no_temporary_directory)  # the pipe, then
    assert limited.portal.call(heavy.in_process_with_data, len, data) == len(data)  # type: ignore[union-attr]
