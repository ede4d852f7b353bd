"""API speed on 127.0.0.1 with one uvicorn worker: interactive endpoints under wrk, the batch
analyzer on 1M tokens (with /healthz probed while it runs), and cold start.

    .venv/bin/python benchmarks/api_bench.py            # needs `wrk` (apt-get install wrk)
    .venv/bin/python benchmarks/api_bench.py --duration 10 --skip-analyze

wrk and the server share this machine's cores, as the issue's measurement prescribes.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from _server import running_server

ROOT = Path(__file__).resolve().parents[1]

RANDOM_CLIP_LUA = """
math.randomseed(os.time())
request = function()
  local eps = 0.05 + math.random() * 0.9
  local adv = -3 + math.random() * 6
  local fmt = "/api/v1/clip-objective?points=100&epsilon=%.6f&advantage=%.6f"
  local path = string.format(fmt, eps, adv)
  return wrk.format("GET", path)
end
"""

RANDOM_BOTH_SIGNS_LUA = """
math.randomseed(os.time() + 2)
request = function()
  local eps = 0.05 + math.random() * 0.9
  local adv = 0.1 + math.random() * 2.9
  local r = math.random() * 2.5
  local fmt = "/api/v1/clip-objective/both-signs?ratio_min=0&ratio_max=2.5&points=101"
    .. "&epsilon=%.6f&advantage=%.6f&ratio=%.6f"
  return wrk.format("GET", string.format(fmt, eps, adv, r))
end
"""

RANDOM_FAMILY_LUA = """
math.randomseed(os.time() + 1)
request = function()
  local eps = 0.05 + math.random() * 0.9
  local adv = -3 + math.random() * 6
  local fmt = "/api/v1/objective-curves?points=101&epsilon=%.6f&advantage=%.6f"
  local path = string.format(fmt, eps, adv)
  return wrk.format("GET", path)
end
"""

POLICY_LOSS_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"logprobs": [[-1.0, -0.5, -0.3, -2.0], [-2.0, 0.0, -0.1, -0.4]], ' ..
  '"old_logprobs": [[-1.1, -0.4, -0.3, -1.5], [-1.0, 0.0, -0.2, -0.4]], ' ..
  '"advantages": [1.0, -1.0], "mask": [[1, 1, 1, 1], [1, 1, 1, 0]], ' ..
  '"convention": "verl-gspo", "rollout_logprobs": [[-1.0, -0.5, -0.3, -2.1], ' ..
  '[-1.2, 0.0, -0.1, -0.4]], "rollout_is_level": "token"}'
"""


def wrk(url: str, duration: int, script: str | None = None) -> dict[str, float]:
    cmd = ["wrk", "-t2", "-c32", f"-d{duration}s", "--latency"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)$", out, re.M)
        return float(m.group(1)) * unit[m.group(2)] if m else float("nan")

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }


