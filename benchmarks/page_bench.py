"""The page in real headless Chromium: initial load and slider-to-redraw latency.

    .venv/bin/python benchmarks/page_bench.py                 # starts its own server
    .venv/bin/python benchmarks/page_bench.py --moves 50 --loads 5

Load: from navigation start to every panel drawn (``window.__ppo.firstRender``), in a fresh
browser context (cold HTTP cache) and on reload (warm). Interaction: the clip panel's epsilon
slider moves one step at a time; each sample is from the ``input`` event to the panel's
``panel:rendered`` event (two API calls and two ``Plotly.react`` redraws), measured inside the
page with ``performance.now()``. The first pass meets a cold server cache; the second pass
repeats the same positions. Lab: time from opening the event stream to its first ``step``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from _server import running_server
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

MOVES_JS = """
async ([n, start]) => {
  const el = document.getElementById("clip-epsilon");
  const times = [];
  for (let i = 0; i < n; i++) {
    const done = new Promise((resolve) => document.addEventListener("panel:rendered",
      (e) => { if (e.detail.panel === "clip") resolve(performance.now()); }, { once: false }));
    const value = (start + 0.01 * (i + 1)).toFixed(2);
    const t0 = performance.now();
    el.value = value;
    el.dispatchEvent(new Event("input", { bubbles: true }));
    const t1 = await done;
    times.push(t1 - t0);
  }
  return times;
}
"""


FIRST_STEP_JS = """
async (query) => {
  const t0 = performance.now();
  return await new Promise((resolve, reject) => {
    const source = new EventSource(`/api/v1/lab/stream?${query}`);
    source.addEventListener("step", () => { source.close(); resolve(performance.now() - t0); });
    source.onerror = () => { source.close(); reject(new Error("stream failed")); };
  });
}
"""


def wait_drawn(page: object) -> float:
    deadline = time.monotonic() + 60
    expr = (
        "() => { const p = window.__ppo; if (!p) return 0; const f = p.firstRender;"
        " const ids = Object.keys(p.rendered); return ids.length >= 7 &&"
        " ids.every(i => i in f) ? Math.max(...ids.map(i => f[i])) : 0; }"
    )
    while time.monotonic() < deadline:
        value = page.evaluate(expr)  # type: ignore[attr-defined]
        if value:
            return float(value)
        time.sleep(0.01)
    raise SystemExit("page did not finish drawing")


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=50)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()

    with running_server() as server:
        base = server.base
        time.sleep(12)  # analyzer workers finish importing; plotly.js compressed
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            cold, warm = [], []
            for _ in range(args.loads):
                context = browser.new_context()
                page = context.new_page()
                page.goto(base + "/")
                cold.append(wait_drawn(page))
                page.reload()
                warm.append(wait_drawn(page))
                context.close()
            context = browser.new_context()
            page = context.new_page()
            page.goto(base + "/")
            wait_drawn(page)
            first = page.evaluate(MOVES_JS, [args.moves, 0.2])
            page.evaluate(
                "() => { const el = document.getElementById('clip-epsilon');"
                " el.value = '0.2'; el.dispatchEvent(new Event('input')); }"
            )
            time.sleep(0.5)
            second = page.evaluate(MOVES_JS, [args.moves, 0.2])
            query = "iterations=200&algorithms=pg&algorithms=ppo&algorithms=ppo-kl"
            first_step = [page.evaluate(FIRST_STEP_JS, query) for _ in range(5)]
            browser.close()

    print(f"initial load of / until every panel drew, {args.loads} loads each (ms):")
    print(
        f"  fresh context (cold cache): median {statistics.median(cold):.0f}, "
        f"runs {', '.join(f'{x:.0f}' for x in cold)}"
    )
    print(
        f"  reload (warm cache):        median {statistics.median(warm):.0f}, "
        f"runs {', '.join(f'{x:.0f}' for x in warm)}"
    )
    for name, xs in (("first pass (server cache cold)", first), ("second pass (cached)", second)):
        print(
            f"slider input -> clip panel redrawn, {len(xs)} moves, {name}: "
            f"p50 {pct(xs, 0.5):.1f} ms, p95 {pct(xs, 0.95):.1f} ms, max {max(xs):.1f} ms"
        )
    print(
        f"lab stream (200 iterations, 3 algorithms): EventSource opened -> first step event "
        f"in the browser: median {statistics.median(first_step):.0f} ms, "
        f"max {max(first_step):.0f} ms over {len(first_step)} runs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
