"""policy_loss: NumPy re-derivation, hand-computed cases, extreme inputs, autograd."""

from __future__ import annotations

import math

import numpy as np
import numpy_reference as ref
import pytest
import torch
from core_inputs import SHAPES, policy_batch, ragged_mask

from ppo_core import LOSS_AGG_MODES, compute_ppo_loss, policy_loss
from ppo_core.policy import log_ratio_limit

DIAGNOSTICS = (
    "clip_fraction",
    "clip_fraction_lower",
    "ratio_outside_fraction",
    "approx_kl",
    "approx_kl_k2",
    "approx_kl_k3",
    "ratio_min",
    "ratio_mean",
    "ratio_max",
)
VARIANTS = {
    "symmetric": {},
    "asymmetric": {"clip_ratio_low": 0.2, "clip_ratio_high": 0.28},
    "asymmetric-wide-high": {"clip_ratio_low": 0.1, "clip_ratio_high": 1.5},
    "dual-clip": {"dual_clip": 1.5},
    "dual-clip-3-asymmetric": {"dual_clip": 3.0, "clip_ratio_low": 0.3, "clip_ratio_high": 0.2},
    "log-ratio-clamp": {"log_ratio_clamp": 0.3},
    "verl": {"dual_clip": 3.0, "log_ratio_clamp": 20.0},
}


def masks_for(shape: tuple[int, ...]) -> dict[str, torch.Tensor | None]:
    out: dict[str, torch.Tensor | None] = {"no-mask": None, "ragged": ragged_mask(shape)}
    if len(shape) == 2:
        out["ragged-empty-row"] = ragged_mask(shape, empty_row=True)
    return out


def assert_matches_reference(out, expected, *, rtol: float, atol: float) -> None:
    np.testing.assert_allclose(out.loss.item(), expected["loss"], rtol=rtol, atol=atol)
    np.testing.assert_allclose(
        out.per_token_loss.detach().double().numpy(),
        expected["per_token_loss"],
        rtol=rtol,
        atol=atol,
    )
    np.testing.assert_allclose(
        out.ratio.detach().double().numpy(), expected["ratio"], rtol=rtol, atol=atol
    )
    for name in DIAGNOSTICS:
        np.testing.assert_allclose(
            getattr(out, name), expected[name], rtol=rtol, atol=atol, err_msg=name
        )


# --------------------------------------------------------------------------- NumPy reference


@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("sign", ["pos", "neg", "mixed"])
@pytest.mark.parametrize("eps", [0.1, 0.2, 0.3])
def test_matches_numpy_every_mode_and_mask(shape_name, sign, eps):
    shape = SHAPES[shape_name]
    b = policy_batch(shape, sign, seed=int(eps * 10) + len(shape))
    clipped_any = False
    for mask_name, mask in masks_for(shape).items():
        mask_np = None if mask is None else mask.numpy()
        for mode in LOSS_AGG_MODES:
            out = policy_loss(
                b.logprobs, b.old_logprobs, b.advantages, mask, clip_ratio=eps, loss_agg_mode=mode
            )
            expected = ref.policy_loss(
                b.logprobs.numpy(),
                b.old_logprobs.numpy(),
                b.advantages.numpy(),
                mask_np,
                clip_ratio=eps,
                loss_agg_mode=mode,
            )
            try:
                assert_matches_reference(out, expected, rtol=1e-12, atol=1e-14)
            except AssertionError as err:
                raise AssertionError(f"{mask_name} {mode}: {err}") from None
            clipped_any |= 0 < out.clip_fraction < 1
    assert clipped_any, "inputs should make the clip bind on some tokens but not all"


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("sign", ["pos", "neg", "mixed"])
def test_variants_match_numpy(variant, shape_name, sign):
    shape = SHAPES[shape_name]
    knobs = VARIANTS[variant]
    b = policy_batch(shape, sign, seed=len(variant) + len(shape), spread=0.8)
    # Push a few ratios far out (r ~ e^±2) so dual clip and clamps bind.
    bump = torch.zeros(b.logprobs.numel(), dtype=torch.float64)
    bump[::5], bump[2::5] = 2.5, -2.0
    lp = b.logprobs + bump.reshape(shape)
    for mask_name, mask in masks_for(shape).items():
        mask_np = None if mask is None else mask.numpy()
        for mode in LOSS_AGG_MODES:
            out = policy_loss(
                lp, b.old_logprobs, b.advantages, mask, loss_agg_mode=mode, clip_ratio=0.2, **knobs
            )
            expected = ref.policy_loss(
                lp.numpy(),
                b.old_logprobs.numpy(),
                b.advantages.numpy(),
                mask_np,
                loss_agg_mode=mode,
                clip_ratio=0.2,
                **knobs,
            )
            try:
                assert_matches_reference(out, expected, rtol=1e-12, atol=1e-14)
            except AssertionError as err:
                raise AssertionError(f"{mask_name} {mode}: {err}") from None


