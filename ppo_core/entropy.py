"""Entropy of a categorical policy from its logits, and the seed tutorial's comparison.

:math:`H(p) = -\\sum_x p(x) \\log p(x)` with :math:`p = \\mathrm{softmax}(z / \\tau)`. An entropy
*bonus*: PPO subtracts ``entropy_coef * H`` from the loss, so higher entropy lowers the loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ppo_core._checks import PPOInputError, check_float, check_positive


def entropy_from_logits(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Per-row entropy of ``softmax(logits / temperature)`` over the last dimension.

    Formula: ``H = -sum_x p(x) log p(x)``, computed from ``log_softmax`` (stable for logits
    like 1e4). Entries of ``-inf`` are impossible actions: they contribute 0 (the limit of
    ``p log p`` as ``p -> 0``) instead of ``0 * -inf = NaN``, and their gradient is 0.

    Args:
        logits: ``[..., V]`` raw scores; at least one finite entry per row.
        temperature: Softmax temperature ``tau > 0``.

    Returns:
        Entropies of shape ``logits.shape[:-1]``, in nats, each in ``[0, log V]``.

    Raises:
        PPOInputError: If a row has no finite entry or holds NaN / ``+inf``.

    Examples:
        >>> import torch
        >>> entropy_from_logits(torch.tensor([[0.0, 0.0], [0.0, -float("inf")]]))
        tensor([0.6931, 0.0000])
    """
    check_float("logits", logits)
    if logits.dim() < 1 or logits.shape[-1] < 1:
        raise PPOInputError("logits", "expected shape [..., vocab] with vocab >= 1")
    check_positive("temperature", temperature)
    if temperature != 1.0:
        logits = logits / temperature
    per_row: Tensor = _ChunkedEntropy.apply(logits)  # type: ignore[no-untyped-call]
    # A row with no finite logit, or with NaN / +inf, gives NaN: checked on the (small)
    # per-row result rather than on every logit.
    if bool(torch.isnan(per_row).any()):
        raise PPOInputError("logits", "each row needs a finite entry and no NaN or +inf")
    # Clamp: rounding can give -1e-9 for a one-hot row; "+ 0.0" turns -0.0 into 0.0.
    return per_row.clamp(min=0.0) + 0.0


_CHUNK_ELEMENTS = 1 << 22
"""Logits per chunk in :class:`_ChunkedEntropy` (16 MB of float32): big enough that each
chunk is one efficient parallel pass, small enough that its temporaries stay cheap."""


