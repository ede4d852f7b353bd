"""Curves for teaching: the clipped objective against the ratio, the value loss against the
prediction. These are *objectives* where the name says so (PPO's ``L^CLIP``, to maximise)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ppo_core._checks import PPOInputError, check_positive
from ppo_core.numerics import log_ratio_limit
from ppo_core.policy import (
    POLICY_LOSS_MODES,
    CispoClip,
    ClipBounds,
    ElementBounds,
    clip_bounds,
    clipped_surrogate,
    policy_terms,
)
from ppo_core.value import value_loss

MAX_CURVE_POINTS = 10_000


def _check_grid(low: float, high: float, points: int, low_name: str, high_name: str) -> None:
    if not (points >= 2 and points <= MAX_CURVE_POINTS):
        raise PPOInputError("points", f"must be in [2, {MAX_CURVE_POINTS}], got {points}")
    if not high > low:
        raise PPOInputError(high_name, f"must be greater than {low_name} ({low}), got {high}")


def _grid(low: float, high: float, points: int, low_name: str, high_name: str) -> Tensor:
    _check_grid(low, high, points, low_name, high_name)
    return torch.linspace(low, high, points, dtype=torch.float64)


@dataclass(frozen=True)
class ClipPoint:
    """The objective and its gradient at one chosen ratio."""

    ratio: float
    objective: float
    gradient: float
    clipped: bool
    """The gradient is exactly 0 for a non-zero advantage: a clip (or the dual clip) binds."""


@dataclass(frozen=True)
class ClipObjectiveCurve:
    """PPO objective pieces sampled over ratios (objective sign: higher is better)."""

    ratio: Tensor
    unclipped: Tensor
    """``r A``."""
    clipped: Tensor
    """``clip(r, 1-eps_low, 1+eps_high) A``."""
    objective: Tensor
    """``min(r A, clip(r) A)``, then ``max(., c A)`` for ``A < 0`` with dual clip."""
    gradient: Tensor
    """``d objective / d r`` by autograd: 0 where the clip is active."""
    bounds: ClipBounds
    point: ClipPoint | None = None
    """The same at ``at``, when asked for."""


@dataclass(frozen=True)
class ClipCurveSpec:
    """One clip-objective curve to compute, its knobs checked (:func:`clip_curve_spec`)."""

    advantage: float
    bounds: ClipBounds
    ratio_min: float
    ratio_max: float
    points: int
    at: float | None = None


def clip_curve_spec(
    epsilon: float = 0.2,
    advantage: float = 1.0,
    *,
    ratio_min: float = 0.5,
    ratio_max: float = 1.5,
    points: int = 100,
    epsilon_low: float | None = None,
    epsilon_high: float | None = None,
    dual_clip: float | None = None,
    at: float | None = None,
) -> ClipCurveSpec:
    """Check the knobs of one curve (a :class:`PPOInputError` naming the first bad one)."""
    if not (ratio_min >= 0):
        raise PPOInputError("ratio_min", f"must be >= 0, got {ratio_min}")
    if at is not None and not (math.isfinite(at) and at >= 0):
        raise PPOInputError("at", f"must be a finite ratio >= 0, got {at}")
    bounds = clip_bounds(epsilon, epsilon_low, epsilon_high, dual_clip)
    _check_grid(ratio_min, ratio_max, points, "ratio_min", "ratio_max")
    return ClipCurveSpec(float(advantage), bounds, ratio_min, ratio_max, points, at)


@dataclass(frozen=True)
class ClipCurveBatch:
    """Many clip-objective curves side by side: curve ``i`` is ``[starts[i], starts[i] +
    specs[i].points)`` of each flat tensor (:meth:`curve` gives it as a
    :class:`ClipObjectiveCurve`)."""

    specs: tuple[ClipCurveSpec, ...]
    starts: tuple[int, ...]
    ratio: Tensor
    unclipped: Tensor
    clipped: Tensor
    objective: Tensor
    gradient: Tensor
    points: tuple[ClipPoint | None, ...]
    """Each curve's readout at its ``at`` ratio (``None`` without one)."""

    def __len__(self) -> int:
        return len(self.specs)

    def curve(self, i: int) -> ClipObjectiveCurve:
        part = slice(self.starts[i], self.starts[i] + self.specs[i].points)
        return ClipObjectiveCurve(
            ratio=self.ratio[part],
            unclipped=self.unclipped[part],
            clipped=self.clipped[part],
            objective=self.objective[part],
            gradient=self.gradient[part],
            bounds=self.specs[i].bounds,
            point=self.points[i],
        )


