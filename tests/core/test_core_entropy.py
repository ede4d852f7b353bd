"""Entropy from logits (NumPy reference, hand cases, extremes, autograd) and the comparison."""

from __future__ import annotations

import math

import numpy as np
import numpy_reference as ref
import pytest
import torch
from core_inputs import generator

from ppo_core import (
    PPOInputError,
    compute_entropy,
    entropy_comparison,
    entropy_from_logits,
    entropy_vs_temperature,
)

NEG_INF = -math.inf


@pytest.mark.parametrize("shape", [(7,), (5, 11), (2, 3, 40)], ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.5])
@pytest.mark.parametrize("scale", [0.1, 1.0, 8.0])
def test_matches_numpy(shape, temperature, scale):
    logits = torch.randn(shape, generator=generator(len(shape)), dtype=torch.float64) * scale
    out = entropy_from_logits(logits, temperature)
    assert out.shape == logits.shape[:-1]
    np.testing.assert_allclose(
        out.numpy(), ref.entropy(logits.numpy(), temperature), rtol=1e-12, atol=1e-14
    )


def test_matches_numpy_with_impossible_actions():
    logits = torch.randn(6, 9, generator=generator(3), dtype=torch.float64)
    logits[:, 1::3] = NEG_INF
    logits[2, 1:] = NEG_INF  # a single possible action: entropy 0
    out = entropy_from_logits(logits)
    np.testing.assert_allclose(out.numpy(), ref.entropy(logits.numpy()), rtol=1e-12, atol=1e-14)
    assert out[2].item() == 0.0
    # -inf entries are the same as dropping those actions.
    kept = logits[0, torch.isfinite(logits[0])]
    assert out[0].item() == pytest.approx(entropy_from_logits(kept).item(), rel=1e-12)


def test_hand_computed():
    # [0, 0]: uniform over 2 -> log 2 = 0.693147
    # [0, -inf]: one certain action -> 0
    # [log 1, log 3]: p = [0.25, 0.75] -> 0.25 log 4 + 0.75 log(4/3) = 0.562335
    # [2, 0] at temperature 2 -> [1, 0]: p = [e, 1] / (e + 1) -> 0.582203
    logits = torch.tensor([[0.0, 0.0], [0.0, NEG_INF], [0.0, math.log(3.0)]], dtype=torch.float64)
    assert entropy_from_logits(logits).tolist() == pytest.approx([math.log(2), 0.0, 0.562335])
    assert entropy_from_logits(torch.tensor([2.0, 0.0]), temperature=2.0).item() == (
        pytest.approx(0.582203, abs=1e-6)
    )
    # The seed's function is the mean over rows: (log 2 + 0 + 0.562335) / 3
    assert compute_entropy(logits).item() == pytest.approx((math.log(2) + 0.562335) / 3)


@pytest.mark.parametrize("vocab", [2, 10, 1000])
def test_uniform_is_log_vocab_and_bounds(vocab):
    assert entropy_from_logits(torch.zeros(3, vocab)).tolist() == pytest.approx(
        [math.log(vocab)] * 3, rel=1e-6
    )
    rows = entropy_from_logits(torch.randn(50, vocab, generator=generator(vocab)) * 3.0)
    assert (rows >= 0).all() and (rows <= math.log(vocab) + 1e-5).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_logits_are_finite_and_correct(dtype):
    logits = torch.tensor(
        [[1e4, 0.0, -1e4], [1e4, 1e4, 0.0], [1e4, 1e4, 1e4], [-1e4, -1e4, -1e4]], dtype=dtype
    )
    out = entropy_from_logits(logits)
    assert torch.isfinite(out).all()
    assert out.tolist() == pytest.approx([0.0, math.log(2), math.log(3), math.log(3)], abs=1e-6)
    # Temperature 1e-3 turns 1e4 into 1e7: still finite, still one-hot.
    assert entropy_from_logits(logits[:1], temperature=1e-3).item() == 0.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_finite_with_neg_inf_and_huge_logits(dtype):
    logits = torch.tensor(
        [[1e4, 0.0, -1e4], [1.0, 2.0, NEG_INF], [0.0, NEG_INF, NEG_INF], [3.0, NEG_INF, 3.0]],
        dtype=dtype,
        requires_grad=True,
    )
    out = entropy_from_logits(logits)
    assert torch.isfinite(out).all()
    (grad,) = torch.autograd.grad(out.sum(), logits)
    assert torch.isfinite(grad).all()
    # -inf entries get zero gradient, and the finite part matches the row without them.
    assert grad[1, 2].item() == 0.0 and grad[2].tolist() == [0.0, 0.0, 0.0]
    finite = torch.tensor([1.0, 2.0], dtype=dtype, requires_grad=True)
    (expected,) = torch.autograd.grad(entropy_from_logits(finite), finite)
    torch.testing.assert_close(grad[1, :2], expected)
    # dH/dz_i = -p_i (log p_i + H): for [1, 2]: p = [0.268941, 0.731059], H = 0.582203
    assert grad[1, :2].tolist() == pytest.approx([0.196612, -0.196612], abs=1e-5)


