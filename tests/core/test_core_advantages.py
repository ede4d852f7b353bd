"""GAE, masked whitening, minibatch normalisation and group-relative (GRPO) advantages."""

from __future__ import annotations

import numpy as np
import numpy_reference as ref
import pytest
import torch
from core_inputs import SHAPES, generator, ragged_mask

from ppo_core import gae, group_advantages, normalize_advantages, whiten


def interior_padding_mask(shape):
    """Valid steps with holes in the middle (observation tokens), plus right padding."""
    mask = ragged_mask(shape)
    flat = mask.view(-1, shape[-1])
    flat[:, 2] = 0.0
    flat[:, 5] = 0.0
    return mask


@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize(
    "gamma,lam", [(0.99, 0.95), (1.0, 1.0), (0.9, 0.5), (0.0, 0.0), (1.0, 0.0)]
)
def test_gae_matches_numpy(shape_name, gamma, lam):
    shape = SHAPES[shape_name]
    gen = generator(len(shape))
    rewards = torch.randn(shape, generator=gen, dtype=torch.float64)
    values = torch.randn(shape, generator=gen, dtype=torch.float64)
    masks = {"none": None, "ragged": ragged_mask(shape), "holes": interior_padding_mask(shape)}
    for name, mask in masks.items():
        out = gae(rewards, values, mask, gamma=gamma, lam=lam)
        adv, ret = ref.gae(
            rewards.numpy(),
            values.numpy(),
            None if mask is None else mask.numpy(),
            gamma=gamma,
            lam=lam,
        )
        np.testing.assert_allclose(
            out.advantages.numpy(), adv, rtol=1e-12, atol=1e-12, err_msg=name
        )
        np.testing.assert_allclose(out.returns.numpy(), ret, rtol=1e-12, atol=1e-12, err_msg=name)


def test_gae_hand_computed():
    # gamma = lam = 1: A_t = sum_{k >= t} r_k - V_t: rewards [0, 0, 1], V = 0.5 -> A = 0.5
    out = gae(torch.tensor([0.0, 0.0, 1.0]), torch.full((3,), 0.5), gamma=1.0, lam=1.0)
    assert out.advantages.tolist() == pytest.approx([0.5, 0.5, 0.5])
    assert out.returns.tolist() == pytest.approx([1.0, 1.0, 1.0])
    # gamma = 0.9, lam = 0.5:
    #   t=2: delta = 1 - 0.5 = 0.5;                 A2 = 0.5
    #   t=1: delta = 0 + 0.9 * 0.5 - 0.5 = -0.05;   A1 = -0.05 + 0.45 * 0.5 = 0.175
    #   t=0: delta = -0.05;                         A0 = -0.05 + 0.45 * 0.175 = 0.02875
    out = gae(torch.tensor([0.0, 0.0, 1.0]), torch.full((3,), 0.5), gamma=0.9, lam=0.5)
    assert out.advantages.tolist() == pytest.approx([0.02875, 0.175, 0.5])
    # Masked middle step (verl): its reward (5) and value (9) are skipped; the valid steps form
    #   r = [0, 1], V = [0.5, 0.5]: A = [0.175, 0.5]; the masked step carries A = 0.5.
    out = gae(
        torch.tensor([0.0, 5.0, 1.0]),
        torch.tensor([0.5, 9.0, 0.5]),
        torch.tensor([1.0, 0.0, 1.0]),
        gamma=0.9,
        lam=0.5,
    )
    assert out.advantages.tolist() == pytest.approx([0.175, 0.5, 0.5])
    assert out.returns.tolist() == pytest.approx([0.675, 9.5, 1.0])


def test_gae_rows_are_independent_and_padding_inert():
    gen = generator(9)
    rewards = torch.randn(3, 10, generator=gen, dtype=torch.float64)
    values = torch.randn(3, 10, generator=gen, dtype=torch.float64)
    mask = ragged_mask((3, 10))
    out = gae(rewards, values, mask, gamma=0.95, lam=0.9)
    for i in range(3):
        n = int(mask[i].sum())
        alone = gae(rewards[i, :n], values[i, :n], gamma=0.95, lam=0.9)
        torch.testing.assert_close(out.advantages[i, :n], alone.advantages, rtol=1e-12, atol=0)
    noisy = rewards.clone()
    noisy[mask == 0] = 100.0
    again = gae(noisy, values, mask, gamma=0.95, lam=0.9)
    assert torch.equal(again.advantages[mask > 0], out.advantages[mask > 0])