def clip_objective_curves(specs: Sequence[ClipCurveSpec]) -> ClipCurveBatch:
    """Many clip-objective curves from one forward and one autograd pass.

    Every curve's grid, then every ``at`` ratio, sit side by side in one flat tensor, with
    each curve's advantage and bounds repeated per element
    (:class:`ppo_core.policy.ElementBounds`). The rule is elementwise, so each curve is bit
    for bit what it is computed alone: the server answers queries that arrive together this
    way (``app.batching``). Curves on the same axis share one ``linspace``.
    """
    specs = tuple(specs)
    grids: dict[tuple[float, float, int], Tensor] = {}
    pieces = []
    for s in specs:
        axis = (s.ratio_min, s.ratio_max, s.points)
        grid = grids.get(axis)
        if grid is None:
            grid = grids[axis] = torch.linspace(*axis, dtype=torch.float64)
        pieces.append(grid)
    with_at = [s for s in specs if s.at is not None]
    flat = torch.cat([*pieces, torch.tensor([s.at for s in with_at], dtype=torch.float64)])
    counts = [s.points for s in specs] + [1] * len(with_at)
    # Each curve's knobs, one column per curve (then per `at`), repeated over its elements:
    # rows advantage, low, high, dual clip (NumPy's repeat: a third of torch's cost here).
    dual = any(s.bounds.dual_clip is not None for s in specs)
    knobs = [
        (s.advantage, s.bounds.low, s.bounds.high, s.bounds.dual_clip or math.inf)
        for s in (*specs, *with_at)
    ]
    per_element = np.array(knobs, dtype=np.float64).reshape(-1, 4).T
    adv, low, high, dual_clip = torch.from_numpy(np.repeat(per_element, counts, axis=1))
    ratio = flat.detach().requires_grad_(True)  # a leaf of its own: `flat` never requires grad
    bounds = ElementBounds(low, high, dual_clip if dual else None)
    objective = -clipped_surrogate(ratio, adv, bounds).loss
    (gradient,) = torch.autograd.grad(objective.sum(), ratio)
    objective = objective.detach()
    starts = [0]
    for s in specs:
        starts.append(starts[-1] + s.points)
    at_values = iter(
        zip(objective[starts[-1] :].tolist(), gradient[starts[-1] :].tolist(), strict=True)
    )
    points: list[ClipPoint | None] = []
    for s in specs:
        if s.at is None:
            points.append(None)
            continue
        at_objective, at_gradient = next(at_values)
        clipped = at_gradient == 0.0 and s.advantage != 0.0
        points.append(ClipPoint(s.at, at_objective, at_gradient, clipped))
    return ClipCurveBatch(
        specs=specs,
        starts=tuple(starts[:-1]),
        ratio=flat,
        unclipped=flat * adv,
        clipped=flat.clamp(low, high) * adv,
        objective=objective,
        gradient=gradient,
        points=tuple(points),
    )


def clip_objective_curve(
    epsilon: float = 0.2,
    advantage: float = 1.0,
    *,
    ratio_min: float = 0.5,
    ratio_max: float = 1.5,
    points: int = 100,
    epsilon_low: float | None = None,
    epsilon_high: float | None = None,
    dual_clip: float | None = None,
    at: float | None = None,
) -> ClipObjectiveCurve:
    """The PPO paper's figure (and the seed's): clipped objective vs probability ratio.

    Formula: ``L(r) = min(r A, clip(r, 1 - eps_low, 1 + eps_high) A)``, with dual clip
    ``L = max(L, c A)`` for ``A < 0``. Same rule as :func:`ppo_core.policy.policy_loss` (it is
    the negated per-token loss), so the curve and the API's losses cannot disagree. With
    ``at``, the objective and gradient at that ratio come from the same autograd pass.

    Examples:
        >>> c = clip_objective_curve(0.2, 1.0, ratio_min=1.0, ratio_max=1.4, points=3, at=1.3)
        >>> c.objective.tolist(), c.gradient.tolist()
        ([1.0, 1.2, 1.2], [1.0, 1.0, 0.0])
        >>> c.point
        ClipPoint(ratio=1.3, objective=1.2, gradient=0.0, clipped=True)
    """
    spec = clip_curve_spec(
        epsilon,
        advantage,
        ratio_min=ratio_min,
        ratio_max=ratio_max,
        points=points,
        epsilon_low=epsilon_low,
        epsilon_high=epsilon_high,
        dual_clip=dual_clip,
        at=at,
    )
    return clip_objective_curves([spec]).curve(0)


