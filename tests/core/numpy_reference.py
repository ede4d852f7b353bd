"""An independent NumPy (float64) re-derivation of the PPO formulas, for checking ppo_core.

Written from the formulas (PPO paper, GAE paper, verl / CleanRL / SB3 / TRL definitions), not
from ppo_core's code, and never calling it. Inputs are NumPy arrays (or anything
``np.asarray`` accepts); everything is computed in float64. Loops are written per row / per
token on purpose: slower, but structurally different from ppo_core's vectorised code.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]


def f64(x: ArrayLike) -> Array:
    return np.asarray(x, dtype=np.float64)


def as_rows(x: ArrayLike) -> Array:
    """A 1-D input is one sequence ``[1, T]``."""
    a = f64(x)
    return a[None, :] if a.ndim == 1 else a


def ones_mask(x: ArrayLike) -> Array:
    return np.ones_like(f64(x))


# --------------------------------------------------------------------------- aggregation


def aggregate(per_token: ArrayLike, mask: ArrayLike | None, mode: str) -> float:
    """verl ``agg_loss``; rows with no valid token are left out of sequence means."""
    x = as_rows(per_token)
    m = ones_mask(x) if mask is None else as_rows(mask)
    if mode == "token-mean":
        return float(np.sum(x * m) / np.sum(m))
    row_sums, row_counts = [], []
    for row, row_mask in zip(x, m, strict=True):
        total = 0.0
        for value, valid in zip(row, row_mask, strict=True):
            if valid:
                total += value
        row_sums.append(total)
        row_counts.append(int(np.sum(row_mask)))
    if mode == "seq-mean-token-sum-norm":
        return float(sum(row_sums) / x.shape[-1])
    kept = [
        (s / c if mode == "seq-mean-token-mean" else s)
        for s, c in zip(row_sums, row_counts, strict=True)
        if c > 0
    ]
    if mode in ("seq-mean-token-mean", "seq-mean-token-sum"):
        return float(sum(kept) / len(kept))
    raise ValueError(mode)


def masked_mean(x: ArrayLike, mask: ArrayLike | None) -> float:
    a = f64(x).ravel()
    if mask is None:
        return float(a.mean())
    return float(a[f64(mask).ravel() > 0].mean())


# --------------------------------------------------------------------------- policy loss


def policy_terms(
    logprobs: ArrayLike,
    old_logprobs: ArrayLike,
    advantages: ArrayLike,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    dual_clip: float | None = None,
    log_ratio_clamp: float | None = None,
) -> dict[str, Array]:
    """Per-token PPO clipped surrogate loss (a loss: the negated objective), with flags."""
    log_ratio = f64(logprobs) - f64(old_logprobs)
    if log_ratio_clamp is not None:
        log_ratio = np.clip(log_ratio, -log_ratio_clamp, log_ratio_clamp)
    a = f64(advantages)
    ratio = np.exp(log_ratio)
    low, high = 1.0 - eps_low, 1.0 + eps_high
    objective_unclipped = ratio * a
    objective_clipped = np.clip(ratio, low, high) * a
    # PPO: L^CLIP = min(r A, clip(r) A); the loss is its negation.
    loss = -np.minimum(objective_unclipped, objective_clipped)
    clipped_taken = -objective_clipped > -objective_unclipped
    dual_taken = np.zeros_like(clipped_taken)
    if dual_clip is not None:
        # verl: for A < 0 only, loss = min(loss, -c A).
        bound = -dual_clip * a
        dual_taken = (a < 0) & (loss > bound)
        loss = np.where(dual_taken, bound, loss)
    return {
        "loss": loss,
        "ratio": ratio,
        "log_ratio": log_ratio,
        "clipped_taken": clipped_taken.astype(np.float64),
        "dual_taken": dual_taken.astype(np.float64),
        "outside": ((ratio < low) | (ratio > high)).astype(np.float64),
    }


def policy_loss(
    logprobs: ArrayLike,
    old_logprobs: ArrayLike,
    advantages: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    clip_ratio: float = 0.2,
    clip_ratio_low: float | None = None,
    clip_ratio_high: float | None = None,
    dual_clip: float | None = None,
    log_ratio_clamp: float | None = None,
    loss_agg_mode: str = "token-mean",
) -> dict[str, Any]:
    """Aggregated loss and every diagnostic, over the valid tokens."""
    t = policy_terms(
        logprobs,
        old_logprobs,
        advantages,
        eps_low=clip_ratio if clip_ratio_low is None else clip_ratio_low,
        eps_high=clip_ratio if clip_ratio_high is None else clip_ratio_high,
        dual_clip=dual_clip,
        log_ratio_clamp=log_ratio_clamp,
    )
    valid = ones_mask(t["loss"]) > 0 if mask is None else f64(mask) > 0
    r = t["ratio"][valid]
    lr = t["log_ratio"][valid]
    return {
        "loss": aggregate(t["loss"], mask, loss_agg_mode),
        "per_token_loss": t["loss"],
        "ratio": t["ratio"],
        "clip_fraction": float(t["clipped_taken"][valid].mean()),
        "clip_fraction_lower": float(t["dual_taken"][valid].mean()),
        "ratio_outside_fraction": float(t["outside"][valid].mean()),
        "approx_kl": float(np.mean(-lr)),  # k1: mean(old - new)
        "approx_kl_k2": float(np.mean(lr**2 / 2)),
        "approx_kl_k3": float(np.mean((r - 1) - lr)),
        "ratio_min": float(r.min()),
        "ratio_mean": float(r.mean()),
        "ratio_max": float(r.max()),
    }


# --------------------------------------------------------------------------- value loss


def value_per_token(
    values: ArrayLike,
    returns: ArrayLike,
    old_values: ArrayLike | None = None,
    *,
    clip_range: float | None = None,
    mode: str = "max",
    scale: float = 1.0,
) -> tuple[Array, Array]:
    """Per-token value loss and the per-token "clip counted" flag."""
    v, ret = f64(values), f64(returns)
    err = (v - ret) ** 2
    if clip_range is None:
        return scale * err, np.zeros_like(err)
    old = f64(old_values)
    v_clip = old + np.clip(v - old, -clip_range, clip_range)
    err_clip = (v_clip - ret) ** 2
    if mode == "max":
        return scale * np.maximum(err, err_clip), (err_clip > err).astype(np.float64)
    if mode == "clipped":
        return scale * err_clip, (np.abs(v - old) > clip_range).astype(np.float64)
    raise ValueError(mode)


def value_loss(
    values: ArrayLike,
    returns: ArrayLike,
    old_values: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    *,
    clip_range: float | None = None,
    mode: str = "max",
    scale: float = 1.0,
    loss_agg_mode: str = "token-mean",
) -> dict[str, Any]:
    per_token, taken = value_per_token(
        values, returns, old_values, clip_range=clip_range, mode=mode, scale=scale
    )
    return {
        "loss": aggregate(per_token, mask, loss_agg_mode),
        "per_token_loss": per_token,
        "clip_fraction": masked_mean(taken, mask),
    }


# --------------------------------------------------------------------------- entropy, KL


def entropy(logits: ArrayLike, temperature: float = 1.0) -> Array:
    """Per-row entropy of softmax(z / tau), via a max-shifted log-sum-exp; p log p = 0 at p = 0."""
    z = f64(logits) / temperature
    flat = z.reshape(-1, z.shape[-1])
    out = np.empty(flat.shape[0])
    for i, row in enumerate(flat):
        top = np.max(row)
        shifted = row - top
        log_norm = math.log(float(np.sum(np.exp(shifted))))
        log_p = shifted[np.isfinite(shifted)] - log_norm
        out[i] = -float(np.sum(np.exp(log_p) * log_p))
    return out.reshape(z.shape[:-1])


def kl_per_token(logprobs: ArrayLike, ref_logprobs: ArrayLike, estimator: str) -> Array:
    """Schulman's estimators of KL(pi || ref) with log rho = ref - pi (samples from pi)."""
    log_rho = f64(ref_logprobs) - f64(logprobs)
    if estimator == "k1":
        return -log_rho
    if estimator == "k2":
        return 0.5 * log_rho**2
    if estimator == "k3":
        return (np.exp(log_rho) - 1.0) - log_rho
    raise ValueError(estimator)