def test_dual_clip_binds_in_variant_inputs():
    """The variant inputs do reach the dual-clip region (so the comparisons above test it)."""
    b = policy_batch((4, 9), "neg", seed=9, spread=0.8)
    lp = b.logprobs + 2.5
    out = policy_loss(lp, b.old_logprobs, b.advantages, dual_clip=1.5)
    assert 0 < out.clip_fraction_lower <= 1
    plain = policy_loss(lp, b.old_logprobs, b.advantages)
    assert out.loss < plain.loss


@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("variant", ["symmetric", "asymmetric", "dual-clip", "log-ratio-clamp"])
def test_float32_matches_numpy(shape_name, variant):
    shape = SHAPES[shape_name]
    b = policy_batch(shape, "mixed", seed=3, dtype=torch.float32, spread=0.6)
    for mask in masks_for(shape).values():
        out = policy_loss(b.logprobs, b.old_logprobs, b.advantages, mask, **VARIANTS[variant])
        assert out.loss.dtype == torch.float32
        expected = ref.policy_loss(
            b.logprobs.double().numpy(),
            b.old_logprobs.double().numpy(),
            b.advantages.double().numpy(),
            None if mask is None else mask.numpy(),
            **VARIANTS[variant],
        )
        assert_matches_reference(out, expected, rtol=2e-6, atol=2e-6)


def test_mask_ignores_padding_values():
    """Whatever sits under mask = 0 does not change the loss or any diagnostic."""
    b = policy_batch((3, 8), "mixed", seed=4)
    mask = ragged_mask((3, 8))
    noisy = b.logprobs.clone()
    noisy[mask == 0] += 3.0
    adv = b.advantages.clone()
    adv[mask == 0] = -7.0
    for mode in LOSS_AGG_MODES:
        a = policy_loss(b.logprobs, b.old_logprobs, b.advantages, mask, loss_agg_mode=mode)
        c = policy_loss(noisy, b.old_logprobs, adv, mask, loss_agg_mode=mode)
        assert a.loss.item() == pytest.approx(c.loss.item(), rel=1e-12)
        for name in DIAGNOSTICS:
            assert getattr(a, name) == pytest.approx(getattr(c, name), rel=1e-12), name


def test_bool_and_integer_masks_equal_float_mask():
    b = policy_batch((3, 8), "mixed", seed=5)
    mask = ragged_mask((3, 8))
    base = policy_loss(b.logprobs, b.old_logprobs, b.advantages, mask)
    for other in (mask.bool(), mask.long()):
        out = policy_loss(b.logprobs, b.old_logprobs, b.advantages, other)
        assert out.loss.item() == base.loss.item()
        assert out.clip_fraction == base.clip_fraction


# --------------------------------------------------------------------------- hand-computed


