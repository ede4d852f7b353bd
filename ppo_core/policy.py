"""The PPO clipped surrogate (Schulman et al. 2017) and the policy-loss family of today's LLM
trainers, each selected by ``policy_loss_mode`` (verl 0.9.1's names,
``verl/trainer/ppo/core_algos.py``; TRL 1.16.0 and OpenRLHF 0.11.2 differences as knobs).

Per token, with :math:`r = \\exp(\\log\\pi_\\theta - \\log\\pi_{old})`, advantage :math:`A`, and
``sg`` = stop-gradient, the per-token *loss* (to minimise) of each mode:

* ``vanilla`` (PPO; verl L1286-1376): :math:`\\max(-rA,\\ -\\mathrm{clip}(r, 1-\\epsilon_{low},
  1+\\epsilon_{high})A)`, and with dual clip :math:`c > 1` (Ye et al. 2020), for :math:`A < 0`:
  :math:`\\min(\\ell, -cA)`.
* ``gspo`` (Zheng et al. 2025; verl L1546-1619): the same clip rule on the *sequence* ratio
  :math:`s_i = \\exp(\\frac{1}{n_i}\\sum_t m_t \\log r_t)` (geometric mean of token ratios).
  ``gspo_stop_gradient=True`` is verl's GSPO-token form :math:`\\log s_{i,t} = \\log\\pi_t -
  sg(\\log\\pi_t) + sg(\\log s_i)`: every token is weighted by the sequence's ratio and
  gets its own advantage's gradient; ``False`` (OpenRLHF, TRL ``importance_sampling_level=
  "sequence"``) differentiates through the mean. verl caps :math:`\\log s \\le 10`
  (``gspo_log_ratio_max``).
* ``cispo`` (MiniMax-M1; verl L2048-2105, TRL L3109-3111): :math:`-sg(w)\\,A\\log\\pi` with
  :math:`w = \\mathrm{clip}(r, 1-\\epsilon_{low}, 1+\\epsilon_{high})` (verl, ``cispo_clip=
  "band"``) or :math:`w = \\min(r, \\epsilon_{high})` (TRL, ``"absolute"``: ``clip_ratio_high``
  is then an absolute cap on r, e.g. 5.0). Every token keeps a gradient.
* ``sapo`` (verl L1623-1704, TRL L3121-3124): :math:`-\\frac{4}{\\tau}\\sigma(\\tau(r-1))A` with
  :math:`\\tau = \\tau_{pos}` if :math:`A > 0` else :math:`\\tau_{neg}`: a soft gate instead of
  a hard clip.
* ``gpg`` (verl L1708-1740): :math:`-A\\log\\pi`, no ratio (REINFORCE on the batch).
* ``geo_mean`` (GMPO; verl L1929-2011): per *sequence*, :math:`-\\bar A_i \\exp(\\frac{1}{n_i}
  \\sum_t \\mathrm{sgn}(A)\\min(\\mathrm{sgn}(A)\\log r_t, \\mathrm{sgn}(A)\\mathrm{clip}(\\log
  r_t, -\\epsilon_{low}, \\epsilon_{high})))`, clipped in *log* space, averaged over all rows
  (``loss_agg_mode`` does not apply, as in verl).

The per-token losses are then multiplied by ``rollout_is_weights`` when given (rollout
correction, :mod:`ppo_core.rollout`) and aggregated by ``loss_agg_mode``
(:mod:`ppo_core.aggregation`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from ppo_core._checks import (
    PPOInputError,
    broadcast,
    check_float,
    check_positive,
    check_probability,
    check_same_shape,
    prepare_mask,
)
from ppo_core.aggregation import (
    LossAggMode,
    aggregate,
    check_loss_agg_mode,
    masked_mean,
    masked_row_mean,
)
from ppo_core.kl import kl_from_log_ratio
from ppo_core.numerics import log_ratio_limit


@dataclass(frozen=True)
class ClipBounds:
    """The trust region ``[low, high]`` of the ratio and the optional dual-clip constant."""

    low: float
    high: float
    dual_clip: float | None = None
    eps_low: float = 0.2
    eps_high: float = 0.2


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
        ClipBounds(low=0.8, high=1.28, dual_clip=None, eps_low=0.2, eps_high=0.28)
    """
    low = clip_ratio if clip_ratio_low is None else clip_ratio_low
    high = clip_ratio if clip_ratio_high is None else clip_ratio_high
    check_probability("clip_ratio", clip_ratio)
    check_probability("clip_ratio_low", low)
    check_positive("clip_ratio_high", high)
    if dual_clip is not None and not (math.isfinite(dual_clip) and dual_clip > 1.0):
        raise PPOInputError("dual_clip", f"must be a finite number > 1, got {dual_clip}")
    return ClipBounds(
        low=1.0 - low, high=1.0 + high, dual_clip=dual_clip, eps_low=low, eps_high=high
    )


