"""Advantage estimators: GAE, masked whitening, and group-relative (GRPO) advantages."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ppo_core._checks import (
    PPOInputError,
    check_float,
    check_nonnegative,
    check_positive,
    check_rank,
    check_same_shape,
    prepare_mask,
)
from ppo_core.aggregation import masked_mean, masked_var

MAX_GAE_LENGTH = 16384
"""Longest time axis :func:`gae` accepts: the recursion is a loop over time (vectorised over
the batch), so its cost grows with the sequence length, not the batch."""


@dataclass(frozen=True)
class GAEOutput:
    """Advantages and returns (``returns = advantages + values``, before any whitening)."""

    advantages: Tensor
    returns: Tensor


def gae(
    rewards: Tensor,
    values: Tensor,
    mask: Tensor | None = None,
    *,
    gamma: float = 0.99,
    lam: float = 0.95,
) -> GAEOutput:
    """Generalised Advantage Estimation (Schulman et al. 2016), mask-aware.

    Formula: ``delta_t = r_t + gamma V_{t+1} - V_t``; ``A_t = delta_t + gamma lam A_{t+1}``;
    ``R_t = A_t + V_t``, with ``V_T = A_T = 0`` after the last step (episode ends there).
    Masked positions (mask 0, e.g. padding or observation tokens) are skipped: they keep the
    running ``V_{t+1}`` and ``A_{t+1}`` of the next valid step, as in verl's
    ``compute_gae_advantage_return``. Their advantages are the carried value; ignore them.

    Args:
        rewards: Per-step rewards ``[T]`` or ``[B, T]`` (RLHF: score on the last token).
        values: Value predictions (same shape).
        mask: Optional 0/1 mask of valid steps.
        gamma: Discount in [0, 1].
        lam: GAE lambda in [0, 1].

    Returns:
        A :class:`GAEOutput`.

    Examples:
        >>> import torch
        >>> out = gae(torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.5]), gamma=1.0, lam=1.0)
        >>> out.advantages, out.returns
        (tensor([0.5000, 0.5000]), tensor([1., 1.]))
    """
    check_same_shape("rewards", rewards, values=values)
    check_rank("rewards", rewards, (1, 2))
    for name, value in (("gamma", gamma), ("lam", lam)):
        check_nonnegative(name, value)
        if value > 1:
            raise PPOInputError(name, f"must be in [0, 1], got {value}")
    if rewards.shape[-1] > MAX_GAE_LENGTH:
        raise PPOInputError(
            "rewards", f"time axis of {rewards.shape[-1]} exceeds the GAE limit {MAX_GAE_LENGTH}"
        )
    m = prepare_mask(mask, rewards)
    r2 = rewards.reshape(-1, rewards.shape[-1])
    v2 = values.reshape(r2.shape)
    m2 = None if m is None else m.reshape(r2.shape)
    next_value = torch.zeros_like(r2[:, 0])
    last_gae = torch.zeros_like(r2[:, 0])
    out = torch.empty_like(r2)
    for t in range(r2.shape[1] - 1, -1, -1):
        delta = r2[:, t] + gamma * next_value - v2[:, t]
        new_gae = delta + gamma * lam * last_gae
        if m2 is None:
            next_value, last_gae = v2[:, t], new_gae
        else:
            mt = m2[:, t]
            next_value = torch.lerp(next_value, v2[:, t], mt)
            last_gae = torch.lerp(last_gae, new_gae, mt)
        out[:, t] = last_gae
    advantages = out.reshape(rewards.shape)
    return GAEOutput(advantages=advantages, returns=advantages + values)


def whiten(
    values: Tensor,
    mask: Tensor | None = None,
    *,
    shift_mean: bool = True,
    eps: float = 1e-8,
    name: str = "values",
) -> Tensor:
    """Masked whitening: ``(x - mean) / sqrt(var + eps)`` over valid positions.

    Variance is Bessel-corrected (as verl / TRL ``masked_whiten``). With ``shift_mean=False``
    the mean is added back (only the scale changes). Invalid positions are transformed too;
    ignore them.

    Examples:
        >>> import torch
        >>> whiten(torch.tensor([1.0, 3.0]))
        tensor([-0.7071,  0.7071])
    """
    check_float(name, values)
    m = prepare_mask(mask, values)
    if (values.numel() if m is None else int(m.sum())) < 2:
        raise PPOInputError(name, "whitening needs at least 2 valid entries")
    mean = masked_mean(values, m)
    var = masked_var(values, m, unbiased=True)
    out = (values - mean) * torch.rsqrt(var + eps)
    return out if shift_mean else out + mean


def normalize_advantages(advantages: Tensor, eps: float = 1e-8) -> Tensor:
    """Per-minibatch normalisation of CleanRL and SB3: ``(A - mean) / (std + eps)``.

    ``std`` is unbiased (``torch.std``). Unlike :func:`whiten`, ``eps`` is added to the std.

    Examples:
        >>> import torch
        >>> normalize_advantages(torch.tensor([1.0, 3.0]))
        tensor([-0.7071,  0.7071])
    """
    check_float("advantages", advantages)
    if advantages.numel() < 2:
        raise PPOInputError("advantages", "normalisation needs at least 2 entries")
    return (advantages - advantages.mean()) / (advantages.std() + eps)


def group_advantages(
    rewards: Tensor, group_ids: Tensor, *, normalize_std: bool = True, eps: float = 1e-6
) -> Tensor:
    """Group-relative advantages (GRPO, Shao et al. 2024), one per response.

    Formula: ``A_i = (r_i - mean_g) / (std_g + eps)`` with ``normalize_std`` (GRPO), else
    ``A_i = r_i - mean_g`` (Dr. GRPO), where ``g`` is the group of response ``i`` (same prompt)
    and ``std_g`` is unbiased. A group of one response gets mean 0 and std 1 (verl's rule), so
    its advantage is its reward.

    Args:
        rewards: One scalar reward per response, ``[N]``.
        group_ids: Integer group id per response, ``[N]``.
        normalize_std: Divide by the group std.
        eps: Added to the std.

    Examples:
        >>> import torch
        >>> group_advantages(torch.tensor([1.0, 0.0, 5.0]), torch.tensor([0, 0, 1]))
        tensor([ 0.7071, -0.7071,  5.0000])
    """
    check_float("rewards", rewards)
    check_rank("rewards", rewards, (1,))
    if not isinstance(group_ids, Tensor) or group_ids.is_floating_point():
        raise PPOInputError("group_ids", "expected an integer tensor")
    if group_ids.shape != rewards.shape:
        raise PPOInputError(
            "group_ids",
            f"shape {list(group_ids.shape)} does not match rewards {list(rewards.shape)}",
        )
    check_positive("eps", eps)
    _, inverse, counts = torch.unique(group_ids, return_inverse=True, return_counts=True)
    n = counts.to(rewards.dtype)
    sums = torch.zeros_like(n).index_add_(0, inverse, rewards)
    means = sums / n
    centred = rewards - means[inverse]
    sq = torch.zeros_like(n).index_add_(0, inverse, centred * centred)
    stds = torch.sqrt(sq / (n - 1).clamp(min=1))
    single = counts == 1
    means = torch.where(single, torch.zeros_like(means), means)
    stds = torch.where(single, torch.ones_like(stds), stds)
    centred = rewards - means[inverse]
    return centred / (stds[inverse] + eps) if normalize_std else centred
