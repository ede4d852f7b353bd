"""Batch diagnostics that are not part of any loss: explained variance and histograms."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ppo_core._checks import PPOInputError, check_same_shape, prepare_mask
from ppo_core.aggregation import masked_mean


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor | None = None) -> float | None:
    """Explained variance of the value predictions: ``1 - Var(R - V) / Var(R)``.

    Population variances over valid tokens, accumulated in float64 (as CleanRL / SB3, which use
    ``np.var``). 1 is a
    perfect critic, 0 no better than predicting the mean, negative worse than that. Returns
    ``None`` when ``Var(R) = 0``: the ratio is undefined (CleanRL reports NaN there; SB3 too).

    Examples:
        >>> import torch
        >>> explained_variance(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 4.0]))
        0.857...
        >>> explained_variance(torch.zeros(3), torch.ones(3)) is None
        True
    """
    check_same_shape("values", values, returns=returns)
    m = prepare_mask(mask, values)
    with torch.no_grad():
        valid = returns if m is None else returns[m > 0]
        if bool(valid.max() == valid.min()):  # Var(R) = 0 exactly, whatever the rounding
            return None

        def var(x: Tensor) -> Tensor:  # accumulated in float64, without a float64 copy
            centred = x - masked_mean(x, m, dtype=torch.float64).to(x.dtype)
            return masked_mean(centred * centred, m, dtype=torch.float64)

        var_r = var(returns)
        if float(var_r) == 0.0:  # not constant, yet below the dtype's resolution
            return None
        return float(1.0 - var(returns - values) / var_r)


@dataclass(frozen=True)
class Histogram:
    """Counts of values in equal-width bins; ``edges`` has ``len(counts) + 1`` entries."""

    edges: Tensor
    counts: Tensor


def histogram(values: Tensor, mask: Tensor | None = None, bins: int = 40) -> Histogram:
    """Histogram of the valid entries of ``values`` over their own ``[min, max]`` range.

    A constant input gets one bin of width 1 centred on the value.

    Examples:
        >>> import torch
        >>> h = histogram(torch.tensor([0.0, 0.5, 1.0, 1.0]), bins=2)
        >>> h.edges, h.counts
        (tensor([0.0000, 0.5000, 1.0000], dtype=torch.float64), tensor([1, 3]))
    """
    if bins < 1:
        raise PPOInputError("bins", f"must be >= 1, got {bins}")
    m = prepare_mask(mask, values)
    with torch.no_grad():
        flat = values.detach().reshape(-1)
        if m is not None:
            flat = flat[m.reshape(-1) > 0]
        flat = flat.double()
        lo, hi = float(flat.min()), float(flat.max())
        if lo == hi:
            return Histogram(torch.tensor([lo - 0.5, hi + 0.5]), torch.tensor([flat.numel()]))
        counts = torch.histc(flat, bins=bins, min=lo, max=hi).long()
        return Histogram(torch.linspace(lo, hi, bins + 1, dtype=torch.float64), counts)
