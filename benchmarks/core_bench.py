"""Core benchmark: ppo_core's total loss + diagnostics vs the seed's formulation vs a floor.

Times, on the same 1M-token tensors and in one run (interleaved repeats, median and min):

* ``seed``: the seed tutorial's four functions (tests/core/seed_reference.py), called through
  its ``compute_ppo_total_loss`` (no mask, no diagnostics: the seed has neither);
* ``ours[seed]``: ``ppo_core.ppo_total_loss(..., logits=..., convention=seed)``, which also
  computes every diagnostic (clip fractions, approx KL k1/k2/k3, ratio min/mean/max, explained
  variance);
* ``ours[verl]``: the same with the ``verl`` convention, a mask with unequal row lengths and
  ``old_values`` (dual clip, log-ratio clamp, value clip);
* ``floor``: one plain pass over the same tensors (``t.sum()`` of each input once).

Both the seed and ours compute the entropy from the same ``[B, T, V]`` logits.

Run from the repository root::

    .venv/bin/python benchmarks/core_bench.py                  # 1M tokens, V = 16
    .venv/bin/python benchmarks/core_bench.py --tokens 262144 --repeats 5
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

# Run as a script, sys.path[0] is benchmarks/; the editable install then resolves ppo_core to a
# namespace package without its attributes. Put the repository root first.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import ppo_core  # noqa: E402

# REFERENCE: the seed tutorial's four functions, verbatim, kept once for the whole repository in
# tests/core/seed_reference.py (the core tests compare ppo_core against the same copy).
sys.path.insert(0, str(Path(_ROOT) / "tests" / "core"))
from seed_reference import compute_ppo_total_loss  # noqa: E402

# ---------------------------------------------------------------------------------------------
# End of the seed reference.
# ---------------------------------------------------------------------------------------------


@dataclass
class Inputs:
    """One batch of PPO tensors, ``[B, T]`` each, plus ``[B, T, V]`` logits."""

    logprobs: torch.Tensor
    old_logprobs: torch.Tensor
    advantages: torch.Tensor
    values: torch.Tensor
    returns: torch.Tensor
    old_values: torch.Tensor
    mask: torch.Tensor
    logits: torch.Tensor

    def grad_leaves(self) -> tuple[torch.Tensor, ...]:
        """The tensors a backward pass differentiates (the model outputs)."""
        return (self.logprobs, self.values, self.logits)

    def seed_tensors(self) -> tuple[torch.Tensor, ...]:
        """What the seed formulation (and ours[seed]) reads."""
        return (
            self.logprobs,
            self.old_logprobs,
            self.advantages,
            self.values,
            self.returns,
            self.logits,
        )

    def all_tensors(self) -> tuple[torch.Tensor, ...]:
        """What ours[verl] reads: the seed's tensors plus ``old_values`` and the mask."""
        return (*self.seed_tensors(), self.old_values, self.mask)


def make_inputs(batch: int, seq: int, vocab: int, seed: int = 0) -> Inputs:
    """Plausible PPO tensors: small log-ratios, N(0, 1) advantages and values, ragged mask."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    old_logprobs = -2.0 + 0.5 * randn(batch, seq)
    logprobs = old_logprobs + 0.15 * randn(batch, seq)
    values = randn(batch, seq)
    old_values = values + 0.3 * randn(batch, seq)
    lengths = torch.randint(seq // 4, seq + 1, (batch,), generator=gen)
    lengths[0] = seq
    mask = (torch.arange(seq)[None, :] < lengths[:, None]).to(torch.float32)
    return Inputs(
        logprobs=logprobs,
        old_logprobs=old_logprobs,
        advantages=randn(batch, seq),
        values=values,
        returns=values + randn(batch, seq),
        old_values=old_values,
        mask=mask,
        logits=randn(batch, seq, vocab),
    )


def floor_pass(tensors: tuple[torch.Tensor, ...], backward: bool) -> None:
    """One plain pass: each tensor summed once (and, with ``backward``, ones written to grads)."""
    total = torch.zeros(())
    for t in tensors:
        total = total + t.sum()
    if backward:
        total.backward()
    float(total.detach())


def make_variants(x: Inputs, backward: bool) -> dict[str, Callable[[], None]]:
    """The timed callables; each computes its loss (and backward) and returns nothing."""
    seed_conv = ppo_core.get_convention("seed")
    verl_conv = ppo_core.get_convention("verl")

    def seed() -> None:
        out = compute_ppo_total_loss(
            x.logprobs, x.old_logprobs, x.advantages, x.values, x.returns, x.logits
        )
        if backward:
            out["total_loss"].backward()

    def ours_seed() -> None:
        out = ppo_core.ppo_total_loss(
            x.logprobs,
            x.old_logprobs,
            x.advantages,
            x.values,
            x.returns,
            logits=x.logits,
            convention=seed_conv,
        )
        if backward:
            out.total_loss.backward()

    def ours_verl() -> None:
        out = ppo_core.ppo_total_loss(
            x.logprobs,
            x.old_logprobs,
            x.advantages,
            x.values,
            x.returns,
            mask=x.mask,
            old_values=x.old_values,
            logits=x.logits,
            convention=verl_conv,
        )
        if backward:
            out.total_loss.backward()

    return {
        "seed": seed,
        "ours[seed]": ours_seed,
        "ours[verl]": ours_verl,
        "floor(seed inputs)": lambda: floor_pass(x.seed_tensors(), backward),
        "floor(all inputs)": lambda: floor_pass(x.all_tensors(), backward),
    }


@dataclass
class Timing:
    """Wall-clock samples of one variant, in milliseconds."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)


