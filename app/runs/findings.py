"""What went wrong in a run: rules over its canonical metric series, each documented (rule,
threshold, why) in ``docs/runs.md`` and linked to the page panel that teaches the idea."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Severity = Literal["info", "warning", "error"]

ENTROPY_COLLAPSE_SHARE = 0.1
"""entropy_collapse: entropy below this share of its early value (median of the first 10 %)."""
KL_SPIKE_FACTOR = 10.0
KL_SPIKE_WINDOW = 20
KL_SPIKE_FLOOR = 0.01
"""kl_spike: a value over 10x the median of the previous 20 and over 0.01."""
CLIP_FRACTION_HIGH = 0.3
SUSTAINED = 5
"""clip_fraction_high: above 0.3 on 5 consecutive logged steps."""
EV_SUSTAINED = 10
"""explained_variance_negative: below 0 on 10 consecutive logged steps."""
KL_RUNAWAY_FACTOR = 5.0
KL_RUNAWAY_FLOOR = 0.1
"""reward_up_kl_runaway: the last quarter's mean KL to the reference over 5x the first
quarter's and over 0.1, at its maximum at the end, while the mean reward rose."""
LENGTH_CAP_TOLERANCE = 0.01
"""length_at_cap: every mean length of the last quarter within 1 % of the run's maximum."""
MIN_POINTS = 5


@dataclass(frozen=True)
class RunFinding:
    code: str
    severity: Severity
    message: str
    step: int | None
    metric: str | None
    panel: str | None


def run_findings(
    metrics: Mapping[str, tuple[Sequence[int] | np.ndarray, Sequence[float] | np.ndarray]],
    nonfinite: dict[str, int],
) -> list[RunFinding]:
    """Every rule on the canonical series ``{name: (steps, values)}``; ``nonfinite`` maps any
    metric (mapped or not) to the first step where it was NaN / inf.

    Examples:
        >>> s = list(range(20))
        >>> [f.code for f in run_findings({"clip_fraction": (s, [0.0] * 20)}, {})]
        ['clip_fraction_zero']
    """
    out: list[RunFinding] = []
    for name, step in nonfinite.items():
        out.append(
            RunFinding(
                "nonfinite",
                "error",
                f"{name} is NaN or infinite from step {step}: the loss or a ratio overflowed "
                "(stale or mismatched log-probs, an unclamped log-ratio, a too-high lr).",
                step,
                name,
                "clip",
            )
        )
    finite = {k: _finite(st, vs) for k, (st, vs) in metrics.items()}
    out += _entropy_collapse(finite.get("entropy"))
    for name in ("approx_kl", "kl_to_reference"):
        out += _kl_spike(finite.get(name), name)
    out += _clip_fraction(finite.get("clip_fraction"))
    out += _explained_variance(finite.get("explained_variance"))
    out += _kl_runaway(finite.get("reward_mean"), finite.get("kl_to_reference"))
    out += _length_at_cap(finite.get("response_length_mean"))
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(out, key=lambda f: (order[f.severity], f.step if f.step is not None else -1))


Points = tuple[np.ndarray, np.ndarray] | None
"""A series' finite points: steps (int64) and values (float64), in step order."""


def _finite(steps: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray) -> Points:
    st = np.asarray(steps, dtype=np.int64)
    vs = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(vs)
    return (st, vs) if keep.all() else (st[keep], vs[keep])


def _first_run(condition: np.ndarray, length: int) -> int | None:
    """The index where ``condition`` first holds on ``length`` consecutive points."""
    if len(condition) < length:
        return None
    full = sliding_window_view(condition, length).all(axis=1)
    return int(np.argmax(full)) if full.any() else None


