"""Run report: a 100k-step verl JSON-lines log with 60 metrics, reported end to end.

Builds the log in memory (13 verl names the metric map knows, 47 others; 6-digit values),
posts it to ``/api/v1/runs/report`` on a real server (``ppo-explorer --workers 1``, 127.0.0.1)
and times it at the client, 3 runs; also times ``build_report`` in-process. Target: <= 2 s.

    .venv/bin/python benchmarks/runs_bench.py
    .venv/bin/python benchmarks/runs_bench.py --steps 20000 --metrics 30
"""

from __future__ import annotations

import argparse
import http.client
import random
import statistics
import sys
import time
from pathlib import Path

import httpx
import orjson
from _server import running_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.runs.report import build_report

KNOWN = [
    "actor/pg_loss", "critic/vf_loss", "actor/entropy", "actor/pg_clipfrac",
    "actor/pg_clipfrac_lower", "actor/ppo_kl", "actor/kl_loss", "critic/score/mean",
    "response_length/mean", "actor/grad_norm", "critic/vf_explained_var", "actor/lr",
    "actor/ratio_max",
]  # fmt: skip


def make_log(steps: int, metrics: int) -> bytes:
    rng = random.Random(0)
    names = KNOWN[:metrics] + [f"timing_s/stage_{i}" for i in range(max(0, metrics - len(KNOWN)))]
    lines = []
    for step in range(1, steps + 1):
        data = {name: round(rng.random(), 6) for name in names}
        lines.append(orjson.dumps({"step": step, "data": data}))
    return b"\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--metrics", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    raw = make_log(args.steps, args.metrics)
    t = time.perf_counter()
    report = build_report(raw, "metrics.jsonl", None)
    inproc = time.perf_counter() - t
    print(
        f"{args.steps} steps x {args.metrics} metrics, {len(raw) / 1e6:.0f} MB: build_report "
        f"in-process {inproc:.2f} s ({len(report['metrics'])} mapped, "
        f"{len(report['unmapped'])} unmapped)"
    )
    # The body is encoded once and sent with http.client in one write, as a browser sends a
    # file: httpx's sync client streams a 170 MB upload at ~150 MB/s in its own Python code,
    # which would time the client, not the server.
    encoded = httpx.Request("POST", "/", files={"file": ("metrics.jsonl", raw)})
    body, content_type = encoded.read(), encoded.headers["content-type"]
    times = []
    with running_server() as server:
        time.sleep(12)  # the worker processes finish importing
        host, port = server.base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        for _ in range(args.runs):
            t = time.perf_counter()
            conn.request(
                "POST", "/api/v1/runs/report", body=body, headers={"content-type": content_type}
            )
            r = conn.getresponse()
            answer = r.read()
            times.append(time.perf_counter() - t)
            assert r.status == 200, answer[:300]
            size = len(answer)
        conn.close()
    print(
        f"POST /api/v1/runs/report end to end: {', '.join(f'{x:.2f}' for x in times)} s "
        f"(median {statistics.median(times):.2f}); answer {size / 1e6:.1f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
