"""The complete PPO loss: policy + value + entropy (+ KL), under a convention preset.

Formula: ``L = L_policy + vf_coef * L_value - entropy_coef * H (+ kl_coef * KL if the
convention puts the KL in the loss)``. A loss: minimise it. Every term is aggregated with the
convention's ``loss_agg_mode`` over the same mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ppo_core._checks import PPOInputError, check_float, check_same_shape, prepare_mask
from ppo_core.advantages import gae, normalize_advantages, whiten
from ppo_core.aggregation import aggregate, masked_mean, masked_var
from ppo_core.conventions import CONVENTIONS, Convention
from ppo_core.diagnostics import explained_variance
from ppo_core.entropy import compute_entropy, entropy_from_logits
from ppo_core.kl import kl_per_token
from ppo_core.policy import PolicyLossOutput, compute_ppo_loss, policy_loss, sequence_advantages
from ppo_core.rollout import RolloutCorrection, rollout_correction
from ppo_core.value import ValueLossOutput, compute_value_loss, value_loss


@dataclass(frozen=True)
class TotalLossOutput:
    """Result of :func:`ppo_total_loss`: the total, each term, and batch diagnostics."""

    total_loss: Tensor
    policy: PolicyLossOutput
    value: ValueLossOutput
    entropy: Tensor | None
    """Aggregated entropy (``None`` when neither logits nor entropies were given)."""
    kl: Tensor | None
    """Aggregated KL to the reference with the convention's estimator (``None`` without it)."""
    kl_in_loss: bool
    value_clip_applied: bool
    """False when the convention clips the value but no ``old_values`` were given."""
    advantages: Tensor
    """The advantages the policy loss used (after the convention's normalisation)."""
    explained_variance: float | None
    rollout: RolloutCorrection | None = None
    """Rollout correction applied to the policy loss (``None`` without it)."""


def compute_advantages(
    rewards: Tensor, values: Tensor, mask: Tensor | None, convention: Convention
) -> tuple[Tensor, Tensor]:
    """GAE with the convention's ``gamma`` / ``lam``, whitened when it says ``whiten``.

    Returns ``(advantages, returns)``; returns are ``A + V`` before whitening (verl, TRL).
    """
    out = gae(rewards, values, mask, gamma=convention.gamma, lam=convention.lam)
    advantages = out.advantages
    if convention.advantage_norm == "whiten":
        advantages = whiten(advantages, mask, name="rewards")
    return advantages, out.returns


