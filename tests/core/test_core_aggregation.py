"""aggregate / masked_mean (verl loss_agg_mode), explained_variance and histogram."""

from __future__ import annotations

import numpy as np
import numpy_reference as ref
import pytest
import torch
from core_inputs import SHAPES, generator, ragged_mask

from ppo_core import LOSS_AGG_MODES, aggregate, explained_variance, histogram, masked_mean
from ppo_core.aggregation import aggregation_weights


def test_modes_are_verls():
    assert set(LOSS_AGG_MODES) == {
        "token-mean",
        "token-sum",
        "seq-mean-token-mean",
        "seq-mean-token-sum",
        "seq-mean-token-sum-norm",
    }


@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
def test_aggregate_matches_numpy(shape_name, mode):
    shape = SHAPES[shape_name]
    x = torch.randn(shape, generator=generator(6), dtype=torch.float64)
    masks = [None, ragged_mask(shape)]
    if len(shape) == 2:
        masks.append(ragged_mask(shape, empty_row=True))
    for mask in masks:
        got = aggregate(x, mask, mode).item()
        expected = ref.aggregate(x.numpy(), None if mask is None else mask.numpy(), mode)
        assert got == pytest.approx(expected, rel=1e-12), mask


def test_aggregate_hand_computed_with_empty_row():
    # x = [[1, 2, 3], [4, 5, 6], [7, 8, 9]], mask keeps [1, 2], [4] and nothing of row 3:
    #   token-mean = (1 + 2 + 4) / 3 = 7/3
    #   seq-mean-token-mean = (1.5 + 4) / 2 = 2.75   (row 3 excluded, not a 0)
    #   seq-mean-token-sum = (3 + 4) / 2 = 3.5
    #   seq-mean-token-sum-norm = (3 + 4) / 2 rows / 3 (T = 3) = 7/6 (verl 0.9.1: the mean over
    #   non-empty rows of the row sum / T; before the fix this was sum / T = 7/3, off by 2 rows)
    x = torch.tensor([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=torch.float64)
    m = torch.tensor([[1.0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=torch.float64)
    assert aggregate(x, m, "token-mean").item() == pytest.approx(7 / 3)
    assert aggregate(x, m, "token-sum").item() == pytest.approx(7.0)
    assert aggregate(x, m, "seq-mean-token-mean").item() == pytest.approx(2.75)
    assert aggregate(x, m, "seq-mean-token-sum").item() == pytest.approx(3.5)
    assert aggregate(x, m, "seq-mean-token-sum-norm").item() == pytest.approx(7 / 6)
    assert aggregate(x, m, "seq-mean-token-sum-norm", loss_scale_factor=7.0).item() == 0.5
    # TRL's rule: the empty row counts (3 rows), per-row means over max(n, 1).
    tr = {"count_empty_rows": True}
    assert aggregate(x, m, "seq-mean-token-mean", **tr).item() == pytest.approx(5.5 / 3)
    assert aggregate(x, m, "seq-mean-token-sum-norm", **tr).item() == pytest.approx(7 / 9)
    # No mask: row means 2, 5, 8 -> 5; row sums 6, 15, 24 -> 15; 45 / 3 = 15
    assert aggregate(x, None, "seq-mean-token-mean").item() == pytest.approx(5.0)
    assert aggregate(x, None, "seq-mean-token-sum").item() == pytest.approx(15.0)
    assert aggregate(x, None, "seq-mean-token-sum-norm").item() == pytest.approx(5.0)
    # 1-D is one sequence: sum-norm = sum / T; the others are the (masked) mean or sum.
    v = torch.tensor([1.0, 2.0, 6.0])
    assert aggregate(v, None, "seq-mean-token-sum-norm").item() == pytest.approx(3.0)
    assert aggregate(v, None, "seq-mean-token-sum").item() == pytest.approx(9.0)
    assert aggregate(v, torch.tensor([1.0, 1.0, 0.0]), "seq-mean-token-mean").item() == 1.5


def test_aggregate_keeps_the_graph():
    x = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
    m = torch.tensor([[1.0, 1, 0], [1, 0, 0]], dtype=torch.float64)
    for mode, expected in {
        "token-mean": [[1 / 3, 1 / 3, 0], [1 / 3, 0, 0]],
        "seq-mean-token-mean": [[0.25, 0.25, 0], [0.5, 0, 0]],
        "seq-mean-token-sum": [[0.5, 0.5, 0], [0.5, 0, 0]],
        "seq-mean-token-sum-norm": [[1 / 6, 1 / 6, 0], [1 / 6, 0, 0]],
        "token-sum": [[1, 1, 0], [1, 0, 0]],
    }.items():
        (grad,) = torch.autograd.grad(aggregate(x, m, mode), x)
        assert grad.tolist() == [pytest.approx(row) for row in expected], mode
        # aggregation_weights is the same gradient, without autograd.
        weights = aggregation_weights(m, x.detach(), mode)
        assert weights.tolist() == [pytest.approx(row) for row in expected], mode


def test_masked_mean():
    assert masked_mean(torch.tensor([1.0, 2.0, 9.0]), torch.tensor([1.0, 1.0, 0.0])).item() == 1.5
    assert masked_mean(torch.tensor([1.0, 2.0, 9.0]), None).item() == 4.0


# --------------------------------------------------------------------------- explained variance


@pytest.mark.parametrize("shape_name", list(SHAPES))
def test_explained_variance_matches_numpy(shape_name):
    shape = SHAPES[shape_name]
    gen = generator(8)
    returns = torch.randn(shape, generator=gen, dtype=torch.float64)
    values = returns + 0.5 * torch.randn(shape, generator=gen, dtype=torch.float64)
    for mask in (None, ragged_mask(shape)):
        mask_np = None if mask is None else mask.numpy()
        got = explained_variance(values, returns, mask)
        assert got == pytest.approx(
            ref.explained_variance(values.numpy(), returns.numpy(), mask_np), rel=1e-12
        )


def test_explained_variance_hand_computed():
    # V = [1, 2, 3], R = [1, 2, 4]: Var(R) = 14/9 (population), R - V = [0, 0, 1]:
    # Var = 2/9 -> 1 - (2/9) / (14/9) = 6/7
    got = explained_variance(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 4.0]))
    assert got == pytest.approx(6 / 7, rel=1e-6)
    # perfect critic -> 1; constant prediction -> 0 minus nothing: 1 - Var(R) / Var(R) = 0
    r = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    assert explained_variance(r, r) == 1.0
    assert explained_variance(torch.full((3,), 5.0, dtype=torch.float64), r) == pytest.approx(0.0)
    # worse than the mean -> negative: V = -R: Var(2R) / Var(R) = 4 -> -3
    assert explained_variance(-r, r) == pytest.approx(-3.0)


def test_explained_variance_none_when_returns_constant():
    assert explained_variance(torch.zeros(3), torch.ones(3)) is None
    # constant over the valid tokens only
    mask = torch.tensor([1.0, 1.0, 0.0])
    assert explained_variance(torch.zeros(3), torch.tensor([2.0, 2.0, 9.0]), mask) is None


def test_explained_variance_none_for_constant_returns_with_rounding():
    values = torch.randn(6, generator=generator(0))
    assert explained_variance(values, torch.full((6,), 0.3)) is None


# --------------------------------------------------------------------------- histogram


def test_histogram_counts_valid_entries():
    values = torch.tensor([0.0, 0.5, 1.0, 1.0, 50.0])
    h = histogram(values, torch.tensor([1.0, 1, 1, 1, 0]), bins=2)
    assert h.edges.tolist() == [0.0, 0.5, 1.0]
    assert h.counts.tolist() == [1, 3]
    x = torch.randn(1000, generator=generator(1))
    h = histogram(x, bins=40)
    assert int(h.counts.sum()) == 1000
    assert len(h.edges) == 41
    np.testing.assert_allclose(
        h.counts.numpy(), np.histogram(x.double().numpy(), bins=h.edges.double().numpy())[0], atol=1
    )


def test_histogram_constant_input():
    h = histogram(torch.full((4,), 2.0))
    assert h.edges.tolist() == [1.5, 2.5]
    assert h.counts.tolist() == [4]