def test_all_neg_inf_row_raises():
    logits = torch.tensor([[0.0, 1.0], [NEG_INF, NEG_INF]])
    with pytest.raises(PPOInputError) as err:
        entropy_from_logits(logits)
    assert err.value.field == "logits"
    assert "finite entry" in err.value.problem


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nan_or_pos_inf_logit_raises(bad):
    with pytest.raises(PPOInputError) as err:
        entropy_from_logits(torch.tensor([[0.0, bad]]))
    assert err.value.field == "logits"
    assert "NaN or +inf" in err.value.problem


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_gradcheck_entropy(temperature):
    logits = torch.randn(3, 6, generator=generator(1), dtype=torch.float64) * 2.0
    logits = logits.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda z: entropy_from_logits(z, temperature), (logits,), eps=1e-6, atol=1e-7
    )


def test_entropy_vs_temperature_matches_and_increases():
    logits = torch.randn(4, 20, generator=generator(2), dtype=torch.float64) * 3.0
    temps = [0.1, 0.5, 1.0, 2.0, 10.0, 1e3]
    curve = entropy_vs_temperature(logits, temps)
    expected = [ref.entropy(logits.numpy(), t).mean() for t in temps]
    np.testing.assert_allclose(curve.numpy(), expected, rtol=1e-12)
    assert (curve[1:] > curve[:-1]).all()
    assert curve[-1].item() == pytest.approx(math.log(20), abs=1e-3)


# --------------------------------------------------------------------------- comparison


def test_comparison_reproducible_from_seed():
    a = entropy_comparison(vocab_size=200, batch_size=8, seed=3)
    b = entropy_comparison(vocab_size=200, batch_size=8, seed=3)
    c = entropy_comparison(vocab_size=200, batch_size=8, seed=4)
    assert list(a) == ["random", "peaked", "near_uniform", "maximum"]
    for name in a:
        assert torch.equal(a[name].logits, b[name].logits), name
        assert torch.equal(a[name].per_row, b[name].per_row), name
        assert a[name].mean == b[name].mean
    for name in ("random", "peaked", "near_uniform"):
        assert not torch.equal(a[name].logits, c[name].logits), name
        assert a[name].mean != c[name].mean, name
    assert torch.equal(a["maximum"].logits, c["maximum"].logits)


@pytest.mark.parametrize("vocab_size", [10, 100, 1000])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_comparison_ordering(vocab_size, seed):
    cases = entropy_comparison(vocab_size=vocab_size, batch_size=16, seed=seed)
    means = {name: case.mean for name, case in cases.items()}
    assert means["peaked"] < means["random"] < means["near_uniform"] < means["maximum"]
    assert means["maximum"] == pytest.approx(math.log(vocab_size), rel=1e-6)
    for name, case in cases.items():
        assert case.name == name
        assert case.logits.shape == (16, vocab_size)
        assert case.per_row.shape == (16,)
        assert case.mean == pytest.approx(case.per_row.mean().item())
        np.testing.assert_allclose(
            case.per_row.numpy(), ref.entropy(case.logits.numpy()), rtol=1e-5, atol=1e-6
        )


def test_comparison_follows_the_seed_recipe():
    cases = entropy_comparison(vocab_size=1000, batch_size=16, seed=0)
    # The seed's numbers (its own random draw): 6.41 / 0.70 / 6.90 / 6.9078.
    assert cases["random"].mean == pytest.approx(6.4, abs=0.05)
    assert cases["peaked"].mean == pytest.approx(0.7, abs=0.1)
    assert cases["near_uniform"].mean == pytest.approx(6.90, abs=0.01)
    assert cases["maximum"].mean == pytest.approx(6.9078, abs=1e-4)
    assert (cases["peaked"].logits[:, 0] == 10.0).all()
    assert cases["near_uniform"].logits.std().item() == pytest.approx(0.1, rel=0.05)
    # Drawn from one generator in the documented order.
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(cases["random"].logits, torch.randn(16, 1000, generator=gen))
    peaked = torch.randn(16, 1000, generator=gen)
    peaked[:, 0] = 10.0
    assert torch.equal(cases["peaked"].logits, peaked)
    assert torch.equal(cases["near_uniform"].logits, torch.randn(16, 1000, generator=gen) * 0.1)


def test_comparison_temperature_raises_entropy():
    cold = entropy_comparison(vocab_size=50, batch_size=4, seed=0, temperature=0.5)
    hot = entropy_comparison(vocab_size=50, batch_size=4, seed=0, temperature=2.0)
    for name in ("random", "peaked", "near_uniform"):
        assert cold[name].mean < hot[name].mean, name
