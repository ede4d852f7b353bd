"""A run's report: the log read, its metrics mapped onto canonical names, and the findings.
Computed per request in a worker process; nothing is kept."""

from __future__ import annotations

import math
from typing import Any

from app.runs.findings import run_findings
from app.runs.formats import FORMATS, detect, parse
from app.runs.metric_map import lookup
from ppo_core import PPOInputError


def _clean(values: list[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


def build_report(raw: bytes, filename: str, fmt: str | None) -> dict[str, Any]:
    """The ``POST /api/v1/runs/report`` answer for one log file (format detected when
    ``fmt`` is None)."""
    if not raw.strip():
        raise PPOInputError("file", "is empty")
    if fmt is not None and fmt not in FORMATS:
        raise PPOInputError("format", f"unknown format {fmt!r}; expected one of {list(FORMATS)}")
    fmt = fmt or detect(raw, filename)
    run = parse(raw, fmt)
    metrics: dict[str, dict[str, Any]] = {}
    canonical: dict[str, tuple[list[int], list[float]]] = {}
    unmapped: list[str] = []
    nonfinite: dict[str, int] = {}
    all_steps: set[int] = set()
    for name, series in run.series.items():
        order = sorted(range(len(series.steps)), key=series.steps.__getitem__)
        steps = [series.steps[i] for i in order]
        values = [series.values[i] for i in order]
        all_steps.update(steps)
        bad = next((s for s, v in zip(steps, values, strict=True) if not math.isfinite(v)), None)
        alias = lookup(name)
        if alias is None or alias.canonical in canonical:
            unmapped.append(name)
            if bad is not None:
                nonfinite[name] = bad
            continue
        if alias.scale != 1.0:
            values = [v * alias.scale for v in values]
        canonical[alias.canonical] = (steps, values)
        if bad is not None:
            nonfinite[alias.canonical] = bad
        metrics[alias.canonical] = {"source": name, "steps": steps, "values": _clean(values)}
    findings = [
        {
            "code": f.code,
            "severity": f.severity,
            "message": f.message,
            "step": f.step,
            "metric": f.metric,
            "panel": f.panel,
        }
        for f in run_findings(canonical, nonfinite)
    ]
    return {
        "format": fmt,
        "steps": len(all_steps),
        "metrics": metrics,
        "unmapped": sorted(unmapped),
        "findings": findings,
    }
