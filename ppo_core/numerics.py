"""Numeric limits shared by the loss functions (no loss math here)."""

from __future__ import annotations

import functools
import math

import torch


@functools.cache
def log_ratio_limit(dtype: torch.dtype) -> float:
    """Largest log-ratio whose ``exp`` is finite in ``dtype`` (11.09 in float16, 88.72 in
    float32, 709.78 in float64). Log-ratios above it saturate there instead of overflowing.

    Examples:
        >>> log_ratio_limit(torch.float16)
        11.0859375
    """
    limit = torch.tensor(math.log(torch.finfo(dtype).max), dtype=dtype)
    while not bool(torch.isfinite(torch.exp(limit))):  # rounding may land just above the max
        limit = torch.nextafter(limit, torch.zeros_like(limit))
    return float(limit)
