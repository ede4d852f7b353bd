"""Starting a real server in the deploy tests: a free port, and waiting for it to answer."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(
    proc: subprocess.Popen[bytes],
    is_up: Callable[[], bool],
    timeout_s: float,
    log: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``is_up`` until it holds; fail (with ``log()``) if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not is_up():
        assert proc.poll() is None, f"the server exited: {log()[-2000:]}"
        assert time.monotonic() < deadline, f"the server did not start: {log()[-2000:]}"
        time.sleep(0.1)


def healthz(base: str) -> Callable[[], bool]:
    """``GET {base}/healthz`` answers 200."""

    def check() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    return check
