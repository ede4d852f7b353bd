"""KL divergence estimators between a policy and a reference, and KL-coefficient controllers.

For tokens sampled from the policy :math:`\\pi`, with
:math:`\\log\\rho = \\log\\pi_{ref} - \\log\\pi`
(Schulman, "Approximating KL divergence", 2020), each estimator's expectation under :math:`\\pi`
relates to :math:`KL(\\pi \\| \\pi_{ref})`:

* ``k1`` :math:`= -\\log\\rho` — unbiased, high variance, can be negative per token.
* ``k2`` :math:`= \\tfrac12 (\\log\\rho)^2` — biased, low variance, always >= 0.
* ``k3`` :math:`= (\\rho - 1) - \\log\\rho` — unbiased, low variance, always >= 0.

These are *penalties*: RLHF trainers subtract ``kl_coef * kl`` from the reward (TRL, OpenRLHF,
verl ``use_kl_in_reward``) or add it to the loss (verl ``use_kl_loss``, GRPO).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from ppo_core._checks import PPOInputError, check_positive, check_same_shape, prepare_mask
from ppo_core.aggregation import masked_mean
from ppo_core.policy import log_ratio_limit

KLEstimator = Literal["k1", "k2", "k3"]
KL_ESTIMATORS: tuple[str, ...] = get_args(KLEstimator)


def kl_per_token(
    logprobs: Tensor,
    ref_logprobs: Tensor,
    estimator: KLEstimator = "k3",
    *,
    log_ratio_clamp: float | None = None,
) -> Tensor:
    """Per-token KL estimate of ``KL(pi || pi_ref)`` from sampled-token log-probs.

    Formula: with ``d = logprobs - ref_logprobs``: ``k1 = d``, ``k2 = d^2 / 2``,
    ``k3 = exp(-d) - 1 + d``. ``d`` is clamped to ``±log_ratio_clamp`` when set (OpenRLHF uses
    10, verl 20) and always saturates at :func:`ppo_core.policy.log_ratio_limit` so ``k3``
    stays finite.

    Examples:
        >>> import torch
        >>> lp, ref = torch.log(torch.tensor([0.5])), torch.log(torch.tensor([0.25]))
        >>> [round(float(kl_per_token(lp, ref, e)), 4) for e in ("k1", "k2", "k3")]
        [0.6931, 0.2402, 0.1931]
    """
    check_same_shape("logprobs", logprobs, ref_logprobs=ref_logprobs)
    if estimator not in KL_ESTIMATORS:
        raise PPOInputError(
            "estimator", f"unknown estimator {estimator!r}; expected one of {list(KL_ESTIMATORS)}"
        )
    limit = log_ratio_limit(logprobs.dtype)
    if log_ratio_clamp is not None:
        check_positive("log_ratio_clamp", log_ratio_clamp)
        limit = min(limit, log_ratio_clamp)
    d = (logprobs - ref_logprobs).clamp(-limit, limit)
    if estimator == "k1":
        return d
    if estimator == "k2":
        return 0.5 * d * d
    return torch.expm1(-d) + d


def kl_estimate(
    logprobs: Tensor,
    ref_logprobs: Tensor,
    mask: Tensor | None = None,
    estimator: KLEstimator = "k3",
    *,
    log_ratio_clamp: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Masked token mean of :func:`kl_per_token`; returns ``(mean, per_token)``.

    Examples:
        >>> import torch
        >>> mean, per_token = kl_estimate(torch.zeros(2), torch.tensor([0.0, -1.0]), estimator="k1")
        >>> mean
        tensor(0.5000)
    """
    per_token = kl_per_token(logprobs, ref_logprobs, estimator, log_ratio_clamp=log_ratio_clamp)
    return masked_mean(per_token, prepare_mask(mask, logprobs)), per_token


