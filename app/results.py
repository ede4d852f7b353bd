"""Results as response data: every number checked finite (a 422 naming the quantity that
overflowed, never a NaN in JSON), and the shapes several routes share."""

from __future__ import annotations

import math
from typing import Any

import torch

from app.schemas import BreakdownOut, LossDiagnostics, PolicyDiagnostics
from ppo_core import Convention, PPOInputError
from ppo_core.policy import PolicyLossOutput
from ppo_core.total import TotalLossOutput


def finite(name: str, value: float) -> float:
    """Refuse a non-finite result with a 422 that says which quantity overflowed."""
    if not math.isfinite(value):
        hint = "send smaller values"
        if name in _RATIO_BOUNDED:
            hint = "bound it with log_ratio_clamp or dual_clip, or send smaller values"
        raise PPOInputError(
            name, f"result is {value}: it overflows float64 for these inputs ({hint})"
        )
    return value


_RATIO_BOUNDED = {
    "loss",
    "per_token_loss",
    "policy_loss",
    "total_loss",
    "logprob_gradient",
    "ratio",
    "ratio_max",
    "ratio_mean",
    "approx_kl_k3",
}
"""Results that a log-ratio clamp or a dual clip bounds (the hint of :func:`finite`)."""


def finite_or_none(name: str, value: float | None) -> float | None:
    """:func:`finite` for an optional result (``None`` passes through)."""
    return None if value is None else finite(name, value)


def finite_list(name: str, t: torch.Tensor) -> Any:
    """``t.tolist()`` after checking every entry is finite."""
    if not bool(torch.isfinite(t).all()):
        finite(name, float(t[~torch.isfinite(t)].flatten()[0]))
    return t.tolist()


def breakdown(res: TotalLossOutput, c: Convention) -> BreakdownOut:
    """The stacked terms of a total loss: policy + vf·value - ent·H (+ kl·KL)."""
    entropy = 0.0 if res.entropy is None else finite("entropy", float(res.entropy.detach()))
    kl = None if res.kl is None else finite("kl", float(res.kl.detach()))
    value = finite("value_loss", float(res.value.loss.detach()))
    return BreakdownOut(
        policy_loss=finite("policy_loss", float(res.policy.loss.detach())),
        value_loss=value,
        entropy=entropy,
        value_term=c.vf_coef * value,
        entropy_term=-c.entropy_coef * entropy,
        kl=kl,
        kl_term=c.kl_coef * kl if res.kl_in_loss and kl is not None else 0.0,
        total_loss=finite("total_loss", float(res.total_loss.detach())),
    )


def policy_diagnostics(p: PolicyLossOutput) -> PolicyDiagnostics:
    """The policy loss's diagnostics, each checked finite (the one place they are shaped)."""
    return PolicyDiagnostics(
        clip_fraction=p.clip_fraction,
        clip_fraction_lower=p.clip_fraction_lower,
        ratio_outside_fraction=p.ratio_outside_fraction,
        approx_kl=finite("approx_kl", p.approx_kl),
        approx_kl_k2=finite("approx_kl_k2", p.approx_kl_k2),
        approx_kl_k3=finite("approx_kl_k3", p.approx_kl_k3),
        ratio_min=finite("ratio_min", p.ratio_min),
        ratio_mean=finite("ratio_mean", p.ratio_mean),
        ratio_max=finite("ratio_max", p.ratio_max),
    )


def loss_diagnostics(res: TotalLossOutput) -> LossDiagnostics:
    """Policy diagnostics plus explained variance, each checked finite."""
    return LossDiagnostics(
        **policy_diagnostics(res.policy).model_dump(),
        explained_variance=finite_or_none("explained_variance", res.explained_variance),
    )
