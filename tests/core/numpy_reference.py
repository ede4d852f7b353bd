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


def aggregate(
    per_token: ArrayLike,
    mask: ArrayLike | None,
    mode: str,
    *,
    loss_scale_factor: float | None = None,
    count_empty_rows: bool = False,
) -> float:
    """verl 0.9.1 ``agg_loss`` under its trainer's bool mask (rows with no valid token left out
    of sequence means, per-row token means over ``n``); ``count_empty_rows``: TRL's rule
    (every row counts, ``max(n, 1)``)."""
    x = as_rows(per_token)
    m = ones_mask(x) if mask is None else as_rows(mask)
    if mode == "token-mean":
        return float(np.sum(x * m) / np.sum(m))
    if mode == "token-sum":
        return float(np.sum(x * m))
    row_sums, row_counts = [], []
    for row, row_mask in zip(x, m, strict=True):
        total = 0.0
        for value, valid in zip(row, row_mask, strict=True):
            if valid:
                total += value
        row_sums.append(total)
        row_counts.append(int(np.sum(row_mask)))
    if mode == "seq-mean-token-mean":
        per_row = [s / max(c, 1) for s, c in zip(row_sums, row_counts, strict=True)]
    elif mode in ("seq-mean-token-sum", "seq-mean-token-sum-norm"):
        per_row = row_sums
    else:
        raise ValueError(mode)
    kept = [v for v, c in zip(per_row, row_counts, strict=True) if c > 0 or count_empty_rows]
    loss = sum(kept) / len(kept)
    if mode == "seq-mean-token-sum-norm":
        loss /= x.shape[-1] if loss_scale_factor is None else loss_scale_factor
    return float(loss)


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


def kl_per_token(
    logprobs: ArrayLike, ref_logprobs: ArrayLike, estimator: str, clamp: str = "none"
) -> Array:
    """Schulman's estimators of KL(pi || ref) with log rho = ref - pi (samples from pi), and
    the clamps verl (k3: log rho to ±20, value to ±10) and OpenRLHF (k3: log rho <= 10; every
    value to ±10) apply."""
    log_rho = f64(ref_logprobs) - f64(logprobs)
    if estimator == "k1":
        out = -log_rho
    elif estimator == "k2":
        out = 0.5 * log_rho**2
    elif estimator == "abs":
        out = np.abs(log_rho)
    elif estimator in ("k3", "k3+"):
        x = log_rho
        if clamp == "verl":
            x = np.clip(x, -20, 20)
        elif clamp == "openrlhf":
            x = np.minimum(x, 10)
        out = (np.exp(x) - 1.0) - x
        if clamp == "verl":
            out = np.clip(out, -10, 10)
    else:
        raise ValueError(estimator)
    if clamp == "openrlhf":
        out = np.clip(out, -10, 10)
    return out


def kl_gradient(
    logprobs: ArrayLike, ref_logprobs: ArrayLike, estimator: str, clamp: str = "none"
) -> Array:
    """d k / d log pi, analytic: k1 1, k2 d, abs sign(d), k3 1 - e^-d (0 where clamped), k3+ d."""
    d = f64(logprobs) - f64(ref_logprobs)
    if estimator == "k3+":  # k2's gradient, whatever clamps the value
        return d
    if estimator == "k1":
        g = np.ones_like(d)
    elif estimator == "k2":
        g = d.copy()
    elif estimator == "abs":
        g = np.sign(d)
    else:
        g = 1.0 - np.exp(-d)
        value = kl_per_token(logprobs, ref_logprobs, "k3", "none")
        if clamp == "verl":
            g = np.where((np.abs(d) > 20) | (value > 10), 0.0, g)
        elif clamp == "openrlhf":
            g = np.where((d < -10) | (value > 10), 0.0, g)
    if clamp == "openrlhf":
        g = np.where(np.abs(kl_per_token(logprobs, ref_logprobs, estimator, "none")) > 10, 0.0, g)
    return g


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
    agg_knobs = {
        "loss_scale_factor": knobs["loss_scale_factor"],
        "count_empty_rows": knobs["count_empty_rows"],
    }
    adv = f64(advantages)
    if knobs["advantage_norm"] == "minibatch":
        adv = normalize_advantages(adv, mask)
    if knobs["policy_loss_mode"] == "vanilla" and not knobs["count_empty_rows"]:
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
    else:
        eps = knobs["clip_ratio"]
        pol = policy_family(
            logprobs,
            old_logprobs,
            adv,
            mask,
            mode=knobs["policy_loss_mode"],
            eps_low=eps if knobs["clip_ratio_low"] is None else knobs["clip_ratio_low"],
            eps_high=eps if knobs["clip_ratio_high"] is None else knobs["clip_ratio_high"],
            dual_clip=knobs["dual_clip"],
            log_ratio_clamp=knobs["log_ratio_clamp"],
            loss_agg_mode=mode,
            loss_scale_factor=knobs["loss_scale_factor"],
            count_empty_rows=knobs["count_empty_rows"],
            tau_pos=knobs["sapo_tau_pos"],
            tau_neg=knobs["sapo_tau_neg"],
            cispo_clip=knobs["cispo_clip"],
            gspo_stop_gradient=knobs["gspo_stop_gradient"],
            gspo_log_ratio_max=knobs["gspo_log_ratio_max"],
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
        ent = aggregate(entropy(logits), mask, mode, **agg_knobs)
        total -= knobs["entropy_coef"] * ent
    kl = None
    if ref_logprobs is not None:
        per_token = kl_per_token(logprobs, ref_logprobs, knobs["kl_estimator"], knobs["kl_clamp"])
        kl = aggregate(per_token, mask, mode, **agg_knobs)
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


# --------------------------------------------------------------------------- policy-loss family


def _sigmoid(x: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-x))


