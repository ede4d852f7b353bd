"""The real server process: it starts, answers, and ends cleanly on SIGTERM — finishing the
request in flight and leaving no worker process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from server_support import free_port, healthz, wait_until_up

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    # One heavy slot and no queue: a second heavy request while one runs gets 503.
    env = {**os.environ, "PPO_EXPLORER_HEAVY_CONCURRENCY": "1", "PPO_EXPLORER_HEAVY_QUEUE": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "server.log").open("wb"),  # a file: an unread pipe would block
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, healthz(base), 30, (tmp_path / "server.log").read_text)
    except AssertionError:
        proc.kill()
        raise
    yield proc, base
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(not Path("/proc").exists(), reason="needs /proc to list child processes")
def test_sigterm_finishes_in_flight_work_and_reaps_workers(
    server: tuple[subprocess.Popen[bytes], str], tmp_path: Path
) -> None:
    proc, base = server
    # Wait until the analyzer's worker processes exist, so the test covers reaping them.
    deadline = time.monotonic() + 30
    while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = _children(proc.pid)
    assert workers, "expected the analyzer's worker processes"

    result: dict[str, object] = {}
    n = 400_000
    fields = ("logprobs", "old_logprobs", "advantages", "values", "returns")
    body = orjson.dumps({name: [-1.0 - 0.1 * i] * n for i, name in enumerate(fields)})
    sending = threading.Event()

    def chunks() -> Iterator[bytes]:
        sending.set()
        for start in range(0, len(body), 1 << 20):
            yield body[start : start + (1 << 20)]

    def post() -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            result["response"] = client.post(
                "/api/v1/analyze", content=chunks(), headers={"content-type": "application/json"}
            )

    thread = threading.Thread(target=post)
    thread.start()
    assert sending.wait(timeout=10)
    time.sleep(0.2)  # the body is on its way: the request is in flight
    os.kill(proc.pid, signal.SIGTERM)
    thread.join(timeout=60)
    # uvicorn shuts down gracefully, then re-raises the captured SIGTERM to the CLI's handler,
    # which exits normally (atexit runs): 128 + SIGTERM, never a traceback or a hang.
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    stderr = (tmp_path / "server.log").read_text(errors="replace")
    assert "Application shutdown complete" in stderr
    assert "Traceback" not in stderr
    assert "leaked semaphore" not in stderr  # the worker pool is shut down, not killed
    response = result["response"]
    assert isinstance(response, httpx.Response)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["tokens"] == n
    time.sleep(0.5)
    assert not [pid for pid in workers if _alive(pid)], "worker processes outlived the server"


def test_lab_stream_stops_when_the_client_goes_away(
    server: tuple[subprocess.Popen[bytes], str],
) -> None:
    _, base = server
    params = {"iterations": 500, "algorithms": ["pg", "ppo", "ppo-kl"], "batch_size": 64}
    with httpx.Client(base_url=base, timeout=30) as client:
        with client.stream("GET", "/api/v1/lab/stream", params=params) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            steps = 0
            for line in lines:
                steps += line.startswith("event: step")
                if steps == 2:
                    break
            # While this stream holds the only heavy slot, another heavy request is refused.
            busy = client.get("/api/v1/lab/stream", params={"iterations": 2})
            assert busy.status_code == 503
        # The client left: the server stops the run and frees the slot within a moment.
        deadline = time.monotonic() + 10
        while True:
            r = client.post("/api/v1/lab/run", json={"iterations": 2, "batch_size": 8})
            if r.status_code == 200:
                break
            assert r.status_code == 503
            assert time.monotonic() < deadline, "the abandoned stream kept its slot"
            time.sleep(0.2)