def categorical_kl(logits: Tensor, ref_logits: Tensor) -> Tensor:
    """Exact ``KL(softmax(logits) || softmax(ref_logits))`` per row, over the last dim.

    Examples:
        >>> import torch
        >>> categorical_kl(torch.tensor([0.0, 0.0]), torch.tensor([0.0, 0.0]))
        tensor(0.)
    """
    check_same_shape("logits", logits, ref_logits=ref_logits)
    log_p = torch.log_softmax(logits, dim=-1)
    log_q = torch.log_softmax(ref_logits, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


@dataclass
class FixedKLController:
    """A constant KL coefficient (verl / OpenRLHF default ``kl_ctrl.type: fixed``)."""

    value: float

    def update(self, current_kl: float, n_steps: int) -> float:
        """Keep the coefficient; returns it."""
        return self.value


@dataclass
class AdaptiveKLController:
    """Adaptive KL coefficient of Ziegler et al. 2019, "Fine-Tuning LMs from Human Preferences".

    Update: ``e = clip(KL / target - 1, -0.2, 0.2)``; ``beta <- beta * (1 + e * n_steps /
    horizon)`` — as in verl, OpenRLHF and TRL. Raises beta when KL overshoots the target.

    Examples:
        >>> ctl = AdaptiveKLController(value=0.2, target=6.0, horizon=10000)
        >>> round(ctl.update(current_kl=12.0, n_steps=256), 6)  # error clipped to +0.2
        0.201024
    """

    value: float
    target: float
    horizon: int

    def __post_init__(self) -> None:
        check_positive("kl_coef", self.value)
        check_positive("target_kl", self.target)
        check_positive("horizon", self.horizon)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Move the coefficient toward the target KL and return the new value."""
        if not math.isfinite(current_kl):
            raise PPOInputError("current_kl", f"must be finite, got {current_kl}")
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value


@dataclass(frozen=True)
class KLDrift:
    """Sampled KL estimates against the exact KL as a policy drifts from its reference."""

    drift: Tensor
    true_kl: Tensor
    mean: dict[str, Tensor]
    std: dict[str, Tensor]
    samples: int


def kl_estimator_drift(
    vocab_size: int = 50,
    drifts: Tensor | None = None,
    samples: int = 256,
    seed: int = 0,
) -> KLDrift:
    """How k1 / k2 / k3 track the true ``KL(pi || pi_ref)`` as ``pi`` drifts from ``pi_ref``.

    Reference logits ``z ~ N(0, 1)``; policy logits ``z + drift * u`` with a fixed direction
    ``u ~ N(0, 1)``. For each drift, ``samples`` tokens are drawn from ``pi`` and each estimator
    is averaged over them (mean and standard deviation across samples), next to the exact KL.
    k1 and k3 are unbiased, k3 with lower variance; k2 is biased but low-variance.

    Examples:
        >>> d = kl_estimator_drift(vocab_size=10, drifts=torch.tensor([0.0, 1.0]), samples=64)
        >>> float(d.true_kl[0]), float(d.mean["k3"][0])
        (0.0, 0.0)
    """
    if not 2 <= vocab_size <= 100_000:
        raise PPOInputError("vocab_size", f"must be in [2, 100000], got {vocab_size}")
    if not 1 <= samples <= 100_000:
        raise PPOInputError("samples", f"must be in [1, 100000], got {samples}")
    if drifts is None:
        drifts = torch.linspace(0.0, 2.0, 21, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    ref_logits = torch.randn(vocab_size, generator=gen, dtype=torch.float64)
    direction = torch.randn(vocab_size, generator=gen, dtype=torch.float64)
    logits = ref_logits + drifts[:, None] * direction  # [D, V]
    ref_logp = torch.log_softmax(ref_logits, dim=-1).expand_as(logits)
    logp = torch.log_softmax(logits, dim=-1)
    true_kl = categorical_kl(logits, ref_logits.expand_as(logits)).clamp(min=0.0)
    tokens = torch.multinomial(logp.exp(), samples, replacement=True, generator=gen)  # [D, S]
    lp = logp.gather(1, tokens)
    ref = ref_logp.gather(1, tokens)
    mean, std = {}, {}
    for estimator in KL_ESTIMATORS:
        per_sample = kl_per_token(lp, ref, estimator)  # type: ignore[arg-type]
        mean[estimator] = per_sample.mean(dim=1)
        std[estimator] = per_sample.std(dim=1, correction=0)
    return KLDrift(drift=drifts, true_kl=true_kl, mean=mean, std=std, samples=samples)