class AdaptiveKL:
    """Ziegler et al. 2019: e = clip(KL / target - 1, -0.2, 0.2); beta *= 1 + e n / horizon."""

    def __init__(self, value: float, target: float, horizon: float) -> None:
        self.value, self.target, self.horizon = value, target, horizon

    def update(self, current_kl: float, n_steps: int) -> float:
        e = float(np.clip(current_kl / self.target - 1.0, -0.2, 0.2))
        self.value = self.value * (1.0 + e * n_steps / self.horizon)
        return self.value


# --------------------------------------------------------------------------- advantages


def gae(
    rewards: ArrayLike,
    values: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    gamma: float = 0.99,
    lam: float = 0.95,
) -> tuple[Array, Array]:
    """GAE over the valid steps of each row, as if padding were cut out (verl semantics).

    A masked step gets the advantage of the next valid step (0 after the last one): verl carries
    ``lastgaelam`` and ``nextvalues`` across it. Returns are ``A + V`` at every position.
    """
    r2, v2 = as_rows(rewards), as_rows(values)
    m2 = ones_mask(r2) if mask is None else as_rows(mask)
    adv = np.zeros_like(r2)
    for b in range(r2.shape[0]):
        steps = [t for t in range(r2.shape[1]) if m2[b, t] > 0]
        valid_adv: dict[int, float] = {}
        following = 0.0
        for k in range(len(steps) - 1, -1, -1):
            t = steps[k]
            next_v = v2[b, steps[k + 1]] if k + 1 < len(steps) else 0.0
            delta = r2[b, t] + gamma * next_v - v2[b, t]
            following = delta + gamma * lam * following
            valid_adv[t] = following
        carried = 0.0
        for t in range(r2.shape[1] - 1, -1, -1):
            if t in valid_adv:
                carried = valid_adv[t]
            adv[b, t] = carried
    adv = adv.reshape(f64(rewards).shape)
    return adv, adv + f64(values)


