"""What is wrong with a rollout batch: findings with a code, a severity, the measured value and
the threshold it crossed, and the page panel that explains the idea behind it.

Each rule is one function of the batch's numbers (no I/O); :func:`batch_findings` runs them
all. Thresholds are module constants, documented in ``docs/inspector.md``:

* ``clip_fraction_high`` — the clip fraction as the convention logs it above
  :data:`CLIP_FRACTION_HIGH`: updates are too large (learning rate, epochs) for ε.
* ``approx_kl_high`` — approx KL as logged above :data:`APPROX_KL_HIGH`: the policy moved far
  from the one that sampled (SB3 / CleanRL stop an epoch at ``target_kl`` ≈ 0.01-0.05).
* ``log_ratio_extreme`` — valid tokens with ``|log r|`` above the log-ratio clamp, or
  :data:`LOG_RATIO_EXTREME` without one: stale or mismatched log-probs; their gradient is 0
  (clamped) or their loss explodes.
* ``ratio_off_one_first_epoch`` — with ``first_epoch``, valid tokens with ``|log r|`` above
  :data:`FIRST_EPOCH_LOG_RATIO`: on the first update ``pi = pi_old``, so the ratio must be 1;
  if not, the trainer's two forward passes disagree (dropout, kernels, precision).
* ``fully_masked_rows`` — rows without a valid token: they add nothing (token means) or change
  the sequence count (sequence means, TRL's ``count_empty_rows``).
* ``zero_std_groups`` — share of groups whose scores are all equal: GRPO gives them zero
  advantage, so they carry no learning signal (DAPO's dynamic sampling drops them).
* ``rollout_mismatch`` — with ``rollout_logprobs``: mismatch KL (k3) above
  :data:`ROLLOUT_K3_KL` or effective sample size below :data:`ROLLOUT_ESS`: the inference
  engine's distribution differs from the trainer's; use rollout correction (TIS / MIS).
* ``explained_variance_negative`` — the critic predicts returns worse than their mean.
* ``low_entropy`` — mean entropy below :data:`LOW_ENTROPY` nats: the policy is nearly
  deterministic and stops exploring (entropy collapse).
* ``nonfinite_in_padding`` — NaN / inf at masked positions: accepted and ignored here, but a
  library that multiplies by the mask (``inf * 0 = NaN``) would return NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Severity = Literal["info", "warning", "error"]

CLIP_FRACTION_HIGH = 0.3
APPROX_KL_HIGH = 0.05
LOG_RATIO_EXTREME = 20.0
FIRST_EPOCH_LOG_RATIO = 1e-3
ZERO_STD_GROUPS_WARNING = 0.5
ROLLOUT_K3_KL = 0.01
ROLLOUT_ESS = 0.8
LOW_ENTROPY = 0.1


@dataclass(frozen=True)
class Finding:
    """One problem (or notable fact) about a batch."""

    code: str
    severity: Severity
    message: str
    value: float | None
    threshold: float | None
    panel: str
    """The page panel that teaches the idea (its id, e.g. ``clip``)."""


@dataclass(frozen=True)
class BatchFacts:
    """The numbers the rules read, gathered once from the analysed batch."""

    clip_fraction: float
    clip_fraction_name: str
    approx_kl: float
    approx_kl_name: str
    log_ratio: Tensor
    """Raw ``logprobs - old_logprobs`` (finite), any shape."""
    mask: Tensor | None
    log_ratio_clamp: float | None
    first_epoch: bool = False
    group_scores: tuple[Tensor, Tensor] | None = None
    """``(scores [B], group_ids [B])`` when scores were sent."""
    rollout_metrics: dict[str, float] | None = None
    explained_variance: float | None = None
    entropy: float | None = None
    nonfinite_in_padding: dict[str, int] | None = None


def _valid(x: Tensor, mask: Tensor | None) -> Tensor:
    return x.reshape(-1) if mask is None else x[mask > 0]


def batch_findings(f: BatchFacts) -> list[Finding]:
    """Every rule of the module docstring on ``f``, errors first.

    Examples:
        >>> import torch
        >>> facts = BatchFacts(0.5, "clip_fraction", 0.0, "approx_kl", torch.zeros(4), None, None)
        >>> [x.code for x in batch_findings(facts)]
        ['clip_fraction_high']
    """
    out: list[Finding] = []
    if f.clip_fraction > CLIP_FRACTION_HIGH:
        out.append(
            Finding(
                "clip_fraction_high",
                "warning",
                f"{f.clip_fraction:.1%} of tokens are clipped ({f.clip_fraction_name}): the "
                "update is large for ε, so most tokens get no gradient; lower the learning rate "
                "or the epochs per batch, or raise ε.",
                f.clip_fraction,
                CLIP_FRACTION_HIGH,
                "clip",
            )
        )
    if math.isfinite(f.approx_kl) and f.approx_kl > APPROX_KL_HIGH:
        out.append(
            Finding(
                "approx_kl_high",
                "warning",
                f"approx KL {f.approx_kl:.4g} ({f.approx_kl_name}) is above {APPROX_KL_HIGH}: the "
                "policy moved far from the one that sampled; SB3 / CleanRL stop the epoch at "
                "target_kl.",
                f.approx_kl,
                APPROX_KL_HIGH,
                "kl",
            )
        )
    lr = _valid(f.log_ratio, f.mask).abs()
    limit = (
        LOG_RATIO_EXTREME
        if f.log_ratio_clamp is None
        else min(f.log_ratio_clamp, LOG_RATIO_EXTREME)
    )
    extreme = int((lr > limit).sum())
    if extreme:
        out.append(
            Finding(
                "log_ratio_extreme",
                "error",
                f"{extreme} valid token(s) have |log r| > {limit:g} (largest "
                f"{float(lr.max()):.4g}): old_logprobs are stale or come from another model; "
                "such ratios are clamped (no gradient) or blow the loss up.",
                float(extreme),
                limit,
                "clip",
            )
        )
    if f.first_epoch and lr.numel():
        off = int((lr > FIRST_EPOCH_LOG_RATIO).sum())
        if off:
            out.append(
                Finding(
                    "ratio_off_one_first_epoch",
                    "error",
                    f"first_epoch: {off} of {lr.numel()} valid tokens have |log r| > "
                    f"{FIRST_EPOCH_LOG_RATIO:g} (largest {float(lr.max()):.3g}); on the first "
                    "update the ratio must be exactly 1: the two forward passes disagree "
                    "(dropout on, different kernels or precision).",
                    off / lr.numel(),
                    FIRST_EPOCH_LOG_RATIO,
                    "clip",
                )
            )
    if f.mask is not None and f.mask.dim() == 2:
        empty = int((f.mask.sum(dim=-1) == 0).sum())
        if empty:
            out.append(
                Finding(
                    "fully_masked_rows",
                    "warning",
                    f"{empty} of {f.mask.shape[0]} rows have no valid token: they add nothing to "
                    "token means and change the row count of sequence means (TRL counts them, "
                    "verl and OpenRLHF do not).",
                    float(empty),
                    0.0,
                    "family",
                )
            )
    if f.group_scores is not None:
        share, groups = zero_std_share(*f.group_scores)
        if share > 0:
            severity: Severity = "warning" if share > ZERO_STD_GROUPS_WARNING else "info"
            out.append(
                Finding(
                    "zero_std_groups",
                    severity,
                    f"{share:.0%} of {groups} groups have all-equal scores: their group-relative "
                    "advantages are 0, so they carry no learning signal (DAPO's dynamic "
                    "sampling filters them out).",
                    share,
                    ZERO_STD_GROUPS_WARNING,
                    "family",
                )
            )
    if f.rollout_metrics is not None:
        k3 = f.rollout_metrics.get("k3_kl", 0.0)
        ess = f.rollout_metrics.get("rollout_is_eff_sample_size", 1.0)
        if k3 > ROLLOUT_K3_KL or ess < ROLLOUT_ESS:
            out.append(
                Finding(
                    "rollout_mismatch",
                    "warning",
                    f"the inference engine's log-probs differ from the trainer's: mismatch KL "
                    f"(k3) {k3:.3g}, effective sample size {ess:.3f}; correct it with "
                    "rollout_is_level (TIS / MIS) or align the kernels and precision.",
                    k3,
                    ROLLOUT_K3_KL,
                    "family",
                )
            )
    if f.explained_variance is not None and f.explained_variance < 0:
        out.append(
            Finding(
                "explained_variance_negative",
                "warning",
                f"explained variance {f.explained_variance:.3f} < 0: the critic predicts the "
                "returns worse than their mean, so GAE's advantages are mostly noise.",
                f.explained_variance,
                0.0,
                "value",
            )
        )
    if f.entropy is not None and f.entropy < LOW_ENTROPY:
        out.append(
            Finding(
                "low_entropy",
                "warning",
                f"mean entropy {f.entropy:.4f} nats < {LOW_ENTROPY}: the policy is nearly "
                "deterministic and stops exploring (entropy collapse).",
                f.entropy,
                LOW_ENTROPY,
                "entropy",
            )
        )
    if f.nonfinite_in_padding:
        total = sum(f.nonfinite_in_padding.values())
        where = ", ".join(f"{k} {v}" for k, v in f.nonfinite_in_padding.items())
        out.append(
            Finding(
                "nonfinite_in_padding",
                "info",
                f"{total} NaN / inf value(s) at masked positions ({where}): ignored here; a "
                "library that multiplies by the mask (inf · 0 = NaN) would return NaN.",
                float(total),
                0.0,
                "family",
            )
        )
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(out, key=lambda x: order[x.severity])


def zero_std_share(scores: Tensor, group_ids: Tensor) -> tuple[float, int]:
    """``(share of groups whose scores are all equal, number of groups)``. A group of one
    response is not counted as all-equal: verl gives it advantage ``r`` (mean 0, std 1).

    Examples:
        >>> import torch
        >>> zero_std_share(torch.tensor([1.0, 1.0, 0.0, 1.0]), torch.tensor([0, 0, 1, 1]))
        (0.5, 2)
    """
    _, inverse, counts = torch.unique(group_ids, return_inverse=True, return_counts=True)
    groups = int(counts.numel())
    lo = torch.full((groups,), math.inf, dtype=scores.dtype).scatter_reduce(
        0, inverse, scores, "amin"
    )
    hi = torch.full((groups,), -math.inf, dtype=scores.dtype).scatter_reduce(
        0, inverse, scores, "amax"
    )
    return float(((lo == hi) & (counts > 1)).double().mean()), groups
