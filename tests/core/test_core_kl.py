"""KL estimators (k1 / k2 / k3) and the KL-coefficient controllers."""

from __future__ import annotations

import math

import numpy as np
import numpy_reference as ref
import pytest
import torch
from core_inputs import SHAPES, policy_batch, ragged_mask

from ppo_core import AdaptiveKLController, FixedKLController, kl_estimate, kl_per_token

ESTIMATORS = ["k1", "k2", "k3"]


@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_matches_numpy(shape_name, estimator):
    shape = SHAPES[shape_name]
    b = policy_batch(shape, "mixed", seed=5, spread=1.5)
    per_token = kl_per_token(b.logprobs, b.old_logprobs, estimator)
    expected = ref.kl_per_token(b.logprobs.numpy(), b.old_logprobs.numpy(), estimator)
    np.testing.assert_allclose(per_token.numpy(), expected, rtol=1e-12, atol=1e-15)
    mask = ragged_mask(shape)
    mean, same = kl_estimate(b.logprobs, b.old_logprobs, mask, estimator)
    assert torch.equal(same, per_token)
    assert mean.item() == pytest.approx(ref.masked_mean(expected, mask.numpy()), rel=1e-12)
    mean_all, _ = kl_estimate(b.logprobs, b.old_logprobs, estimator=estimator)
    assert mean_all.item() == pytest.approx(float(expected.mean()), rel=1e-12)


def test_hand_computed():
    # pi = 0.5, ref = 0.25: d = log pi - log ref = log 2 = 0.693147
    #   k1 = d = 0.693147; k2 = d^2 / 2 = 0.240227; k3 = e^-d - 1 + d = 0.5 - 1 + 0.693147
    lp = torch.log(torch.tensor([0.5], dtype=torch.float64))
    ref_lp = torch.log(torch.tensor([0.25], dtype=torch.float64))
    got = [kl_per_token(lp, ref_lp, e).item() for e in ESTIMATORS]
    assert got == pytest.approx([0.693147, 0.240227, 0.193147], abs=1e-6)
    # k1 can be negative per token; k2 and k3 cannot: pi = 0.25, ref = 0.5
    got = [kl_per_token(ref_lp, lp, e).item() for e in ESTIMATORS]
    assert got == pytest.approx([-0.693147, 0.240227, 2.0 - 1.0 - 0.693147], abs=1e-6)
    # masked mean: k1 of [0 - 0, 0 - (-1)] with mask [1, 1] = 0.5; with mask [0, 1] = 1
    zeros = torch.zeros(2)
    assert kl_estimate(zeros, torch.tensor([0.0, -1.0]), estimator="k1")[0].item() == 0.5
    m = torch.tensor([0.0, 1.0])
    assert kl_estimate(zeros, torch.tensor([0.0, -1.0]), m, estimator="k1")[0].item() == 1.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("diff", [100.0, -100.0, 1000.0, -1000.0])
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_huge_differences_are_finite(dtype, diff, estimator):
    lp = torch.tensor([diff, 0.0], dtype=dtype)
    out = kl_per_token(lp, torch.zeros(2, dtype=dtype), estimator)
    assert torch.isfinite(out).all()
    assert out[1].item() == 0.0
    if estimator != "k1":
        assert (out >= 0).all()
    # With a clamp the value is the clamped one: d = ±10.
    clamped = kl_per_token(lp, torch.zeros(2, dtype=dtype), estimator, log_ratio_clamp=10.0)
    d = math.copysign(10.0, diff)
    expected = {"k1": d, "k2": d * d / 2, "k3": math.expm1(-d) + d}[estimator]
    assert clamped[0].item() == pytest.approx(expected, rel=1e-6)


def test_k3_small_differences_are_accurate():
    # expm1 keeps precision: d = 1e-6 -> k3 = d^2 / 2 - d^3 / 6 + ... = 5e-13
    lp = torch.tensor([1e-6], dtype=torch.float64)
    k3 = kl_per_token(lp, torch.zeros(1, dtype=torch.float64), "k3").item()
    assert k3 == pytest.approx(5e-13, rel=1e-5)


def test_adaptive_controller_matches_reference_sequence():
    ours = AdaptiveKLController(value=0.2, target=6.0, horizon=10000)
    theirs = ref.AdaptiveKL(0.2, 6.0, 10000)
    for kl, n in [(12.0, 256), (6.6, 256), (0.0, 512), (5.0, 128), (7.2, 1000), (100.0, 64)]:
        assert ours.update(kl, n) == pytest.approx(theirs.update(kl, n), rel=1e-15)
        assert ours.value == pytest.approx(theirs.value, rel=1e-15)


def test_adaptive_controller_hand_computed():
    # beta = 0.2, target 6, horizon 1e4, n = 256:
    #   KL 12  -> e = clip(1, ±0.2) = 0.2  -> 0.2 * (1 + 0.2 * 0.0256) = 0.201024
    #   KL 6.6 -> e = 0.1                  -> 0.2 * (1 + 0.1 * 0.0256) = 0.200512
    #   KL 0   -> e = clip(-1) = -0.2      -> 0.2 * (1 - 0.2 * 0.0256) = 0.198976
    #   KL 6   -> e = 0                    -> 0.2
    for kl, expected in [(12.0, 0.201024), (6.6, 0.200512), (0.0, 0.198976), (6.0, 0.2)]:
        ctl = AdaptiveKLController(value=0.2, target=6.0, horizon=10000)
        assert ctl.update(kl, 256) == pytest.approx(expected, abs=1e-12)


def test_fixed_controller_keeps_value():
    ctl = FixedKLController(0.05)
    assert ctl.update(100.0, 1000) == 0.05
    assert ctl.value == 0.05
