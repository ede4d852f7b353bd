"""Advantage estimators: GAE, masked whitening, group-relative outcome estimators (GRPO,
Dr. GRPO, RLOO, REINFORCE++-baseline, GPG) and REINFORCE++ token returns.

Sources (verl 0.9.1 ``verl/trainer/ppo/core_algos.py``): ``compute_grpo_outcome_advantage``
L268-331, ``compute_rloo_outcome_advantage`` L588-636,
``compute_reinforce_plus_plus_baseline_outcome_advantage`` L536-584,
``compute_reinforce_plus_plus_outcome_advantage`` L694-731, ``compute_gpg_outcome_advantage``
L771-830, ``compute_gae_advantage_return``; CleanRL ``ppo.py`` for ``dones`` / ``next_value``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

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
    dones: Tensor | None = None,
    last_value: Tensor | float | None = None,
) -> GAEOutput:
    """Generalised Advantage Estimation (Schulman et al. 2016), mask-aware, with episode ends.

    Formula: ``c_t = 1 - done_t``; ``delta_t = r_t + gamma c_t V_{t+1} - V_t``;
    ``A_t = delta_t + gamma lam c_t A_{t+1}``; ``R_t = A_t + V_t``. After the last step
    ``V_T = last_value`` (the bootstrap value of the state after the rollout; default 0: the
    episode ends at ``T``) and ``A_T = 0``. ``done_t = 1`` means the episode ended *at* step
    ``t``: nothing after it is bootstrapped. This is CleanRL's ``nextnonterminal`` shifted by
    one: CleanRL stores ``dones[t]`` = "observation t starts a new episode", so pass its
    ``dones[1:]`` followed by ``next_done``.
    Masked positions (mask 0, e.g. padding or observation tokens) are skipped: they keep the
    running ``V_{t+1}`` and ``A_{t+1}`` of the next valid step, as in verl's
    ``compute_gae_advantage_return``. Their advantages are the carried value; ignore them.

    Args:
        rewards: Per-step rewards ``[T]`` or ``[B, T]`` (RLHF: score on the last token).
        values: Value predictions (same shape).
        mask: Optional 0/1 mask of valid steps.
        gamma: Discount in [0, 1].
        lam: GAE lambda in [0, 1].
        dones: Optional 0/1 episode ends (same shape); default: none before ``T``.
        last_value: Bootstrap value after the last step, a float or one per row ``[B]``.

    Returns:
        A :class:`GAEOutput`.

    Examples:
        >>> import torch
        >>> out = gae(torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.5]), gamma=1.0, lam=1.0)
        >>> out.advantages, out.returns
        (tensor([0.5000, 0.5000]), tensor([1., 1.]))
        >>> r, v = torch.tensor([1.0, 1.0]), torch.zeros(2)
        >>> gae(r, v, gamma=1.0, lam=1.0, dones=torch.tensor([1.0, 0.0]), last_value=5.0).advantages
        tensor([1., 6.])
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
    d = prepare_mask(dones, rewards, "dones", allow_empty=True)
    r2 = rewards.reshape(-1, rewards.shape[-1])
    v2 = values.reshape(r2.shape)
    m2 = None if m is None else m.reshape(r2.shape)
    d2 = None if d is None else d.reshape(r2.shape)
    next_value = torch.zeros_like(r2[:, 0])
    if last_value is not None:
        next_value = next_value + _bootstrap(last_value, r2)
    last_gae = torch.zeros_like(r2[:, 0])
    out = torch.empty_like(r2)
    for t in range(r2.shape[1] - 1, -1, -1):
        carry = gamma if d2 is None else gamma * (1.0 - d2[:, t])
        delta = r2[:, t] + carry * next_value - v2[:, t]
        new_gae = delta + carry * lam * last_gae
        if m2 is None:
            next_value, last_gae = v2[:, t], new_gae
        else:
            mt = m2[:, t]
            next_value = torch.lerp(next_value, v2[:, t], mt)
            last_gae = torch.lerp(last_gae, new_gae, mt)
        out[:, t] = last_gae
    advantages = out.reshape(rewards.shape)
    return GAEOutput(advantages=advantages, returns=advantages + values)


