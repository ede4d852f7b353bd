"""clip_objective_curve and value_loss_curve against the NumPy formulas and by hand."""

from __future__ import annotations

import math

import numpy as np
import numpy_reference as ref
import pytest
import torch

from ppo_core import PPOInputError, clip_objective_curve, policy_loss, value_loss_curve
from ppo_core.curves import clip_curve_spec, clip_objective_curves

ADVANTAGES = [1.0, -1.0, 2.5, -0.7, 0.0]


def away_from(ratio: np.ndarray, kinks: list[float], margin: float = 1e-6) -> np.ndarray:
    keep = np.ones_like(ratio, dtype=bool)
    for k in kinks:
        keep &= np.abs(ratio - k) > margin
    return keep


@pytest.mark.parametrize("eps", [0.1, 0.2, 0.3])
@pytest.mark.parametrize("advantage", ADVANTAGES)
@pytest.mark.parametrize(
    "knobs",
    [{}, {"epsilon_low": 0.2, "epsilon_high": 0.28}, {"dual_clip": 3.0}],
    ids=["symmetric", "asymmetric", "dual-clip"],
)
def test_clip_objective_curve_matches_numpy(eps, advantage, knobs):
    eps_low = knobs.get("epsilon_low", eps)
    eps_high = knobs.get("epsilon_high", eps)
    dual = knobs.get("dual_clip")
    c = clip_objective_curve(eps, advantage, ratio_min=0.0, ratio_max=4.0, points=401, **knobs)
    r = c.ratio.numpy()
    assert r[0] == 0.0 and r[-1] == 4.0 and len(r) == 401
    objective, slope = ref.clip_objective(
        r, advantage, eps_low=eps_low, eps_high=eps_high, dual_clip=dual
    )
    np.testing.assert_allclose(c.objective.numpy(), objective, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(c.unclipped.numpy(), r * advantage, rtol=1e-12)
    np.testing.assert_allclose(
        c.clipped.numpy(), np.clip(r, 1 - eps_low, 1 + eps_high) * advantage, rtol=1e-12
    )
    keep = away_from(
        r, ref.clip_objective_kinks(advantage, eps_low=eps_low, eps_high=eps_high, dual_clip=dual)
    )
    np.testing.assert_allclose(c.gradient.numpy()[keep], slope[keep], rtol=1e-12, atol=0)
    assert (c.gradient.numpy()[keep] != 0).any() or advantage == 0.0
    assert c.bounds.low == pytest.approx(1 - eps_low)
    assert c.bounds.high == pytest.approx(1 + eps_high)
    assert c.bounds.dual_clip == dual


@pytest.mark.parametrize("advantage", ADVANTAGES)
def test_curve_is_the_negated_policy_loss(advantage):
    c = clip_objective_curve(0.2, advantage, ratio_min=0.1, ratio_max=5.0, points=50, dual_clip=3.0)
    out = policy_loss(
        c.ratio.log(),
        torch.zeros_like(c.ratio),
        torch.full_like(c.ratio, advantage),
        dual_clip=3.0,
    )
    torch.testing.assert_close(c.objective, -out.per_token_loss, rtol=1e-12, atol=1e-15)


def test_clip_objective_hand_computed():
    # A = 1, eps = 0.2: r = [1.0, 1.2, 1.4] -> min(r, clip(r)) = [1.0, 1.2, 1.2];
    # slope 1 inside, 0 past 1.2 (the flat, zero-gradient region); 1.2 itself is the kink.
    c = clip_objective_curve(0.2, 1.0, ratio_min=1.0, ratio_max=1.4, points=3)
    assert c.objective.tolist() == pytest.approx([1.0, 1.2, 1.2])
    assert c.gradient.tolist()[0] == 1.0 and c.gradient.tolist()[2] == 0.0
    # A = -1: r = [0.5, 1.0, 1.5] -> min(-r, -clip(r)) = [-0.8, -1.0, -1.5], slope [0, -1, -1]
    c = clip_objective_curve(0.2, -1.0, ratio_min=0.5, ratio_max=1.5, points=3)
    assert c.objective.tolist() == pytest.approx([-0.8, -1.0, -1.5])
    assert c.gradient.tolist() == [0.0, -1.0, -1.0]
    # Dual clip c = 3, A = -1: r = [2, 4] -> [-2, max(-4, -3) = -3], slope [-1, 0]
    c = clip_objective_curve(0.2, -1.0, ratio_min=2.0, ratio_max=4.0, points=2, dual_clip=3.0)
    assert c.objective.tolist() == pytest.approx([-2.0, -3.0])
    assert c.gradient.tolist() == [-1.0, 0.0]


@pytest.mark.parametrize("clip_range", [0.1, 0.2, 0.5])
@pytest.mark.parametrize("returns,old_value", [(1.0, 0.0), (-0.5, 0.3), (0.0, 0.0)])
def test_value_loss_curve_matches_numpy(clip_range, returns, old_value):
    c = value_loss_curve(returns, old_value, clip_range, prediction_min=-2, prediction_max=3)
    v = c.prediction.numpy()
    assert len(v) == 200 and v[0] == -2.0 and v[-1] == 3.0
    r = np.full_like(v, returns)
    old = np.full_like(v, old_value)
    np.testing.assert_allclose(c.unclipped.numpy(), (v - returns) ** 2, rtol=1e-12)
    as_max, _ = ref.value_per_token(v, r, old, clip_range=clip_range, mode="max")
    as_clipped, _ = ref.value_per_token(v, r, old, clip_range=clip_range, mode="clipped")
    np.testing.assert_allclose(c.clipped_max.numpy(), as_max, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(c.clipped_only.numpy(), as_clipped, rtol=1e-12, atol=1e-15)
    assert (c.clip_low, c.clip_high) == pytest.approx(
        (old_value - clip_range, old_value + clip_range)
    )


def test_value_loss_curve_hand_computed():
    # R = 1, V_old = 0, c = 0.2: V = 1 -> unclipped 0, V_clip = 0.2 -> clipped (0.2 - 1)^2 = 0.64
    c = value_loss_curve(1.0, 0.0, 0.2, prediction_min=0.0, prediction_max=1.0, points=2)
    assert c.unclipped.tolist() == pytest.approx([1.0, 0.0])
    assert c.clipped_max.tolist() == pytest.approx([1.0, 0.64])
    assert c.clipped_only.tolist() == pytest.approx([1.0, 0.64])


@pytest.mark.parametrize("at", [0.0, 0.5, 0.8, 1.0, 1.2, 1.37, 2.0, 3.9])
@pytest.mark.parametrize("knobs", [{}, {"dual_clip": 3.0}, {"epsilon_high": 0.28}])
@pytest.mark.parametrize("advantage", [1.5, -1.5, 0.0])
def test_point_equals_a_curve_sampled_there(at, knobs, advantage):
    """``at`` rides along in the curve's autograd pass; it must equal a curve evaluated there."""
    c = clip_objective_curve(
        0.2, advantage, ratio_min=0.0, ratio_max=4.0, points=11, at=at, **knobs
    )
    alone = clip_objective_curve(
        0.2, advantage, ratio_min=at, ratio_max=at + 1.0, points=2, **knobs
    )
    assert c.point is not None
    assert c.point.ratio == at
    assert c.point.objective == float(alone.objective[0])
    assert c.point.gradient == float(alone.gradient[0])
    assert c.point.clipped == (c.point.gradient == 0.0 and advantage != 0.0)
    # The curve itself is unchanged by the extra point, and nothing returned requires grad.
    plain = clip_objective_curve(0.2, advantage, ratio_min=0.0, ratio_max=4.0, points=11, **knobs)
    assert plain.point is None
    for name in ("ratio", "unclipped", "clipped", "objective", "gradient"):
        assert torch.equal(getattr(c, name), getattr(plain, name)), name
        assert not getattr(c, name).requires_grad, name


@pytest.mark.parametrize("at", [-0.1, math.inf, math.nan])
def test_point_outside_the_domain_is_refused(at):
    with pytest.raises(PPOInputError) as info:
        clip_objective_curve(at=at)
    assert info.value.field == "at"


# --- many curves in one pass (what the server does with queries that arrive together) -----

MIXED_CURVES = [
    {"epsilon": 0.2, "advantage": 1.0, "ratio_min": 0.0, "ratio_max": 2.5, "points": 101},
    {"epsilon": 0.2, "advantage": -1.5, "ratio_max": 6.0, "points": 7, "dual_clip": 3.0},
    {"epsilon": 0.1, "advantage": -1.5, "ratio_max": 6.0, "points": 7, "at": 4.0},
    {"epsilon": 0.3, "advantage": 0.0, "points": 2, "at": 1.0},
    {"epsilon": 0.3, "advantage": -0.0, "points": 3, "dual_clip": 1.5, "at": 0.5},
    {"advantage": 2.5, "epsilon_low": 0.1, "epsilon_high": 0.6, "points": 33, "at": 1.55},
    {"advantage": -1e6, "ratio_min": 0.0, "ratio_max": 100.0, "points": 257, "dual_clip": 100.0},
    {"advantage": 1.0, "ratio_min": 0.0, "ratio_max": 2.5, "points": 101, "at": 1.3},
]


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The float64 values as integers: equal only if bit for bit equal (-0.0 != 0.0)."""
    return t.contiguous().view(torch.int64)


@pytest.mark.parametrize("order", ["given", "reversed"])
def test_curves_computed_together_are_the_curves_computed_alone_bit_for_bit(order):
    cases = MIXED_CURVES if order == "given" else MIXED_CURVES[::-1]
    batch = clip_objective_curves([clip_curve_spec(**kw) for kw in cases])
    assert len(batch) == len(cases)
    for i, kw in enumerate(cases):
        alone, together = clip_objective_curve(**kw), batch.curve(i)
        for name in ("ratio", "unclipped", "clipped", "objective", "gradient"):
            a, t = getattr(alone, name), getattr(together, name)
            assert a.shape == t.shape == (kw["points"],), name
            assert torch.equal(_bits(a), _bits(t)), (kw, name)
        assert together.point == alone.point and together.bounds == alone.bounds


def test_curves_computed_together_match_numpy():
    """Each curve of a mixed batch against the NumPy formula (not against ppo_core itself)."""
    batch = clip_objective_curves([clip_curve_spec(**kw) for kw in MIXED_CURVES])
    for i, kw in enumerate(MIXED_CURVES):
        c = batch.curve(i)
        eps = kw.get("epsilon", 0.2)
        objective, _ = ref.clip_objective(
            c.ratio.numpy(),
            kw["advantage"],
            eps_low=kw.get("epsilon_low", eps),
            eps_high=kw.get("epsilon_high", eps),
            dual_clip=kw.get("dual_clip"),
        )
        np.testing.assert_allclose(c.objective.numpy(), objective, rtol=1e-12, atol=1e-9)
        assert (c.point is None) == ("at" not in kw)


def test_no_curves_is_an_empty_batch():
    assert len(clip_objective_curves([])) == 0


def test_a_curve_spec_refuses_what_the_curve_refuses():
    with pytest.raises(PPOInputError) as err:
        clip_curve_spec(0.2, 1.0, ratio_min=1.0, ratio_max=0.5)
    assert err.value.field == "ratio_max"
    with pytest.raises(PPOInputError) as err:
        clip_curve_spec(0.2, 1.0, at=float("nan"))
    assert err.value.field == "at"
