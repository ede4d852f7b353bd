"""value_loss: NumPy re-derivation over modes / scales / masks, hand-computed cases, autograd."""

from __future__ import annotations

import numpy as np
import numpy_reference as ref
import pytest
import torch
from core_inputs import SHAPES, ragged_mask, value_batch

from ppo_core import LOSS_AGG_MODES, compute_value_loss, value_loss


def masks_for(shape):
    out = {"no-mask": None, "ragged": ragged_mask(shape)}
    if len(shape) == 2:
        out["ragged-empty-row"] = ragged_mask(shape, empty_row=True)
    return out


@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("mode", ["max", "clipped"])
@pytest.mark.parametrize("clip_range", [None, 0.2, 0.5])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_matches_numpy(shape_name, mode, clip_range, scale):
    shape = SHAPES[shape_name]
    b = value_batch(shape, seed=len(shape) + int(10 * (clip_range or 0)))
    for mask_name, mask in masks_for(shape).items():
        mask_np = None if mask is None else mask.numpy()
        for agg in LOSS_AGG_MODES:
            out = value_loss(
                b.values,
                b.returns,
                b.old_values,
                mask,
                clip_range=clip_range,
                mode=mode,
                scale=scale,
                loss_agg_mode=agg,
            )
            expected = ref.value_loss(
                b.values.numpy(),
                b.returns.numpy(),
                b.old_values.numpy(),
                mask_np,
                clip_range=clip_range,
                mode=mode,
                scale=scale,
                loss_agg_mode=agg,
            )
            where = f"{mask_name} {agg}"
            np.testing.assert_allclose(out.loss.item(), expected["loss"], rtol=1e-12, err_msg=where)
            np.testing.assert_allclose(
                out.per_token_loss.numpy(), expected["per_token_loss"], rtol=1e-12, err_msg=where
            )
            assert out.clip_fraction == pytest.approx(expected["clip_fraction"], abs=1e-15), where
            if clip_range is None:
                assert out.clip_fraction == 0.0


def test_clip_fraction_is_strictly_between_0_and_1_on_random_inputs():
    b = value_batch((4, 9), seed=1)
    for mode in ("max", "clipped"):
        out = value_loss(b.values, b.returns, b.old_values, clip_range=0.2, mode=mode)
        assert 0.0 < out.clip_fraction < 1.0, mode


def test_float32_matches_numpy():
    b = value_batch((4, 9), seed=2, dtype=torch.float32)
    mask = ragged_mask((4, 9), empty_row=True)
    for mode in ("max", "clipped"):
        out = value_loss(b.values, b.returns, b.old_values, mask, clip_range=0.2, mode=mode)
        assert out.loss.dtype == torch.float32
        expected = ref.value_loss(
            b.values.double().numpy(),
            b.returns.double().numpy(),
            b.old_values.double().numpy(),
            mask.numpy(),
            clip_range=0.2,
            mode=mode,
        )
        np.testing.assert_allclose(out.loss.item(), expected["loss"], rtol=2e-6)
        assert out.clip_fraction == pytest.approx(expected["clip_fraction"])


def test_hand_computed_modes():
    # V = [2, 0.5, -1, 0.2], R = 0, V_old = [1, 0, 0, 1], c = 0.5:
    #   V - V_old = [1, 0.5, -1, -0.8] -> clipped to [0.5, 0.5, -0.5, -0.5]
    #   V_clip = [1.5, 0.5, -0.5, 0.5]
    #   (V - R)^2      = [4, 0.25, 1, 0.04]
    #   (V_clip - R)^2 = [2.25, 0.25, 0.25, 0.25]
    # max:     [4, 0.25, 1, 0.25] -> mean 5.5 / 4 = 1.375; clipped error larger only at token 3
    # clipped: [2.25, 0.25, 0.25, 0.25] -> mean 3 / 4 = 0.75; |V - V_old| > c at tokens 0, 2, 3
    #          (token 1 sits exactly at c: not counted)
    v = torch.tensor([2.0, 0.5, -1.0, 0.2], dtype=torch.float64)
    r = torch.zeros(4, dtype=torch.float64)
    old = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    out = value_loss(v, r, old, clip_range=0.5, mode="max")
    assert out.per_token_loss.tolist() == pytest.approx([4.0, 0.25, 1.0, 0.25])
    assert out.loss.item() == pytest.approx(1.375)
    assert out.clip_fraction == 0.25
    out = value_loss(v, r, old, clip_range=0.5, mode="clipped")
    assert out.per_token_loss.tolist() == pytest.approx([2.25, 0.25, 0.25, 0.25])
    assert out.loss.item() == pytest.approx(0.75)
    assert out.clip_fraction == 0.75
    # scale 0.5 halves every term (CleanRL / verl / TRL); no clip: 0.5 * (4 + 0.25 + 1 + 0.04) / 4
    out = value_loss(v, r, old, scale=0.5)
    assert out.loss.item() == pytest.approx(0.5 * 5.29 / 4)
    assert out.clip_fraction == 0.0


