"""A run's report: the log read, its metrics mapped onto canonical names, and the findings.
Computed per request in a worker process; nothing is kept."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from app.runs.findings import run_findings
from app.runs.formats import FORMATS, detect, parse
from app.runs.metric_map import lookup
from ppo_core import PPOInputError

MAX_POINTS = 5000
"""Most points sent per metric; longer series are decimated (findings use every point)."""


def _clean(values: np.ndarray) -> list[float | None]:
    out: list[float | None] = values.tolist()
    if np.isfinite(values).all():
        return out
    return [v if math.isfinite(v) else None for v in out]  # type: ignore[arg-type]


def decimate(
    steps: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray, limit: int = MAX_POINTS
) -> list[int]:
    """Indices to plot: all of them up to ``limit``, else per bucket of consecutive points the
    minimum, the maximum and the first non-finite one, in order, so spikes and NaN survive.

    Examples:
        >>> decimate(list(range(8)), [0, 5, 1, 1, 1, -3, 1, 1], limit=4)
        [0, 1, 4, 5]
    """
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if n <= limit:
        return list(range(n))
    size = math.ceil(n / (limit // 2))
    buckets = math.ceil(n / size)
    pad = buckets * size - n
    finite = np.concatenate([np.isfinite(v), np.zeros(pad, dtype=bool)]).reshape(buckets, size)
    padded = np.concatenate([v, np.zeros(pad)]).reshape(buckets, size)
    base = np.arange(buckets) * size
    has_finite = finite.any(axis=1)
    lo = np.where(finite, padded, np.inf).argmin(axis=1) + base  # first minimum, as min()
    hi = np.where(finite, padded, -np.inf).argmax(axis=1) + base
    bad = ~finite.copy()
    if pad:
        bad[-1, size - pad :] = False  # the padding is not a point
    has_bad = bad.any(axis=1)
    first_bad = bad.argmax(axis=1) + base
    keep = np.concatenate([lo[has_finite], hi[has_finite], first_bad[has_bad]])
    return np.unique(keep).tolist()  # type: ignore[no-any-return]


def build_report(raw: bytes, filename: str, fmt: str | None) -> dict[str, Any]:
    """The ``POST /api/v1/runs/report`` answer for one log file (format detected when
    ``fmt`` is None)."""
    if raw.isspace() or not raw:
        raise PPOInputError("file", "is empty")
    if fmt is not None and fmt not in FORMATS:
        raise PPOInputError("format", f"unknown format {fmt!r}; expected one of {list(FORMATS)}")
    fmt = fmt or detect(raw, filename)
    run = parse(raw, fmt, wanted=lambda name: lookup(name) is not None)
    if not run.series:
        raise PPOInputError("file", f"no numeric metric found in this {fmt} log")
    metrics: dict[str, dict[str, Any]] = {}
    canonical: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    unmapped: list[str] = []
    nonfinite: dict[str, int] = {}
    all_steps: list[np.ndarray] = []
    for name, series in run.series.items():
        steps = np.asarray(series.steps, dtype=np.int64)
        values = np.asarray(series.values, dtype=np.float64)
        if len(steps) > 1 and (np.diff(steps) < 0).any():  # a log written out of order
            order = np.argsort(steps, kind="stable")
            steps, values = steps[order], values[order]
        all_steps.append(steps)
        finite = np.isfinite(values)
        bad = None if finite.all() else int(steps[np.argmin(finite)])
        alias = lookup(name)
        if alias is None or alias.canonical in canonical:
            unmapped.append(name)
            if bad is not None:
                nonfinite[name] = bad
            continue
        if alias.scale != 1.0:
            values = values * alias.scale
        canonical[alias.canonical] = (steps, values)
        if bad is not None:
            nonfinite[alias.canonical] = bad
        shown = np.asarray(decimate(steps, values), dtype=np.int64)
        metrics[alias.canonical] = {
            "source": name,
            "points": len(values),
            "steps": steps[shown].tolist(),
            "values": _clean(values[shown]),
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
        "steps": len(np.unique(np.concatenate(all_steps))) if all_steps else 0,
        "metrics": metrics,
        "unmapped": sorted(unmapped),
        "findings": findings,
    }