class HealthProbe(threading.Thread):
    """Polls /healthz back to back and records each latency (ms)."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.latencies: list[float] = []
        self.running = True

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while self.running:
                t = time.perf_counter()
                client.get("/healthz")
                self.latencies.append((time.perf_counter() - t) * 1000)
                time.sleep(0.005)


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def analyze_batch(tokens: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shape = (256, tokens // 256)
    old = -np.abs(rng.normal(1.5, 0.8, shape)).astype(np.float32)
    values = rng.normal(0, 1, shape).astype(np.float32)
    lengths = rng.integers(shape[1] // 2, shape[1] + 1, shape[0])
    return {
        "logprobs": old + rng.normal(0, 0.1, shape).astype(np.float32),
        "old_logprobs": old,
        "advantages": rng.normal(0, 1, shape).astype(np.float32),
        "values": values,
        "returns": values + rng.normal(0, 0.5, shape).astype(np.float32),
        "mask": (np.arange(shape[1])[None, :] < lengths[:, None]).astype(np.float32),
    }


def timed_analyze(
    base: str, batch: dict[str, np.ndarray], kind: str, repeats: int
) -> dict[str, float]:
    if kind == "npy":
        files = {}
        for name, array in batch.items():
            buf = io.BytesIO()
            np.save(buf, array, allow_pickle=False)
            files[name] = (f"{name}.npy", buf.getvalue(), "application/octet-stream")
        payload: dict[str, object] = {"files": files, "data": {"convention": "verl"}}
        size = sum(len(f[1]) for f in files.values())
    else:
        body = json.dumps({**{k: v.tolist() for k, v in batch.items()}, "convention": "verl"})
        payload = {"content": body.encode(), "headers": {"content-type": "application/json"}}
        size = len(body)
    probe = HealthProbe(base)
    probe.start()
    times = []
    with httpx.Client(base_url=base, timeout=120) as client:
        for _ in range(repeats):
            t = time.perf_counter()
            r = client.post("/api/v1/analyze", **payload)  # type: ignore[arg-type]
            times.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text[:300]
    probe.running = False
    probe.join()
    return {
        "body_mb": size / 1e6,
        "best_s": min(times),
        "median_s": statistics.median(times),
        "healthz_p50_ms": percentile(probe.latencies, 0.5),
        "healthz_p99_ms": percentile(probe.latencies, 0.99),
        "healthz_max_ms": max(probe.latencies),
        "healthz_probes": len(probe.latencies),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--tokens", type=int, default=1 << 20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-analyze", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")

    cold = []
    for _ in range(3):
        with running_server() as server:
            cold.append(server.startup_s)
    print(
        f"cold start to first /healthz 200: median {statistics.median(cold):.2f} s "
        f"(runs: {', '.join(f'{c:.2f}' for c in cold)})"
    )

    with running_server() as server:
        base = server.base
        time.sleep(12)  # let the analyzer's worker processes finish importing
        scripts = {}
        for name, lua in (
            ("clip", RANDOM_CLIP_LUA),
            ("both", RANDOM_BOTH_SIGNS_LUA),
            ("family", RANDOM_FAMILY_LUA),
            ("policy", POLICY_LOSS_LUA),
        ):
            with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
                f.write(lua)
            scripts[name] = f.name
        runs = {
            "/healthz": wrk(f"{base}/healthz", args.duration),
            "/api/v1/clip-objective (same query: cached)": wrk(
                f"{base}/api/v1/clip-objective?points=100", args.duration
            ),
            "/api/v1/clip-objective (random eps, A: computed)": wrk(
                base, args.duration, scripts["clip"]
            ),
            "/api/v1/clip-objective/both-signs (random eps, A, r: 2 curves computed)": wrk(
                base, args.duration, scripts["both"]
            ),
            "/api/v1/objective-curves (same query: cached)": wrk(
                f"{base}/api/v1/objective-curves?points=101", args.duration
            ),
            "/api/v1/objective-curves (random eps, A: 6 modes computed)": wrk(
                base, args.duration, scripts["family"]
            ),
            "POST /api/v1/policy-loss (verl-gspo + TIS, 8 tokens)": wrk(
                f"{base}/api/v1/policy-loss", args.duration, scripts["policy"]
            ),
        }
        health = runs["/healthz"]["rps"]
        print(f"\nwrk -t2 -c32 -d{args.duration}s, one worker")
        print("| endpoint | req/s | x healthz | p50 ms | p99 ms | non-2xx |")
        print("|---|---|---|---|---|---|")
        for name, r in runs.items():
            print(
                f"| {name} | {r['rps']:.0f} | {r['rps'] / health:.2f} | {r['p50_ms']:.2f} "
                f"| {r['p99_ms']:.2f} | {r['non_2xx']:.0f} |"
            )
        if not args.skip_analyze:
            batch = analyze_batch(args.tokens)
            print(
                f"\n/api/v1/analyze on {args.tokens} tokens ({args.repeats} runs each), "
                "/healthz probed meanwhile"
            )
            print("| body | MB | best s | median s | healthz p50 ms | p99 ms | max ms |")
            print("|---|---|---|---|---|---|---|")
            for kind in ("npy", "json"):
                r = timed_analyze(base, batch, kind, args.repeats)
                print(
                    f"| {kind} | {r['body_mb']:.1f} | {r['best_s']:.3f} | {r['median_s']:.3f} "
                    f"| {r['healthz_p50_ms']:.1f} | {r['healthz_p99_ms']:.1f} "
                    f"| {r['healthz_max_ms']:.1f} |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
