"""The page in real headless Chromium: initial load, first visible chart, page length, and
slider-to-redraw latency.

    .venv/bin/python benchmarks/page_bench.py                 # starts its own server
    .venv/bin/python benchmarks/page_bench.py --moves 50 --loads 5

Load: from navigation start to every panel drawn (``window.__ppo.firstRender``), in a fresh
browser context (cold HTTP cache) and on reload (warm). First visible chart: in a fresh context
at 1400 x 900, from navigation start to the first frame painted after a chart inside the
viewport was drawn (an init script listens to ``panel:rendered``). Layout: the page's height at
1400 x 900 and on a 390 x 844 touch phone, and where the first chart starts. Interaction: the
clip panel's epsilon slider moves, measured inside the page with ``performance.now()`` from the
``input`` event to the panel's ``panel:rendered`` event (its one API answer, both signs of A,
in hand; one ``Plotly.react`` done) and to the frame that shows the new chart painted. Passes:
one step at a time (the page has prefetched the neighbouring steps' curves while the previous
ones were on screen) with idle time between moves (first against a cold server cache, then
warm), then back to back (each move also waits for the previous frame); and pseudo-random jumps
across the range (never one step: every move fetches its curves), spaced and back to back. Lab:
time from opening the event stream to its first ``step``.
"""

from __future__ import annotations

import argparse
import contextlib
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

