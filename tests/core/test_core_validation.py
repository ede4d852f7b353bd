"""Every PPOInputError path: the exception names the field and says what is wrong."""

from __future__ import annotations

import math

import pytest
import torch

from ppo_core import (
    AdaptiveKLController,
    PPOInputError,
    clip_objective_curve,
    entropy_comparison,
    entropy_from_logits,
    explained_variance,
    gae,
    get_convention,
    group_advantages,
    histogram,
    kl_per_token,
    normalize_advantages,
    policy_loss,
    ppo_total_loss,
    value_loss,
    value_loss_curve,
    whiten,
)
from ppo_core.advantages import MAX_GAE_LENGTH

X = torch.zeros(2, 3)
X1 = torch.zeros(3)
ONES = torch.ones(2, 3)


def pl(**kwargs):
    args = {"logprobs": X, "old_logprobs": X, "advantages": ONES}
    args.update(kwargs)
    lp, old, adv = args.pop("logprobs"), args.pop("old_logprobs"), args.pop("advantages")
    return lambda: policy_loss(lp, old, adv, **args)


def vl(**kwargs):
    args = {"values": X, "returns": ONES}
    args.update(kwargs)
    v, r = args.pop("values"), args.pop("returns")
    return lambda: value_loss(v, r, **args)


