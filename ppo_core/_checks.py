"""Input checks shared by every ppo_core function.

Each check raises :class:`PPOInputError`, which names the offending argument so that callers
(the web API included) can report *which* input is wrong and *why* without parsing strings.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class PPOInputError(ValueError):
    """An argument of a ppo_core function is malformed.

    Attributes:
        field: Name of the offending argument (e.g. ``"mask"``).
        problem: What is wrong with it, in a short phrase.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    def __reduce__(self) -> tuple[type[PPOInputError], tuple[str, str]]:
        # Picklable with its fields, so it crosses process boundaries (the API's worker pool).
        return (PPOInputError, (self.field, self.problem))


def check_float(name: str, tensor: Tensor) -> None:
    """Require a floating-point tensor."""
    if not isinstance(tensor, Tensor):
        raise PPOInputError(name, f"expected a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise PPOInputError(name, f"expected a floating-point tensor, got {tensor.dtype}")
    if tensor.numel() == 0:
        raise PPOInputError(name, "is empty")


def check_same_shape(ref_name: str, ref: Tensor, **others: Tensor | None) -> None:
    """Require ``others`` (skipping ``None``) to be float tensors with the shape of ``ref``."""
    check_float(ref_name, ref)
    for name, tensor in others.items():
        if tensor is None:
            continue
        check_float(name, tensor)
        if tensor.shape != ref.shape:
            raise PPOInputError(
                name, f"shape {list(tensor.shape)} does not match {ref_name} {list(ref.shape)}"
            )


def check_rank(name: str, tensor: Tensor, ranks: tuple[int, ...]) -> None:
    """Require ``tensor.dim()`` to be one of ``ranks``."""
    if tensor.dim() not in ranks:
        allowed = " or ".join(f"{r}-D" for r in ranks)
        raise PPOInputError(name, f"expected {allowed}, got {tensor.dim()}-D")


def check_probability(name: str, value: float, *, low: float = 0.0, high: float = 1.0) -> None:
    """Require ``low < value < high`` (a clip range such as epsilon)."""
    if not (math.isfinite(value) and low < value < high):
        raise PPOInputError(name, f"must be in ({low}, {high}), got {value}")


def check_positive(name: str, value: float) -> None:
    """Require a finite ``value > 0``."""
    if not (math.isfinite(value) and value > 0):
        raise PPOInputError(name, f"must be a finite number > 0, got {value}")


def check_nonnegative(name: str, value: float) -> None:
    """Require a finite ``value >= 0``."""
    if not (math.isfinite(value) and value >= 0):
        raise PPOInputError(name, f"must be a finite number >= 0, got {value}")


def prepare_mask(
    mask: Tensor | None, like: Tensor, name: str = "mask", *, allow_empty: bool = False
) -> Tensor | None:
    """Validate a 0/1 mask with the shape of ``like`` and return it in ``like``'s dtype.

    ``None`` means "every token is valid" and is passed through, so callers can take the fast
    unmasked path. A mask that selects no token is rejected (every masked mean would be 0 / 0)
    unless ``allow_empty`` (0/1 flags such as episode ends).
    """
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise PPOInputError(name, f"expected a torch.Tensor, got {type(mask).__name__}")
    if mask.shape != like.shape:
        raise PPOInputError(name, f"shape {list(mask.shape)} does not match {list(like.shape)}")
    if mask.dtype != torch.bool and not bool(((mask == 0) | (mask == 1)).all()):
        raise PPOInputError(name, "values must be 0 or 1")
    out = mask.to(like.dtype)
    if not allow_empty and not bool(out.any()):
        raise PPOInputError(name, "selects no token (all zeros)")
    return out


def broadcast(*tensors: Tensor) -> tuple[Tensor, ...]:
    """``torch.broadcast_tensors`` with a type (the seed's functions broadcast their inputs)."""
    return tuple(torch.broadcast_tensors(*tensors))  # type: ignore[no-untyped-call]