def ppo_total_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    values: Tensor,
    returns: Tensor,
    *,
    mask: Tensor | None = None,
    old_values: Tensor | None = None,
    logits: Tensor | None = None,
    entropy: Tensor | None = None,
    ref_logprobs: Tensor | None = None,
    rollout_logprobs: Tensor | None = None,
    convention: Convention = CONVENTIONS["seed"],
) -> TotalLossOutput:
    """Total PPO loss and every diagnostic, computed as ``convention`` computes them.

    Formula: ``L = agg(l_policy) + vf_coef * agg(l_value) - entropy_coef * agg(H)
    [+ kl_coef * agg(KL)]`` where ``agg`` is the convention's ``loss_agg_mode``. With
    ``advantage_norm == "minibatch"`` (CleanRL, SB3) advantages are normalised here, over the
    valid tokens, as those libraries do per minibatch; ``"whiten"`` conventions whiten when
    advantages are *computed* (:func:`compute_advantages`), so given advantages are used as is.

    Args:
        logprobs: Current log-probs of the taken tokens, ``[T]`` or ``[B, T]``.
        old_logprobs: Rollout log-probs (same shape).
        advantages: Advantages (same shape).
        values: Current value predictions (same shape).
        returns: Value targets (same shape).
        mask: Optional 0/1 mask of valid tokens.
        old_values: Rollout value predictions, needed for value clipping.
        logits: ``[..., V]`` logits whose leading shape is ``logprobs.shape``, for the entropy.
        entropy: Per-token entropies instead of logits (same shape as ``logprobs``).
        ref_logprobs: Reference-policy log-probs, for the KL (same shape).
        rollout_logprobs: The inference engine's log-probs, for rollout correction when the
            convention sets ``rollout_is_level`` (same shape).
        convention: The preset whose knobs apply (:data:`CONVENTIONS`).

    Returns:
        A :class:`TotalLossOutput`.

    Examples:
        >>> import torch
        >>> t = torch.zeros(4)
        >>> out = ppo_total_loss(t, t, torch.tensor([1.0, -1.0, 1.0, -1.0]), t, torch.ones(4))
        >>> float(out.total_loss), float(out.value.loss)  # policy 0, value 1 * 0.5
        (0.5, 1.0)
    """
    check_float("advantages", advantages)
    advantages = sequence_advantages(advantages, logprobs)
    check_same_shape(
        "logprobs",
        logprobs,
        old_logprobs=old_logprobs,
        advantages=advantages,
        values=values,
        returns=returns,
        old_values=old_values,
        entropy=entropy,
        ref_logprobs=ref_logprobs,
        rollout_logprobs=rollout_logprobs,
    )
    if logits is not None and entropy is not None:
        raise PPOInputError("entropy", "give logits or per-token entropy, not both")
    if logits is not None and tuple(logits.shape[:-1]) != tuple(logprobs.shape):
        raise PPOInputError(
            "logits",
            f"leading shape {list(logits.shape[:-1])} does not match "
            f"logprobs {list(logprobs.shape)}",
        )
    c = convention
    m = prepare_mask(mask, logprobs)

    advantages = convention_advantages(advantages, m, c)

    correction = None
    if rollout_logprobs is not None and c.rollout_is_level is not None:
        correction = rollout_correction(old_logprobs, rollout_logprobs, m, **c.rollout_knobs())
    pol = convention_policy_loss(
        logprobs,
        old_logprobs,
        advantages,
        m,
        c,
        rollout_is_weights=None if correction is None else correction.weights,
    )
    clip_value = c.value_clip_range is not None and old_values is not None
    val = value_loss(
        values,
        returns,
        old_values if clip_value else None,
        m,
        clip_range=c.value_clip_range if clip_value else None,
        mode=c.value_mode,
        scale=c.value_scale,
        loss_agg_mode=c.loss_agg_mode,
    )
    total = pol.loss + c.vf_coef * val.loss

    ent = None
    if logits is not None:
        entropy = entropy_from_logits(logits)
    if entropy is not None:
        ent = aggregate(
            entropy,
            m,
            c.loss_agg_mode,
            loss_scale_factor=c.loss_scale_factor,
            count_empty_rows=c.count_empty_rows,
        )
        total = total - c.entropy_coef * ent

    kl = None
    kl_in_loss = False
    if ref_logprobs is not None:
        kl = aggregate(
            kl_per_token(logprobs, ref_logprobs, c.kl_estimator, clamp=c.kl_clamp),
            m,
            c.loss_agg_mode,
            loss_scale_factor=c.loss_scale_factor,
            count_empty_rows=c.count_empty_rows,
        )
        if c.kl_placement == "loss" and c.kl_coef > 0:
            total = total + c.kl_coef * kl
            kl_in_loss = True

    return TotalLossOutput(
        total_loss=total,
        policy=pol,
        value=val,
        entropy=ent,
        kl=kl,
        kl_in_loss=kl_in_loss,
        value_clip_applied=clip_value,
        advantages=advantages,
        explained_variance=explained_variance(values, returns, m),
        rollout=correction,
    )


def convention_advantages(
    advantages: Tensor, mask: Tensor | None, convention: Convention
) -> Tensor:
    """The advantages the convention's policy loss sees: normalised over the valid tokens
    with ``advantage_norm == "minibatch"`` (CleanRL, SB3: ``(A - mean) / (std + 1e-8)``,
    unbiased std), as given otherwise."""
    if convention.advantage_norm != "minibatch":
        return advantages
    if mask is None:
        return normalize_advantages(advantages)
    std = masked_var(advantages, mask, unbiased=True).sqrt()
    return (advantages - masked_mean(advantages, mask)) / (std + 1e-8)


