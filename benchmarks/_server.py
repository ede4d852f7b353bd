"""Start and stop a real `ppo-explorer` on a free loopback port, for the benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    startup_s: float
    """Seconds from launch until /healthz first answered 200."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(workers: int = 1, env: dict[str, str] | None = None) -> Iterator[Server]:
    """Launch the console script, wait for /healthz, yield it, then SIGTERM and reap it."""
    port = free_port()
    exe = Path(sys.executable).parent / "ppo-explorer"
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(exe), "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        cwd=ROOT,
        stdout=None if os.environ.get("BENCH_SERVER_LOG") else subprocess.DEVNULL,
        stderr=None if os.environ.get("BENCH_SERVER_LOG") else subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.perf_counter() - start > 60:
                raise SystemExit("server did not start")
            time.sleep(0.01)
        yield Server(proc, base, time.perf_counter() - start)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
