"""Rollout correction: importance weights between the trainer's and the inference engine's
log-probs of the same tokens, and the mismatch diagnostics verl logs.

The inference engine (vLLM, SGLang) samples with its own kernels and precision, so its
log-probs ``log mu`` differ from the trainer's ``log pi_old`` of the same tokens. Per token
``log rho = log pi_old - log mu`` (verl 0.9.1 ``verl/trainer/ppo/rollout_corr_helper.py``,
L849). Weights, detached, multiply the per-token policy loss:

* ``level="token"``: ``w_t = exp(clamp(log rho_t, ±20))`` (L575-577).
* ``level="sequence"``: ``w_i = exp(clamp(sum_t m_t log rho_t, ±20))``, the *product* of the
  token ratios, on every token of the row (L580-586; TRL's ``sequence_*`` modes, unclamped).
* ``mode="truncate"`` (TIS): ``w = min(w, threshold)`` (L596); with ``threshold_low`` also
  ``max(w, threshold_low)`` (OpenRLHF's TIS clip, TRL's ``clip_min``).
* ``mode="mask"`` (MIS / IcePop): ``w = w`` inside ``[threshold_low, threshold]``, else 0
  (L599-604); ``threshold_low`` defaults to ``1 / threshold``; 0 keeps every small weight
  (TRL's ``sequence_mask`` with ``clip_min=None``). The token keeps its place in the
  loss's normaliser with weight 0 (verl, OpenRLHF).

Metrics follow ``compute_is_metrics`` (L660-783) and ``compute_offpolicy_metrics``
(L904-1010) formula by formula; names are verl's without the ``rollout_corr/`` prefix, plus
``truncated_fraction`` / ``masked_fraction`` (share of valid tokens whose weight the threshold
changed). verl's ``k3_kl`` uses the unclamped ratio; here it saturates where ``exp`` would
overflow the dtype, so it stays finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from ppo_core._checks import (
    PPOInputError,
    check_nonnegative,
    check_positive,
    check_same_shape,
    prepare_mask,
)
from ppo_core.aggregation import masked_mean, masked_row_mean, masked_zero
from ppo_core.kl import kl_from_log_ratio
from ppo_core.numerics import log_ratio_limit

RolloutISLevel = Literal["token", "sequence"]
ROLLOUT_IS_LEVELS: tuple[str, ...] = get_args(RolloutISLevel)
RolloutISMode = Literal["truncate", "mask"]
ROLLOUT_IS_MODES: tuple[str, ...] = get_args(RolloutISMode)

SAFETY_BOUND = 20.0
"""verl's clamp of the (token or summed) log-ratio before ``exp`` (``SAFETY_BOUND``, L75)."""


@dataclass(frozen=True)
class RolloutCorrection:
    """Weights (detached, 0 at padding), the raw ratios, and verl's metrics as floats."""

    weights: Tensor
    raw_weights: Tensor
    """``exp(clamp(log rho, ±20))`` per token or per sequence, before the threshold."""
    kept: Tensor
    """Bool: a valid token whose weight is not zeroed by ``mode="mask"``."""
    metrics: dict[str, float]


