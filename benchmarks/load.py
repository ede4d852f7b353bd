"""Bounded mixed load on 127.0.0.1: curves, losses, analyze and the lab, 64 connections.

    .venv/bin/python benchmarks/load.py                     # 60 s, 64 connections, 2 workers
    .venv/bin/python benchmarks/load.py --duration 20 --connections 32 --workers 1

Starts its own server, warms it up, records resident memory (server + its children) after the
warm-up and after the run, and prints per-endpoint counts, p50 / p99 latency, 5xx, connection
errors and 503s (the documented answer when heavy work is saturated). Exit code 1 on any 5xx
other than 503, any connection error, or memory growth over 10%.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import numpy as np
from _server import running_server

ROOT = Path(__file__).resolve().parents[1]


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children[ppid].append(int(entry.name))
    total, stack = 0.0, [pid]
    while stack:
        p = stack.pop()
        stack.extend(children.get(p, []))
        try:
            for line in (Path("/proc") / str(p) / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array.astype(np.float32), allow_pickle=False)
    return buf.getvalue()


def make_requests(rng: random.Random) -> dict[str, tuple[float, object]]:
    """Endpoint name -> (weight, factory of httpx request kwargs)."""
    gen = np.random.default_rng(0)
    shape = (32, 256)
    old = -np.abs(gen.normal(1.5, 0.8, shape))
    batch = {
        "logprobs": old + gen.normal(0, 0.1, shape),
        "old_logprobs": old,
        "advantages": gen.normal(0, 1, shape),
        "values": gen.normal(0, 1, shape),
        "returns": gen.normal(0, 1, shape),
    }
    npy_files = {k: (f"{k}.npy", npy(v), "application/octet-stream") for k, v in batch.items()}
    small = {k: v[:4, :16].tolist() for k, v in batch.items()}

    def clip() -> dict[str, object]:
        return {
            "method": "GET",
            "url": "/api/v1/clip-objective",
            "params": {
                "epsilon": round(rng.uniform(0.05, 0.5), 2),
                "advantage": round(rng.uniform(-2, 2), 1),
                "points": 100,
            },
        }

    def value_curve() -> dict[str, object]:
        return {
            "method": "GET",
            "url": "/api/v1/value-loss-curve",
            "params": {"old_value": round(rng.uniform(-1, 1), 1)},
        }

    def entropy() -> dict[str, object]:
        return {
            "method": "GET",
            "url": "/api/v1/entropy-comparison",
            "params": {
                "vocab_size": rng.choice([100, 1000, 5000]),
                "temperature": rng.choice([0.5, 1.0, 2.0]),
            },
        }

    def policy_loss() -> dict[str, object]:
        body = {
            "logprobs": small["logprobs"],
            "old_logprobs": small["old_logprobs"],
            "advantages": small["advantages"],
            "convention": rng.choice(["verl", "cleanrl"]),
        }
        return {"method": "POST", "url": "/api/v1/policy-loss", "json": body}

    def analyze() -> dict[str, object]:
        return {
            "method": "POST",
            "url": "/api/v1/analyze",
            "files": npy_files,
            "data": {"convention": rng.choice(["seed", "verl", "trl"])},
        }

    def lab() -> dict[str, object]:
        return {
            "method": "POST",
            "url": "/api/v1/lab/run",
            "json": {"algorithms": ["pg", "ppo"], "iterations": 10, "seed": rng.randint(0, 9)},
        }

    return {
        "clip-objective": (40, clip),
        "value-loss-curve": (15, value_curve),
        "entropy-comparison": (10, entropy),
        "policy-loss": (20, policy_loss),
        "analyze": (10, analyze),
        "lab/run": (5, lab),
    }


async def worker(
    client: httpx.AsyncClient,
    requests: dict[str, tuple[float, object]],
    stop_at: float,
    stats: dict[str, list[object]],
    rng: random.Random,
) -> None:
    names = list(requests)
    weights = [requests[n][0] for n in names]
    while time.monotonic() < stop_at:
        name = rng.choices(names, weights)[0]
        kwargs = requests[name][1]()  # type: ignore[operator]
        t = time.perf_counter()
        try:
            r = await client.request(**kwargs)
            status: object = r.status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        stats[name].append((status, (time.perf_counter() - t) * 1000))


async def run_load(
    base: str, connections: int, duration: float, seed: int
) -> dict[str, list[object]]:
    rng = random.Random(seed)
    requests = make_requests(rng)
    stats: dict[str, list[object]] = defaultdict(list)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        stop_at = time.monotonic() + duration
        await asyncio.gather(
            *(
                worker(client, requests, stop_at, stats, random.Random(seed + i))
                for i in range(connections)
            )
        )
    return stats


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--runs", type=int, default=1, help="timed runs on the same server")
    args = parser.parse_args()

    env = {"PPO_EXPLORER_LOG_JSON": "true"}
    runs = []
    with running_server(args.workers, env) as server:
        base = server.base
        time.sleep(3)
        asyncio.run(run_load(base, args.connections, args.warmup, 1))
        rss_warm = tree_rss_mb(server.proc.pid)
        for run in range(args.runs):
            t = time.perf_counter()
            stats = asyncio.run(run_load(base, args.connections, args.duration, 2 + run))
            runs.append((stats, time.perf_counter() - t))
        rss_after = tree_rss_mb(server.proc.pid)

    bad = 0
    for run, (stats, elapsed) in enumerate(runs, 1):
        print(
            f"run {run}: {args.connections} connections, {args.duration:g} s, {args.workers} "
            f"workers, {sum(len(v) for v in stats.values()) / elapsed:.0f} req/s overall"
        )
        print(
            "| endpoint | requests | 2xx | 503 | other 4xx | 5xx | conn. errors | p50 ms | p99 ms |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        errors: Counter[str] = Counter()
        for name in sorted(stats):
            rows = stats[name]
            codes = [s for s, _ in rows]
            ok = [ms for s, ms in rows if isinstance(s, int) and s < 300]
            n503 = sum(1 for s in codes if s == 503)
            n4xx = sum(1 for s in codes if isinstance(s, int) and 400 <= s < 500)
            n5xx = sum(1 for s in codes if isinstance(s, int) and s >= 500 and s != 503)
            errors.update(str(s) for s in codes if not isinstance(s, int))
            nerr = sum(1 for s in codes if not isinstance(s, int))
            bad += n5xx + nerr
            print(
                f"| {name} | {len(rows)} | {len(ok)} | {n503} | {n4xx} | {n5xx} | {nerr} "
                f"| {pct(ok, 0.5):.1f} | {pct(ok, 0.99):.1f} |"
            )
        # Connection resets (httpx ReadError / RemoteProtocolError) reported on their own.
        print(f"connection errors by type: {dict(errors) or 'none'}")
    growth = (rss_after - rss_warm) / rss_warm
    print(
        f"resident memory (server + workers): {rss_warm:.0f} MB after warm-up, "
        f"{rss_after:.0f} MB after the runs ({growth:+.1%})"
    )
    return 1 if bad or growth > 0.10 else 0


if __name__ == "__main__":
    sys.exit(main())
