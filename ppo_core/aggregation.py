"""Reductions from per-token terms to one scalar, with an explicit, named mode.

The mode names are verl's ``loss_agg_mode`` (``verl/trainer/ppo/core_algos.py::agg_loss``).
With a per-token matrix :math:`\\ell_{i,t}` of shape ``[B, T]`` and a 0/1 mask :math:`m_{i,t}`:

* ``token-mean``: :math:`\\sum_{i,t} m_{i,t}\\ell_{i,t} / \\sum_{i,t} m_{i,t}` — every valid
  token weighs the same (CleanRL, SB3, TRL, verl default).
* ``seq-mean-token-mean``: :math:`\\frac{1}{|S|}\\sum_{i \\in S} \\frac{\\sum_t m_{i,t}\\ell_{i,t}}
  {\\sum_t m_{i,t}}` — every sequence weighs the same (original GRPO).
* ``seq-mean-token-sum``: :math:`\\frac{1}{|S|}\\sum_{i \\in S} \\sum_t m_{i,t}\\ell_{i,t}` —
  longer sequences weigh more.
* ``seq-mean-token-sum-norm``: :math:`\\sum_{i,t} m_{i,t}\\ell_{i,t} / T` with ``T`` the padded
  length ``loss_mask.shape[-1]`` — a constant normaliser (Dr. GRPO).

:math:`S` is the set of sequences with at least one valid token: an all-padding row is left out of
the sequence mean instead of turning it into 0 / 0. A 1-D input is one sequence ``[1, T]``.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

from ppo_core._checks import PPOInputError

LossAggMode = Literal[
    "token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"
]
LOSS_AGG_MODES: tuple[str, ...] = get_args(LossAggMode)


def check_loss_agg_mode(mode: str, name: str = "loss_agg_mode") -> None:
    """Raise :class:`PPOInputError` unless ``mode`` is one of :data:`LOSS_AGG_MODES`."""
    if mode not in LOSS_AGG_MODES:
        raise PPOInputError(name, f"unknown mode {mode!r}; expected one of {list(LOSS_AGG_MODES)}")


def masked_mean(values: Tensor, mask: Tensor | None, *, dtype: torch.dtype | None = None) -> Tensor:
    """Mean of ``values`` over the positions where ``mask`` is 1 (all positions if ``None``).

    ``dtype`` sets the accumulator (e.g. float64 for diagnostics of float32 tensors: no
    overflow, no float64 copy of the input).

    Examples:
        >>> import torch
        >>> masked_mean(torch.tensor([1.0, 2.0, 9.0]), torch.tensor([1.0, 1.0, 0.0]))
        tensor(1.5000)
    """
    if mask is None:
        return values.mean() if dtype is None else values.sum(dtype=dtype) / values.numel()
    return _masked_zero(values, mask).sum(dtype=dtype) / mask.sum(dtype=dtype)


def _masked_zero(values: Tensor, mask: Tensor) -> Tensor:
    """``values`` with masked-out entries set to 0 — by selection, not by ``values * mask``,
    so an inf or NaN under a 0 of the mask (padding) cannot leak into the result."""
    return torch.where(mask > 0, values, torch.zeros((), dtype=values.dtype))


def masked_var(values: Tensor, mask: Tensor | None, *, unbiased: bool = True) -> Tensor:
    """Variance over the masked positions (Bessel-corrected when ``unbiased``, as verl / TRL)."""
    if mask is None:
        return values.var(correction=1 if unbiased else 0)
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        count = mask.sum()
        var = var * count / (count - 1).clamp(min=1)
    return var


def aggregate(per_token: Tensor, mask: Tensor | None, mode: LossAggMode = "token-mean") -> Tensor:
    """Reduce per-token values to a scalar with a named ``loss_agg_mode``.

    Args:
        per_token: Per-token values, ``[T]`` or ``[B, T]``.
        mask: 0/1 mask of the same shape, or ``None`` for "all valid".
        mode: One of :data:`LOSS_AGG_MODES` (formulas in the module docstring).

    Returns:
        A 0-dim tensor (keeps the autograd graph of ``per_token``).

    Examples:
        >>> import torch
        >>> x = torch.tensor([[1.0, 1.0, 1.0], [4.0, 0.0, 0.0]])
        >>> m = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
        >>> aggregate(x, m, "token-mean"), aggregate(x, m, "seq-mean-token-mean")
        (tensor(1.7500), tensor(2.5000))
        >>> aggregate(x, m, "seq-mean-token-sum"), aggregate(x, m, "seq-mean-token-sum-norm")
        (tensor(3.5000), tensor(2.3333))
    """
    check_loss_agg_mode(mode)
    if mode == "token-mean":
        return masked_mean(per_token, mask)
    rows = per_token if per_token.dim() > 1 else per_token.unsqueeze(0)
    row_mask = None if mask is None else (mask if mask.dim() > 1 else mask.unsqueeze(0))
    token_sum = (rows if row_mask is None else _masked_zero(rows, row_mask)).sum(dim=-1)
    if mode == "seq-mean-token-sum-norm":
        return token_sum.sum() / rows.shape[-1]
    if row_mask is None:
        per_seq = token_sum / rows.shape[-1] if mode == "seq-mean-token-mean" else token_sum
        return per_seq.mean()
    counts = row_mask.sum(dim=-1)
    has_tokens = (counts > 0).to(rows.dtype)
    if mode == "seq-mean-token-mean":
        token_sum = token_sum / counts.clamp(min=1)
    return (token_sum * has_tokens).sum() / has_tokens.sum()