def test_hand_computed_symmetric():
    # ratios r = [1.5, 0.5, 1.1, 0.9], A = [1, -1, 2, -2], eps = 0.2 (bounds 0.8, 1.2):
    #   r=1.5, A=1:  min(1.5, 1.2) = 1.2    -> loss -1.2  (clipped term taken)
    #   r=0.5, A=-1: min(-0.5, -0.8) = -0.8 -> loss  0.8  (clipped term taken)
    #   r=1.1, A=2:  min(2.2, 2.2)          -> loss -2.2
    #   r=0.9, A=-2: min(-1.8, -1.8)        -> loss  1.8
    # token mean = (-1.2 + 0.8 - 2.2 + 1.8) / 4 = -0.2; clip fraction 2/4.
    # k1 = mean(-log r) = -log(1.5 * 0.5 * 1.1 * 0.9) / 4 = -log(0.7425) / 4 = 0.074433
    # k3 = mean(r - 1 - log r) = (0.094535 + 0.193147 + 0.004690 + 0.005361) / 4 = 0.074433
    #    (equal to k1 here because mean(r) = 1)
    r = torch.tensor([1.5, 0.5, 1.1, 0.9], dtype=torch.float64)
    adv = torch.tensor([1.0, -1, 2, -2], dtype=torch.float64)
    out = policy_loss(r.log(), torch.zeros(4, dtype=torch.float64), adv)
    assert out.per_token_loss.tolist() == pytest.approx([-1.2, 0.8, -2.2, 1.8], abs=1e-12)
    assert out.loss.item() == pytest.approx(-0.2, abs=1e-12)
    assert out.clip_fraction == 0.5
    assert out.ratio_outside_fraction == 0.5
    assert out.clip_fraction_lower == 0.0
    assert out.approx_kl == pytest.approx(0.074433, abs=1e-6)
    assert out.approx_kl_k3 == pytest.approx(0.074433, abs=1e-6)
    # k2 = mean(log(r)^2 / 2) = (0.164402 + 0.480453 + 0.009084 + 0.011101) / 2 / 4 = 0.083130
    assert out.approx_kl_k2 == pytest.approx(0.083130, abs=1e-6)
    assert (out.ratio_min, out.ratio_mean, out.ratio_max) == pytest.approx((0.5, 1.0, 1.5))


def test_hand_computed_agg_modes_with_mask():
    # Per-token losses (r = 1 everywhere so loss = -A): [[-1, -2, -3], [-4, -5, -6]],
    # mask [[1, 1, 0], [1, 0, 0]]:
    #   token-mean = (-1 - 2 - 4) / 3 = -7/3
    #   seq-mean-token-mean = ((-1 - 2) / 2 + (-4) / 1) / 2 = -2.75
    #   seq-mean-token-sum = (-3 + -4) / 2 = -3.5
    #   seq-mean-token-sum-norm = (-3 + -4) / 2 rows / 3 (padded length) = -7/6 (verl 0.9.1)
    #   token-sum = -7
    adv = torch.tensor([[1.0, 2, 3], [4, 5, 6]], dtype=torch.float64)
    zeros = torch.zeros_like(adv)
    mask = torch.tensor([[1.0, 1, 0], [1, 0, 0]])
    expected = {
        "token-mean": -7 / 3,
        "seq-mean-token-mean": -2.75,
        "seq-mean-token-sum": -3.5,
        "seq-mean-token-sum-norm": -7 / 6,
        "token-sum": -7.0,
    }
    for mode, value in expected.items():
        out = policy_loss(zeros, zeros, adv, mask, loss_agg_mode=mode)
        assert out.loss.item() == pytest.approx(value, abs=1e-12), mode


def test_hand_computed_asymmetric_clip():
    # eps_low = 0.2, eps_high = 0.28 -> bounds [0.8, 1.28]:
    #   r=1.5, A=1:  min(1.5, 1.28) -> loss -1.28
    #   r=1.25, A=1: inside          -> loss -1.25
    #   r=0.7, A=-1: min(-0.7, -0.8) -> loss 0.8
    #   r=0.7, A=1:  min(0.7, 0.8)   -> loss -0.7 (unclipped taken, but r is outside the bounds)
    r = torch.tensor([1.5, 1.25, 0.7, 0.7], dtype=torch.float64)
    out = policy_loss(
        r.log(),
        torch.zeros(4, dtype=torch.float64),
        torch.tensor([1.0, 1.0, -1.0, 1.0], dtype=torch.float64),
        clip_ratio=0.2,
        clip_ratio_high=0.28,
    )
    assert out.per_token_loss.tolist() == pytest.approx([-1.28, -1.25, 0.8, -0.7], abs=1e-12)
    assert out.clip_fraction == 0.5  # tokens 0 and 2
    assert out.ratio_outside_fraction == 0.75  # tokens 0, 2, 3


def test_hand_computed_dual_clip():
    # c = 3, A = -1: r=5: max(5, 0.8) = 5 -> min(5, 3) = 3 (dual clip binds);
    #                r=2: max(2, 0.8) = 2 -> min(2, 3) = 2; r=0.5: 0.8.
    # A = +1, r = 5: min(5, 1.2) -> loss -1.2 (dual clip only acts on A < 0).
    r = torch.tensor([5.0, 2.0, 0.5, 5.0], dtype=torch.float64)
    adv = torch.tensor([-1.0, -1.0, -1.0, 1.0], dtype=torch.float64)
    out = policy_loss(r.log(), torch.zeros(4, dtype=torch.float64), adv, dual_clip=3.0)
    assert out.per_token_loss.tolist() == pytest.approx([3.0, 2.0, 0.8, -1.2], abs=1e-12)
    assert out.clip_fraction_lower == 0.25
    assert out.clip_fraction == 0.5  # tokens 2 and 3: the clipped term is strictly larger
    assert out.loss.item() == pytest.approx((3.0 + 2.0 + 0.8 - 1.2) / 4, abs=1e-12)