def _row_entropy(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(H, p, log p)`` for rows of logits; log p is clamped to the dtype's lowest finite
    value, so a -inf logit (p = 0) contributes exactly 0 and never 0 * -inf = NaN."""
    log_p = F.log_softmax(z, dim=-1)
    p = torch.exp(log_p)
    log_p = log_p.clamp_(min=torch.finfo(log_p.dtype).min)
    return -(p * log_p).sum(dim=-1), p, log_p


class _ChunkedEntropy(torch.autograd.Function):
    """Per-row entropy computed a chunk of rows at a time, with the closed-form gradient
    ``dH/dz_j = -p_j (log p_j + H)``: no full-size softmax is kept for backward (it is
    recomputed per chunk), so the logits are read a few times, never written whole."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor) -> Tensor:
        flat = logits.reshape(-1, logits.shape[-1])
        rows = max(1, _CHUNK_ELEMENTS // max(1, flat.shape[-1]))
        out = torch.empty(flat.shape[0], dtype=logits.dtype, device=logits.device)
        for start in range(0, flat.shape[0], rows):
            out[start : start + rows] = _row_entropy(flat[start : start + rows])[0]
        ctx.save_for_backward(logits, out)
        return out.reshape(logits.shape[:-1])

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> Tensor:
        logits, entropy = ctx.saved_tensors
        flat = logits.reshape(-1, logits.shape[-1])
        g = grad_out.reshape(-1)
        grad = torch.empty_like(flat)
        rows = max(1, _CHUNK_ELEMENTS // max(1, flat.shape[-1]))
        for start in range(0, flat.shape[0], rows):
            stop = start + rows
            _, p, log_p = _row_entropy(flat[start:stop])
            h = entropy[start:stop, None]
            grad[start:stop] = -p * (log_p + h) * g[start:stop, None]
        return grad.reshape(logits.shape)


def compute_entropy(logits: torch.Tensor) -> torch.Tensor:
    """The seed tutorial's mean entropy of ``softmax(logits)`` (same name and signature).

    Formula: ``mean over rows of -sum_x p(x) log p(x)``. Stable where the seed's direct
    ``softmax * log_softmax`` product would give NaN (``-inf`` logits).

    Examples:
        >>> import torch
        >>> compute_entropy(torch.zeros(3, 4))  # uniform over 4: log 4
        tensor(1.3863)
    """
    return entropy_from_logits(logits).mean()


@dataclass(frozen=True)
class EntropyCase:
    """One row of the seed's comparison: logits of a kind, their entropies, an example row."""

    name: str
    description: str
    logits: Tensor
    per_row: Tensor
    mean: float


def entropy_comparison(
    vocab_size: int = 1000,
    batch_size: int = 16,
    seed: int = 0,
    temperature: float = 1.0,
    peak_logit: float = 10.0,
    uniform_scale: float = 0.1,
) -> dict[str, EntropyCase]:
    """The seed's entropy comparison, reproducible from ``seed``.

    Cases (logits ``[batch_size, vocab_size]``, drawn in this order from one generator):
    ``random`` = N(0, 1); ``peaked`` = N(0, 1) with column 0 set to ``peak_logit`` (10 in the
    seed); ``near_uniform`` = ``uniform_scale`` (0.1 in the seed) x N(0, 1); ``maximum`` = all
    zeros, whose entropy is exactly ``log V``. All are divided by ``temperature`` first.

    Examples:
        >>> cases = entropy_comparison(vocab_size=1000, batch_size=16, seed=0)
        >>> [round(c.mean, 2) for c in cases.values()]
        [6.39, 0.68, 6.9, 6.91]
    """
    if vocab_size < 2:
        raise PPOInputError("vocab_size", f"must be >= 2, got {vocab_size}")
    if batch_size < 1:
        raise PPOInputError("batch_size", f"must be >= 1, got {batch_size}")
    gen = torch.Generator().manual_seed(seed)
    random = torch.randn(batch_size, vocab_size, generator=gen)
    peaked = torch.randn(batch_size, vocab_size, generator=gen)
    peaked[:, 0] = peak_logit
    uniform = torch.randn(batch_size, vocab_size, generator=gen) * uniform_scale
    specs = [
        ("random", "standard normal logits", random),
        ("peaked", f"normal logits with one logit at {peak_logit:g}", peaked),
        ("near_uniform", f"normal logits x {uniform_scale:g}", uniform),
        (
            "maximum",
            f"uniform: entropy log V = {math.log(vocab_size):.4f}",
            torch.zeros_like(random),
        ),
    ]
    cases = {}
    for name, description, logits in specs:
        per_row = entropy_from_logits(logits, temperature)
        cases[name] = EntropyCase(name, description, logits, per_row, float(per_row.mean()))
    return cases


def entropy_vs_temperature(logits: Tensor, temperatures: Sequence[float]) -> Tensor:
    """Mean entropy of ``softmax(logits / tau)`` for each ``tau`` in ``temperatures``.

    Examples:
        >>> import torch
        >>> entropy_vs_temperature(torch.tensor([[2.0, 0.0]]), [1e-3, 1.0, 1e3])
        tensor([0.0000, 0.3653, 0.6931])
    """
    return torch.stack([entropy_from_logits(logits, t).mean() for t in temperatures])
