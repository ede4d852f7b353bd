"""Seeded random inputs shared by the ppo_core tests (torch tensors; NumPy via ``.numpy()``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

SHAPES = {"1d": (13,), "2d": (4, 9)}


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def advantages_with_sign(
    shape: tuple[int, ...], sign: str, gen: torch.Generator, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Advantages all > 0 ("pos"), all < 0 ("neg") or of both signs ("mixed"), |A| >= 0.05."""
    magnitude = torch.rand(shape, generator=gen, dtype=dtype) * 2.0 + 0.05
    if sign == "pos":
        return magnitude
    if sign == "neg":
        return -magnitude
    signs = torch.where(torch.rand(shape, generator=gen) < 0.5, -1.0, 1.0).to(dtype)
    return magnitude * signs


def ragged_mask(shape: tuple[int, ...], *, empty_row: bool = False) -> Tensor:
    """Right-padded 0/1 mask with unequal row lengths (row ``i`` keeps ``T - 2i`` tokens, >= 1);
    with ``empty_row`` the second row (2-D only) has no valid token."""
    if len(shape) == 1:
        mask = torch.ones(shape, dtype=torch.float64)
        mask[shape[0] - 4 :] = 0.0
        return mask
    batch, length = shape
    mask = torch.zeros(shape, dtype=torch.float64)
    for i in range(batch):
        mask[i, : max(1, length - 2 * i)] = 1.0
    if empty_row:
        mask[1] = 0.0
    return mask


@dataclass(frozen=True)
class PolicyBatch:
    logprobs: Tensor
    old_logprobs: Tensor
    advantages: Tensor


def policy_batch(
    shape: tuple[int, ...],
    sign: str,
    seed: int,
    *,
    dtype: torch.dtype = torch.float64,
    spread: float = 0.4,
) -> PolicyBatch:
    """Log-probs whose log-ratios are N(0, spread): many ratios fall outside [0.7, 1.3]."""
    gen = generator(seed)
    old = -torch.rand(shape, generator=gen, dtype=dtype) * 4.0 - 0.1
    new = old + torch.randn(shape, generator=gen, dtype=dtype) * spread
    return PolicyBatch(new, old, advantages_with_sign(shape, sign, gen, dtype))


@dataclass(frozen=True)
class ValueBatch:
    values: Tensor
    returns: Tensor
    old_values: Tensor


def value_batch(
    shape: tuple[int, ...], seed: int, *, dtype: torch.dtype = torch.float64
) -> ValueBatch:
    """Values moved from ``old_values`` by N(0, 0.4): some beyond a clip range of 0.2-0.5."""
    gen = generator(seed)
    old = torch.randn(shape, generator=gen, dtype=dtype)
    values = old + torch.randn(shape, generator=gen, dtype=dtype) * 0.4
    returns = torch.randn(shape, generator=gen, dtype=dtype) * 1.5
    return ValueBatch(values, returns, old)
