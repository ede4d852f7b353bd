"""KL divergence estimators between a policy and a reference, and KL-coefficient controllers.

For tokens sampled from the policy :math:`\\pi`, with :math:`d = \\log\\pi - \\log\\pi_{ref}`
(Schulman, "Approximating KL divergence", 2020), each estimator's expectation under
:math:`\\pi` relates to :math:`KL(\\pi \\| \\pi_{ref})`:

* ``k1`` :math:`= d` — unbiased, high variance, can be negative per token.
* ``k2`` :math:`= \\tfrac12 d^2` — biased, low variance, always >= 0.
* ``k3`` :math:`= e^{-d} - 1 + d` — unbiased, low variance, always >= 0 (verl ``low_var_kl``).
* ``abs`` :math:`= |d|` — verl's ``abs``.
* ``k3+`` — the value of k3 with the gradient of k2 (verl's ``+`` suffix, L2200-2213:
  ``k2 - sg(k2) + sg(k3)``; OpenRLHF ``unbiased_gradient`` with weight 1).

Used as a *loss* (the gradient taken through the estimate, samples held fixed), only k2 and
``k3+`` give the gradient of :math:`KL(\\pi \\| \\pi_{ref})` in expectation: per sampled
token the exact gradient is :math:`d\\,\\nabla\\log\\pi` (:func:`kl_true_gradient_weight`),
k1's is :math:`\\nabla\\log\\pi` (expectation 0) and k3's :math:`(1 - e^{-d})\\nabla\\log\\pi`
(the gradient of the *reverse* KL). :func:`kl_estimator_drift` shows all of this exactly.

Clamps each library applies (``clamp``): ``"verl"`` (``core_algos.py::kl_penalty_forward``,
L2216-2251): k3's ``ref - logp`` clamped to ±20 and its value to ±10, k1 / k2 / abs
unclamped; ``"openrlhf"`` (``models/utils.py::compute_approx_kl``, L69-128): k3's ``d`` clamped
below at -10 and *every* estimate to ±10; ``"none"`` (TRL): no clamp.

These are *penalties*: RLHF trainers subtract ``kl_coef * kl`` from the reward (TRL PPO,
OpenRLHF, verl ``use_kl_in_reward``) or add it to the loss (verl ``use_kl_loss``, GRPO).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from ppo_core._checks import PPOInputError, check_positive, check_same_shape, prepare_mask
from ppo_core.aggregation import masked_mean
from ppo_core.numerics import log_ratio_limit

KLEstimator = Literal["k1", "k2", "k3", "abs", "k3+"]
KL_ESTIMATORS: tuple[str, ...] = get_args(KLEstimator)
KLClamp = Literal["none", "verl", "openrlhf"]
KL_CLAMPS: tuple[str, ...] = get_args(KLClamp)

VERL_K3_LOG_RATIO_CLAMP = 20.0
"""verl clamps ``ref - logp`` to ±20 before k3 (``kl_penalty_forward``)."""
KL_VALUE_CLAMP = 10.0
"""verl clamps k3 and OpenRLHF every estimate to ±10."""


def kl_from_log_ratio(d: Tensor, estimator: KLEstimator = "k3", clamp: KLClamp = "none") -> Tensor:
    """The one implementation of the per-token KL estimators, from ``d = log pi - log pi_ref``.

    Formula: ``k1 = d``, ``k2 = d²/2``, ``k3 = exp(-d) - 1 + d``, ``abs = |d|``, ``k3+`` =
    k3's value with k2's gradient; then the library's clamps (module docstring). A penalty.

    Examples:
        >>> import torch
        >>> d = torch.tensor([0.5, -0.5])
        >>> kl_from_log_ratio(d, "k2"), kl_from_log_ratio(d, "abs")
        (tensor([0.1250, 0.1250]), tensor([0.5000, 0.5000]))
        >>> kl_from_log_ratio(torch.tensor([-15.0]), "k3", "verl")  # value clamped to 10
        tensor([10.])
    """
    if estimator not in KL_ESTIMATORS:
        raise PPOInputError(
            "estimator", f"unknown estimator {estimator!r}; expected one of {list(KL_ESTIMATORS)}"
        )
    if clamp not in KL_CLAMPS:
        raise PPOInputError("clamp", f"unknown clamp {clamp!r}; expected one of {list(KL_CLAMPS)}")
    if estimator == "k1":
        value = d
    elif estimator == "k2":
        value = 0.5 * d * d
    elif estimator == "abs":
        value = d.abs()
    else:
        # exp(-d) overflows the dtype for d below -log_ratio_limit: saturate there (k3 only;
        # the other estimators and k3+'s gradient need no bound).
        x = d.clamp(min=-log_ratio_limit(d.dtype))
        if clamp == "verl":
            x = d.clamp(-VERL_K3_LOG_RATIO_CLAMP, VERL_K3_LOG_RATIO_CLAMP)
        elif clamp == "openrlhf":
            x = d.clamp(min=-KL_VALUE_CLAMP)
        value = torch.expm1(-x) + x
        if clamp == "verl":
            value = value.clamp(-KL_VALUE_CLAMP, KL_VALUE_CLAMP)
    if clamp == "openrlhf":
        value = value.clamp(-KL_VALUE_CLAMP, KL_VALUE_CLAMP)
    if estimator == "k3+":
        k2 = 0.5 * d * d
        value = k2 - k2.detach() + value.detach()
    return value


def kl_per_token(
    logprobs: Tensor,
    ref_logprobs: Tensor,
    estimator: KLEstimator = "k3",
    *,
    log_ratio_clamp: float | None = None,
    clamp: KLClamp = "none",
) -> Tensor:
    """Per-token KL estimate of ``KL(pi || pi_ref)`` from sampled-token log-probs.

    Formula: :func:`kl_from_log_ratio` of ``d = logprobs - ref_logprobs``. ``d`` is clamped to
    ``±log_ratio_clamp`` when set; k3's ``e^{-d}`` saturates where it would overflow the dtype
    (:func:`ppo_core.numerics.log_ratio_limit`); ``clamp`` adds a library's own clamps.

    Examples:
        >>> import torch
        >>> lp, ref = torch.log(torch.tensor([0.5])), torch.log(torch.tensor([0.25]))
        >>> [round(float(kl_per_token(lp, ref, e)), 4) for e in ("k1", "k2", "k3")]
        [0.6931, 0.2402, 0.1931]
    """
    check_same_shape("logprobs", logprobs, ref_logprobs=ref_logprobs)
    d = logprobs - ref_logprobs
    if log_ratio_clamp is not None:
        check_positive("log_ratio_clamp", log_ratio_clamp)
        d = d.clamp(-log_ratio_clamp, log_ratio_clamp)
    return kl_from_log_ratio(d, estimator, clamp)


def kl_true_gradient_weight(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """Per sampled token, the weight ``w`` with ``E_pi[w ∇log pi] = ∇KL(pi || pi_ref)``.

    Formula: ``w = log pi - log pi_ref`` (the score-function form of the exact gradient; the
    ``E_pi[∇log pi] = 0`` baseline term drops). An estimator used as a loss is unbiased iff
    its autograd gradient per token, ``d k / d log pi``, equals ``w`` in expectation.

    Examples:
        >>> import torch
        >>> kl_true_gradient_weight(torch.tensor([-1.0]), torch.tensor([-1.5]))
        tensor([0.5000])
    """
    check_same_shape("logprobs", logprobs, ref_logprobs=ref_logprobs)
    return (logprobs - ref_logprobs).detach()


def kl_gradient(
    logprobs: Tensor,
    ref_logprobs: Tensor,
    estimator: KLEstimator = "k3",
    *,
    log_ratio_clamp: float | None = None,
    clamp: KLClamp = "none",
) -> Tensor:
    """``d k_t / d log pi_t`` per token, by autograd through :func:`kl_per_token`.

    Examples:
        >>> import torch
        >>> lp, ref = torch.tensor([0.0, 0.0]), torch.tensor([0.5, -30.0])
        >>> kl_gradient(lp, ref, "k3", clamp="verl")  # 1 - e^{-d}; 0 where k3 is clamped
        tensor([-0.6487,  0.0000])
        >>> kl_gradient(lp, ref, "k3+", clamp="verl")  # d, clamp or not
        tensor([-0.5000, 30.0000])
    """
    leaf = logprobs.detach().requires_grad_(True)
    with torch.enable_grad():
        value = kl_per_token(
            leaf, ref_logprobs.detach(), estimator, log_ratio_clamp=log_ratio_clamp, clamp=clamp
        )
        (grad,) = torch.autograd.grad(value.sum(), leaf)
    return grad


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
    """Sampled KL estimates against the exact KL as a policy drifts from its reference, and
    each estimator's expected gradient (used as a loss) against the exact gradient."""

    drift: Tensor
    true_kl: Tensor
    mean: dict[str, Tensor]
    std: dict[str, Tensor]
    samples: int
    true_gradient: Tensor
    """``d KL(pi || pi_ref) / d drift``, exact."""
    reverse_kl_gradient: Tensor
    """``d KL(pi_ref || pi) / d drift``, exact (what k3 used as a loss follows)."""
    gradient: dict[str, Tensor]
    """``E_{x~pi}[d k(x) / d drift]`` with the sampling held fixed, exact over the vocabulary:
    the gradient an estimator gives when it is used as a loss."""


