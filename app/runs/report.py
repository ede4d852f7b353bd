"""A run's report: the log read, its metrics mapped onto canonical names, and the findings.
Computed per request in a worker process; nothing is kept."""

from __future__ import annotations

import math
from typing import Any

from app.runs.findings import run_findings
from app.runs.formats import FORMATS, detect, parse
from app.runs.metric_map import lookup
from ppo_core import PPOInputError

MAX_POINTS = 5000
"""Most points sent per metric; longer series are decimated (findings use every point)."""


def _clean(values: list[float]) -> list[float | None]:
    if math.isfinite(sum(values)):
        return list(values)
    return [v if math.isfinite(v) else None for v in values]


def decimate(steps: list[int], values: list[float], limit: int = MAX_POINTS) -> list[int]:
    """Indices to plot: all of them up to ``limit``, else per bucket of consecutive points the
    minimum, the maximum and the first non-finite one, in order, so spikes and NaN survive.

    Examples:
        >>> decimate(list(range(8)), [0, 5, 1, 1, 1, -3, 1, 1], limit=4)
        [0, 1, 4, 5]
    """
    n = len(values)
    if n <= limit:
        return list(range(n))
    size = math.ceil(n / (limit // 2))
    keep: list[int] = []
    for start in range(0, n, size):
        idx = range(start, min(start + size, n))
        finite = [i for i in idx if math.isfinite(values[i])]
        chosen = set()
        if finite:
            chosen.add(min(finite, key=values.__getitem__))
            chosen.add(max(finite, key=values.__getitem__))
        bad = next((i for i in idx if not math.isfinite(values[i])), None)
        if bad is not None:
            chosen.add(bad)
        keep.extend(sorted(chosen))
    return keep


def build_report(raw: bytes, filename: str, fmt: str | None) -> dict[str, Any]:
    """The ``POST /api/v1/runs/report`` answer for one log file (format detected when
    ``fmt`` is None)."""
    if not raw.strip():
        raise PPOInputError("file", "is empty")
    if fmt is not None and fmt not in FORMATS:
        raise PPOInputError("format", f"unknown format {fmt!r}; expected one of {list(FORMATS)}")
    fmt = fmt or detect(raw, filename)
    run = parse(raw, fmt, wanted=lambda name: lookup(name) is not None)
    metrics: dict[str, dict[str, Any]] = {}
    canonical: dict[str, tuple[list[int], list[float]]] = {}
    unmapped: list[str] = []
    nonfinite: dict[str, int] = {}
    all_steps: set[int] = set()
    for name, series in run.series.items():
        steps, values = series.steps, series.values
        if steps != sorted(steps):  # a log written out of order
            order = sorted(range(len(steps)), key=steps.__getitem__)
            steps, values = [steps[i] for i in order], [values[i] for i in order]
        all_steps.update(steps)
        bad = None
        if not math.isfinite(sum(values)):  # NaN / inf propagate through a sum (or it overflowed)
            bad = next(
                (s for s, v in zip(steps, values, strict=True) if not math.isfinite(v)), None
            )
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
        shown = decimate(steps, values)
        metrics[alias.canonical] = {
            "source": name,
            "points": len(values),
            "steps": [steps[i] for i in shown],
            "values": _clean([values[i] for i in shown]),
        }
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
