"""Time the training lab: all three algorithms for 200 iterations, and time to the first one.

The budget is 3 s for 200 iterations of pg, ppo and ppo-kl together (the web page streams
them). Wall-clock time on a shared machine is noisy, so each case reports the best of
``--repeats`` runs, and the median, next to the process CPU time of the best run.

Usage::

    .venv/bin/python benchmarks/lab_bench.py [--iterations 200] [--repeats 5] [--preset default]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import torch

from ppo_core.lab import ALGORITHMS, MAX_EPOCHS, MAX_ITERATIONS, PRESETS, LabConfig, iterate_lab

BUDGET_SECONDS = 3.0


def time_run(config: LabConfig) -> tuple[float, float, float]:
    """One full run: ``(wall seconds, CPU seconds, wall seconds to the first iteration)``."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    first = 0.0
    for step in iterate_lab(config, ALGORITHMS):
        if step.iteration == 0:
            first = time.perf_counter() - wall0
    return time.perf_counter() - wall0, time.process_time() - cpu0, first


def bench(name: str, config: LabConfig, repeats: int) -> float:
    """Print best / median wall time of ``repeats`` runs; return the best."""
    runs = [time_run(config) for _ in range(repeats)]
    best = min(runs)
    median = statistics.median(r[0] for r in runs)
    first = min(r[2] for r in runs)
    print(
        f"{name:34s} best {best[0]:6.2f} s (cpu {best[1]:5.2f} s)  median {median:6.2f} s  "
        f"first iteration {first * 1000:6.1f} ms  "
        f"({best[0] / config.iterations * 1000:.1f} ms/iteration)"
    )
    return best[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS))
    parser.add_argument("--worst-case", action="store_true", help="also time the API limits")
    args = parser.parse_args()

    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    config = dataclasses.replace(PRESETS[args.preset], iterations=args.iterations)
    print(f"config: {config}")
    for _ in iterate_lab(dataclasses.replace(config, iterations=2)):  # warm-up
        pass
    best = bench(f"{args.iterations} iterations, 3 algorithms", config, args.repeats)
    verdict = "within" if best <= BUDGET_SECONDS else "OVER"
    print(f"-> {verdict} the {BUDGET_SECONDS:.0f} s budget")
    if args.worst_case:
        worst = dataclasses.replace(
            config, iterations=MAX_ITERATIONS, epochs=MAX_EPOCHS, batch_size=512, seq_len=12
        )
        bench("API limits (500 it, 16 ep, 512 x 12)", worst, 1)


if __name__ == "__main__":
    main()
