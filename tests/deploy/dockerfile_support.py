"""The Dockerfile carried out without a Docker engine, as far as a test can: its build context
(docker's own `.dockerignore` matcher), its stages parsed (`dockerfile-parse`), the build
stage's COPY and RUN executed on that context to make the wheel, and the runtime stage's ARG,
ENV, USER, CMD, HEALTHCHECK and STOPSIGNAL read for the tests to run as the image would.

Only the instructions this Dockerfile uses are understood; any other one fails loudly, so a
changed Dockerfile cannot pass untested.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from docker.utils.build import exclude_paths
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [v for i, v in self.instructions if i == instruction]


def stages(root: Path = ROOT) -> dict[str, Stage]:
    """Every ``FROM ... AS name`` stage with its instructions, in order (comments dropped)."""
    parser = DockerfileParser(str(root / "Dockerfile"))
    out: dict[str, Stage] = {}
    current: Stage | None = None
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "COMMENT":
            continue
        if instruction == "FROM":
            base, _, name = value.partition(" AS ")
            current = out[name.strip()] = Stage(name.strip(), base.strip())
            continue
        assert current is not None, f"{instruction} before any FROM"
        current.instructions.append((instruction, value))
    return out


def context(root: Path = ROOT) -> list[Path]:
    """The files ``docker build`` sends, per ``.dockerignore`` (docker-py's matcher)."""
    patterns = [
        line.strip()
        for line in (root / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    kept = exclude_paths(str(root), patterns, dockerfile="Dockerfile")
    return sorted(root / p for p in kept if (root / p).is_file())


def args(stage: Stage) -> dict[str, str]:
    """The stage's ``ARG name=default`` values."""
    out = {}
    for value in stage.values("ARG"):
        name, _, default = value.partition("=")
        out[name.strip()] = default.strip()
    return out


def env(stage: Stage) -> dict[str, str]:
    """The stage's ``ENV`` values (``KEY=value`` pairs, line continuations joined)."""
    out = {}
    for value in stage.values("ENV"):
        for pair in shlex.split(value):
            key, _, val = pair.partition("=")
            out[key] = val
    return out


def exec_form(value: str) -> list[str]:
    """A JSON-array (exec form) command; shell form is refused (no signal handling)."""
    argv = json.loads(value)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), value
    return argv


def healthcheck(stage: Stage) -> list[str]:
    (value,) = stage.values("HEALTHCHECK")
    options, _, command = value.partition("CMD")
    assert "--interval" in options and "--timeout" in options, value
    return exec_form(command.strip())


def build_wheel(root: Path, out: Path) -> Path:
    """Carry out the ``build`` stage on the build context into ``out``: WORKDIR, COPY (only
    from the context: a source .dockerignore leaves out is an error, as in docker) and the
    ``pip wheel`` RUN. Returns the wheel the runtime stage copies (``/wheels`` maps to
    ``out/wheels``). Tests build without isolation (the build tools are already installed)."""
    stage = stages(root)["build"]
    sent = {p.relative_to(root) for p in context(root)}
    workdir: Path | None = None
    for instruction, value in stage.instructions:
        if instruction == "ENV":
            continue  # pip settings of the image (no cache, no version check)
        if instruction == "WORKDIR":
            workdir = out / value.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY":
            assert workdir is not None, "COPY before WORKDIR"
            *sources, dest = shlex.split(value)
            assert not any(s.startswith("--") for s in sources), value
            for source in sources:
                files = [p for p in sent if p == Path(source) or Path(source) in p.parents]
                assert files, f"COPY {source}: not in the build context (.dockerignore)"
                for rel in files:
                    if rel != Path(source):  # a directory: its contents go to dest
                        target = workdir / dest / rel.relative_to(source)
                    elif dest.endswith("/") or len(sources) > 1:
                        target = workdir / dest / rel.name
                    else:
                        target = workdir / dest
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(root / rel, target)
        elif instruction == "RUN":
            argv = shlex.split(value)
            assert argv[:2] == ["pip", "wheel"], f"RUN not understood by the test: {value}"
            wheels = out / "wheels"
            argv = [wheels.as_posix() if a == "/wheels" else a for a in argv[2:]]
            subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--quiet", *argv],
                check=True,
                cwd=workdir,
                env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
            )
        else:
            raise AssertionError(f"{instruction} in the build stage is not understood by the test")
    (wheel,) = (out / "wheels").glob("ppo_explorer-*.whl")
    return wheel