def test_hand_computed_seed_value_loss():
    # Seed: clipped path max((2 - 0)^2, (1 + 0.2 - 0)^2) = 4; MSE path without old values.
    v, r, old = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.5])
    # token 1: V - V_old = -0.5 -> V_clip = 0.3; max((0 - 1)^2, (0.3 - 1)^2) = 1 -> mean 2.5
    assert compute_value_loss(v, r, old).item() == pytest.approx(2.5)
    assert compute_value_loss(v, r).item() == pytest.approx((4 + 1) / 2)


def test_mask_ignores_padding():
    b = value_batch((3, 8), seed=3)
    mask = ragged_mask((3, 8))
    noisy = b.values.clone()
    noisy[mask == 0] = 1e3
    for mode in ("max", "clipped"):
        a = value_loss(b.values, b.returns, b.old_values, mask, clip_range=0.2, mode=mode)
        c = value_loss(noisy, b.returns, b.old_values, mask, clip_range=0.2, mode=mode)
        assert a.loss.item() == pytest.approx(c.loss.item(), rel=1e-12)
        assert a.clip_fraction == c.clip_fraction


@pytest.mark.parametrize("mode", ["max", "clipped"])
@pytest.mark.parametrize("agg", LOSS_AGG_MODES)
def test_gradcheck_value_loss(mode, agg):
    b = value_batch((3, 7), seed=4)
    c = 0.3
    # Mask out tokens near a kink (|V - V_old| = c, or equal clipped / unclipped errors).
    err = (b.values - b.returns) ** 2
    v_clip = b.old_values + (b.values - b.old_values).clamp(-c, c)
    err_clip = (v_clip - b.returns) ** 2
    far = (((b.values - b.old_values).abs() - c).abs() > 1e-3) & ((err - err_clip).abs() > 1e-3)
    mask = ragged_mask((3, 7)) * far
    values = b.values.clone().requires_grad_(True)

    def fn(v):
        return value_loss(
            v, b.returns, b.old_values, mask, clip_range=c, mode=mode, scale=0.5, loss_agg_mode=agg
        ).loss

    assert torch.autograd.gradcheck(fn, (values,), eps=1e-6, atol=1e-7)


def test_gradient_is_zero_where_the_clipped_prediction_is_taken():
    # clipped mode, |V - V_old| > c: the loss is (V_old +- c - R)^2, constant in V.
    v = torch.tensor([2.0, 0.1], dtype=torch.float64, requires_grad=True)
    old = torch.tensor([1.0, 0.0], dtype=torch.float64)
    r = torch.zeros(2, dtype=torch.float64)
    out = value_loss(v, r, old, clip_range=0.5, mode="clipped")
    (grad,) = torch.autograd.grad(out.per_token_loss.sum(), v)
    assert grad.tolist() == pytest.approx([0.0, 0.2])  # token 1: d(V^2)/dV = 2 V


def test_extreme_values_finite():
    v = torch.tensor([1e15, -1e15], dtype=torch.float64)
    out = value_loss(
        v, torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), clip_range=0.2
    )
    assert torch.isfinite(out.loss)
    assert out.clip_fraction == 0.0  # the unclipped error (1e30) is the larger one
