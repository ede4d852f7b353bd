"""Policy-loss family benchmark: every ``policy_loss_mode`` on 1M tokens, forward + backward.

Times ``ppo_core.policy_loss(..., policy_loss_mode=mode)`` followed by ``loss.backward()`` on
the same ``[B, T]`` float32 tensors (a mask with unequal row lengths, per-token advantages),
interleaving the modes over the repeats, and reports each mode's median and min against
``vanilla``'s (target: every mode <= 2x vanilla). Also times the two aggregation modes the
Dr. GRPO fix touched, and rollout correction at token and sequence level.

Run from the repository root::

    .venv/bin/python benchmarks/family_bench.py                 # 1M tokens, 7 repeats
    .venv/bin/python benchmarks/family_bench.py --tokens 262144 --repeats 5
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from ppo_core.policy import POLICY_LOSS_MODES, policy_loss  # noqa: E402
from ppo_core.rollout import rollout_correction  # noqa: E402

# Each mode with the knobs its verl preset uses (dual clip / clamp where verl applies them).
MODE_KNOBS: dict[str, dict[str, object]] = {
    "vanilla": {"dual_clip": 3.0, "log_ratio_clamp": 20.0},
    "gspo": {"clip_ratio_low": 3e-4, "clip_ratio_high": 4e-4, "gspo_log_ratio_max": 10.0},
    "cispo": {"log_ratio_clamp": 20.0},
    "sapo": {"log_ratio_clamp": 20.0, "loss_agg_mode": "seq-mean-token-mean"},
    "gpg": {},
    "geo_mean": {"clip_ratio": 0.4},
}


def make_batch(tokens: int, width: int = 1024) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    rows = tokens // width
    old = -torch.rand(rows, width, generator=gen) * 3 - 0.1
    lp = old + 0.3 * torch.randn(rows, width, generator=gen)
    lengths = torch.randint(width // 4, width + 1, (rows, 1), generator=gen)
    mask = (torch.arange(width)[None, :] < lengths).float()
    return {
        "logprobs": lp,
        "old_logprobs": old,
        "advantages": torch.randn(rows, width, generator=gen),
        "rollout_logprobs": old + 0.1 * torch.randn(rows, width, generator=gen),
        "mask": mask,
    }


def timed(fn: Callable[[], None]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1 << 20)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    b = make_batch(args.tokens)
    torch.set_num_threads(torch.get_num_threads())

    def mode_step(mode: str, **extra: object) -> Callable[[], None]:
        def step() -> None:
            leaf = b["logprobs"].clone().requires_grad_(True)
            knobs = {**MODE_KNOBS.get(mode, {}), **extra}
            out = policy_loss(
                leaf,
                b["old_logprobs"],
                b["advantages"],
                b["mask"],
                policy_loss_mode=mode,  # type: ignore[arg-type]
                **knobs,  # type: ignore[arg-type]
            )
            out.loss.backward()

        return step

    cases: dict[str, Callable[[], None]] = {m: mode_step(m) for m in POLICY_LOSS_MODES}
    cases["gspo (through the mean)"] = mode_step("gspo", gspo_stop_gradient=False)
    cases["vanilla seq-mean-token-sum-norm"] = mode_step(
        "vanilla", loss_agg_mode="seq-mean-token-sum-norm"
    )
    weights = rollout_correction(b["old_logprobs"], b["rollout_logprobs"], b["mask"]).weights
    cases["vanilla + rollout weights"] = mode_step("vanilla", rollout_is_weights=weights)
    for level in ("token", "sequence"):
        cases[f"rollout_correction ({level}, metrics)"] = lambda level=level: (  # type: ignore[misc]
            rollout_correction(b["old_logprobs"], b["rollout_logprobs"], b["mask"], level=level)
            and None
        )

    for fn in cases.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, fn in cases.items():
            times[name].append(timed(fn))

    base = statistics.median(times["vanilla"])
    print(
        f"{args.tokens} tokens, float32, {torch.get_num_threads()} threads, "
        f"{args.repeats} repeats (median / min, ms; ratio = median / vanilla's median)"
    )
    print(f"{'case':40s} {'median':>8s} {'min':>8s} {'ratio':>6s}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:40s} {med * 1e3:8.1f} {min(ts) * 1e3:8.1f} {med / base:6.2f}")


if __name__ == "__main__":
    main()