@dataclass(frozen=True)
class SurrogateTerms:
    """Per-token pieces of the clipped surrogate, shared by the loss and the curves."""

    loss: Tensor
    """Per-token loss (negated objective) after clip and dual clip."""
    clipped_taken: Tensor
    """Bool: the clipped term is the one the max/min takes (strictly larger loss)."""
    dual_clip_taken: Tensor | None
    """Bool: the dual-clip bound ``-c A`` binds (A < 0 only); ``None`` without dual clip."""


@dataclass(frozen=True)
class ElementBounds:
    """Clip bounds given per element: many curves' bounds side by side, so that
    :func:`ppo_core.curves.clip_objective_curves` computes them in one pass. ``dual_clip`` is
    ``inf`` where a curve has none (``-A * inf`` never binds), or ``None`` for all."""

    low: Tensor
    high: Tensor
    dual_clip: Tensor | None = None


def clipped_surrogate(
    ratio: Tensor, advantages: Tensor, bounds: ClipBounds | ElementBounds
) -> SurrogateTerms:
    """Per-token clipped-surrogate loss for given ratios (no reduction, no checks).

    The one implementation of the PPO clip rule: :func:`policy_loss` and the curves call it.
    Bounds are numbers (:class:`ClipBounds`) or tensors broadcast with ``ratio``
    (:class:`ElementBounds`); both give the same values element by element.
    """
    loss_unclipped = -advantages * ratio
    # Numbers or tensors: torch's stubs type the two forms as separate overloads.
    loss_clipped = -advantages * ratio.clamp(bounds.low, bounds.high)  # type: ignore[arg-type]
    loss = torch.maximum(loss_unclipped, loss_clipped)
    clipped_taken = loss_clipped > loss_unclipped
    dual_taken = None
    if bounds.dual_clip is not None:
        dual_bound = -advantages * bounds.dual_clip
        dual_taken = (loss > dual_bound) & (advantages < 0)
        loss = torch.where(dual_taken, dual_bound, loss)
    return SurrogateTerms(loss=loss, clipped_taken=clipped_taken, dual_clip_taken=dual_taken)


PolicyLossMode = Literal["vanilla", "gspo", "cispo", "sapo", "gpg", "geo_mean"]
POLICY_LOSS_MODES: tuple[str, ...] = get_args(PolicyLossMode)
CispoClip = Literal["band", "absolute"]
CISPO_CLIPS: tuple[str, ...] = get_args(CispoClip)

GEO_MEAN_EPS = 1e-8
"""verl's ``n_i + 1e-8`` in GMPO's per-sequence means. Its trainer's bool mask makes the sum an
integer, and ``int + 1e-8`` evaluates in float32 to ``n_i`` exactly for ``n_i >= 1``; an empty
row's mean is then ``0 / 1e-8 = 0``: :func:`ppo_core.aggregation.masked_row_mean`."""


