// The KL panel: the k1 / k2 / k3 estimators of KL(π ‖ π_ref) against the exact KL as a toy
// policy drifts from its reference: sample means with ±1 std bands, the per-token std itself,
// and the expected gradient of each estimator used as a loss against the true gradient.
import { apiUrl, getJSON } from "../api.js";
import { createPanel, layout } from "../panel.js";
import { colourTerms } from "../terms.js";

const PRESETS = {
  close: { kD: 0.5 },
  mid: { kD: 2 },
  far: { kD: 5 },
  few: { kS: 16 },
  many: { kS: 4096 },
};

const STEPS = 41;
// Dark enough for the formula's coloured terms (text contrast >= 4.5:1).
const COLORS = { k1: "#d62728", k2: "#b45309", k3: "#1f4e9c" };
const BAND = { k1: "rgba(214,39,40,0.12)", k2: "rgba(180,83,9,0.14)", k3: "rgba(31,78,156,0.16)" };
const ESTIMATORS = ["k1", "k2", "k3"];

function query(v) {
  return { vocab_size: v.kV, max_drift: v.kD, steps: STEPS, samples: v.kS, seed: v.kSeed };
}

/** The means chart's y range comes from the true KL (what every estimator estimates):
 * [−0.25, 1.6] × its largest value. A noisy estimator's outlier (k3's band when the policy
 * drifts far) leaves the chart instead of squashing the means; "Fit axes" keeps this rule. */
function meanRange(d) {
  const top = Math.max(...d.true_kl, 1e-3);
  return [-0.25 * top, 1.6 * top];
}

function meanChart(d) {
  const traces = [];
  for (const k of ESTIMATORS) {
    const lo = d.mean[k].map((m, i) => m - d.std[k][i]);
    const hi = d.mean[k].map((m, i) => m + d.std[k][i]);
    traces.push(
      { x: d.drift, y: lo, mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false,
        legendgroup: k, name: `${k} − std` },
      { x: d.drift, y: hi, mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: BAND[k],
        hoverinfo: "skip", showlegend: false, legendgroup: k, name: `${k} + std` },
    );
  }
  for (const k of ESTIMATORS) {
    traces.push({ x: d.drift, y: d.mean[k], mode: "lines", name: `${k} mean`, legendgroup: k,
      line: { color: COLORS[k], width: 2 }, hovertemplate: `drift %{x:.2f}: ${k} %{y:.4f}<extra></extra>` });
  }
  traces.push({ x: d.drift, y: d.true_kl, mode: "lines", name: "true KL",
    line: { color: "#1d2433", width: 3, dash: "dash" }, hovertemplate: "drift %{x:.2f}: KL %{y:.4f}<extra></extra>" });
  return {
    traces,
    layout: layout({
      title: { text: `Means ± 1 std, ${d.samples} tokens per drift`, font: { size: 14 } },
      xaxis: { title: { text: "drift of the policy logits" } },
      yaxis: { title: { text: "KL estimate (nats)" }, zeroline: true, range: meanRange(d) },
      height: 400,
    }),
  };
}

function stdChart(d) {
  return {
    traces: ESTIMATORS.map((k) => ({ x: d.drift, y: d.std[k], mode: "lines", name: `${k} std`,
      line: { color: COLORS[k], width: 2 }, hovertemplate: `drift %{x:.2f}: std %{y:.4f}<extra>${k}</extra>` })),
    layout: layout({
      title: { text: "Per-token std (lower = less noise)", font: { size: 14 } },
      xaxis: { title: { text: "drift of the policy logits" } },
      yaxis: { title: { text: "std of one token's estimate" }, rangemode: "tozero" },
      height: 400,
    }),
  };
}

/** [key, label, colour, dash, marker symbol] per estimator's gradient: k2 and k3+ lie on the
 * true gradient and k3 on the reverse KL's, so each gets its own dash and markers to stay
 * visible on top of the line it follows. */
