"""A non-editable install of the built wheel serves the page, its assets and the API docs from
outside the repository: templates and static files are package data, found where `app` is
installed (no path into a source checkout)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
from server_support import free_port, healthz, wait_until_up

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, built_wheel: Path) -> Path:
    """The wheel built from this checkout (as the Dockerfile builds it), installed (not
    editable) into a fresh directory outside the repository."""
    out = tmp_path_factory.mktemp("wheel")
    wheel = built_wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    for member in (
        "app/templates/index.html",
        "app/templates/panels/family.html",
        "app/static/js/main.js",
        "app/static/css/app.css",
        "app/static/vendor/plotly.js-cartesian-dist-min/plotly-cartesian.min.js",
        "app/static/vendor/plotly.js-cartesian-dist-min/LICENSE",
        "app/static/vendor/plotly.js-cartesian-dist-min/VERSION",
        "ppo_core/policy.py",
        "ppo_core/lab/trainer.py",
    ):
        assert member in names, member
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)
    target = out / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target",
         str(target), str(wheel)],
        check=True, cwd=out,
    )  # fmt: skip
    return target


def _env(target: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return env | {"PYTHONPATH": str(target), "PPO_EXPLORER_LOG_JSON": "false"}


def test_the_installed_package_is_the_one_imported(installed: Path, tmp_path: Path) -> None:
    code = "import app, ppo_core; print(app.__file__); print(ppo_core.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,  # outside the repository
        env=_env(installed),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(Path(p).is_relative_to(installed) for p in out), out


def test_the_installed_wheel_serves_the_page(installed: Path, tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=_env(installed),
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, healthz(base), 60, (tmp_path / "server.log").read_text)
        page = httpx.get(f"{base}/")
        assert page.status_code == 200 and "The objective family" in page.text
        for asset in ("/static/js/main.js", "/static/css/app.css", "/static/js/panels/family.js"):
            r = httpx.get(f"{base}{asset}")
            assert r.status_code == 200 and r.content, asset
        docs = httpx.get(f"{base}/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        curve = httpx.get(f"{base}/api/v1/objective-curves", params={"points": 3})
        assert curve.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