def whiten(
    x: ArrayLike, mask: ArrayLike | None = None, *, shift_mean: bool = True, eps: float = 1e-8
) -> Array:
    """(x - mean) / sqrt(var + eps) with the Bessel-corrected variance over valid entries."""
    a = f64(x)
    sel = a.ravel() if mask is None else a.ravel()[f64(mask).ravel() > 0]
    mean = float(np.mean(sel))
    var = float(np.var(sel, ddof=1))
    out = (a - mean) / math.sqrt(var + eps)
    return out if shift_mean else out + mean


def normalize_advantages(x: ArrayLike, mask: ArrayLike | None = None, eps: float = 1e-8) -> Array:
    """CleanRL / SB3: (A - mean) / (std + eps), std unbiased, over valid entries."""
    a = f64(x)
    sel = a.ravel() if mask is None else a.ravel()[f64(mask).ravel() > 0]
    return (a - np.mean(sel)) / (np.std(sel, ddof=1) + eps)


def group_advantages(
    rewards: ArrayLike, group_ids: ArrayLike, *, normalize_std: bool = True, eps: float = 1e-6
) -> Array:
    """GRPO: (r - mean_g) / (std_g + eps), unbiased std; a singleton group has mean 0, std 1."""
    r = f64(rewards)
    ids = np.asarray(group_ids)
    out = np.empty_like(r)
    for i in range(len(r)):
        members = r[ids == ids[i]]
        if len(members) == 1:
            mean, std = 0.0, 1.0
        else:
            mean, std = float(np.mean(members)), float(np.std(members, ddof=1))
        out[i] = (r[i] - mean) / (std + eps) if normalize_std else r[i] - mean
    return out


def explained_variance(
    values: ArrayLike, returns: ArrayLike, mask: ArrayLike | None = None
) -> float | None:
    """1 - Var(R - V) / Var(R), population variances over valid entries; None if Var(R) = 0."""
    v, r = f64(values).ravel(), f64(returns).ravel()
    if mask is not None:
        keep = f64(mask).ravel() > 0
        v, r = v[keep], r[keep]
    if np.all(r == r[0]):
        return None
    return float(1.0 - np.var(r - v) / np.var(r))