const GRADIENTS = [
  ["k1", "k1", COLORS.k1, "solid", "circle"],
  ["k2", "k2", COLORS.k2, "solid", "square"],
  ["k3", "k3", COLORS.k3, "solid", "diamond"],
  ["abs", "abs (|d|)", "#8c564b", "dot", "triangle-up"],
  ["k3+", "k3+ (k3 value, k2 gradient)", "#2ca02c", "dash", "x"],
];

function gradientChart(d) {
  const traces = [
    { x: d.drift, y: d.true_gradient, mode: "lines", name: "true gradient of KL(π‖π_ref)",
      line: { color: "#1d2433", width: 5 }, opacity: 0.35,
      hovertemplate: "drift %{x:.2f}: true %{y:.4f}<extra></extra>" },
    { x: d.drift, y: d.reverse_kl_gradient, mode: "lines", name: "gradient of reverse KL(π_ref‖π)",
      line: { color: "#888", width: 5, dash: "dot" }, opacity: 0.5,
      hovertemplate: "drift %{x:.2f}: reverse %{y:.4f}<extra></extra>" },
  ];
  for (const [key, label, color, dash, symbol] of GRADIENTS) {
    traces.push({ x: d.drift, y: d.gradient[key], mode: "lines+markers", name: label,
      line: { color, dash, width: 2 }, marker: { symbol, size: 6, maxdisplayed: 12 },
      hovertemplate: `drift %{x:.2f}: ${key} %{y:.4f}<extra></extra>` });
  }
  return {
    traces,
    layout: layout({
      title: { text: "Expected gradient of each estimator used as a loss", font: { size: 14 } },
      xaxis: { title: { text: "drift of the policy logits" } },
      yaxis: { title: { text: "d E[estimate] / d drift" }, zeroline: true },
      legend: { orientation: "h", y: -0.22 },
      height: 420,
    }),
  };
}

/** Readout at the middle and the end of the drift range: bias (mean − true) and std. */
function readout(d) {
  const at = (i) => {
    const cells = ESTIMATORS.map((k) => {
      const bias = d.mean[k][i] - d.true_kl[i];
      return `${k} ${d.mean[k][i].toFixed(3)} (bias ${bias >= 0 ? "+" : "−"}${Math.abs(bias).toFixed(3)}, std ${d.std[k][i].toFixed(3)})`;
    });
    return `<p>drift ${d.drift[i].toFixed(2)}: true KL <strong>${d.true_kl[i].toFixed(3)}</strong> · ${cells.join(" · ")}</p>`;
  };
  const n = d.drift.length;
  return at(Math.floor((n - 1) / 4)) + at(n - 1);
}

async function update(panel, v) {
  const q = query(v);
  const d = await getJSON("/api/v1/kl-drift", q);
  const a = meanChart(d);
  const b = stdChart(d);
  const g = gradientChart(d);
  await Promise.all([
    panel.draw("kl-chart-mean", a.traces, a.layout),
    panel.draw("kl-chart-std", b.traces, b.layout),
    panel.draw("kl-chart-grad", g.traces, g.layout),
  ]);
  panel.root.querySelector("#kl-readout").innerHTML = readout(d);
  const url = apiUrl("/api/v1/kl-drift", q);
  panel.setApiLink(url);
  const gradLink = document.getElementById("kl-grad-api");
  gradLink.href = url;
  gradLink.querySelector("code").textContent = url;
  panel.rendered();
}

// Fixed axes (panel.js): more samples, another seed or a larger drift keep the charts' ranges
// until "Fit axes", so the estimators' noise is compared on one scale.
export default () => {
  const panel = createPanel("kl", {
    presets: PRESETS, update, fixedAxes: ["kl-chart-mean", "kl-chart-std", "kl-chart-grad"],
  });
  // The estimators' formulas name the mean chart's curves, their gradients the gradient chart's.
  colourTerms(panel.root, ESTIMATORS.flatMap((k) => [
    { name: `${k} mean`, color: COLORS[k] }, { name: k, color: COLORS[k] },
  ]));
  return panel;
};
