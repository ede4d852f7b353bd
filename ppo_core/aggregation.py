"""Reductions from per-token terms to one scalar, with an explicit, named mode.

The mode names are verl's ``loss_agg_mode`` (verl 0.9.1 ``verl/trainer/ppo/core_algos.py::
agg_loss``, L1140-1206). With a per-token matrix :math:`\\ell_{i,t}` of shape ``[B, T]``, a 0/1
mask :math:`m_{i,t}`, :math:`n_i = \\sum_t m_{i,t}` and :math:`S` the set of rows with
:math:`n_i > 0`:

* ``token-mean``: :math:`\\sum_{i,t} m\\ell / \\sum_{i,t} m` — every valid token weighs the
  same (CleanRL, SB3, verl default, TRL ``bnpo`` / ``dapo``).
* ``token-sum``: :math:`\\sum_{i,t} m\\ell` — no normaliser at all.
* ``seq-mean-token-mean``: :math:`\\frac{1}{|S|}\\sum_{i \\in S} \\frac{\\sum_t m\\ell}{n_i}`
  — every sequence weighs the same (original GRPO, TRL ``grpo``, OpenRLHF
  ``token_level_loss=False``).
* ``seq-mean-token-sum``: :math:`\\frac{1}{|S|}\\sum_{i \\in S} \\sum_t m\\ell` — longer
  sequences weigh more.
* ``seq-mean-token-sum-norm``: :math:`\\frac{1}{|S|\\,L}\\sum_{i \\in S} \\sum_t m\\ell` with
  ``L = loss_scale_factor``, by default the padded length ``T`` — a constant normaliser
  (Dr. GRPO's ``1 / (G · L_max)``; TRL ``dr_grpo`` with ``L = max_completion_length``).

An all-padding row is left out of the sequence means (verl, OpenRLHF); TRL's ``grpo``,
``sapo``, ``luspo`` and ``dr_grpo`` count every row instead (:math:`|S| = B`, the row's mean
over ``clamp(n_i, 1)``): ``count_empty_rows=True`` selects that rule. verl writes
``n_i + 1e-8``, but its trainer passes a *bool* mask (``workers/utils/losses.py`` L93), whose
integer count plus ``1e-8`` evaluates in float32 to exactly ``n_i``: the divisor is ``n_i``.
Every mode is linear in :math:`\\ell`, so each is a per-row weight times the row's masked sum:
:func:`aggregation_weights` returns those weights (a token's share of the loss).
A 1-D input is one sequence ``[1, T]``. Masked-out entries are dropped by selection, so a NaN
or inf under a 0 of the mask never reaches the result (verl's ``seq-mean-*`` modes and
OpenRLHF / TRL multiply instead, and would return NaN there).
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import Tensor

from ppo_core._checks import PPOInputError

LossAggMode = Literal[
    "token-mean",
    "token-sum",
    "seq-mean-token-mean",
    "seq-mean-token-sum",
    "seq-mean-token-sum-norm",
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
    return masked_zero(values, mask).sum(dtype=dtype) / mask.sum(dtype=dtype)


def masked_zero(values: Tensor, mask: Tensor) -> Tensor:
    """``values`` with masked-out entries set to 0 — by selection, not by ``values * mask``,
    so an inf or NaN under a 0 of the mask (padding) cannot leak into the result."""
    return torch.where(mask > 0, values, values.new_zeros(()))


def masked_row_mean(
    values: Tensor, mask: Tensor | None, *, empty_eps: float | None = None
) -> Tensor:
    """Per-row masked mean over the last axis, keeping it (``[B, 1]``; ``[1]`` for 1-D).

    The count is ``clamp(n, 1)`` (verl's GSPO, TRL, OpenRLHF), or with ``empty_eps`` it is
    ``n`` for ``n >= 1`` and ``empty_eps`` for an empty row (verl's ``n + 1e-8`` under its
    integer / bool masks, which float32 rounds to ``n``): an empty row's mean is 0 either way.

    Examples:
        >>> import torch
        >>> masked_row_mean(torch.tensor([[1.0, 3.0], [5.0, 7.0]]), torch.tensor([[1.0, 1.0],
        ...                 [0.0, 0.0]]))
        tensor([[2.],
                [0.]])
    """
    if mask is None:
        return values.mean(dim=-1, keepdim=True)
    total = masked_zero(values, mask).sum(dim=-1, keepdim=True)
    n = mask.sum(dim=-1, keepdim=True)
    if empty_eps is None:
        return total / n.clamp(min=1)
    return total / torch.where(n > 0, n, empty_eps)


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


def _rows(x: Tensor) -> Tensor:
    return x if x.dim() > 1 else x.unsqueeze(0)


def _check_scale(loss_scale_factor: float | None) -> None:
    if loss_scale_factor is not None and not (
        math.isfinite(loss_scale_factor) and loss_scale_factor > 0
    ):
        raise PPOInputError(
            "loss_scale_factor", f"must be a finite number > 0, got {loss_scale_factor}"
        )


def aggregation_weights(
    mask: Tensor | None,
    like: Tensor,
    mode: LossAggMode = "token-mean",
    *,
    loss_scale_factor: float | None = None,
    count_empty_rows: bool = False,
) -> Tensor:
    """Each token's weight in the aggregated loss: ``aggregate(l) == sum(w * l)`` over valid
    tokens. ``w`` has the shape of ``like`` and is 0 at masked positions.

    Formula (module docstring): ``token-mean`` ``1/N``, ``token-sum`` ``1``,
    ``seq-mean-token-mean`` ``1/(|S| n_i)``, ``seq-mean-token-sum`` ``1/|S|``,
    ``seq-mean-token-sum-norm`` ``1/(|S| L)``. The weights live on ``like``'s device and dtype.

    Examples:
        >>> import torch
        >>> m = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
        >>> aggregation_weights(m, m, "seq-mean-token-mean")[:, 0]  # 1/(2·4) and 1/(2·1)
        tensor([0.1250, 0.5000])
    """
    check_loss_agg_mode(mode)
    _check_scale(loss_scale_factor)
    m = torch.ones_like(like) if mask is None else mask.to(like.dtype)
    rows = _rows(m)
    counts = rows.sum(dim=-1)
    if mode == "token-mean":
        return m / m.sum()
    if mode == "token-sum":
        return m
    n_rows = rows.new_tensor(rows.shape[0]) if count_empty_rows else (counts > 0).sum()
    if mode == "seq-mean-token-mean":
        per_row = 1.0 / counts.clamp(min=1)
    else:
        per_row = torch.ones_like(counts)
        if mode == "seq-mean-token-sum-norm":
            per_row = per_row / (rows.shape[-1] if loss_scale_factor is None else loss_scale_factor)
    return (rows * (per_row / n_rows).unsqueeze(-1)).reshape(like.shape)


def aggregate(
    per_token: Tensor,
    mask: Tensor | None,
    mode: LossAggMode = "token-mean",
    *,
    loss_scale_factor: float | None = None,
    count_empty_rows: bool = False,
) -> Tensor:
    """Reduce per-token values to a scalar with a named ``loss_agg_mode``.

    Args:
        per_token: Per-token values, ``[T]`` or ``[B, T]``.
        mask: 0/1 mask of the same shape, or ``None`` for "all valid".
        mode: One of :data:`LOSS_AGG_MODES` (formulas in the module docstring).
        loss_scale_factor: ``L`` of ``seq-mean-token-sum-norm`` (verl's knob of that name);
            ``None`` = the padded length ``T``. Ignored by the other modes.
        count_empty_rows: Sequence means over every row, all-padding rows counting 0 (TRL);
            ``False`` leaves them out (verl, OpenRLHF).

    Returns:
        A 0-dim tensor (keeps the autograd graph of ``per_token``).

    Examples:
        >>> import torch
        >>> x = torch.tensor([[1.0, 1.0, 1.0], [4.0, 0.0, 0.0]])
        >>> m = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
        >>> aggregate(x, m, "token-mean"), aggregate(x, m, "seq-mean-token-mean")
        (tensor(1.7500), tensor(2.5000))
        >>> aggregate(x, m, "seq-mean-token-sum"), aggregate(x, m, "seq-mean-token-sum-norm")
        (tensor(3.5000), tensor(1.1667))
        >>> aggregate(x, m, "seq-mean-token-sum-norm", loss_scale_factor=7.0)
        tensor(0.5000)
    """
    check_loss_agg_mode(mode)
    _check_scale(loss_scale_factor)
    if mode == "token-mean":
        return masked_mean(per_token, mask)
    if mode == "token-sum":
        return (per_token if mask is None else masked_zero(per_token, mask)).sum()
    rows = _rows(per_token)
    row_mask = None if mask is None else _rows(mask)
    token_sum = (rows if row_mask is None else masked_zero(rows, row_mask)).sum(dim=-1)
    if row_mask is None:
        counts = torch.full_like(token_sum, rows.shape[-1])
    else:
        counts = row_mask.sum(dim=-1).to(rows.dtype)
    has_tokens = counts > 0
    n_rows = rows.shape[0] if count_empty_rows else has_tokens.sum()
    if mode == "seq-mean-token-mean":
        token_sum = token_sum / counts.clamp(min=1)
    if not count_empty_rows:
        token_sum = torch.where(has_tokens, token_sum, token_sum.new_zeros(()))
    loss = token_sum.sum() / n_rows
    if mode == "seq-mean-token-sum-norm":
        loss = loss / (rows.shape[-1] if loss_scale_factor is None else loss_scale_factor)
    return loss


MAX_LENGTH_TABLE = 65_536
"""Longest padded length :func:`weights_by_length` builds a mask for."""


def weights_by_length(
    lengths: list[int],
    padded_length: int | None = None,
    *,
    loss_scale_factor: float | None = None,
    count_empty_rows: bool = False,
) -> dict[str, tuple[Tensor, Tensor]]:
    """For sequences of the given valid lengths, each ``loss_agg_mode``'s ``(weight of one
    token, total weight of the sequence)``, per sequence: how long and short answers count.

    Examples:
        >>> w = weights_by_length([1, 3], 4)
        >>> w["seq-mean-token-mean"][0].tolist(), w["token-mean"][1].tolist()
        ([0.5, 0.16666666666666666], [0.25, 0.75])
    """
    if not lengths or len(lengths) > 64 or min(lengths) < 0 or max(lengths) == 0:
        raise PPOInputError("lengths", "give 1 to 64 lengths >= 0, at least one > 0")
    padded = padded_length or max(lengths)
    if max(lengths) > padded or padded > MAX_LENGTH_TABLE:
        raise PPOInputError(
            "padded_length",
            f"must be >= the longest length and <= {MAX_LENGTH_TABLE}, got {padded}",
        )
    steps = torch.arange(padded, dtype=torch.float64)
    mask = (steps < torch.tensor(lengths, dtype=torch.float64)[:, None]).to(torch.float64)
    out = {}
    for mode in LOSS_AGG_MODES:
        w = aggregation_weights(
            mask,
            mask,
            mode,  # type: ignore[arg-type]
            loss_scale_factor=loss_scale_factor,
            count_empty_rows=count_empty_rows,
        )
        out[mode] = (w[:, 0], w.sum(dim=-1))
    return out