@dataclass(frozen=True)
class ValueLossCurve:
    """Value loss (scale 1) vs prediction ``V`` for fixed ``R`` and ``V_old``."""

    prediction: Tensor
    unclipped: Tensor
    """``(V - R)^2``."""
    clipped_max: Tensor
    """``max((V - R)^2, (V_clip - R)^2)`` (seed / CleanRL / verl / TRL)."""
    clipped_only: Tensor
    """``(V_clip - R)^2`` (Stable-Baselines3)."""
    clip_low: float
    clip_high: float


def value_loss_curve(
    returns: float = 1.0,
    old_value: float = 0.0,
    clip_range: float = 0.2,
    *,
    prediction_min: float = -2.0,
    prediction_max: float = 3.0,
    points: int = 200,
) -> ValueLossCurve:
    """Squared error vs prediction, unclipped and clipped around ``old_value``.

    Examples:
        >>> c = value_loss_curve(1.0, 0.0, 0.2, prediction_min=0.0, prediction_max=1.0, points=2)
        >>> curves = (c.unclipped, c.clipped_max, c.clipped_only)
        >>> [[round(x, 2) for x in t.tolist()] for t in curves]
        [[1.0, 0.0], [1.0, 0.64], [1.0, 0.64]]
    """
    check_positive("clip_range", clip_range)
    v = _grid(prediction_min, prediction_max, points, "prediction_min", "prediction_max")
    r = torch.full_like(v, float(returns))
    old = torch.full_like(v, float(old_value))
    unclipped = value_loss(v, r).per_token_loss
    as_max = value_loss(v, r, old, clip_range=clip_range, mode="max").per_token_loss
    as_clipped = value_loss(v, r, old, clip_range=clip_range, mode="clipped").per_token_loss
    return ValueLossCurve(
        prediction=v,
        unclipped=unclipped,
        clipped_max=as_max,
        clipped_only=as_clipped,
        clip_low=old_value - clip_range,
        clip_high=old_value + clip_range,
    )


@dataclass(frozen=True)
class ObjectiveCurve:
    """One ``policy_loss_mode``'s per-token objective and gradient weight against the ratio."""

    objective: Tensor
    """``-loss`` of a one-token sequence with ``log pi_old = 0`` (so ``log pi = log r``)."""
    gradient_weight: Tensor
    """``d objective / d log pi``: how hard the update pushes this token's log-prob."""
    band: tuple[float, float] | None
    """The ratio interval where the mode's clip leaves the gradient alone (vanilla / gspo:
    ``[1-eps_low, 1+eps_high]``; geo_mean: ``[e^-eps_low, e^eps_high]``, a log-space clip;
    cispo: the band of its weight, or ``[0, cap]`` with ``cispo_clip="absolute"``); ``None``
    for sapo and gpg, which do not clip."""