CASES = [
    # policy_loss: tensors
    ("policy-shape-old", pl(old_logprobs=torch.zeros(2, 4)), "old_logprobs", "does not match"),
    ("policy-shape-adv", pl(advantages=torch.zeros(3, 2)), "advantages", "does not match"),
    ("policy-empty", pl(logprobs=torch.zeros(0)), "logprobs", "is empty"),
    ("policy-int", pl(logprobs=torch.zeros(2, 3, dtype=torch.long)), "logprobs", "floating-point"),
    (
        "policy-int-adv",
        pl(advantages=torch.ones(2, 3, dtype=torch.int32)),
        "advantages",
        "floating",
    ),
    ("policy-not-tensor", pl(logprobs=[[0.0] * 3] * 2), "logprobs", "torch.Tensor"),
    # masks
    ("mask-shape", pl(mask=torch.ones(2, 4)), "mask", "does not match"),
    ("mask-1d-for-2d", pl(mask=torch.ones(3)), "mask", "does not match"),
    ("mask-values", pl(mask=torch.full((2, 3), 0.5)), "mask", "0 or 1"),
    ("mask-two", pl(mask=torch.full((2, 3), 2, dtype=torch.long)), "mask", "0 or 1"),
    ("mask-nan", pl(mask=torch.full((2, 3), math.nan)), "mask", "0 or 1"),
    ("mask-all-zero", pl(mask=torch.zeros(2, 3)), "mask", "selects no token"),
    ("mask-all-false", pl(mask=torch.zeros(2, 3, dtype=torch.bool)), "mask", "selects no token"),
    ("mask-not-tensor", pl(mask=[[1, 1, 1], [1, 1, 1]]), "mask", "torch.Tensor"),
    # policy_loss: knobs
    ("eps-zero", pl(clip_ratio=0.0), "clip_ratio", "must be in (0.0, 1.0)"),
    ("eps-negative", pl(clip_ratio=-0.2), "clip_ratio", "must be in (0.0, 1.0)"),
    ("eps-one", pl(clip_ratio=1.0), "clip_ratio", "must be in (0.0, 1.0)"),
    ("eps-above-one", pl(clip_ratio=1.5), "clip_ratio", "must be in (0.0, 1.0)"),
    ("eps-nan", pl(clip_ratio=math.nan), "clip_ratio", "must be in"),
    ("eps-low-zero", pl(clip_ratio_low=0.0), "clip_ratio_low", "must be in (0.0, 1.0)"),
    ("eps-low-one", pl(clip_ratio_low=1.0), "clip_ratio_low", "must be in (0.0, 1.0)"),
    ("eps-high-zero", pl(clip_ratio_high=0.0), "clip_ratio_high", "> 0"),
    ("eps-high-inf", pl(clip_ratio_high=math.inf), "clip_ratio_high", "finite"),
    ("dual-one", pl(dual_clip=1.0), "dual_clip", "> 1"),
    ("dual-below-one", pl(dual_clip=0.5), "dual_clip", "> 1"),
    ("dual-inf", pl(dual_clip=math.inf), "dual_clip", "finite"),
    ("log-ratio-clamp-zero", pl(log_ratio_clamp=0.0), "log_ratio_clamp", "> 0"),
    ("agg-mode", pl(loss_agg_mode="mean"), "loss_agg_mode", "unknown mode"),
    # value_loss
    ("value-shape", vl(returns=torch.ones(3)), "returns", "does not match"),
    ("value-old-shape", vl(old_values=torch.ones(3, 2)), "old_values", "does not match"),
    ("value-mode", vl(mode="min"), "mode", "unknown mode"),
    ("value-agg-mode", vl(loss_agg_mode="sum"), "loss_agg_mode", "unknown mode"),
    ("value-scale", vl(scale=-1.0), "scale", ">= 0"),
    ("value-clip-range", vl(clip_range=0.0, old_values=X), "clip_range", "> 0"),
    ("value-needs-old", vl(clip_range=0.2), "old_values", "required"),
    ("value-mask", vl(mask=torch.zeros(2, 3)), "mask", "selects no token"),
    # KL
    ("kl-estimator", lambda: kl_per_token(X, X, "k4"), "estimator", "unknown estimator"),
    ("kl-shape", lambda: kl_per_token(X, X1), "ref_logprobs", "does not match"),
    ("kl-clamp", lambda: kl_per_token(X, X, log_ratio_clamp=-1.0), "log_ratio_clamp", "> 0"),
    ("kl-coef", lambda: AdaptiveKLController(0.0, 6.0, 10000), "kl_coef", "> 0"),
    ("kl-target", lambda: AdaptiveKLController(0.1, -1.0, 10000), "target_kl", "> 0"),
    ("kl-horizon", lambda: AdaptiveKLController(0.1, 6.0, 0), "horizon", "> 0"),
    (
        "kl-update-nan",
        lambda: AdaptiveKLController(0.1, 6.0, 10).update(math.nan, 1),
        "current_kl",
        "finite",
    ),
    # conventions
    ("convention", lambda: get_convention("rllib"), "convention", "unknown convention"),
    (
        "convention-knob",
        lambda: get_convention("seed").with_overrides(clip_eps=0.1),
        "clip_eps",
        "not a convention knob",
    ),
    # GAE and advantages
    (
        "gae-length",
        lambda: gae(torch.zeros(MAX_GAE_LENGTH + 1), torch.zeros(MAX_GAE_LENGTH + 1)),
        "rewards",
        "exceeds the GAE limit",
    ),
    ("gae-rank", lambda: gae(torch.zeros(2, 2, 2), torch.zeros(2, 2, 2)), "rewards", "1-D or 2-D"),
    ("gae-shape", lambda: gae(X, X1), "values", "does not match"),
    ("gae-gamma-high", lambda: gae(X, X, gamma=1.5), "gamma", "[0, 1]"),
    ("gae-gamma-negative", lambda: gae(X, X, gamma=-0.1), "gamma", ">= 0"),
    ("gae-lam-high", lambda: gae(X, X, lam=1.01), "lam", "[0, 1]"),
    ("gae-mask", lambda: gae(X, X, torch.zeros(2, 3)), "mask", "selects no token"),
    ("whiten-one", lambda: whiten(torch.ones(1)), "values", "at least 2"),
    (
        "whiten-one-valid",
        lambda: whiten(torch.ones(3), torch.tensor([0.0, 1.0, 0.0])),
        "values",
        "at least 2",
    ),
    ("normalize-one", lambda: normalize_advantages(torch.ones(1)), "advantages", "at least 2"),
    (
        "group-float-ids",
        lambda: group_advantages(X1, torch.zeros(3)),
        "group_ids",
        "integer tensor",
    ),
    (
        "group-ids-shape",
        lambda: group_advantages(X1, torch.zeros(4, dtype=torch.long)),
        "group_ids",
        "does not match",
    ),
    (
        "group-eps",
        lambda: group_advantages(X1, torch.zeros(3, dtype=torch.long), eps=0.0),
        "eps",
        "> 0",
    ),
    (
        "group-rank",
        lambda: group_advantages(X, torch.zeros(2, 3, dtype=torch.long)),
        "rewards",
        "1-D",
    ),
    # entropy
    ("entropy-temperature", lambda: entropy_from_logits(X, 0.0), "temperature", "> 0"),
    ("entropy-0d", lambda: entropy_from_logits(torch.tensor(1.0)), "logits", "vocab"),
    (
        "entropy-int",
        lambda: entropy_from_logits(torch.ones(2, 3, dtype=torch.long)),
        "logits",
        "floating",
    ),
    ("entropy-empty", lambda: entropy_from_logits(torch.zeros(2, 0)), "logits", "is empty"),
    ("comparison-vocab", lambda: entropy_comparison(vocab_size=1), "vocab_size", ">= 2"),
    ("comparison-batch", lambda: entropy_comparison(batch_size=0), "batch_size", ">= 1"),
    # diagnostics and curves
    ("ev-shape", lambda: explained_variance(X, X1), "returns", "does not match"),
    ("histogram-bins", lambda: histogram(X, bins=0), "bins", ">= 1"),
    ("curve-points-low", lambda: clip_objective_curve(points=1), "points", "must be in [2,"),
    ("curve-points-high", lambda: clip_objective_curve(points=10_001), "points", "must be in [2,"),
    (
        "curve-ratio-range",
        lambda: clip_objective_curve(ratio_min=1.5, ratio_max=1.5),
        "ratio_max",
        "must be greater than ratio_min",
    ),
    ("curve-ratio-min", lambda: clip_objective_curve(ratio_min=-0.1), "ratio_min", ">= 0"),
    ("curve-eps", lambda: clip_objective_curve(epsilon=1.0), "clip_ratio", "must be in"),
    ("curve-dual", lambda: clip_objective_curve(dual_clip=0.9), "dual_clip", "> 1"),
    ("vcurve-clip", lambda: value_loss_curve(clip_range=0.0), "clip_range", "> 0"),
    (
        "vcurve-range",
        lambda: value_loss_curve(prediction_min=1.0, prediction_max=0.0),
        "prediction_max",
        "must be greater than prediction_min",
    ),
    # total
    (
        "total-logits-and-entropy",
        lambda: ppo_total_loss(X, X, X, X, X, logits=torch.zeros(2, 3, 4), entropy=X),
        "entropy",
        "not both",
    ),
    (
        "total-logits-shape",
        lambda: ppo_total_loss(X, X, X, X, X, logits=torch.zeros(2, 4, 5)),
        "logits",
        "does not match",
    ),
    ("total-values-shape", lambda: ppo_total_loss(X, X, X, X1, X), "values", "does not match"),
    (
        "total-ref-shape",
        lambda: ppo_total_loss(X, X, X, X, X, ref_logprobs=X1),
        "ref_logprobs",
        "does not match",
    ),
    (
        "total-mask",
        lambda: ppo_total_loss(X, X, X, X, X, mask=torch.full((2, 3), 3.0)),
        "mask",
        "0 or 1",
    ),
    (
        "total-minibatch-one",
        lambda: ppo_total_loss(
            X1[:1], X1[:1], X1[:1], X1[:1], X1[:1], convention=get_convention("cleanrl")
        ),
        "advantages",
        "at least 2",
    ),
]


