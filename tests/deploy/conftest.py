"""The wheel every deploy test uses: built as the Dockerfile's build stage builds it, from the
Docker build context (so a file the image needs but .dockerignore drops fails here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The helpers next to this file (tests run with --import-mode=importlib).
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from dockerfile_support import ROOT, build_wheel


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(ROOT, tmp_path_factory.mktemp("image-build"))
