"""Reference data: the seed's hyperparameter table and the convention presets."""

from __future__ import annotations

from fastapi import APIRouter

from app.knobs import convention_out
from app.schemas import ConventionOut, HyperparameterRow
from ppo_core.conventions import CONVENTIONS

router = APIRouter(prefix="/api/v1", tags=["reference"])

HYPERPARAMETERS = [
    HyperparameterRow(
        name="clip_ratio",
        symbol="ε",
        default=0.2,
        controls="How much policy can change per update",
        too_high="More aggressive updates, risk of instability",
        too_low="Too conservative, slow learning",
        control="clip-epsilon",
    ),
    HyperparameterRow(
        name="vf_coef",
        symbol="c₁",
        default=0.5,
        controls="Weight on value function loss",
        too_high="Model focuses on prediction over policy",
        too_low="Value function trains slowly, poor advantages",
        control="total-vf",
    ),
    HyperparameterRow(
        name="entropy_coef",
        symbol="c₂",
        default=0.01,
        controls="Weight on entropy bonus",
        too_high="Model stays random, never converges",
        too_low="Model becomes deterministic too fast, gets stuck",
        control="total-ent",
    ),
    HyperparameterRow(
        name="ppo_epochs",
        symbol="K",
        default=4,
        controls="How many times to reuse each batch",
        too_high="Better sample efficiency, risk overfitting",
        too_low="Less sample efficiency, more data needed",
        control=None,
    ),
    HyperparameterRow(
        name="learning_rate",
        symbol="α",
        default=1e-5,
        controls="Step size for optimizer",
        too_high="Training instability, divergence",
        too_low="Slow convergence",
        control=None,
    ),
]


@router.get("/hyperparameters", response_model=list[HyperparameterRow])
async def hyperparameters() -> list[HyperparameterRow]:
    """The seed tutorial's table: default, what it controls, too high, too low."""
    return HYPERPARAMETERS


_CONVENTIONS_OUT = [convention_out(c) for c in CONVENTIONS.values()]


@router.get("/conventions", response_model=list[ConventionOut])
async def conventions() -> list[ConventionOut]:
    """Every convention preset: its knobs, the formula it implies and its source."""
    return _CONVENTIONS_OUT