@pytest.mark.parametrize(
    ("call", "field", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_input_error(call, field, phrase):
    with pytest.raises(PPOInputError) as err:
        call()
    assert err.value.field == field
    assert phrase in err.value.problem
    assert str(err.value) == f"{field}: {err.value.problem}"
    assert isinstance(err.value, ValueError)


def test_valid_inputs_next_to_each_error_do_not_raise():
    """The error cases above differ from these valid calls only in the bad argument; each call
    returns what it promises (finite, the right shape), not merely no exception."""
    out = policy_loss(
        X, X, ONES, torch.ones(2, 3), clip_ratio=0.2, clip_ratio_high=1.5, dual_clip=1.01
    )
    assert out.loss.shape == () and torch.isfinite(out.loss) and out.ratio_mean == 1.0
    v = value_loss(X, ONES, X, clip_range=0.2, mode="clipped", scale=0.0)
    assert float(v.loss) == 0.0  # scale 0
    g = gae(X, X, gamma=1.0, lam=0.0)
    assert g.advantages.shape == X.shape and torch.isfinite(g.returns).all()
    masked = gae(torch.zeros(2, 2), torch.zeros(2, 2), torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    assert masked.advantages.abs().sum() == 0
    w = whiten(torch.ones(3), torch.tensor([1.0, 1.0, 0.0]))
    assert torch.isfinite(w).all()
    a = group_advantages(X1, torch.zeros(3, dtype=torch.long))
    assert a.shape == X1.shape and torch.isfinite(a).all()
    c = clip_objective_curve(points=2, ratio_min=0.0, ratio_max=1e-3)
    assert c.ratio.tolist() == [0.0, 1e-3]
    e = entropy_comparison(vocab_size=2, batch_size=1)
    assert all(0 <= case.mean <= math.log(2) + 1e-6 for case in e.values())  # float32