@dataclass(frozen=True)
class PolicyTerms:
    """Per-token tensors of one policy-loss mode, before aggregation (no floats, no syncs)."""

    loss: Tensor
    """Per-token loss (after any rollout weights). For ``geo_mean``: its sequence's loss on
    every valid token of the sequence."""
    ratio: Tensor
    """The ratio the objective uses: token ratio, or the sequence ratio on each token (gspo,
    geo_mean)."""
    clipped: Tensor
    """Bool: the clip acts on this token (mode's own meaning, see :func:`policy_loss`)."""
    clipped_lower: Tensor | None
    """Bool: dual clip binds (vanilla, gspo) or low-side clip (geo_mean); ``None`` otherwise."""
    log_ratio: Tensor
    """Token log-ratio after the clamp the mode applies (for the KL diagnostics)."""


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
    clipped: Tensor | None = None
    """Per-token bool: the clip acts there (for token views)."""
    clipped_lower: Tensor | None = None
    """Per-token bool: dual clip (vanilla, gspo) / low clip (geo_mean) acts there."""


def _check_mode(mode: str) -> None:
    if mode not in POLICY_LOSS_MODES:
        raise PPOInputError(
            "policy_loss_mode",
            f"unknown mode {mode!r}; expected one of {list(POLICY_LOSS_MODES)}",
        )


def sequence_advantages(advantages: Tensor, logprobs: Tensor) -> Tensor:
    """Per-sequence advantages ``[B]`` broadcast over the tokens of ``[B, T]`` log-probs
    (TRL's ``(B,) -> (B, 1)``); token-level ``[B, T]`` ones pass through.

    Examples:
        >>> import torch
        >>> sequence_advantages(torch.tensor([1.0, -1.0]), torch.zeros(2, 3))
        tensor([[ 1.,  1.,  1.],
                [-1., -1., -1.]])
    """
    if logprobs.dim() == 2 and advantages.dim() == 1 and advantages.shape[0] == logprobs.shape[0]:
        check_float("advantages", advantages)
        return advantages.unsqueeze(-1).expand_as(logprobs)
    return advantages


def policy_terms(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    m: Tensor | None,
    *,
    policy_loss_mode: PolicyLossMode,
    bounds: ClipBounds,
    limit: float,
    sapo_tau_pos: float,
    sapo_tau_neg: float,
    cispo_clip: CispoClip,
    gspo_stop_gradient: bool,
    gspo_log_ratio_max: float | None,
) -> PolicyTerms:
    """Per-token terms of ``policy_loss_mode`` (validated inputs; no reduction, no floats).

    ``limit`` is the log-ratio clamp (explicit, or the dtype's saturation point). Created
    tensors live on the inputs' device and dtype.
    """
    raw = logprobs - old_logprobs
    log_ratio = raw.clamp(-limit, limit)
    mode = policy_loss_mode
    if mode == "vanilla":
        ratio = torch.exp(log_ratio)
        t = clipped_surrogate(ratio, advantages, bounds)
        return PolicyTerms(t.loss, ratio, t.clipped_taken, t.dual_clip_taken, log_ratio)
    if mode == "gspo":
        seq_log = masked_row_mean(raw, m)
        if gspo_stop_gradient:
            log_s = logprobs - logprobs.detach() + seq_log.detach()
        else:
            log_s = seq_log.expand_as(logprobs)
        # The sequence ratio is clamped only where exp would overflow the dtype and by
        # gspo_log_ratio_max (verl's ≤ 10); no library applies a ±20 clamp in GSPO.
        dtype_limit = log_ratio_limit(logprobs.dtype)
        hi = dtype_limit if gspo_log_ratio_max is None else min(dtype_limit, gspo_log_ratio_max)
        ratio = torch.exp(log_s.clamp(-dtype_limit, hi))
        t = clipped_surrogate(ratio, advantages, bounds)
        return PolicyTerms(t.loss, ratio, t.clipped_taken, t.dual_clip_taken, log_ratio)
    if mode == "cispo":
        ratio = torch.exp(log_ratio)
        if cispo_clip == "band":
            weight = ratio.clamp(bounds.low, bounds.high)
        else:
            weight = ratio.clamp(max=bounds.eps_high)  # TRL: epsilon_high is the cap itself
        loss = -weight.detach() * advantages * logprobs
        clipped = weight != ratio
        if cispo_clip == "absolute":  # TRL's cispo_clip_ratio: (r > epsilon_high) & (A > 0)
            clipped = clipped & (advantages > 0)
        return PolicyTerms(loss, ratio, clipped, None, log_ratio)
    if mode == "sapo":
        ratio = torch.exp(log_ratio)
        tau = torch.where(
            advantages > 0,
            torch.full((), sapo_tau_pos, dtype=ratio.dtype, device=ratio.device),
            torch.full((), sapo_tau_neg, dtype=ratio.dtype, device=ratio.device),
        )
        gate = torch.sigmoid(tau * (ratio - 1.0)) * (4.0 / tau)
        no_clip = torch.zeros_like(ratio, dtype=torch.bool)
        return PolicyTerms(-gate * advantages, ratio, no_clip, None, log_ratio)
    if mode == "gpg":
        ratio = torch.exp(log_ratio.detach())
        loss = -logprobs * advantages
        return PolicyTerms(loss, ratio, torch.zeros_like(ratio, dtype=torch.bool), None, log_ratio)
    # geo_mean (GMPO): clip in log space, sign-aware, geometric mean per sequence.
    sign = torch.sign(advantages)
    clamped = raw.clamp(-bounds.eps_low, bounds.eps_high)
    kept = sign * torch.minimum(sign * raw, sign * clamped)
    dtype_limit = log_ratio_limit(logprobs.dtype)  # no log_ratio_clamp in GMPO (verl)
    seq_log = masked_row_mean(kept, m, empty_eps=GEO_MEAN_EPS).clamp(-dtype_limit, dtype_limit)
    seq_ratio = torch.exp(seq_log)
    seq_adv = masked_row_mean(advantages, m, empty_eps=GEO_MEAN_EPS)
    row_loss = (-seq_adv * seq_ratio).expand_as(logprobs)
    clipped = raw != clamped
    return PolicyTerms(
        row_loss,
        seq_ratio.expand_as(logprobs),
        clipped & (advantages > 0),
        clipped & (advantages < 0),
        log_ratio,
    )


def policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor | None = None,
    *,
    policy_loss_mode: PolicyLossMode = "vanilla",
    clip_ratio: float = 0.2,
    clip_ratio_low: float | None = None,
    clip_ratio_high: float | None = None,
    dual_clip: float | None = None,
    log_ratio_clamp: float | None = None,
    loss_agg_mode: LossAggMode = "token-mean",
    loss_scale_factor: float | None = None,
    count_empty_rows: bool = False,
    sapo_tau_pos: float = 1.0,
    sapo_tau_neg: float = 1.05,
    cispo_clip: CispoClip = "band",
    gspo_stop_gradient: bool = True,
    gspo_log_ratio_max: float | None = None,
    rollout_is_weights: Tensor | None = None,
    approx_kl_clamped: bool = True,
) -> PolicyLossOutput:
    """Policy *loss* of ``policy_loss_mode`` per token, aggregated, with the usual diagnostics.

    Formula (vanilla): ``loss_t = max(-A_t r_t, -A_t clip(r_t, 1-eps_low, 1+eps_high))``, then,
    with ``dual_clip = c``, ``loss_t = min(loss_t, -c A_t)`` where ``A_t < 0``; aggregated by
    ``loss_agg_mode`` (see :mod:`ppo_core.aggregation`). Other modes: module docstring. A loss:
    minimise it.

    Numerics: ``r = exp(log_ratio)`` with ``log_ratio`` clamped to ``±log_ratio_clamp`` when set
    (verl uses 20 in vanilla, sapo, cispo); the sequence ratios of gspo and geo_mean are not
    clamped by it (no library does), only by ``gspo_log_ratio_max`` and the dtype. Without it,
    ``log_ratio`` still saturates at :func:`ppo_core.numerics.log_ratio_limit` so that ``r``
    stays finite and ``A = 0`` gives a loss of exactly 0 (never ``0 * inf = NaN``); for
    ``A < 0`` and a huge ratio the loss is then a huge finite number (or ``+inf`` when ``-A r``
    itself exceeds the dtype), which is the true value of an unbounded loss: use dual clip or a
    clamp to bound it. Masked-out tokens never reach the result, even when infinite.

    Diagnostics accumulate in float64. k1 and k2 use the true token log-ratio (clamped only by
    an explicit ``log_ratio_clamp``, as verl's ``ppo_kl``); k3 uses the saturated one; the
    ratio statistics use the ratio the objective uses (the sequence ratio for gspo / geo_mean).

    Diagnostics (floats, over valid tokens):

    * ``clip_fraction``: share where the clip acts — vanilla / gspo: the clipped term is taken
      (verl ``pg_clipfrac``, OpenRLHF ``clip_ratio``, TRL ``clip_ratio/region_mean``); cispo:
      the weight was clipped (verl; with ``cispo_clip="absolute"`` only where ``A > 0``, TRL's
      ``cispo_clip_ratio``); geo_mean: clipped with ``A > 0`` (verl); sapo / gpg: 0.
    * ``clip_fraction_lower``: share where dual clip binds (verl ``pg_clipfrac_lower``);
      geo_mean: clipped with ``A < 0``.
    * ``ratio_outside_fraction``: share with ``r`` outside ``[1-eps_low, 1+eps_high]``
      (CleanRL / SB3 ``clipfrac``: ``|r - 1| > eps``).
    * ``approx_kl``: k1 = mean of ``old - new`` log-probs (verl ``ppo_kl``).
    * ``approx_kl_k2``: mean of ``(log r)^2 / 2`` (TRL ``approxkl``).
    * ``approx_kl_k3``: mean of ``(r - 1) - log r`` (CleanRL / SB3 ``approx_kl``).
    * ``ratio_min`` / ``ratio_mean`` / ``ratio_max``.

    Args:
        logprobs: Log-probs of the taken actions under the current policy, ``[T]`` or ``[B, T]``.
        old_logprobs: Log-probs under the policy that collected the rollout (same shape).
        advantages: Advantage estimates, same shape, or ``[B]`` (one per sequence, broadcast).
        mask: Optional 0/1 mask of valid tokens (same shape).
        policy_loss_mode: Objective (module docstring).
        clip_ratio: Symmetric epsilon in (0, 1).
        clip_ratio_low: Lower epsilon (defaults to ``clip_ratio``).
        clip_ratio_high: Upper epsilon (defaults to ``clip_ratio``); with ``cispo_clip=
            "absolute"``, the absolute cap on r (TRL's ``epsilon_high``).
        dual_clip: Dual-clip constant ``c > 1``, or ``None`` for off (vanilla, gspo).
        log_ratio_clamp: Clamp ``|log_ratio|`` before ``exp`` (e.g. 20.0), or ``None``.
        loss_agg_mode: How per-token losses become one number (not geo_mean).
        loss_scale_factor: ``L`` of ``seq-mean-token-sum-norm`` (default: padded length).
        count_empty_rows: Sequence means count all-padding rows (TRL).
        sapo_tau_pos: SAPO temperature for ``A > 0``.
        sapo_tau_neg: SAPO temperature for ``A <= 0``.
        cispo_clip: ``"band"`` (verl) or ``"absolute"`` (TRL) clip of CISPO's weight.
        gspo_stop_gradient: verl's GSPO-token form (True) or the gradient through the mean.
        gspo_log_ratio_max: Upper cap on GSPO's log sequence ratio (verl: 10), or ``None``.
        rollout_is_weights: Detached rollout-correction weights (same shape) multiplying the
            per-token loss; geo_mean uses each row's geometric mean of them (verl).
        approx_kl_clamped: k1 / k2 diagnostics on the log-ratio clamped by
            ``log_ratio_clamp`` (verl's ``ppo_kl``) or on the raw one (OpenRLHF's ``ppo_kl``,
            loss.py L257-258, although its ratio is clamped to ±20).

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
        >>> lp = torch.log(torch.tensor([[1.5, 0.5]]))
        >>> policy_loss(lp, torch.zeros(1, 2), torch.tensor([1.0]), policy_loss_mode="gspo").loss
        tensor(-0.8660)
    """
    _check_mode(policy_loss_mode)
    check_float("logprobs", logprobs)
    check_float("advantages", advantages)
    advantages = sequence_advantages(advantages, logprobs)
    check_same_shape("logprobs", logprobs, old_logprobs=old_logprobs, advantages=advantages)
    check_same_shape("logprobs", logprobs, rollout_is_weights=rollout_is_weights)
    check_loss_agg_mode(loss_agg_mode)
    if cispo_clip not in CISPO_CLIPS:
        raise PPOInputError(
            "cispo_clip", f"unknown value {cispo_clip!r}; expected one of {list(CISPO_CLIPS)}"
        )
    bounds = clip_bounds(clip_ratio, clip_ratio_low, clip_ratio_high, dual_clip)
    check_positive("sapo_tau_pos", sapo_tau_pos)
    check_positive("sapo_tau_neg", sapo_tau_neg)
    if gspo_log_ratio_max is not None and not math.isfinite(gspo_log_ratio_max):
        raise PPOInputError("gspo_log_ratio_max", f"must be finite, got {gspo_log_ratio_max}")
    limit = log_ratio_limit(logprobs.dtype)
    if log_ratio_clamp is not None:
        check_positive("log_ratio_clamp", log_ratio_clamp)
        limit = min(limit, log_ratio_clamp)
    m = prepare_mask(mask, logprobs)

    terms = policy_terms(
        logprobs,
        old_logprobs,
        advantages,
        m,
        policy_loss_mode=policy_loss_mode,
        bounds=bounds,
        limit=limit,
        sapo_tau_pos=sapo_tau_pos,
        sapo_tau_neg=sapo_tau_neg,
        cispo_clip=cispo_clip,
        gspo_stop_gradient=gspo_stop_gradient,
        gspo_log_ratio_max=gspo_log_ratio_max,
    )
    per_token = terms.loss
    if policy_loss_mode == "geo_mean":
        if rollout_is_weights is not None:
            w = rollout_is_weights.detach()
            per_token = per_token * torch.exp(
                masked_row_mean(torch.log(w + 1e-10), m, empty_eps=GEO_MEAN_EPS)
            )
        rows = per_token if per_token.dim() > 1 else per_token.unsqueeze(0)
        loss = rows[..., 0].mean()  # verl: torch.mean over every row, empty rows included
    else:
        if rollout_is_weights is not None:
            per_token = per_token * rollout_is_weights.detach()
        loss = aggregate(
            per_token,
            m,
            loss_agg_mode,
            loss_scale_factor=loss_scale_factor,
            count_empty_rows=count_empty_rows,
        )

    with torch.no_grad():
        # Means accumulate in float64, so huge ratios do not overflow a float32 sum; the
        # tensors stay in the input dtype (no float64 copies of a million-token batch).
        lr = terms.log_ratio.detach()
        r = terms.ratio.detach()
        kl_lr = (logprobs - old_logprobs).detach()
        if log_ratio_clamp is not None and approx_kl_clamped:
            kl_lr = kl_lr.clamp(-log_ratio_clamp, log_ratio_clamp)

        def mean(x: Tensor) -> float:
            return float(masked_mean(x, m, dtype=torch.float64))

        token_ratio = torch.exp(lr)
        outside = (token_ratio < bounds.low) | (token_ratio > bounds.high)
        lower = 0.0 if terms.clipped_lower is None else mean(terms.clipped_lower)
        if m is None:
            r_min, r_max = r.min(), r.max()
        else:
            valid = m > 0
            r_min = torch.where(valid, r, torch.inf).min()
            r_max = torch.where(valid, r, -torch.inf).max()
        return PolicyLossOutput(
            loss=loss,
            per_token_loss=per_token,
            ratio=terms.ratio,
            clip_fraction=mean(terms.clipped),
            clip_fraction_lower=lower,
            ratio_outside_fraction=mean(outside),
            approx_kl=mean(kl_from_log_ratio(-kl_lr, "k1")),
            approx_kl_k2=mean(kl_from_log_ratio(-kl_lr, "k2")),
            approx_kl_k3=mean(kl_from_log_ratio(-lr, "k3")),
            ratio_min=float(r_min),
            ratio_mean=mean(r),
            ratio_max=float(r_max),
            clipped=terms.clipped,
            clipped_lower=terms.clipped_lower,
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