def kl_estimator_drift(
    vocab_size: int = 50,
    drifts: Tensor | None = None,
    samples: int = 256,
    seed: int = 0,
) -> KLDrift:
    """How the KL estimators track ``KL(pi || pi_ref)`` as ``pi`` drifts from ``pi_ref``.

    Reference logits ``z ~ N(0, 1)``; policy logits ``z + drift * u`` with a fixed direction
    ``u ~ N(0, 1)``. For each drift, ``samples`` tokens are drawn from ``pi`` and each estimator
    is averaged over them (mean and standard deviation across samples), next to the exact KL.
    k1 and k3 are unbiased, k3 with lower variance; k2 is biased but low-variance.

    Gradients (exact, no sampling): ``true_gradient = d KL / d drift``; for each estimator
    ``k``, ``gradient[k] = sum_x sg(pi(x)) d k(x) / d drift``, its expected gradient as a loss.
    k2 and k3+ match the true gradient, k1's is 0, k3's is the reverse KL's.

    Examples:
        >>> d = kl_estimator_drift(vocab_size=10, drifts=torch.tensor([0.0, 1.0]), samples=64)
        >>> float(d.true_kl[0]), float(d.mean["k3"][0])
        (0.0, 0.0)
        >>> g = d.gradient
        >>> bool(torch.allclose(g["k2"], d.true_gradient)), abs(float(g["k1"][1])) < 1e-15
        (True, True)
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
    drift = drifts.detach().to(torch.float64).requires_grad_(True)
    with torch.enable_grad():
        logits = ref_logits + drift[:, None] * direction  # [D, V]
        ref_logp = torch.log_softmax(ref_logits, dim=-1).expand_as(logits)
        logp = torch.log_softmax(logits, dim=-1)
        p = logp.exp()
        kl_exact = (p * (logp - ref_logp)).sum(dim=-1)
        reverse = (ref_logp.exp() * (ref_logp - logp)).sum(dim=-1)
        (true_gradient,) = torch.autograd.grad(kl_exact.sum(), drift, retain_graph=True)
        (reverse_gradient,) = torch.autograd.grad(reverse.sum(), drift, retain_graph=True)
        gradient = {}
        for estimator in KL_ESTIMATORS:
            k = kl_from_log_ratio(logp - ref_logp, estimator)  # type: ignore[arg-type]
            expected = (p.detach() * k).sum(dim=-1)
            (gradient[estimator],) = torch.autograd.grad(expected.sum(), drift, retain_graph=True)
    logp, ref_logp, p = logp.detach(), ref_logp.detach(), p.detach()
    true_kl = kl_exact.detach().clamp(min=0.0)
    tokens = torch.multinomial(p, samples, replacement=True, generator=gen)  # [D, S]
    lp = logp.gather(1, tokens)
    ref = ref_logp.gather(1, tokens)
    mean, std = {}, {}
    for estimator in KL_ESTIMATORS:
        per_sample = kl_per_token(lp, ref, estimator)  # type: ignore[arg-type]
        mean[estimator] = per_sample.mean(dim=1)
        std[estimator] = per_sample.std(dim=1, correction=0)
    return KLDrift(
        drift=drifts,
        true_kl=true_kl,
        mean=mean,
        std=std,
        samples=samples,
        true_gradient=true_gradient,
        reverse_kl_gradient=reverse_gradient,
        gradient=gradient,
    )
