"""Property tests (hypothesis): relations that hold for every input, not just chosen ones."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ppo_core import entropy_from_logits, kl_per_token, policy_loss, value_loss

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None)

log_ratios = st.floats(-30.0, 30.0, allow_nan=False)
advantages = st.floats(-50.0, 50.0, allow_nan=False)
epsilons = st.floats(0.01, 0.99)


@st.composite
def token_batches(draw, min_size=1, max_size=12):
    n = draw(st.integers(min_size, max_size))
    lr = torch.tensor(draw(st.lists(log_ratios, min_size=n, max_size=n)), dtype=torch.float64)
    adv = torch.tensor(draw(st.lists(advantages, min_size=n, max_size=n)), dtype=torch.float64)
    bits = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    bits[draw(st.integers(0, n - 1))] = True  # at least one valid token
    return lr, adv, torch.tensor(bits, dtype=torch.float64)


@SETTINGS
@given(token_batches(), epsilons, epsilons)
def test_policy_loss_is_the_pessimistic_bound(batch, eps_low, eps_high):
    lr, adv, mask = batch
    out = policy_loss(
        lr, torch.zeros_like(lr), adv, mask, clip_ratio_low=eps_low, clip_ratio_high=eps_high
    )
    r = lr.exp()
    unclipped = -adv * r
    clipped = -adv * r.clamp(1 - eps_low, 1 + eps_high)
    loss = out.per_token_loss
    # loss = max of the two: >= each, equal to one of them (objective = min, pessimistic).
    assert (loss >= unclipped - 1e-9 * unclipped.abs()).all()
    assert (loss >= clipped - 1e-12).all()
    assert torch.isclose(loss, torch.maximum(unclipped, clipped), rtol=1e-12, atol=0).all()
    for name in ("clip_fraction", "clip_fraction_lower", "ratio_outside_fraction"):
        assert 0.0 <= getattr(out, name) <= 1.0, name
    # the clipped term is only ever taken outside the trust region
    assert out.clip_fraction <= out.ratio_outside_fraction + 1e-12
    assert out.approx_kl_k2 >= 0.0 and out.approx_kl_k3 >= 0.0
    assert out.ratio_min <= out.ratio_mean <= out.ratio_max * (1 + 1e-12)


@SETTINGS
@given(token_batches(), st.floats(1.01, 10.0))
def test_dual_clip_caps_negative_advantage_losses(batch, dual):
    lr, adv, mask = batch
    plain = policy_loss(lr, torch.zeros_like(lr), adv, mask)
    out = policy_loss(lr, torch.zeros_like(lr), adv, mask, dual_clip=dual)
    neg = adv < 0
    assert (out.per_token_loss[neg] <= -dual * adv[neg] * (1 + 1e-12)).all()
    assert torch.equal(out.per_token_loss[~neg], plain.per_token_loss[~neg])
    assert (out.per_token_loss <= plain.per_token_loss).all()
    assert 0.0 <= out.clip_fraction_lower <= 1.0


@SETTINGS
@given(
    st.integers(2, 30).flatmap(
        lambda v: st.lists(
            st.one_of(st.floats(-1e4, 1e4), st.just(-math.inf)), min_size=v, max_size=v
        )
    ),
    st.floats(0.05, 20.0),
)
def test_entropy_is_between_zero_and_log_vocab(row, temperature):
    row[0] = 0.0 if not any(math.isfinite(x) for x in row) else row[0]
    logits = torch.tensor(row, dtype=torch.float64)
    h = entropy_from_logits(logits, temperature).item()
    assert 0.0 <= h <= math.log(len(row)) + 1e-9
    # only the possible actions count: H <= log(#finite logits)
    assert h <= math.log(sum(math.isfinite(x) for x in row)) + 1e-9


@SETTINGS
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=20), st.floats(-50.0, 50.0))
def test_k2_k3_are_nonnegative_and_k1_is_antisymmetric(values, shift):
    lp = torch.tensor(values, dtype=torch.float64)
    ref = lp + shift
    assert (kl_per_token(lp, ref, "k2") >= 0).all()
    assert (kl_per_token(lp, ref, "k3") >= 0).all()
    assert torch.isfinite(kl_per_token(lp, ref, "k3")).all()
    torch.testing.assert_close(kl_per_token(lp, ref, "k1"), -kl_per_token(ref, lp, "k1"))


@SETTINGS
@given(
    st.lists(
        st.tuples(st.floats(-5, 5), st.floats(-5, 5), st.floats(-5, 5)), min_size=1, max_size=10
    ),
    st.floats(0.01, 2.0),
)
def test_value_loss_max_mode_is_an_upper_bound(triples, clip_range):
    v, r, old = (torch.tensor(col, dtype=torch.float64) for col in zip(*triples, strict=True))
    unclipped = value_loss(v, r).per_token_loss
    as_max = value_loss(v, r, old, clip_range=clip_range, mode="max")
    as_clipped = value_loss(v, r, old, clip_range=clip_range, mode="clipped")
    assert (as_max.per_token_loss >= unclipped).all()
    assert (as_max.per_token_loss >= as_clipped.per_token_loss).all()
    assert 0.0 <= as_max.clip_fraction <= 1.0 and 0.0 <= as_clipped.clip_fraction <= 1.0