def _entropy_collapse(series: Points) -> list[RunFinding]:
    if series is None or len(series[1]) < MIN_POINTS:
        return []
    steps, values = series
    early = float(np.median(values[: max(MIN_POINTS, len(values) // 10)]))
    if early <= 0:
        return []
    below = values < ENTROPY_COLLAPSE_SHARE * early
    if not below.any():
        return []
    i = int(np.argmax(below))
    s, v = int(steps[i]), float(values[i])
    return [
        RunFinding(
            "entropy_collapse",
            "warning",
            f"entropy fell to {v:.4g} at step {s}, under {ENTROPY_COLLAPSE_SHARE:.0%} of "
            f"its early {early:.4g}: the policy became nearly deterministic and stops "
            "exploring (raise the entropy bonus, lower the lr, clip higher).",
            s,
            "entropy",
            "entropy",
        )
    ]


def _kl_spike(series: Points, name: str) -> list[RunFinding]:
    if series is None or len(series[1]) <= KL_SPIKE_WINDOW:
        return []
    steps, values = series
    windows = sliding_window_view(values[:-1], KL_SPIKE_WINDOW)  # windows[j] precedes j + W
    current = values[KL_SPIKE_WINDOW:]
    # The median is at least the minimum: most points are ruled out without a median.
    candidates = np.flatnonzero(
        (current > KL_SPIKE_FLOOR)
        & (current > KL_SPIKE_FACTOR * np.maximum(windows.min(axis=1), 0.0))
    )
    if not len(candidates):
        return []
    bases = np.median(windows[candidates], axis=1)
    spikes = np.flatnonzero(current[candidates] > KL_SPIKE_FACTOR * np.maximum(bases, 0.0))
    if not len(spikes):
        return []
    j = int(candidates[spikes[0]])
    v, base = float(current[j]), float(bases[spikes[0]])
    s = int(steps[j + KL_SPIKE_WINDOW])
    return [
        RunFinding(
            "kl_spike",
            "warning",
            f"{name} jumped to {v:.4g} at step {s}, over {KL_SPIKE_FACTOR:g}x its "
            f"running median {base:.3g}: one update moved the policy far (a bad batch, "
            "a learning-rate step, rollout / training mismatch).",
            s,
            name,
            "kl",
        )
    ]


def _clip_fraction(series: Points) -> list[RunFinding]:
    if series is None or len(series[1]) < MIN_POINTS:
        return []
    steps, values = series
    if not values.any():
        return [
            RunFinding(
                "clip_fraction_zero",
                "info",
                "the clip fraction is 0 on every step: with one epoch on fresh rollouts the "
                "ratio is 1 and the clip never acts (PPO is then plain policy gradient).",
                None,
                "clip_fraction",
                "clip",
            )
        ]
    i = _first_run(values > CLIP_FRACTION_HIGH, SUSTAINED)
    if i is None:
        return []
    s = int(steps[i])
    return [
        RunFinding(
            "clip_fraction_high",
            "warning",
            f"the clip fraction stays above {CLIP_FRACTION_HIGH} from step {s}: most "
            "tokens get no gradient; the updates are too large for ε.",
            s,
            "clip_fraction",
            "clip",
        )
    ]


def _explained_variance(series: Points) -> list[RunFinding]:
    if series is None:
        return []
    steps, values = series
    i = _first_run(values < 0, EV_SUSTAINED)
    if i is None:
        return []
    s = int(steps[i])
    return [
        RunFinding(
            "explained_variance_negative",
            "warning",
            f"explained variance stays below 0 from step {s}: the critic predicts "
            "returns worse than their mean, so its advantages are noise.",
            s,
            "explained_variance",
            "value",
        )
    ]


def _quarters(values: np.ndarray) -> tuple[float, float]:
    q = max(1, len(values) // 4)
    return float(values[:q].mean()), float(values[-q:].mean())


def _kl_runaway(reward: Points, kl: Points) -> list[RunFinding]:
    if reward is None or kl is None or min(len(reward[1]), len(kl[1])) < 2 * MIN_POINTS:
        return []
    r_first, r_last = _quarters(reward[1])
    k_first, k_last = _quarters(kl[1])
    growing = k_last > KL_RUNAWAY_FLOOR and k_last > KL_RUNAWAY_FACTOR * max(k_first, 1e-12)
    at_max = bool(kl[1][-1] >= 0.9 * kl[1].max())
    if r_last > r_first and growing and at_max:
        return [
            RunFinding(
                "reward_up_kl_runaway",
                "warning",
                f"the reward rose ({r_first:.3g} -> {r_last:.3g}) while the KL to the reference "
                f"kept growing ({k_first:.3g} -> {k_last:.3g}): the policy may be exploiting the "
                "reward model; raise the KL coefficient or stop earlier.",
                int(kl[0][-1]),
                "kl_to_reference",
                "kl",
            )
        ]
    return []


def _length_at_cap(series: Points) -> list[RunFinding]:
    if series is None or len(series[1]) < 2 * MIN_POINTS:
        return []
    steps, values = series
    top = float(values.max())
    q = max(MIN_POINTS, len(values) // 4)
    pinned = (1 - LENGTH_CAP_TOLERANCE) * top
    if top > 0 and bool((values[-q:] >= pinned).all()):
        below = np.flatnonzero(values < pinned)  # back to where it reached the cap
        first = int(below[-1]) + 1 if len(below) else 0
        s = int(steps[first])
        return [
            RunFinding(
                "length_at_cap",
                "warning",
                f"the mean response length is pinned at its maximum ({top:.4g}) from step {s}: "
                "answers are cut at the generation limit (truncated answers, length bias in the "
                "loss aggregation).",
                s,
                "response_length_mean",
                "family",
            )
        ]
    return []