def objective_curves(
    modes: Sequence[str],
    advantage: float = 1.0,
    *,
    epsilon: float = 0.2,
    epsilon_low: float | None = None,
    epsilon_high: float | None = None,
    dual_clip: float | None = None,
    sapo_tau_pos: float = 1.0,
    sapo_tau_neg: float = 1.05,
    cispo_clip: CispoClip = "band",
    ratio_min: float = 0.5,
    ratio_max: float = 1.5,
    points: int = 101,
) -> tuple[Tensor, dict[str, ObjectiveCurve]]:
    """The policy-loss family side by side: objective and gradient weight vs the ratio.

    Each point is a one-token sequence with ratio ``r``, ``log pi_old = 0`` and advantage
    ``A``, run through :func:`ppo_core.policy.policy_loss`; so GSPO coincides with PPO's clip
    here (its sequence ratio is the token's) and GMPO differs only by clipping in log space
    (band ``[e^-eps_low, e^eps_high]``); CISPO's and GPG's objectives include
    ``log pi = log r``. The gradient weight ``d objective / d log pi`` is the
    autograd gradient: PPO's is ``r A`` inside the trust region and 0 where the clip binds,
    CISPO's ``clip(r) A`` never vanishes, SAPO's fades smoothly, GPG's is ``A`` everywhere.

    Returns:
        ``(ratio grid, {mode: ObjectiveCurve})``.

    Examples:
        >>> r, c = objective_curves(["vanilla", "cispo"], 1.0, ratio_min=1.0, ratio_max=1.4,
        ...                         points=3)
        >>> c["vanilla"].gradient_weight.tolist(), c["cispo"].gradient_weight.tolist()
        ([1.0, 1.2, 0.0], [1.0, 1.2, 1.2])
    """
    for mode in modes:
        if mode not in POLICY_LOSS_MODES:
            raise PPOInputError(
                "modes", f"unknown mode {mode!r}; expected some of {list(POLICY_LOSS_MODES)}"
            )
    if not modes:
        raise PPOInputError("modes", "give at least one policy_loss_mode")
    if not ratio_min > 0:
        raise PPOInputError("ratio_min", f"must be > 0 (log r is needed), got {ratio_min}")
    if not math.isfinite(advantage):
        raise PPOInputError("advantage", f"must be finite, got {advantage}")
    grid = _grid(ratio_min, ratio_max, points, "ratio_min", "ratio_max")
    bounds = clip_bounds(epsilon, epsilon_low, epsilon_high, dual_clip)
    check_positive("sapo_tau_pos", sapo_tau_pos)
    check_positive("sapo_tau_neg", sapo_tau_neg)
    no_dual = clip_bounds(epsilon, epsilon_low, epsilon_high, None)
    old = torch.zeros(points, 1, dtype=grid.dtype)
    adv = torch.full((points, 1), float(advantage), dtype=grid.dtype)
    # All modes in one autograd pass over a [points, modes] leaf: each column is one mode's
    # one-token sequences (policy_terms: the same per-token rule as policy_loss, without its
    # diagnostics, which the curves do not use).
    leaf = grid.log().unsqueeze(-1).repeat(1, len(modes)).requires_grad_(True)
    columns = []
    for j, mode in enumerate(modes):
        terms = policy_terms(
            leaf[:, j : j + 1],
            old,
            adv,
            None,
            policy_loss_mode=mode,  # type: ignore[arg-type]
            bounds=bounds if mode in ("vanilla", "gspo") else no_dual,
            limit=log_ratio_limit(grid.dtype),
            sapo_tau_pos=sapo_tau_pos,
            sapo_tau_neg=sapo_tau_neg,
            cispo_clip=cispo_clip,
            gspo_stop_gradient=True,
            gspo_log_ratio_max=None,
        )
        columns.append(-terms.loss)
    objective = torch.cat(columns, dim=1)
    (grad,) = torch.autograd.grad(objective.sum(), leaf, allow_unused=True)
    weight = torch.zeros_like(leaf) if grad is None else grad
    objective = objective.detach()
    out = {
        mode: ObjectiveCurve(
            objective=objective[:, j],
            gradient_weight=weight[:, j],
            band=_band(mode, bounds, cispo_clip),
        )
        for j, mode in enumerate(modes)
    }
    return grid, out


def _band(mode: str, bounds: ClipBounds, cispo_clip: str) -> tuple[float, float] | None:
    """See :attr:`ObjectiveCurve.band`."""
    if mode in ("vanilla", "gspo") or (mode == "cispo" and cispo_clip == "band"):
        return (bounds.low, bounds.high)
    if mode == "cispo":
        return (0.0, bounds.eps_high)
    if mode == "geo_mean":
        return (math.exp(-bounds.eps_low), math.exp(bounds.eps_high))
    return None