def test_hand_computed_log_ratio_clamp():
    # log r = 3 clamped to 1 -> r = e; A = -1: loss = max(e, 0.8) = e = 2.718282
    out = policy_loss(
        torch.tensor([3.0], dtype=torch.float64),
        torch.zeros(1, dtype=torch.float64),
        torch.tensor([-1.0], dtype=torch.float64),
        log_ratio_clamp=1.0,
    )
    assert out.loss.item() == pytest.approx(math.e, abs=1e-12)
    assert out.ratio_max == pytest.approx(math.e)
    assert out.approx_kl == pytest.approx(-1.0)  # verl: KL from the clamped log-ratio


def test_compute_ppo_loss_hand_computed():
    # The seed's function on the first two tokens above: (-1.2 + 0.8) / 2 = -0.2.
    r = torch.tensor([1.5, 0.5])
    assert compute_ppo_loss(r.log(), torch.zeros(2), torch.tensor([1.0, -1.0])).item() == (
        pytest.approx(-0.2, abs=1e-6)
    )


def test_no_change_gives_minus_mean_advantage_and_zero_kl():
    adv = torch.tensor([[0.5, -1.0, 2.0], [1.0, 1.0, -3.0]], dtype=torch.float64)
    lp = torch.full_like(adv, -1.3)
    out = policy_loss(lp, lp, adv)
    assert out.loss.item() == pytest.approx(-adv.mean().item(), abs=1e-15)
    assert out.clip_fraction == out.ratio_outside_fraction == 0.0
    assert out.approx_kl == out.approx_kl_k2 == out.approx_kl_k3 == 0.0
    assert out.ratio_min == out.ratio_mean == out.ratio_max == 1.0


# --------------------------------------------------------------------------- extreme inputs

DTYPES = [torch.float32, torch.float64]


