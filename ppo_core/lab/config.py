"""The lab's knobs: :class:`LabConfig` with its limits, the named :data:`PRESETS` (the one
source the API and the page read), and the algorithm names."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from ppo_core._checks import PPOInputError

Algorithm = Literal["pg", "ppo", "ppo-kl"]
ALGORITHMS: tuple[Algorithm, ...] = get_args(Algorithm)

# Limits of LabConfig's knobs (checked there; an API should enforce the same bounds). They cap
# the cost of one run, iterations x (a rollout + epochs SGD steps): measured on 2 busy cores,
# about 14 ms per iteration for the default preset (3 algorithms, 6 epochs, 64 x 8 words) and
# about 120 ms at the limits (16 epochs, 512 x 12 words), i.e. about a minute for 500 iterations.
MAX_ITERATIONS = 500
MAX_BATCH_SIZE = 512
MIN_BATCH_SIZE = 2
MAX_EPOCHS = 16
MIN_SEQ_LEN = 4
MAX_SEQ_LEN = 12
MAX_LR = 200.0
MAX_ENTROPY_COEF = 1.0
MAX_KL_COEF = 1.0
MAX_TARGET_KL = 10.0
MAX_SEED = 2**32 - 1


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PPOInputError(name, f"must be an integer in [{low}, {high}], got {value!r}")


def _check_real(
    name: str, value: float, low: float, high: float, *, open_low: bool, open_high: bool = False
) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low)
    ok = ok and (value < high if open_high else value <= high)
    if not ok:
        interval = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        raise PPOInputError(name, f"must be a number in {interval}, got {value!r}")


@dataclass(frozen=True)
class LabConfig:
    """Knobs of the lab, checked on construction (:class:`PPOInputError` names the field).

    The limits are the module's ``MAX_*`` / ``MIN_*`` constants, which an API should enforce
    too. The defaults are the "default" preset.

    Attributes:
        lr: Plain-SGD learning rate, in (0, :data:`MAX_LR`]. SGD on a per-word mean loss
            needs large values: 20 learns in a few dozen iterations, 100 is "too high".
        epochs: SGD steps on each rollout (full batch), 1..:data:`MAX_EPOCHS`.
        batch_size: Sentences per rollout, :data:`MIN_BATCH_SIZE`..:data:`MAX_BATCH_SIZE`.
        iterations: Rollout/update iterations, 1..:data:`MAX_ITERATIONS`.
        clip_ratio: PPO's epsilon, in (0, 1). ``pg`` ignores it but reports the share of
            words PPO would have clipped.
        entropy_coef: Entropy bonus weight, in [0, :data:`MAX_ENTROPY_COEF`].
        kl_coef: ``ppo-kl``'s (initial) KL coefficient beta, in [0, :data:`MAX_KL_COEF`].
        target_kl: ``None`` keeps beta fixed; a number in (0, :data:`MAX_TARGET_KL`] adapts it
            toward this exact per-word KL to the reference (Ziegler et al.'s controller).
        seed: Seeds the initial policy's noise and every algorithm's sampling,
            in [0, :data:`MAX_SEED`].
        seq_len: Words per sentence, :data:`MIN_SEQ_LEN`..:data:`MAX_SEQ_LEN`.

    Examples:
        >>> LabConfig(lr=100.0).epochs
        6
        >>> LabConfig(epochs=0)
        Traceback (most recent call last):
        ...
        ppo_core._checks.PPOInputError: epochs: must be an integer in [1, 16], got 0
    """

    lr: float = 20.0
    epochs: int = 6
    batch_size: int = 64
    iterations: int = 100
    clip_ratio: float = 0.2
    entropy_coef: float = 0.01
    kl_coef: float = 0.05
    target_kl: float | None = None
    seed: int = 0
    seq_len: int = 8

    def __post_init__(self) -> None:
        _check_real("lr", self.lr, 0.0, MAX_LR, open_low=True)
        _check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        _check_int("batch_size", self.batch_size, MIN_BATCH_SIZE, MAX_BATCH_SIZE)
        _check_int("iterations", self.iterations, 1, MAX_ITERATIONS)
        _check_real("clip_ratio", self.clip_ratio, 0.0, 1.0, open_low=True, open_high=True)
        _check_real("entropy_coef", self.entropy_coef, 0.0, MAX_ENTROPY_COEF, open_low=False)
        _check_real("kl_coef", self.kl_coef, 0.0, MAX_KL_COEF, open_low=False)
        if self.target_kl is not None:
            _check_real("target_kl", self.target_kl, 0.0, MAX_TARGET_KL, open_low=True)
            if self.kl_coef == 0:
                raise PPOInputError("kl_coef", "must be > 0 when target_kl is set (adaptive)")
        _check_int("seed", self.seed, 0, MAX_SEED)
        _check_int("seq_len", self.seq_len, MIN_SEQ_LEN, MAX_SEQ_LEN)


PRESETS: dict[str, LabConfig] = {
    "default": LabConfig(),
    "high learning rate": LabConfig(lr=100.0),
    "no entropy bonus": LabConfig(entropy_coef=0.0),
    "with KL penalty": LabConfig(kl_coef=0.1, target_kl=0.1),
}
"""Named starting points for the page and the API (each differs from "default" in one idea)."""


def check_algorithms(algorithms: Sequence[str]) -> tuple[Algorithm, ...]:
    """The algorithm names, validated: non-empty, known, each once (:class:`PPOInputError`)."""
    if isinstance(algorithms, str) or not algorithms:
        raise PPOInputError("algorithms", f"expected a non-empty list of {list(ALGORITHMS)}")
    out: list[Algorithm] = []
    for name in algorithms:
        match = next((a for a in ALGORITHMS if a == name), None)
        if match is None:
            raise PPOInputError(
                "algorithms", f"unknown algorithm {name!r}; expected one of {list(ALGORITHMS)}"
            )
        if match in out:
            raise PPOInputError("algorithms", f"{name!r} is listed twice")
        out.append(match)
    return tuple(out)
