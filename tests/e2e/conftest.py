"""End-to-end fixtures: a real server (uvicorn, with the production middleware and CSP) and
headless Debian Chromium driven by Playwright. Never downloads a browser.

Without /usr/bin/chromium the tests skip with a reason, unless REQUIRE_BROWSER_TESTS=1 (set by
.ci/run), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# The helpers next to this file (`pytest tests/e2e` alone too).
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_support import ALL_RENDERED, wait_until

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _require_browser() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} not found: apt-get install -y chromium (CI installs it via .ci/run)"
    if os.environ.get("REQUIRE_BROWSER_TESTS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "PPO_EXPLORER_LOG_JSON": "true"}
    # The server's log goes to a file: a pipe nobody reads fills up (64 KB) and blocks it.
    log = (tmp_path_factory.mktemp("server") / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                err = Path(log.name).read_text(errors="replace")
                pytest.fail(f"server did not start: {err[-2000:]}")
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=15)
    log.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Problems:
    """Console errors, page errors, CSP violations, failed and 4xx/5xx requests."""

    items: list[str] = field(default_factory=list)
    allowed_statuses: set[int] = field(default_factory=set)


@pytest.fixture
def problems() -> Problems:
    return Problems()


@pytest.fixture
def page(browser: object, base_url: str, problems: Problems) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    pg = context.new_page()
    pg.on(
        "console",
        lambda m: (
            problems.items.append(f"console.{m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    pg.on("pageerror", lambda e: problems.items.append(f"pageerror: {e}"))
    pg.on("requestfailed", lambda r: problems.items.append(f"request failed: {r.url} {r.failure}"))
    pg.on(
        "response",
        lambda r: (
            problems.items.append(f"HTTP {r.status}: {r.url}")
            if r.status >= 400 and r.status not in problems.allowed_statuses
            else None
        ),
    )
    pg.base = base_url  # type: ignore[attr-defined]
    yield pg
    context.close()
    assert problems.items == [], "\n".join(problems.items)


class UI:
    """Waiting helpers. ``page.wait_for_function`` needs eval, which the page's CSP forbids
    (as it should), so these poll ``page.evaluate`` instead."""

    def __init__(self, page: object) -> None:
        self.page = page

    def wait_for(self, expression: str, timeout: float = 20.0) -> object:
        return wait_until(self.page, expression, timeout)

    def rendered(self, panel: str) -> int:
        return int(
            self.page.evaluate(  # type: ignore[attr-defined]
                f"() => (window.__ppo && window.__ppo.rendered['{panel}']) || 0"
            )
        )

    def wait_all_rendered(self) -> None:
        self.wait_for(ALL_RENDERED)


@pytest.fixture
def ui(page: object) -> UI:
    return UI(page)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
