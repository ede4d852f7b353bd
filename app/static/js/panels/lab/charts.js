// The lab's five charts: one line per algorithm against the iteration, extended as a run's
// iterations are shown, with a vertical marker at a scrubbed iteration.
import { layout } from "../../panel.js";

/** The trainers: API name, control key, label (also the traces' names) and colour. */
export const ALGORITHMS = [
  { name: "pg", key: "lPg", label: "PG", color: "#d62728" },
  { name: "ppo", key: "lPpo", label: "PPO", color: "#1f4e9c" },
  { name: "ppo-kl", key: "lPkl", label: "PPO + KL", color: "#1a7f37" },
];
export const BY_NAME = Object.fromEntries(ALGORITHMS.map((a) => [a.name, a]));

export const CHARTS = [
  { id: "lab-chart-reward", metric: "reward", title: "Mean reward", y: "reward", label: "Reward" },
  { id: "lab-chart-kl-old", metric: "kl_old", title: "KL per update (new ‖ old), log axis",
    y: "nats per word", log: true, label: "KL per update" },
  { id: "lab-chart-kl-ref", metric: "kl_ref", title: "KL to the reference", y: "nats per word",
    label: "KL to reference" },
  { id: "lab-chart-entropy", metric: "entropy", title: "Entropy", y: "nats per word", label: "Entropy" },
  { id: "lab-chart-clip", metric: "clip_fraction", title: "Clip fraction (pg: where PPO would clip)",
    y: "share of words", range: [0, 1], label: "Clip fraction" },
];

function chartLayout(chart, iterations) {
  const yaxis = { title: { text: chart.y } };
  if (chart.log) {
    yaxis.type = "log";
    yaxis.exponentformat = "power";
  }
  if (chart.range) yaxis.range = chart.range;
  return layout({
    title: { text: chart.title, font: { size: 14 } },
    xaxis: { title: { text: "iteration" }, range: [0, Math.max(iterations - 1, 1)] },
    yaxis,
    height: 300,
    margin: { l: 56, r: 12, t: 36, b: 40 },
    legend: { orientation: "h", y: -0.28 },
  });
}

function emptyTraces(algorithms) {
  return algorithms.map((name) => ({
    x: [], y: [], mode: "lines", name: BY_NAME[name].label,
    line: { color: BY_NAME[name].color, width: 2 },
    hovertemplate: `it %{x}: %{y:.4g}<extra>${BY_NAME[name].label}</extra>`,
  }));
}

export function drawEmpty(panel, algorithms, iterations) {
  return Promise.all(CHARTS.map((c) => panel.draw(c.id, emptyTraces(algorithms), chartLayout(c, iterations))));
}

/** Add the `steps` (stream events) of `algorithms` to the end of every chart's lines. */
export function extendCharts(algorithms, steps) {
  const indices = algorithms.map((_, i) => i);
  return Promise.all(CHARTS.map((c) => window.Plotly.extendTraces(c.id, {
    x: algorithms.map(() => steps.map((p) => p.iteration)),
    y: algorithms.map((name) => steps.map((p) => p.metrics[name][c.metric])),
  }, indices)));
}

/** A vertical line at iteration `at` on every chart (none for null). */
export function markIteration(at) {
  const shapes = at === null ? [] : [{
    type: "line", xref: "x", yref: "paper", x0: at, x1: at, y0: 0, y1: 1,
    line: { color: "#1d2433", width: 1.5, dash: "dot" },
  }];
  return Promise.all(CHARTS.map((c) => {
    const div = document.getElementById(c.id);
    const had = (div.layout && div.layout.shapes) || [];
    if (had.length === 0 && shapes.length === 0) return null;
    if (had.length === 1 && shapes.length === 1 && had[0].x0 === at) return null;
    return window.Plotly.relayout(c.id, { shapes });
  }));
}