def extreme(values: list[float], dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def no_nan(out) -> None:
    assert not torch.isnan(out.loss).any()
    assert not torch.isnan(out.per_token_loss).any()
    assert not torch.isnan(out.ratio).any()
    for name in DIAGNOSTICS:
        assert not math.isnan(getattr(out, name)), name


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log_ratio", [100.0, -100.0, 1000.0, -1000.0])
def test_extreme_log_ratio_zero_advantage_is_exactly_zero(dtype, log_ratio):
    out = policy_loss(
        extreme([log_ratio, 0.0], dtype), extreme([0.0, 0.0], dtype), extreme([0.0, 0.0], dtype)
    )
    no_nan(out)
    assert out.per_token_loss.tolist() == [0.0, 0.0]
    assert out.loss.item() == 0.0
    assert torch.isfinite(out.ratio).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log_ratio", [100.0, 1000.0])
@pytest.mark.parametrize("eps", [0.1, 0.2, 0.3])
def test_extreme_positive_log_ratio_saturates(dtype, log_ratio, eps):
    limit = log_ratio_limit(dtype)
    assert limit == pytest.approx(math.log(torch.finfo(dtype).max), abs=2e-3)
    saturated = math.exp(min(log_ratio, limit))  # float64 holds e^100 exactly enough
    lp = extreme([log_ratio, log_ratio], dtype)
    zeros = torch.zeros(2, dtype=dtype)
    # A > 0: the clipped term 1 + eps is the minimum: loss = -A (1 + eps), flat.
    out = policy_loss(lp, zeros, extreme([1.0, 2.0], dtype), clip_ratio=eps)
    no_nan(out)
    assert out.per_token_loss.tolist() == pytest.approx([-(1 + eps), -2 * (1 + eps)], rel=1e-6)
    assert out.clip_fraction == 1.0
    assert math.isfinite(out.ratio_max)
    assert out.ratio_max == pytest.approx(saturated, rel=1e-4)
    # A < 0, no dual clip: the true loss -A r is unbounded; it saturates at -A exp(limit):
    # a huge finite number, or +inf where that product exceeds the dtype (documented).
    for adv in (-1.0, -2.0):
        out = policy_loss(lp[:1], zeros[:1], extreme([adv], dtype), clip_ratio=eps)
        no_nan(out)
        value = out.per_token_loss.item()
        expected = -adv * saturated
        if expected > torch.finfo(dtype).max:
            assert value == math.inf
        else:
            assert value == pytest.approx(expected, rel=1e-4)
            assert value > 1e38
    # Dual clip bounds it: loss = -c A.
    out = policy_loss(lp, zeros, extreme([-1.0, -2.0], dtype), clip_ratio=eps, dual_clip=3.0)
    no_nan(out)
    assert out.per_token_loss.tolist() == [3.0, 6.0]
    assert out.clip_fraction_lower == 1.0
    # A log-ratio clamp bounds it: loss = -A e^20.
    out = policy_loss(lp, zeros, extreme([-1.0, -2.0], dtype), log_ratio_clamp=20.0)
    no_nan(out)
    assert out.per_token_loss.tolist() == pytest.approx([math.exp(20), 2 * math.exp(20)], rel=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log_ratio", [-100.0, -1000.0])
@pytest.mark.parametrize("eps", [0.1, 0.2, 0.3])
def test_extreme_negative_log_ratio(dtype, log_ratio, eps):
    lp = extreme([log_ratio, log_ratio], dtype)
    zeros = torch.zeros(2, dtype=dtype)
    # A < 0: min(r A, (1 - eps) A) = (1 - eps) A -> loss = -(1 - eps) A (clipped, flat).
    out = policy_loss(lp, zeros, extreme([-1.0, -2.0], dtype), clip_ratio=eps)
    no_nan(out)
    assert out.per_token_loss.tolist() == pytest.approx([1 - eps, 2 * (1 - eps)], rel=1e-6)
    assert out.clip_fraction == 1.0
    # A > 0: r A -> 0 from above: loss = -A r, tiny and <= 0.
    out = policy_loss(lp, zeros, extreme([1.0, 2.0], dtype), clip_ratio=eps)
    no_nan(out)
    assert all(-1e-30 < v <= 0.0 for v in out.per_token_loss.tolist())
    assert out.clip_fraction == 0.0
    assert out.ratio_outside_fraction == 1.0
    assert 0.0 <= out.ratio_min < 1e-30
    assert math.isfinite(out.approx_kl_k3) and out.approx_kl_k3 > 80


@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_inputs_gradients_are_finite(dtype):
    lp = extreme([100.0, -100.0, 1000.0, -1000.0, 0.1], dtype).requires_grad_(True)
    zeros = torch.zeros(5, dtype=dtype)
    for kwargs in ({"dual_clip": 3.0}, {"log_ratio_clamp": 20.0}):
        for adv in (1.0, -1.0, 0.0):
            out = policy_loss(lp, zeros, torch.full((5,), adv, dtype=dtype), **kwargs)
            assert torch.isfinite(out.loss)
            (grad,) = torch.autograd.grad(out.loss, lp)
            assert torch.isfinite(grad).all(), (kwargs, adv)


@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_diagnostics_are_finite(dtype):
    # One saturated ratio per direction: every diagnostic is a finite number.
    lp = extreme([1000.0, -1000.0, 0.5, -0.5], dtype)
    out = policy_loss(lp, torch.zeros(4, dtype=dtype), torch.ones(4, dtype=dtype))
    no_nan(out)
    for name in DIAGNOSTICS:
        assert math.isfinite(getattr(out, name)), name
    assert out.clip_fraction == 0.5
    assert out.ratio_outside_fraction == 1.0
    assert out.approx_kl == pytest.approx(0.0, abs=1e-3)  # symmetric saturated log-ratios


def test_extreme_diagnostic_means_do_not_overflow():
    lp = torch.tensor([100.0, 100.0, 0.0, 0.0])
    out = policy_loss(lp, torch.zeros(4), torch.ones(4))
    assert math.isfinite(out.ratio_mean)
    assert math.isfinite(out.approx_kl_k3)


@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
def test_masked_out_infinite_token_does_not_poison_the_loss(mode):
    lp = torch.tensor([[0.0, 100.0]])
    adv = torch.tensor([[1.0, -2.0]])
    mask = torch.tensor([[1.0, 0.0]])
    out = policy_loss(lp, torch.zeros_like(lp), adv, mask, loss_agg_mode=mode)
    valid_only = policy_loss(lp[:, :1], torch.zeros(1, 1), adv[:, :1], loss_agg_mode=mode)
    # Padding must not matter: the loss is the one over the valid token (sum-norm: / 2 vs / 1).
    scale = 0.5 if mode == "seq-mean-token-sum-norm" else 1.0
    assert out.loss.item() == pytest.approx(scale * valid_only.loss.item())


def test_k1_k2_use_the_true_log_ratio_without_clamp():
    out = policy_loss(torch.tensor([100.0]), torch.zeros(1), torch.ones(1))
    assert out.approx_kl == pytest.approx(-100.0)
    assert out.approx_kl_k2 == pytest.approx(5000.0)


def test_float16_saturation_keeps_ratio_finite():
    lp = torch.tensor([100.0, 100.0], dtype=torch.float16)
    out = policy_loss(lp, torch.zeros_like(lp), torch.tensor([0.0, 1.0], dtype=torch.float16))
    assert torch.isfinite(out.ratio).all()
    assert out.per_token_loss[0].item() == 0.0


# --------------------------------------------------------------------------- autograd


def away_from_kinks(shape, sign, seed, *, bounds=(0.8, 1.2), dual=None, margin=0.02):
    """A batch whose ratios keep ``margin`` away from every kink (clip bounds, dual-clip c)."""
    b = policy_batch(shape, sign, seed, spread=0.5)
    ratio = (b.logprobs - b.old_logprobs).exp()
    kinks = list(bounds) + ([dual] if dual else [])
    for k in kinks:
        near = (ratio - k).abs() < margin
        ratio = torch.where(near, ratio + 3 * margin, ratio)
    return b.old_logprobs + ratio.log(), b.old_logprobs, b.advantages


@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
@pytest.mark.parametrize(
    "knobs",
    [{}, {"clip_ratio_high": 0.28}, {"dual_clip": 2.0}],
    ids=["symmetric", "asymmetric", "dual-clip"],
)
def test_gradcheck_policy_loss(mode, knobs):
    high = 1.28 if "clip_ratio_high" in knobs else 1.2
    lp, old, adv = away_from_kinks((3, 6), "mixed", 21, bounds=(0.8, high), dual=2.0)
    mask = ragged_mask((3, 6), empty_row=True)
    lp = lp.clone().requires_grad_(True)
    adv = adv.clone().requires_grad_(True)

    def fn(lp_, adv_):
        return policy_loss(lp_, old, adv_, mask, loss_agg_mode=mode, **knobs).loss

    assert torch.autograd.gradcheck(fn, (lp, adv), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("eps", [0.1, 0.2, 0.3])
@pytest.mark.parametrize("sign", ["pos", "neg", "mixed"])
def test_gradient_is_exactly_zero_where_clip_is_active(eps, sign):
    lp, old, adv = away_from_kinks((5, 8), sign, 30, bounds=(1 - eps, 1 + eps), margin=0.01)
    lp = lp.clone().requires_grad_(True)
    out = policy_loss(lp, old, adv, clip_ratio=eps)
    (grad,) = torch.autograd.grad(out.per_token_loss.sum(), lp)
    terms = ref.policy_terms(
        lp.detach().numpy(), old.numpy(), adv.numpy(), eps_low=eps, eps_high=eps
    )
    clipped = torch.from_numpy(terms["clipped_taken"]) > 0
    assert clipped.any() and (~clipped).any()
    assert (grad[clipped] == 0.0).all()
    # Elsewhere d(-A r)/d log pi = -A r.
    ratio = torch.from_numpy(terms["ratio"])
    torch.testing.assert_close(grad[~clipped], (-adv * ratio)[~clipped], rtol=1e-12, atol=0)


def test_gradient_is_zero_where_dual_clip_binds():
    lp = torch.tensor([math.log(5.0), math.log(2.0)], dtype=torch.float64, requires_grad=True)
    out = policy_loss(lp, torch.zeros(2, dtype=torch.float64), -torch.ones(2), dual_clip=3.0)
    (grad,) = torch.autograd.grad(out.per_token_loss.sum(), lp)
    # r = 5: -c A = 3 binds, flat. r = 2: loss = -A r = r, d/d log r = r = 2.
    assert grad.tolist() == pytest.approx([0.0, 2.0], abs=1e-12)