def _bootstrap(last_value: Tensor | float, rows: Tensor) -> Tensor:
    """``last_value`` as one value per row of ``rows`` ``[B, T]``, checked."""
    if isinstance(last_value, Tensor):
        check_float("last_value", last_value)
        lv = last_value.to(rows.dtype).reshape(-1)
        if lv.numel() == 1:
            lv = lv.expand(rows.shape[0])
        if lv.shape[0] != rows.shape[0]:
            raise PPOInputError(
                "last_value", f"expected one value per row ({rows.shape[0]}), got {lv.numel()}"
            )
        return lv
    if not math.isfinite(last_value):
        raise PPOInputError("last_value", f"must be finite, got {last_value}")
    return torch.full_like(rows[:, 0], float(last_value))


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


GroupEstimator = Literal["grpo", "dr_grpo", "rloo", "reinforce_plus_plus_baseline", "gpg"]
GROUP_ESTIMATORS: tuple[str, ...] = get_args(GroupEstimator)


@dataclass(frozen=True)
class GroupStats:
    """Per-response group statistics: the group's mean, std (unbiased), size, and index."""

    mean: Tensor
    std: Tensor
    size: Tensor
    inverse: Tensor


def group_stats(rewards: Tensor, group_ids: Tensor) -> GroupStats:
    """Each response's group mean and unbiased std (verl's rule: a group of one has mean 0 and
    std 1), computed with scatter-adds, on the rewards' device and dtype."""
    check_float("rewards", rewards)
    check_rank("rewards", rewards, (1,))
    if not isinstance(group_ids, Tensor) or group_ids.is_floating_point():
        raise PPOInputError("group_ids", "expected an integer tensor")
    if group_ids.shape != rewards.shape:
        raise PPOInputError(
            "group_ids",
            f"shape {list(group_ids.shape)} does not match rewards {list(rewards.shape)}",
        )
    _, inverse, counts = torch.unique(group_ids, return_inverse=True, return_counts=True)
    n = counts.to(device=rewards.device, dtype=rewards.dtype)
    inverse = inverse.to(rewards.device)
    sums = torch.zeros_like(n).index_add_(0, inverse, rewards)
    means = sums / n
    centred = rewards - means[inverse]
    sq = torch.zeros_like(n).index_add_(0, inverse, centred * centred)
    stds = torch.sqrt(sq / (n - 1).clamp(min=1))
    single = n == 1
    means = torch.where(single, torch.zeros_like(means), means)
    stds = torch.where(single, torch.ones_like(stds), stds)
    return GroupStats(mean=means[inverse], std=stds[inverse], size=n[inverse], inverse=inverse)