def policy_family(
    logprobs: ArrayLike,
    old_logprobs: ArrayLike,
    advantages: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    mode: str = "vanilla",
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    dual_clip: float | None = None,
    log_ratio_clamp: float | None = None,
    loss_agg_mode: str = "token-mean",
    loss_scale_factor: float | None = None,
    count_empty_rows: bool = False,
    tau_pos: float = 1.0,
    tau_neg: float = 1.05,
    cispo_clip: str = "band",
    gspo_stop_gradient: bool = True,
    gspo_log_ratio_max: float | None = None,
    is_weights: ArrayLike | None = None,
) -> dict[str, Any]:
    """Every ``policy_loss_mode`` re-derived in NumPy, written from the papers / FORMULAS.md,
    with its analytic gradient ``d loss / d logprobs`` (2-D inputs; A broadcast if [B])."""
    lp, old = as_rows(logprobs), as_rows(old_logprobs)
    a = f64(advantages)
    a = (
        np.broadcast_to(a[:, None], lp.shape).copy()
        if a.ndim == 1 and lp.shape[0] > 1
        else as_rows(a)
    )
    m = ones_mask(lp) if mask is None else as_rows(mask)
    w_is = np.ones_like(lp) if is_weights is None else as_rows(is_weights)
    raw = lp - old
    lr = raw if log_ratio_clamp is None else np.clip(raw, -log_ratio_clamp, log_ratio_clamp)
    in_clamp = np.abs(raw) <= (np.inf if log_ratio_clamp is None else log_ratio_clamp)
    n = m.sum(-1, keepdims=True)
    lo, hi = 1.0 - eps_low, 1.0 + eps_high
    # weights of the aggregation: L = sum_t agg_w * loss_t
    agg_w = np.zeros_like(lp)
    for i in range(lp.shape[0]):
        for t in range(lp.shape[1]):
            e = np.zeros_like(lp)
            e[i, t] = 1.0
            agg_w[i, t] = aggregate(
                e, m, loss_agg_mode, loss_scale_factor=loss_scale_factor,
                count_empty_rows=count_empty_rows,
            ) if m[i, t] > 0 else 0.0  # fmt: skip
    if mode in ("vanilla", "gspo"):
        if mode == "vanilla":
            x = np.exp(lr)
            dx_own = x * in_clamp  # d x_t / d lp_t
        else:
            seq = (np.where(m > 0, raw, 0.0)).sum(-1, keepdims=True) / np.maximum(n, 1)
            log_s = np.broadcast_to(seq, lp.shape)
            cap_ok = np.ones_like(lp, dtype=bool)
            if gspo_log_ratio_max is not None:
                cap_ok = log_s <= gspo_log_ratio_max
                log_s = np.minimum(log_s, gspo_log_ratio_max)
            x = np.exp(log_s)
            dx_own = x * cap_ok
        unclipped = x * a
        clipped = np.clip(x, lo, hi) * a
        loss = -np.minimum(unclipped, clipped)
        clipped_taken = -clipped > -unclipped
        lower = np.zeros_like(clipped_taken)
        if dual_clip is not None:
            lower = (a < 0) & (loss > -dual_clip * a)
            loss = np.where(lower, -dual_clip * a, loss)
        active = ~clipped_taken & ~lower  # the unclipped branch, whose gradient is -A dx
        dloss_dx = np.where(active, -a, 0.0)
        if mode == "vanilla" or gspo_stop_gradient:
            grad = agg_w * w_is * dloss_dx * dx_own
        else:  # through the mean: every token of row i gets (1/n_i) sum_u w_u dloss_u/dx
            row = (agg_w * w_is * dloss_dx * dx_own).sum(-1, keepdims=True)
            grad = m * row / np.maximum(n, 1)
        ratio = x
    elif mode == "cispo":
        r = np.exp(lr)
        w = np.clip(r, lo, hi) if cispo_clip == "band" else np.minimum(r, eps_high)
        loss = -w * a * lp
        grad = agg_w * w_is * (-w * a)
        clipped_taken, lower, ratio = w != r, np.zeros_like(r, dtype=bool), r
        if cispo_clip == "absolute":  # TRL's cispo_clip_ratio counts A > 0 only
            clipped_taken = clipped_taken & (a > 0)
    elif mode == "sapo":
        r = np.exp(lr)
        tau = np.where(a > 0, tau_pos, tau_neg)
        sig = _sigmoid(tau * (r - 1.0))
        loss = -sig * 4.0 / tau * a
        grad = agg_w * w_is * (-4.0 * a * sig * (1.0 - sig) * r * in_clamp)
        clipped_taken, lower, ratio = np.zeros_like(r, dtype=bool), np.zeros_like(r, dtype=bool), r
    elif mode == "gpg":
        loss = -lp * a
        grad = agg_w * w_is * (-a)
        ratio = np.exp(lr)
        clipped_taken, lower = np.zeros_like(lp, dtype=bool), np.zeros_like(lp, dtype=bool)
    elif mode == "geo_mean":
        sign = np.sign(a)
        clamped = np.clip(raw, -eps_low, eps_high)
        kept = sign * np.minimum(sign * raw, sign * clamped)
        free = (sign * raw <= sign * clamped) & (sign != 0)  # d kept / d lp = 1 there
        denom = np.where(n > 0, n, 1e-8)  # verl's n + 1e-8 under a bool mask (float32)
        seq_ratio = np.exp((kept * m).sum(-1, keepdims=True) / denom)
        seq_adv = (a * m).sum(-1, keepdims=True) / denom
        seq_w = np.ones_like(seq_ratio)
        if is_weights is not None:
            seq_w = np.exp((np.log(w_is + 1e-10) * m).sum(-1, keepdims=True) / denom)
        row_loss = -seq_adv * seq_ratio * seq_w
        b = lp.shape[0]
        out_loss = float(row_loss.mean())
        grad = (row_loss / b) * m * free / denom
        clip_flag = raw != clamped
        return {
            **_family_kl(raw, lr, m, lo, hi, log_ratio_clamp),
            "loss": out_loss,
            "per_token_loss": np.broadcast_to(row_loss, lp.shape).copy(),
            "grad": grad,
            "ratio": np.broadcast_to(seq_ratio, lp.shape).copy(),
            "clip_fraction": masked_mean(clip_flag & (a > 0), m),
            "clip_fraction_lower": masked_mean(clip_flag & (a < 0), m),
        }
    else:
        raise ValueError(mode)
    loss = loss * w_is
    return {
        **_family_kl(raw, lr, m, lo, hi, log_ratio_clamp),
        "loss": float((agg_w * np.where(m > 0, loss, 0.0)).sum()),
        "per_token_loss": loss,
        "grad": grad,
        "ratio": ratio,
        "clip_fraction": masked_mean(clipped_taken, m),
        "clip_fraction_lower": masked_mean(lower, m),
    }