def rollout_weights(
    old_logprobs: Tensor,
    rollout_logprobs: Tensor,
    mask: Tensor | None = None,
    *,
    level: RolloutISLevel = "token",
    mode: RolloutISMode = "truncate",
    threshold: float = 2.0,
    threshold_low: float | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(weights, raw_weights, kept)`` of :func:`rollout_correction`, without metrics (no
    device syncs: usable inside a training step).

    Examples:
        >>> import torch
        >>> old = torch.log(torch.tensor([1.0, 3.0, 0.25]))
        >>> w, raw, kept = rollout_weights(old, torch.zeros(3), threshold=2.0)
        >>> w  # TIS: min(rho, 2)
        tensor([1.0000, 2.0000, 0.2500])
        >>> rollout_weights(old, torch.zeros(3), mode="mask", threshold=2.0)[0]  # [0.5, 2]
        tensor([1., 0., 0.])
    """
    check_same_shape("old_logprobs", old_logprobs, rollout_logprobs=rollout_logprobs)
    if level not in ROLLOUT_IS_LEVELS:
        raise PPOInputError(
            "rollout_is_level", f"unknown level {level!r}; expected {list(ROLLOUT_IS_LEVELS)}"
        )
    if mode not in ROLLOUT_IS_MODES:
        raise PPOInputError(
            "rollout_is_mode", f"unknown mode {mode!r}; expected {list(ROLLOUT_IS_MODES)}"
        )
    check_positive("rollout_is_threshold", threshold)
    if threshold_low is not None:
        check_nonnegative("rollout_is_threshold_low", threshold_low)
        if threshold_low > threshold:
            raise PPOInputError(
                "rollout_is_threshold_low",
                f"must be <= rollout_is_threshold ({threshold}), got {threshold_low}",
            )
    m = prepare_mask(mask, old_logprobs)
    mf = torch.ones_like(old_logprobs) if m is None else m
    valid = mf > 0
    # verl's ±20, or less where exp would overflow the dtype (float16: 11.09).
    bound = min(SAFETY_BOUND, log_ratio_limit(old_logprobs.dtype))
    log_rho = (old_logprobs - rollout_logprobs).detach()
    if level == "token":
        raw = torch.exp(log_rho.clamp(-bound, bound))
    else:
        summed = masked_zero(log_rho, mf).sum(dim=-1, keepdim=True)
        raw = torch.exp(summed.clamp(-bound, bound)).expand_as(log_rho)
    raw = masked_zero(raw, mf)
    if mode == "truncate":
        weights = raw.clamp(max=threshold)
        if threshold_low is not None:
            weights = masked_zero(weights.clamp(min=threshold_low), mf)
        kept = valid
    else:
        low = 1.0 / threshold if threshold_low is None else threshold_low
        kept = valid & (raw >= low) & (raw <= threshold)
        weights = torch.where(kept, raw, torch.zeros_like(raw))
    return weights, raw, kept


def _row_mean(x: Tensor, m: Tensor) -> Tensor:
    """verl's ``masked_mean(x, m, axis=-1)`` = ``sum / (count + 1e-8)`` with verl's integer
    response mask, where ``count + 1e-8`` evaluates in float32 to ``count``: ``sum / count``,
    and 0 for a row without tokens."""
    rows_x = x if x.dim() > 1 else x.unsqueeze(0)
    rows_m = m if m.dim() > 1 else m.unsqueeze(0)
    return masked_row_mean(rows_x, rows_m, empty_eps=1e-8).squeeze(-1)


def rollout_correction(
    old_logprobs: Tensor,
    rollout_logprobs: Tensor,
    mask: Tensor | None = None,
    *,
    level: RolloutISLevel = "token",
    mode: RolloutISMode = "truncate",
    threshold: float = 2.0,
    threshold_low: float | None = None,
) -> RolloutCorrection:
    """Importance weights ``pi_old / mu`` (truncated or masked) and verl's mismatch metrics.

    Formula: module docstring. Weights are detached; they scale the policy loss.

    Args:
        old_logprobs: The trainer's log-probs of the sampled tokens, ``[T]`` or ``[B, T]``.
        rollout_logprobs: The inference engine's log-probs of the same tokens (same shape).
        mask: Optional 0/1 mask of valid tokens.
        level: ``token`` or ``sequence`` (product of the token ratios).
        mode: ``truncate`` (TIS) or ``mask`` (MIS / IcePop).
        threshold: Upper threshold ``C`` (> 0).
        threshold_low: Lower threshold (mask: default ``1 / C``; truncate: default none).

    Returns:
        A :class:`RolloutCorrection`.

    Examples:
        >>> import torch
        >>> old = torch.log(torch.tensor([1.0, 3.0, 0.25]))
        >>> c = rollout_correction(old, torch.zeros(3), threshold=2.0)
        >>> round(c.metrics["rollout_is_mean"], 4), round(c.metrics["truncated_fraction"], 4)
        (1.0833, 0.3333)
    """
    weights, raw, kept = rollout_weights(
        old_logprobs,
        rollout_logprobs,
        mask,
        level=level,
        mode=mode,
        threshold=threshold,
        threshold_low=threshold_low,
    )
    m = prepare_mask(mask, old_logprobs)
    mf = torch.ones_like(old_logprobs) if m is None else m
    with torch.no_grad():
        metrics = _is_metrics(
            weights, raw, old_logprobs.detach(), rollout_logprobs.detach(), mf,
            level=level, mode=mode, threshold=threshold, threshold_low=threshold_low,
        )  # fmt: skip
    return RolloutCorrection(weights=weights, raw_weights=raw, kept=kept, metrics=metrics)


def _is_metrics(
    w: Tensor,
    raw: Tensor,
    old: Tensor,
    rollout: Tensor,
    m: Tensor,
    *,
    level: RolloutISLevel,
    mode: RolloutISMode,
    threshold: float,
    threshold_low: float | None,
) -> dict[str, float]:
    def mmean(x: Tensor) -> float:
        return float(masked_mean(x.to(m.dtype), m, dtype=torch.float64))

    upper = threshold
    lower = 1.0 / upper if threshold_low is None else threshold_low
    valid = m > 0
    log_rho = old - rollout
    out: dict[str, float] = {"rollout_is_mean": mmean(w)}
    if level == "sequence":
        rows_lr = log_rho if log_rho.dim() > 1 else log_rho.unsqueeze(0)
        rows_m = m if m.dim() > 1 else m.unsqueeze(0)
        summed = masked_zero(rows_lr, rows_m).sum(dim=-1).double()
        out["rollout_is_max"] = math.exp(min(float(summed.max()), SAFETY_BOUND))
        # verl leaves the minimum unclamped; saturate where exp would overflow float64.
        out["rollout_is_min"] = math.exp(min(float(summed.min()), log_ratio_limit(torch.float64)))
        out["rollout_is_ratio_fraction_high"] = float((summed > math.log(upper)).double().mean())
        log_lower = math.log(lower) if lower > 0 else -math.inf
        out["rollout_is_ratio_fraction_low"] = float((summed < log_lower).double().mean())
    else:
        out["rollout_is_ratio_fraction_high"] = mmean(raw > upper)
        out["rollout_is_ratio_fraction_low"] = mmean(raw < lower)
        out["rollout_is_max"] = float(torch.where(valid, w, -torch.inf).max())
        out["rollout_is_min"] = float(torch.where(valid, w, torch.inf).min())
    clamped = w.clamp(0.0, upper)
    mean_c = mmean(clamped)
    if float(m.sum()) > 1:
        out["rollout_is_std"] = math.sqrt(max(mmean(clamped * clamped) - mean_c**2, 0.0))
    else:
        out["rollout_is_std"] = 0.0
    second_moment = mmean((clamped / (mean_c + 1e-8)) ** 2)
    # Every weight 0 (all masked): verl divides by zero; no sample is effective, so 0.
    out["rollout_is_eff_sample_size"] = 1.0 / second_moment if second_moment > 0 else 0.0
    if w.dim() > 1:
        seq = _row_mean(w, m).double()
        out["rollout_is_seq_mean"] = float(seq.mean())
        out["rollout_is_seq_std"] = float(seq.std()) if seq.numel() > 1 else 0.0
        out["rollout_is_seq_max"] = float(seq.max())
        out["rollout_is_seq_min"] = float(seq.min())
        out["rollout_is_seq_max_deviation"] = float((seq - 1.0).abs().max())
        raw_seq = _row_mean(raw, m).double()
        out["rollout_is_seq_fraction_high"] = float((raw_seq > upper).double().mean())
        out["rollout_is_seq_fraction_low"] = float((raw_seq < lower).double().mean())
    if mode == "mask":
        out["rollout_is_oob_ratio"] = mmean(valid & ~((raw >= lower) & (raw <= upper)))
        out["masked_fraction"] = mmean(valid & (w == 0) & (raw != 0))
        out["truncated_fraction"] = 0.0
    else:
        out["truncated_fraction"] = mmean(valid & (w != raw))
        out["masked_fraction"] = 0.0
    out.update(offpolicy_metrics(old, rollout, m))
    return out


def offpolicy_metrics(old: Tensor, rollout: Tensor, m: Tensor) -> dict[str, float]:
    """verl's ``compute_offpolicy_metrics``: perplexities, mismatch KL (k1, k3), chi-square.

    Formula: ``training_ppl = mean_i exp(-mean_t log pi_old)``; ``kl = mean(log mu - log
    pi_old)`` (k1 of KL(mu || pi_old)); ``k3_kl = mean(rho - log rho - 1)``; ``log_ppl_diff =
    mean_i(mean_t log mu - mean_t log pi_old)``; ``chi2_token = mean(rho²) - 1``; ``chi2_seq =
    mean_i exp(2 clamp(sum_t log rho, ±20)) - 1``. Per-row means are verl's (``+1e-8``; rows
    without tokens count with 0).

    Examples:
        >>> import torch
        >>> out = offpolicy_metrics(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2))
        >>> out["kl"], out["chi2_token"], out["ppl_ratio"]
        (0.0, 0.0, 1.0)
    """

    def mmean(x: Tensor) -> float:
        return float(masked_mean(x, m, dtype=torch.float64))

    log_rho = old - rollout
    mean_train = _row_mean(old, m).double()
    mean_roll = _row_mean(rollout, m).double()
    diff = mean_roll - mean_train
    limit = log_ratio_limit(log_rho.dtype)
    rows_lr = log_rho if log_rho.dim() > 1 else log_rho.unsqueeze(0)
    rows_m = m if m.dim() > 1 else m.unsqueeze(0)
    summed = masked_zero(rows_lr, rows_m).sum(dim=-1).double()
    rho = torch.exp(log_rho.double().clamp(-SAFETY_BOUND, SAFETY_BOUND))  # squared: float64
    return {
        "training_ppl": float(torch.exp(-mean_train).mean()),
        "training_log_ppl": float((-mean_train).mean()),
        "kl": mmean(rollout - old),
        "k3_kl": mmean(kl_from_log_ratio(-log_rho.clamp(-limit, limit), "k3")),
        "rollout_ppl": float(torch.exp(-mean_roll).mean()),
        "rollout_log_ppl": float((-mean_roll).mean()),
        "log_ppl_diff": float(diff.mean()),
        "log_ppl_abs_diff": float(diff.abs().mean()),
        "log_ppl_diff_max": float(diff.max()),
        "log_ppl_diff_min": float(diff.min()),
        "ppl_ratio": float(torch.exp(diff).mean()),
        "chi2_token": float(masked_mean(rho * rho, m.double())) - 1.0,
        "chi2_seq": float(torch.exp(2.0 * summed.clamp(-SAFETY_BOUND, SAFETY_BOUND)).mean()) - 1.0,
    }