@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("shift_mean", [True, False])
def test_whiten_matches_numpy(shape_name, shift_mean):
    shape = SHAPES[shape_name]
    x = torch.randn(shape, generator=generator(4), dtype=torch.float64) * 3.0 + 1.5
    for mask in (None, ragged_mask(shape), interior_padding_mask(shape)):
        out = whiten(x, mask, shift_mean=shift_mean)
        expected = ref.whiten(
            x.numpy(), None if mask is None else mask.numpy(), shift_mean=shift_mean
        )
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)
        valid = out if mask is None else out[mask > 0]
        if shift_mean:
            assert valid.mean().item() == pytest.approx(0.0, abs=1e-12)
        assert valid.std().item() == pytest.approx(1.0, abs=1e-6)  # Bessel-corrected std 1


def test_whiten_hand_computed():
    # [1, 3]: mean 2, Bessel variance ((-1)^2 + 1^2) / 1 = 2 -> ±1 / sqrt(2 + 1e-8)
    out = whiten(torch.tensor([1.0, 3.0, 100.0], dtype=torch.float64), torch.tensor([1, 1, 0.0]))
    assert out[:2].tolist() == pytest.approx([-1 / np.sqrt(2 + 1e-8), 1 / np.sqrt(2 + 1e-8)])
    kept = whiten(torch.tensor([1.0, 3.0], dtype=torch.float64), shift_mean=False)
    assert kept.tolist() == pytest.approx([2 - 0.707107, 2 + 0.707107], abs=1e-6)
    # eps sits inside the sqrt: constant input -> 0 / sqrt(1e-8) = 0, not NaN.
    assert whiten(torch.full((4,), 3.0)).tolist() == [0.0] * 4


@pytest.mark.parametrize("n", [2, 7, 64])
def test_normalize_advantages_matches_numpy(n):
    x = torch.randn(n, generator=generator(n), dtype=torch.float64) * 2 - 1
    out = normalize_advantages(x)
    np.testing.assert_allclose(out.numpy(), ref.normalize_advantages(x.numpy()), rtol=1e-12)


def test_normalize_advantages_hand_computed():
    # [1, 2, 3]: mean 2, unbiased std 1 -> [-1, 0, 1] / (1 + 1e-8); eps outside the sqrt
    out = normalize_advantages(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    assert out.tolist() == pytest.approx([-1 / (1 + 1e-8), 0.0, 1 / (1 + 1e-8)], abs=1e-15)
    assert normalize_advantages(torch.full((3,), 2.0)).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("normalize_std", [True, False])
@pytest.mark.parametrize("eps", [1e-6, 0.1])
def test_group_advantages_matches_numpy(normalize_std, eps):
    gen = generator(12)
    rewards = torch.randn(23, generator=gen, dtype=torch.float64)
    ids = torch.tensor([5, 5, 5, 5, 2, 2, 9, 0, 0, 0, 7, 7, 7, 7, 7, 3, 3, 5, 2, 11, 11, 11, 11])
    out = group_advantages(rewards, ids, normalize_std=normalize_std, eps=eps)
    expected = ref.group_advantages(
        rewards.numpy(), ids.numpy(), normalize_std=normalize_std, eps=eps
    )
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-15)


def test_group_advantages_hand_computed():
    # groups: 0 -> [1, 0] (mean 0.5, std sqrt(0.5)), 1 -> [5] (singleton: mean 0, std 1),
    #         2 -> [2, 4] (mean 3, std sqrt(2)), 3 -> [7, 7] (std 0)
    rewards = torch.tensor([1.0, 0.0, 5.0, 2.0, 4.0, 7.0, 7.0], dtype=torch.float64)
    ids = torch.tensor([0, 0, 1, 2, 2, 3, 3])
    out = group_advantages(rewards, ids)
    s = 1e-6
    expected = [
        0.5 / (0.5**0.5 + s),
        -0.5 / (0.5**0.5 + s),
        5.0 / (1.0 + s),
        -1 / (2**0.5 + s),
        1 / (2**0.5 + s),
        0.0,
        0.0,
    ]
    assert out.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-15)
    plain = group_advantages(rewards, ids, normalize_std=False)
    assert plain.tolist() == pytest.approx([0.5, -0.5, 5.0, -1.0, 1.0, 0.0, 0.0])


def test_group_advantages_ignores_id_values_and_order():
    rewards = torch.tensor([1.0, 2.0, 3.0, 10.0], dtype=torch.float64)
    a = group_advantages(rewards, torch.tensor([0, 1, 0, 1]))
    b = group_advantages(rewards, torch.tensor([-7, 40, -7, 40]))
    assert torch.equal(a, b)