def group_advantages(
    rewards: Tensor,
    group_ids: Tensor,
    *,
    estimator: GroupEstimator = "grpo",
    normalize_std: bool = True,
    eps: float = 1e-6,
    lengths: Tensor | None = None,
) -> Tensor:
    """Group-relative outcome advantages, one per response (same prompt = same group).

    Formula, with the group's mean ``mu_g``, unbiased std ``sigma_g`` and size ``n_g`` (a group
    of one has ``mu = 0``, ``sigma = 1``, verl's rule):

    * ``grpo`` (Shao et al. 2024): ``(r - mu_g) / (sigma_g + eps)``; with ``normalize_std=False``
      it is ``dr_grpo``. ``eps``: verl 1e-6, OpenRLHF 1e-9, TRL 1e-4.
    * ``dr_grpo`` (Liu et al. 2025): ``r - mu_g`` (no std scaling).
    * ``rloo``: ``n_g/(n_g-1) (r - mu_g)`` = ``r`` minus the mean of the *other* responses;
      a group of one keeps ``r`` (verl's ``rloo``).
    * ``reinforce_plus_plus_baseline`` (Hu 2025): ``r - mu_g``, then whitened over the batch's
      *tokens*: each response counts ``lengths_i`` times (default 1), unbiased variance,
      ``(x - mean) / sqrt(var + 1e-8)`` (verl's ``masked_whiten``).
    * ``gpg`` (Chu et al. 2025): ``alpha (r - mu_g)`` with ``alpha = B / max(#{r != 0}, 1)``
      (verl's ``compute_gpg_outcome_advantage``).

    Args:
        rewards: One scalar reward per response, ``[N]``.
        group_ids: Integer group id per response, ``[N]``.
        estimator: One of :data:`GROUP_ESTIMATORS`.
        normalize_std: ``grpo`` only: divide by the group std (False = Dr. GRPO).
        eps: Added to the std (``grpo``).
        lengths: Valid tokens per response (``reinforce_plus_plus_baseline``'s whitening).

    Examples:
        >>> import torch
        >>> group_advantages(torch.tensor([1.0, 0.0, 5.0]), torch.tensor([0, 0, 1]))
        tensor([ 0.7071, -0.7071,  5.0000])
        >>> group_advantages(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0, 0, 0]),
        ...                  estimator="rloo")
        tensor([ 1.0000, -0.5000, -0.5000])
    """
    if estimator not in GROUP_ESTIMATORS:
        raise PPOInputError(
            "estimator",
            f"unknown estimator {estimator!r}; expected one of {list(GROUP_ESTIMATORS)}",
        )
    check_positive("eps", eps)
    g = group_stats(rewards, group_ids)
    centred = rewards - g.mean
    if estimator == "grpo":
        return centred / (g.std + eps) if normalize_std else centred
    if estimator == "dr_grpo":
        return centred
    if estimator == "rloo":
        return torch.where(g.size > 1, centred * g.size / (g.size - 1).clamp(min=1), rewards)
    if estimator == "gpg":
        alpha = rewards.shape[0] / max(int(torch.count_nonzero(rewards)), 1)
        return alpha * centred
    weights = torch.ones_like(rewards) if lengths is None else _lengths(lengths, rewards)
    return _weighted_whiten(centred, weights)


def _lengths(lengths: Tensor, like: Tensor) -> Tensor:
    if lengths.shape != like.shape:
        raise PPOInputError(
            "lengths", f"shape {list(lengths.shape)} does not match rewards {list(like.shape)}"
        )
    if bool((lengths < 0).any()) or not bool((lengths > 0).any()):
        raise PPOInputError("lengths", "must be >= 0 with at least one > 0")
    return lengths.to(like.dtype)


def _weighted_whiten(x: Tensor, weights: Tensor) -> Tensor:
    """verl's ``masked_whiten`` of ``x`` tiled ``weights_i`` times per entry (integer token
    counts): mean and unbiased variance over the tiled entries, eps 1e-8 inside the rsqrt."""
    total = weights.sum()
    if float(total) < 2:
        raise PPOInputError("rewards", "whitening needs at least 2 valid tokens")
    mean = (weights * x).sum() / total
    var = (weights * (x - mean) ** 2).sum() / total * total / (total - 1)
    return torch.where(weights > 0, (x - mean) * torch.rsqrt(var + 1e-8), torch.zeros_like(x))


@dataclass(frozen=True)
class ReinforcePPOutput:
    """REINFORCE++ advantages (whitened, 0 at padding) and discounted returns."""

    advantages: Tensor
    returns: Tensor