def time_interleaved(
    variants: dict[str, Callable[[], None]],
    leaves: tuple[torch.Tensor, ...],
    repeats: int,
    warmup: int,
) -> dict[str, Timing]:
    """Run every variant once per round, rotating the order each round; keep ms per call."""
    names = list(variants)
    timings = {name: Timing() for name in names}
    for round_ in range(warmup + repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            for leaf in leaves:
                leaf.grad = None
            gc.collect()
            start = time.perf_counter()
            variants[name]()
            elapsed = (time.perf_counter() - start) * 1e3
            if round_ >= warmup:
                timings[name].samples.append(elapsed)
    return timings


def check_agreement(x: Inputs) -> tuple[float, float]:
    """Total loss of the seed and of ours[seed] on the same inputs (they must agree)."""
    with torch.no_grad():
        seed = compute_ppo_total_loss(
            x.logprobs, x.old_logprobs, x.advantages, x.values, x.returns, x.logits
        )["total_loss"]
        ours = ppo_core.ppo_total_loss(
            x.logprobs,
            x.old_logprobs,
            x.advantages,
            x.values,
            x.returns,
            logits=x.logits,
            convention=ppo_core.get_convention("seed"),
        ).total_loss
    return float(seed), float(ours)


FLOOR_FOR = {
    "seed": "floor(seed inputs)",
    "ours[seed]": "floor(seed inputs)",
    "ours[verl]": "floor(all inputs)",
}


def print_table(title: str, timings: dict[str, Timing]) -> None:
    """Medians and mins; ratios are median/median and min/min."""
    seed = timings["seed"]
    print(f"\n{title}")
    header = (
        f"{'variant':<20} {'median ms':>10} {'min ms':>9}"
        f" {'x seed med/min':>15} {'x floor med/min':>16}"
    )
    print(header)
    print("-" * len(header))
    for name, t in timings.items():
        vs_seed = vs_floor = ""
        if name in FLOOR_FOR:
            floor = timings[FLOOR_FOR[name]]
            vs_seed = f"{t.median / seed.median:.2f}/{t.min / seed.min:.2f}"
            vs_floor = f"{t.median / floor.median:.1f}/{t.min / floor.min:.1f}"
        print(f"{name:<20} {t.median:>10.1f} {t.min:>9.1f} {vs_seed:>15} {vs_floor:>16}")
    noisy = [name for name, t in timings.items() if t.median > 1.3 * t.min]
    if noisy:
        print(f"note: median > 1.3 x min for {', '.join(noisy)}: other load? compare the mins")
    ours = timings["ours[seed]"]
    floor = timings["floor(seed inputs)"]
    verdict = "MET" if ours.median <= seed.median else "NOT MET"
    print(
        f"ours[seed]/seed = {ours.median / seed.median:.2f} (min {ours.min / seed.min:.2f}), "
        f"ours[seed]/floor = {ours.median / floor.median:.1f} (min {ours.min / floor.min:.1f}); "
        f"target ours[seed] <= seed: {verdict}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1 << 20, help="tokens (default 1048576)")
    parser.add_argument("--batch", type=int, default=256, help="rows B; T = tokens // B")
    parser.add_argument("--vocab", type=int, default=16, help="logits vocab V (default 16)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds (default 2)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--no-backward", action="store_true", help="forward only")
    args = parser.parse_args(argv)

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    seq = max(1, args.tokens // args.batch)
    x = make_inputs(args.batch, seq, args.vocab)
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"tokens {args.batch * seq} = [{args.batch}, {seq}], vocab {args.vocab} "
        f"(logits {args.batch * seq * args.vocab / 1e6:.1f}M floats), float32, "
        f"mask valid {float(x.mask.mean()):.1%}, repeats {args.repeats} (+{args.warmup} warmup), "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    seed_total, ours_total = check_agreement(x)
    print(f"total loss: seed {seed_total:.6f}, ours[seed] {ours_total:.6f}")
    if abs(seed_total - ours_total) > 1e-4 * max(1.0, abs(seed_total)):
        print("ERROR: ours[seed] disagrees with the seed", file=sys.stderr)
        return 1

    with torch.no_grad():
        fwd = time_interleaved(make_variants(x, backward=False), (), args.repeats, args.warmup)
    print_table("forward only (no autograd)", fwd)

    if not args.no_backward:
        for leaf in x.grad_leaves():
            leaf.requires_grad_(True)
        both = time_interleaved(
            make_variants(x, backward=True), x.grad_leaves(), args.repeats, args.warmup
        )
        print_table("forward + backward (grad w.r.t. logprobs, values, logits)", both)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
