"""The clipped surrogate policy loss (PPO, Schulman et al. 2017) and its common variants.

Per token, with ratio
:math:`r = \\exp(\\log\\pi_\\theta - \\log\\pi_{old})` and advantage :math:`A`:

.. math::
    \\ell = -\\min\\big(r A,\\ \\mathrm{clip}(r, 1-\\epsilon_{low}, 1+\\epsilon_{high}) A\\big)

and, with dual clip :math:`c > 1` (Ye et al. 2020, "Mastering Complex Control in MOBA Games"),
for :math:`A < 0` only: :math:`\\ell = \\min(\\ell, -c A)`, which bounds the loss when
:math:`r \\gg 1`. This is a *loss* (to minimise): the PPO objective with its sign flipped.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ppo_core._checks import (
    PPOInputError,
    broadcast,
    check_positive,
    check_probability,
    check_same_shape,
    prepare_mask,
)
from ppo_core.aggregation import LossAggMode, aggregate, check_loss_agg_mode, masked_mean


@functools.cache
def log_ratio_limit(dtype: torch.dtype) -> float:
    """Largest log-ratio whose ``exp`` is finite in ``dtype`` (11.09 in float16, 88.72 in
    float32, 709.78 in float64). Log-ratios above it saturate there instead of overflowing.

    Examples:
        >>> log_ratio_limit(torch.float16)
        11.0859375
    """
    limit = torch.tensor(math.log(torch.finfo(dtype).max), dtype=dtype)
    while not bool(torch.isfinite(torch.exp(limit))):  # rounding may land just above the max
        limit = torch.nextafter(limit, torch.zeros_like(limit))
    return float(limit)


@dataclass(frozen=True)
class ClipBounds:
    """The trust region ``[low, high]`` of the ratio and the optional dual-clip constant."""

    low: float
    high: float
    dual_clip: float | None = None


def clip_bounds(
    clip_ratio: float = 0.2,
    clip_ratio_low: float | None = None,
    clip_ratio_high: float | None = None,
    dual_clip: float | None = None,
) -> ClipBounds:
    """Resolve symmetric / asymmetric epsilons into ratio bounds, checking each knob.

    ``clip_ratio_low`` and ``clip_ratio_high`` each fall back to ``clip_ratio`` when ``None``
    (verl's rule). Epsilons must lie in (0, 1); ``clip_ratio_high`` may exceed 1 (DAPO's
    "clip higher" uses values such as 0.28, but nothing forbids wider).

    Examples:
        >>> clip_bounds(0.2, clip_ratio_high=0.28)
        ClipBounds(low=0.8, high=1.28, dual_clip=None)
    """
    low = clip_ratio if clip_ratio_low is None else clip_ratio_low
    high = clip_ratio if clip_ratio_high is None else clip_ratio_high
    check_probability("clip_ratio", clip_ratio)
    check_probability("clip_ratio_low", low)
    check_positive("clip_ratio_high", high)
    if dual_clip is not None and not (math.isfinite(dual_clip) and dual_clip > 1.0):
        raise PPOInputError("dual_clip", f"must be a finite number > 1, got {dual_clip}")
    return ClipBounds(low=1.0 - low, high=1.0 + high, dual_clip=dual_clip)


@dataclass(frozen=True)
class SurrogateTerms:
    """Per-token pieces of the clipped surrogate, shared by the loss and the curves."""

    loss: Tensor
    """Per-token loss (negated objective) after clip and dual clip."""
    clipped_taken: Tensor
    """Bool: the clipped term is the one the max/min takes (strictly larger loss)."""
    dual_clip_taken: Tensor | None
    """Bool: the dual-clip bound ``-c A`` binds (A < 0 only); ``None`` without dual clip."""


def clipped_surrogate(ratio: Tensor, advantages: Tensor, bounds: ClipBounds) -> SurrogateTerms:
    """Per-token clipped-surrogate loss for given ratios (no reduction, no checks).

    The one implementation of the PPO clip rule: :func:`policy_loss` and the curves call it.
    """
    loss_unclipped = -advantages * ratio
    loss_clipped = -advantages * ratio.clamp(bounds.low, bounds.high)
    loss = torch.maximum(loss_unclipped, loss_clipped)
    clipped_taken = loss_clipped > loss_unclipped
    dual_taken = None
    if bounds.dual_clip is not None:
        dual_bound = -advantages * bounds.dual_clip
        dual_taken = (loss > dual_bound) & (advantages < 0)
        loss = torch.where(dual_taken, dual_bound, loss)
    return SurrogateTerms(loss=loss, clipped_taken=clipped_taken, dual_clip_taken=dual_taken)


@dataclass(frozen=True)
class PolicyLossOutput:
    """Result of :func:`policy_loss`: the loss (with autograd graph) and its diagnostics.

    Diagnostics are Python floats over the valid (mask = 1) tokens.
    """

    loss: Tensor
    per_token_loss: Tensor
    ratio: Tensor
    clip_fraction: float
    clip_fraction_lower: float
    ratio_outside_fraction: float
    approx_kl: float
    approx_kl_k2: float
    approx_kl_k3: float
    ratio_min: float
    ratio_mean: float
    ratio_max: float


def policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor | None = None,
    *,
    clip_ratio: float = 0.2,
    clip_ratio_low: float | None = None,
    clip_ratio_high: float | None = None,
    dual_clip: float | None = None,
    log_ratio_clamp: float | None = None,
    loss_agg_mode: LossAggMode = "token-mean",
) -> PolicyLossOutput:
    """PPO clipped surrogate *loss* per token, aggregated, with the usual diagnostics.

    Formula: ``loss_t = max(-A_t r_t, -A_t clip(r_t, 1-eps_low, 1+eps_high))``, then, with
    ``dual_clip = c``, ``loss_t = min(loss_t, -c A_t)`` where ``A_t < 0``; aggregated by
    ``loss_agg_mode`` (see :mod:`ppo_core.aggregation`). A loss: minimise it.

    Numerics: ``r = exp(log_ratio)`` with ``log_ratio`` clamped to ``±log_ratio_clamp`` when set
    (verl uses 20). Without it, ``log_ratio`` still saturates at :func:`log_ratio_limit` so that
    ``r`` stays finite and ``A = 0`` gives a loss of exactly 0 (never ``0 * inf = NaN``); for
    ``A < 0`` and a huge ratio the loss is then a huge finite number (or ``+inf`` when
    ``-A r`` itself exceeds the dtype), which is the true value of an unbounded loss: use dual
    clip or a clamp to bound it. Masked-out tokens never reach the result, even when infinite.

    Diagnostics accumulate in float64. k1 and k2 use the true log-ratio (clamped only by an
    explicit ``log_ratio_clamp``, as verl's ``ppo_kl``); k3 and the ratio statistics use the
    ratio the loss used (after saturation), so they stay finite.

    Diagnostics (floats, over valid tokens):

    * ``clip_fraction``: share where the clipped term is taken (verl ``pg_clipfrac``, TRL).
    * ``clip_fraction_lower``: share where dual clip binds (verl ``pg_clipfrac_lower``).
    * ``ratio_outside_fraction``: share with ``r`` outside ``[1-eps_low, 1+eps_high]``
      (CleanRL / SB3 ``clipfrac``: ``|r - 1| > eps``).
    * ``approx_kl``: k1 = mean of ``old - new`` log-probs (verl ``ppo_kl``).
    * ``approx_kl_k2``: mean of ``(log r)^2 / 2`` (TRL ``approxkl``).
    * ``approx_kl_k3``: mean of ``(r - 1) - log r`` (CleanRL / SB3 ``approx_kl``).
    * ``ratio_min`` / ``ratio_mean`` / ``ratio_max``.

    Args:
        logprobs: Log-probs of the taken actions under the current policy, ``[T]`` or ``[B, T]``.
        old_logprobs: Log-probs under the policy that collected the rollout (same shape).
        advantages: Advantage estimates (same shape).
        mask: Optional 0/1 mask of valid tokens (same shape).
        clip_ratio: Symmetric epsilon in (0, 1).
        clip_ratio_low: Lower epsilon (defaults to ``clip_ratio``).
        clip_ratio_high: Upper epsilon (defaults to ``clip_ratio``).
        dual_clip: Dual-clip constant ``c > 1``, or ``None`` for off.
        log_ratio_clamp: Clamp ``|log_ratio|`` before ``exp`` (e.g. 20.0), or ``None``.
        loss_agg_mode: How per-token losses become one number.

    Returns:
        A :class:`PolicyLossOutput`.

    Raises:
        PPOInputError: On a shape mismatch, bad mask, or out-of-range knob.

    Examples:
        >>> import torch
        >>> out = policy_loss(torch.log(torch.tensor([1.5, 0.5])), torch.zeros(2),
        ...                   torch.tensor([1.0, -1.0]))
        >>> out.per_token_loss  # r = 1.5 clipped to 1.2; r = 0.5 clipped to 0.8
        tensor([-1.2000,  0.8000])
        >>> out.clip_fraction, round(out.ratio_outside_fraction, 3)
        (1.0, 1.0)
    """
    check_same_shape("logprobs", logprobs, old_logprobs=old_logprobs, advantages=advantages)
    check_loss_agg_mode(loss_agg_mode)
    bounds = clip_bounds(clip_ratio, clip_ratio_low, clip_ratio_high, dual_clip)
    limit = log_ratio_limit(logprobs.dtype)
    if log_ratio_clamp is not None:
        check_positive("log_ratio_clamp", log_ratio_clamp)
        limit = min(limit, log_ratio_clamp)
    m = prepare_mask(mask, logprobs)

    raw_log_ratio = logprobs - old_logprobs
    log_ratio = raw_log_ratio.clamp(-limit, limit)
    ratio = torch.exp(log_ratio)
    terms = clipped_surrogate(ratio, advantages, bounds)
    loss = aggregate(terms.loss, m, loss_agg_mode)

    with torch.no_grad():
        # Means accumulate in float64, so huge ratios do not overflow a float32 sum; the
        # tensors stay in the input dtype (no float64 copies of a million-token batch).
        lr = log_ratio.detach()
        r = ratio.detach()
        kl_lr = raw_log_ratio.detach()
        if log_ratio_clamp is not None:
            kl_lr = kl_lr.clamp(-log_ratio_clamp, log_ratio_clamp)

        def mean(x: Tensor) -> float:
            return float(masked_mean(x, m, dtype=torch.float64))

        outside = (r < bounds.low) | (r > bounds.high)
        lower = 0.0
        if terms.dual_clip_taken is not None:
            lower = mean(terms.dual_clip_taken)
        if m is None:
            r_min, r_max = r.min(), r.max()
        else:
            valid = m > 0
            r_min = torch.where(valid, r, torch.inf).min()
            r_max = torch.where(valid, r, -torch.inf).max()
        return PolicyLossOutput(
            loss=loss,
            per_token_loss=terms.loss,
            ratio=ratio,
            clip_fraction=mean(terms.clipped_taken),
            clip_fraction_lower=lower,
            ratio_outside_fraction=mean(outside),
            approx_kl=-mean(kl_lr),
            approx_kl_k2=0.5 * mean(kl_lr * kl_lr),
            approx_kl_k3=mean(torch.expm1(lr) - lr),
            ratio_min=float(r_min),
            ratio_mean=mean(r),
            ratio_max=float(r_max),
        )


def compute_ppo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    clip_ratio: float = 0.2,
) -> torch.Tensor:
    """The seed tutorial's PPO clipped surrogate loss (same name, signature and numbers).

    Formula: ``-mean(min(r A, clip(r, 1-eps, 1+eps) A))`` with ``r = exp(logprobs - old)``.
    A loss: the negated PPO objective. Inputs broadcast against each other as in the seed.

    Examples:
        >>> import torch
        >>> compute_ppo_loss(torch.log(torch.tensor([1.5, 0.5])), torch.zeros(2),
        ...                  torch.tensor([1.0, -1.0]))
        tensor(-0.2000)
    """
    logprobs, old_logprobs, advantages = broadcast(logprobs, old_logprobs, advantages)
    return policy_loss(logprobs, old_logprobs, advantages, clip_ratio=clip_ratio).loss