def reinforce_plus_plus(
    token_level_rewards: Tensor,
    mask: Tensor | None = None,
    *,
    gamma: float = 1.0,
    group_ids: Tensor | None = None,
) -> ReinforcePPOutput:
    """REINFORCE++ (Hu 2025): discounted token returns, whitened over the batch's tokens.

    Formula (verl ``compute_reinforce_plus_plus_outcome_advantage``): ``G_t = m_t (r_t +
    gamma G_{t+1})``, a masked step carrying ``G`` through unchanged; ``A = masked_whiten(G,
    m) * m`` (unbiased variance, ``rsqrt(var + 1e-8)``); ``returns = G``. With ``group_ids``
    (one per row) the baseline form (``reinforce_plus_plus_baseline``): ``score_i = sum_t r_t``
    minus its group's mean (a group of one: mean 0), on every valid token, whitened the same
    way; ``returns = advantages`` (verl).

    Args:
        token_level_rewards: ``[B, T]`` per-token rewards (outcome: the score on the last
            valid token).
        mask: Optional 0/1 response mask.
        gamma: Discount in [0, 1] (verl ``algorithm.gamma``, default 1).
        group_ids: Optional integer group per row: the group-baseline form.

    Examples:
        >>> import torch
        >>> r = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
        >>> reinforce_plus_plus(r, gamma=0.5).returns
        tensor([[0.5000, 1.0000],
                [0.0000, 0.0000]])
    """
    check_float("token_level_rewards", token_level_rewards)
    check_rank("token_level_rewards", token_level_rewards, (2,))
    check_nonnegative("gamma", gamma)
    if gamma > 1:
        raise PPOInputError("gamma", f"must be in [0, 1], got {gamma}")
    m = prepare_mask(mask, token_level_rewards)
    mf = torch.ones_like(token_level_rewards) if m is None else m
    r = torch.where(mf > 0, token_level_rewards, torch.zeros_like(token_level_rewards))
    if group_ids is not None:
        if group_ids.shape != r.shape[:1]:
            raise PPOInputError(
                "group_ids", f"expected one per row ({r.shape[0]}), got {list(group_ids.shape)}"
            )
        centred = group_advantages(r.sum(dim=-1), group_ids, estimator="dr_grpo")
        tiled = centred.unsqueeze(-1) * mf
        adv = whiten(tiled, mf, name="token_level_rewards") * mf
        return ReinforcePPOutput(advantages=adv, returns=adv)
    returns = torch.zeros_like(r)
    running = torch.zeros_like(r[:, 0])
    for t in range(r.shape[1] - 1, -1, -1):
        new = r[:, t] + gamma * running
        returns[:, t] = new * mf[:, t]
        running = torch.where(mf[:, t] > 0, new, running)
    adv = whiten(returns, mf, name="token_level_rewards") * mf
    return ReinforcePPOutput(advantages=adv, returns=returns)


def outcome_token_rewards(scores: Tensor, mask: Tensor) -> Tensor:
    """One score per row placed on the row's last valid token, 0 elsewhere: the
    ``token_level_rewards`` of an outcome reward (verl, OpenRLHF).

    Examples:
        >>> import torch
        >>> outcome_token_rewards(torch.tensor([2.0]), torch.tensor([[1.0, 1.0, 0.0]]))
        tensor([[0., 2., 0.]])
    """
    valid = mask > 0
    last = valid & (mask.cumsum(dim=-1) == mask.sum(dim=-1, keepdim=True))
    return torch.where(last, scores[:, None].to(mask.dtype), torch.zeros_like(mask))


def outcome_advantages(
    scores: Tensor,
    mask: Tensor,
    *,
    estimator: GroupEstimator | Literal["reinforce_plus_plus"] = "grpo",
    group_ids: Tensor | None = None,
    gamma: float = 1.0,
    eps: float = 1e-6,
) -> Tensor:
    """Advantages from one score per sequence (rows of ``mask``): ``[B]`` for the group
    estimators (:func:`group_advantages`; REINFORCE++-baseline whitened over each row's
    tokens), ``[B, T]`` for REINFORCE++ (:func:`reinforce_plus_plus` of the score on the last
    valid token).

    Examples:
        >>> import torch
        >>> m = torch.ones(2, 2)
        >>> outcome_advantages(torch.tensor([1.0, 0.0]), m, group_ids=torch.tensor([0, 0]))
        tensor([ 0.7071, -0.7071])
    """
    if estimator == "reinforce_plus_plus":
        rewards = outcome_token_rewards(scores, mask)
        return reinforce_plus_plus(rewards, mask, gamma=gamma).advantages
    if group_ids is None:
        raise PPOInputError("group_ids", f"field required with scores for {estimator}")
    return group_advantages(
        scores, group_ids, estimator=estimator, eps=eps, lengths=mask.sum(dim=-1)
    )