def convention_policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor | None,
    convention: Convention,
    *,
    rollout_is_weights: Tensor | None = None,
) -> PolicyLossOutput:
    """:func:`ppo_core.policy.policy_loss` with every policy knob taken from ``convention``."""
    c = convention
    return policy_loss(
        logprobs,
        old_logprobs,
        advantages,
        mask,
        policy_loss_mode=c.policy_loss_mode,
        clip_ratio=c.clip_ratio,
        clip_ratio_low=c.clip_ratio_low,
        clip_ratio_high=c.clip_ratio_high,
        dual_clip=c.dual_clip,
        log_ratio_clamp=c.log_ratio_clamp,
        loss_agg_mode=c.loss_agg_mode,
        loss_scale_factor=c.loss_scale_factor,
        count_empty_rows=c.count_empty_rows,
        sapo_tau_pos=c.sapo_tau_pos,
        sapo_tau_neg=c.sapo_tau_neg,
        cispo_clip=c.cispo_clip,
        gspo_stop_gradient=c.gspo_stop_gradient,
        gspo_log_ratio_max=c.gspo_log_ratio_max,
        rollout_is_weights=rollout_is_weights,
        approx_kl_clamped=c.approx_kl_clamped,
    )


def compute_ppo_total_loss(
    policy_logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    values: torch.Tensor,
    returns: torch.Tensor,
    logits: torch.Tensor,
    clip_ratio: float = 0.2,
    vf_coef: float = 0.5,
    entropy_coef: float = 0.01,
) -> dict[str, torch.Tensor]:
    """The seed tutorial's total loss (same name, signature, keys and numbers).

    Formula: ``total = policy_loss + vf_coef * value_loss - entropy_coef * entropy`` with the
    seed's clipped policy loss, unclipped MSE value loss and mean entropy. A loss.

    Returns:
        ``{"total_loss", "policy_loss", "value_loss", "entropy"}``, each a 0-dim tensor.

    Examples:
        >>> import torch
        >>> out = compute_ppo_total_loss(torch.zeros(2), torch.zeros(2), torch.ones(2),
        ...                              torch.zeros(2), torch.ones(2), torch.zeros(2, 4))
        >>> {k: round(float(v), 4) for k, v in out.items()}
        {'total_loss': -0.5139, 'policy_loss': -1.0, 'value_loss': 1.0, 'entropy': 1.3863}
    """
    policy = compute_ppo_loss(policy_logprobs, old_logprobs, advantages, clip_ratio)
    value = compute_value_loss(values, returns, clip_value=False)
    entropy = compute_entropy(logits)
    total_loss = policy + vf_coef * value - entropy_coef * entropy
    return {
        "total_loss": total_loss,
        "policy_loss": policy,
        "value_loss": value,
        "entropy": entropy,
    }


def seed_example_batch(
    seed: int = 0, batch_size: int = 16, vocab_size: int = 1000
) -> dict[str, torch.Tensor]:
    """The seed tutorial's fake batch, reproducible: the inputs of its total-loss example.

    ``policy_logprobs``, ``old_logprobs`` = N(0, 1) - 2; ``advantages``, ``values``,
    ``returns`` = N(0, 1); ``logits`` = N(0, 1) of shape ``[batch_size, vocab_size]``; drawn in
    that order from one generator seeded with ``seed``.

    Examples:
        >>> b = seed_example_batch(0, 4, 10)
        >>> sorted(b), list(b["logits"].shape)
        (['advantages', 'logits', 'old_logprobs', 'policy_logprobs', 'returns', 'values'], [4, 10])
    """
    if batch_size < 2:
        raise PPOInputError("batch_size", f"must be >= 2, got {batch_size}")
    if vocab_size < 2:
        raise PPOInputError("vocab_size", f"must be >= 2, got {vocab_size}")
    gen = torch.Generator().manual_seed(seed)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    return {
        "policy_logprobs": normal(batch_size) - 2,
        "old_logprobs": normal(batch_size) - 2,
        "advantages": normal(batch_size),
        "values": normal(batch_size),
        "returns": normal(batch_size),
        "logits": normal(batch_size, vocab_size),
    }