# One move: set the slider, fire `input`, wait for the panel's `panel:rendered` (API answered,
# Plotly drew), then for the frame that shows it: `requestAnimationFrame` runs just before that
# frame's style / layout / paint, and a task queued from it runs once they are done. `gap_ms`
# of idle time separates moves (a hand on a slider); with 0 they run back to back, so each
# move also waits for the previous frame to finish (a sustained drag at full speed).
MOVES_JS = """
async ([n, start, gapMs, jumps, shift]) => {
  const el = document.getElementById("clip-epsilon");
  const marker = document.getElementById("clip-ratio");
  // jumps: eps follows a fixed shuffle of 0.05 ... 0.85 (no value twice, never one step from
  // the last) while the marker r is set, without an event of its own, to a walk over 0 ... 2.5
  // in strides of 0.37: the query drawn is then (almost always) one the page never asked for
  // nor prefetched, and, |A| staying put, the axes do not move (as in a jump of eps alone).
  const order = Array.from({ length: 81 }, (_, k) => (5 + k) / 100);
  let seed = 12345;
  for (let k = order.length - 1; k > 0; k--) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    const j = seed % (k + 1);
    [order[k], order[j]] = [order[j], order[k]];
  }
  const jumpsTaken = order.filter((v, k) => k === 0 || Math.abs(v - order[k - 1]) > 0.015);
  let current = start;
  performance.setResourceTimingBufferSize(100000);  // 250 by default: a pass sends more
  performance.clearResourceTimings();
  const startedAt = performance.now();
  const painted = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const rows = [];
  for (let i = 0; i < n; i++) {
    const rendered = new Promise((resolve) => {
      const on = (e) => {
        if (e.detail.panel !== "clip") return;
        document.removeEventListener("panel:rendered", on);
        resolve(performance.now());
      };
      document.addEventListener("panel:rendered", on);
    });
    current = jumps ? jumpsTaken[i % jumpsTaken.length] : start + 0.01 * (i + 1);
    const value = current.toFixed(2);
    if (jumps) marker.value = String((((i + shift) * 37) % 251) / 100);
    const t0 = performance.now();
    el.value = value;
    el.dispatchEvent(new Event("input", { bubbles: true }));
    const t1 = await rendered;
    await painted();
    // Did this move wait on the network? Its own request starts after t0; a prefetched or
    // remembered answer has none.
    const own = `epsilon=${Number(value)}&advantage=1&`;
    const fetched = performance.getEntriesByType("resource").some(
      (r) => r.name.includes(own) && r.name.endsWith(`ratio=${Number(marker.value)}`)
        && r.startTime >= t0 && r.startTime <= t1);
    rows.push([t1 - t0, performance.now() - t0, fetched]);
    if (gapMs) await sleep(gapMs);
  }
  const requests = performance.getEntriesByType("resource").filter(
    (r) => r.name.includes("/api/v1/clip-objective") && r.startTime >= startedAt).length;
  return { rows, requests };
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


# Runs before the page's own scripts (an init script): the time, after navigation start, of the
# first frame painted after a panel drew a chart that is inside the viewport.
FIRST_VISIBLE_JS = """
window.__firstVisible = 0;
document.addEventListener("panel:rendered", (event) => {
  if (window.__firstVisible) return;
  const charts = document.querySelectorAll(`#panel-${event.detail.panel} .js-plotly-plot`);
  const inView = [...charts].some((c) => {
    const r = c.getBoundingClientRect();
    return r.height > 0 && r.top < innerHeight && r.bottom > 0;
  });
  if (inView) requestAnimationFrame(() => setTimeout(() => {
    window.__firstVisible = window.__firstVisible || performance.now();
  }, 0));
});
"""

TOUCH = {"has_touch": True, "is_mobile": True}

# Panels off screen may be content-visibility: auto (sized by an estimate until shown): lay
# them all out for real before measuring.
LAYOUT_JS = """() => {
  for (const p of document.querySelectorAll('.panel')) p.style.contentVisibility = 'visible';
  const charts = [...document.querySelectorAll('.chart')].filter(
    (c) => c.getBoundingClientRect().height > 0);
  const first = charts.length ? charts[0].getBoundingClientRect().top + scrollY : null;
  return { height: document.documentElement.scrollHeight, firstChart: Math.round(first),
           firstChartId: charts.length ? charts[0].id : null };
}"""


def wait_value(page: object, expression: str) -> float:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        value = page.evaluate(f"() => {expression}")  # type: ignore[attr-defined]
        if value:
            return float(value)
        time.sleep(0.01)
    raise SystemExit(f"timed out: {expression}")


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
    parser.add_argument("--gap", type=int, default=100, help="idle ms between spaced moves")
    parser.add_argument(
        "--url", help="benchmark a server already running there (e.g. another commit)"
    )
    args = parser.parse_args()
    if not 1 <= args.moves <= 70:
        parser.error("--moves must be in [1, 70]: the steps run from eps 0.21 to the 0.9 maximum")

    with contextlib.ExitStack() as stack:
        if args.url:
            base = args.url.rstrip("/")
        else:
            base = stack.enter_context(running_server()).base
            time.sleep(12)  # analyzer workers finish importing; plotly.js compressed
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            first_visible = []
            for _ in range(args.loads):
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                context.add_init_script(FIRST_VISIBLE_JS)
                page = context.new_page()
                page.goto(base + "/")
                first_visible.append(wait_value(page, "window.__firstVisible"))
                context.close()
            layouts = {}
            for name, options in (
                ("1400 x 900", {"viewport": {"width": 1400, "height": 900}}),
                ("390 x 844 phone", {"viewport": {"width": 390, "height": 844}, **TOUCH}),
            ):
                context = browser.new_context(**options)
                page = context.new_page()
                page.goto(base + "/")
                wait_drawn(page)
                time.sleep(0.5)
                layouts[name] = page.evaluate(LAYOUT_JS)
                context.close()
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
            passes = {}
            # The jumps passes walk the marker from different starts, so their queries differ.
            for name, gap, jumps, shift in (
                ("steps, spaced, server cache cold", args.gap, False, 0),
                ("steps, spaced, page cache warm", args.gap, False, 0),
                ("steps, back to back", 0, False, 0),
                ("jumps, spaced", args.gap, True, 0),
                ("jumps, back to back", 0, True, 100),
            ):
                page.evaluate(
                    "() => { for (const [id, v] of"
                    " [['clip-ratio', '1.3'], ['clip-epsilon', '0.2']])"
                    " { const el = document.getElementById(id); el.value = v;"
                    " el.dispatchEvent(new Event('input')); } }"
                )
                time.sleep(0.5)
                started = time.perf_counter()
                result = page.evaluate(MOVES_JS, [args.moves, 0.2, gap, jumps, shift])
                passes[name] = (result["rows"], result["requests"], time.perf_counter() - started)
            query = "iterations=200&algorithms=pg&algorithms=ppo&algorithms=ppo-kl"
            first_step = [page.evaluate(FIRST_STEP_JS, query) for _ in range(5)]
            browser.close()

    print(
        f"first visible chart (1400 x 900, fresh context): navigation start -> first frame "
        f"painted with a chart in view: median {statistics.median(first_visible):.0f} ms, runs "
        f"{', '.join(f'{x:.0f}' for x in first_visible)}"
    )
    for name, shape in layouts.items():
        print(
            f"page at {name}: {shape['height']} px tall, first chart ({shape['firstChartId']}) "
            f"at y = {shape['firstChart']}"
        )
    print(f"initial load of / until every panel drew, {args.loads} loads each (ms):")
    print(
        f"  fresh context (cold cache): median {statistics.median(cold):.0f}, "
        f"runs {', '.join(f'{x:.0f}' for x in cold)}"
    )
    print(
        f"  reload (warm cache):        median {statistics.median(warm):.0f}, "
        f"runs {', '.join(f'{x:.0f}' for x in warm)}"
    )
    print(
        f"clip panel, epsilon slider, {args.moves} moves per pass (ms; spaced = {args.gap} ms "
        "idle between moves):"
    )
    print(
        "| pass | input -> drawn p50 / p95 | input -> painted p50 / p95 / max | moves/s "
        "| API requests | moves that fetched |"
    )
    print("|---|---|---|---|---|---|")
    for name, (rows, requests, seconds) in passes.items():
        rate = len(rows) / (seconds - len(rows) * (args.gap if "spaced" in name else 0) / 1000)
        fetched = [r for r in rows if r[2]]
        if name.startswith("jumps"):
            rows = fetched  # the jumps passes are about moves that wait on the network
        drawn = [r[0] for r in rows]
        painted = [r[1] for r in rows]
        print(
            f"| {name} | {pct(drawn, 0.5):.1f} / {pct(drawn, 0.95):.1f} | "
            f"{pct(painted, 0.5):.1f} / {pct(painted, 0.95):.1f} / {max(painted):.1f} | "
            f"{rate:.0f} | {requests} | {len(fetched)} of {len(passes[name][0])} |"
        )
    print("(jumps rows: statistics over the moves that fetched only)")
    print(
        f"lab stream (200 iterations, 3 algorithms): EventSource opened -> first step event "
        f"in the browser: median {statistics.median(first_step):.0f} ms, "
        f"max {max(first_step):.0f} ms over {len(first_step)} runs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
