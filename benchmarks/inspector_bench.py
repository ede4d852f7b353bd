"""Batch inspector end to end: POST /api/v1/analyze with 1M tokens as one ``.safetensors`` file
(logprobs, old_logprobs, rollout_logprobs, advantages, mask; float32) to a real server on
127.0.0.1, timed from the client (upload, parse, every section, serialisation, download).

    .venv/bin/python benchmarks/inspector_bench.py                # 1M tokens, 7 runs
    .venv/bin/python benchmarks/inspector_bench.py --tokens 262144 --micro-batches 4

Reports the median and best wall time per configuration and the response size (target:
<= 0.5 s for the default configuration; the answer < 2 MB for any batch size). Each
configuration's first run is a never-seen batch for the worker (reported separately): the
worker's first large body pays page faults.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import httpx
import numpy as np
from _server import running_server
from safetensors.numpy import save


def batch(tokens: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    rows = 256
    width = tokens // rows
    old = -np.abs(rng.normal(1.5, 0.8, (rows, width))).astype(np.float32)
    lengths = rng.integers(width // 2, width + 1, rows)
    return save(
        {
            "logprobs": old + rng.normal(0, 0.1, (rows, width)).astype(np.float32),
            "old_logprobs": old,
            "rollout_logprobs": old + rng.normal(0, 0.05, (rows, width)).astype(np.float32),
            "advantages": rng.normal(0, 1, (rows, width)).astype(np.float32),
            "mask": (np.arange(width)[None, :] < lengths[:, None]).astype(np.float32),
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1 << 20)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--micro-batches", type=int, default=4)
    args = parser.parse_args()
    raw = batch(args.tokens)
    configs = {
        "verl, rollout TIS (token)": {"convention": "verl", "rollout_is_level": "token"},
        "verl-gspo, rollout TIS (sequence)": {
            "convention": "verl-gspo",
            "rollout_is_level": "sequence",
        },
        f"verl + micro_batches={args.micro_batches}": {
            "convention": "verl",
            "rollout_is_level": "token",
            "micro_batches": str(args.micro_batches),
        },
    }
    print(f"{args.tokens} tokens, .safetensors body {len(raw) / 1e6:.1f} MB, {args.runs} runs")
    print("| configuration | first run s | median s | best s | response KB |")
    print("|---|---|---|---|---|")
    with running_server() as server, httpx.Client(base_url=server.base, timeout=120) as client:
        time.sleep(12)  # let the analyzer's worker processes finish importing
        for name, knobs in configs.items():
            times, size = [], 0
            for _ in range(args.runs):
                t = time.perf_counter()
                r = client.post(
                    "/api/v1/analyze", files={"batch": ("b.safetensors", raw)}, data=knobs
                )
                times.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text[:300]
                size = len(r.content)
            rest = times[1:] or times
            print(
                f"| {name} | {times[0]:.3f} | {statistics.median(rest):.3f} "
                f"| {min(rest):.3f} | {size / 1e3:.0f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