# --------------------------------------------------------------------------- curves


def clip_objective(
    ratio: ArrayLike,
    advantage: float,
    *,
    eps_low: float,
    eps_high: float,
    dual_clip: float | None = None,
) -> tuple[Array, Array]:
    """L(r) = min(r A, clip(r) A) (then max(L, c A) for A < 0 with dual clip), and dL/dr.

    The derivative is piecewise: A where the unclipped term r A is the one taken, 0 on the flat
    pieces (clipped term or dual-clip bound). Undefined at kinks; callers avoid them.
    """
    r = f64(ratio)
    low, high = 1.0 - eps_low, 1.0 + eps_high
    unclipped = r * advantage
    clipped = np.clip(r, low, high) * advantage
    objective = np.minimum(unclipped, clipped)
    slope = np.where(unclipped < clipped, advantage, 0.0)
    slope = np.where((unclipped == clipped) & (r > low) & (r < high), advantage, slope)
    if dual_clip is not None and advantage < 0:
        floor = dual_clip * advantage
        slope = np.where(objective < floor, 0.0, slope)
        objective = np.maximum(objective, floor)
    return objective, slope


def clip_objective_kinks(
    advantage: float, *, eps_low: float, eps_high: float, dual_clip: float | None = None
) -> list[float]:
    kinks = [1.0 - eps_low, 1.0 + eps_high]
    if dual_clip is not None and advantage < 0:
        kinks.append(dual_clip)
    return kinks


# --------------------------------------------------------------------------- total loss


def total_loss(
    logprobs: ArrayLike,
    old_logprobs: ArrayLike,
    advantages: ArrayLike,
    values: ArrayLike,
    returns: ArrayLike,
    *,
    knobs: dict[str, Any],
    mask: ArrayLike | None = None,
    old_values: ArrayLike | None = None,
    logits: ArrayLike | None = None,
    ref_logprobs: ArrayLike | None = None,
) -> dict[str, Any]:
    """Total loss assembled from a convention's knobs (a plain dict of its fields)."""
    mode = knobs["loss_agg_mode"]
    adv = f64(advantages)
    if knobs["advantage_norm"] == "minibatch":
        adv = normalize_advantages(adv, mask)
    pol = policy_loss(
        logprobs,
        old_logprobs,
        adv,
        mask,
        clip_ratio=knobs["clip_ratio"],
        clip_ratio_low=knobs["clip_ratio_low"],
        clip_ratio_high=knobs["clip_ratio_high"],
        dual_clip=knobs["dual_clip"],
        log_ratio_clamp=knobs["log_ratio_clamp"],
        loss_agg_mode=mode,
    )
    clip = knobs["value_clip_range"] if old_values is not None else None
    val = value_loss(
        values,
        returns,
        old_values,
        mask,
        clip_range=clip,
        mode=knobs["value_mode"],
        scale=knobs["value_scale"],
        loss_agg_mode=mode,
    )
    total = pol["loss"] + knobs["vf_coef"] * val["loss"]
    ent = None
    if logits is not None:
        ent = aggregate(entropy(logits), mask, mode)
        total -= knobs["entropy_coef"] * ent
    kl = None
    if ref_logprobs is not None:
        lp, ref = f64(logprobs), f64(ref_logprobs)
        if knobs["log_ratio_clamp"] is not None:
            c = knobs["log_ratio_clamp"]
            ref = lp - np.clip(lp - ref, -c, c)
        kl = aggregate(kl_per_token(lp, ref, knobs["kl_estimator"]), mask, mode)
        if knobs["kl_placement"] == "loss":
            total += knobs["kl_coef"] * kl
    return {
        "total_loss": total,
        "policy": pol,
        "value": val,
        "entropy": ent,
        "kl": kl,
        "advantages": adv,
        "explained_variance": explained_variance(values, returns, mask),
    }