def _family_kl(
    raw: Array, lr: Array, m: Array, lo: float, hi: float, clamp: float | None
) -> dict[str, float]:
    """The token-level diagnostics every mode reports: k1 / k2 on the log-ratio clamped only
    by an explicit clamp, k3 on the one the mode used, ratio outside the band."""
    kl_lr = raw if clamp is None else np.clip(raw, -clamp, clamp)
    r = np.exp(lr)
    return {
        "ratio_outside_fraction": masked_mean((r < lo) | (r > hi), m),
        "approx_kl": masked_mean(-kl_lr, m),
        "approx_kl_k2": masked_mean(kl_lr**2 / 2, m),
        "approx_kl_k3": masked_mean(np.expm1(lr) - lr, m),
    }


def rollout_weights(
    old: ArrayLike, rollout: ArrayLike, mask: ArrayLike, *, level: str, mode: str,
    threshold: float, threshold_low: float | None,
) -> Array:  # fmt: skip
    """verl's TIS / IcePop weights (FORMULAS.md §1.6), NumPy."""
    lr = as_rows(old) - as_rows(rollout)
    m = as_rows(mask)
    if level == "token":
        raw = np.exp(np.clip(lr, -20, 20))
    else:
        raw = np.broadcast_to(np.exp(np.clip((lr * m).sum(-1, keepdims=True), -20, 20)), lr.shape)
    raw = raw * m
    if mode == "truncate":
        w = np.minimum(raw, threshold)
        if threshold_low is not None:
            w = np.maximum(w, threshold_low) * m
        return w
    low = 1.0 / threshold if threshold_low is None else threshold_low
    return np.where((raw >= low) & (raw <= threshold) & (m > 0), raw, 0.0)
