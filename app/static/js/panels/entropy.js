// The entropy panel: the seed's entropy comparison (random / peaked / near-uniform / maximum log V) as
// bars, the distributions themselves, and entropy against temperature with the current T marked.
import { apiUrl, getJSON } from "../api.js";
import { createPanel, layout } from "../panel.js";

// Log-scale sliders hold log10 of the value.
const PRESETS = {
  cold: { eT: -0.7 },
  hot: { eT: 1 },
  small: { eV: 1 },
  large: { eV: 4.2 },
};

const TOP_K = 50;
const BATCH = 16;

const STYLE = {
  random: { label: "random", short: "random", color: "#1f77b4" },
  peaked: { label: "peaked", short: "peaked", color: "#d62728" },
  near_uniform: { label: "near-uniform", short: "near<br>uniform", color: "#2ca02c" },
  maximum: { label: "maximum (uniform)", short: "uniform<br>(max)", color: "#7f7f7f" },
};
const style = (name) => STYLE[name] || { label: name, short: name, color: "#555" };

function query(v) {
  return {
    vocab_size: Math.round(v.eV),
    batch_size: BATCH,
    seed: v.eSeed,
    temperature: Number(v.eT.toPrecision(4)),
    top_k: TOP_K,
  };
}

function barsChart(data) {
  const names = data.cases.map((c) => style(c.name).short);
  return {
    traces: [{
      type: "bar", x: names, y: data.cases.map((c) => c.entropy),
      marker: { color: data.cases.map((c) => style(c.name).color) },
      text: data.cases.map((c) => c.entropy.toFixed(3)), textposition: "outside", cliponaxis: false,
      customdata: data.cases.map((c) => style(c.name).label),
      hovertemplate: "%{customdata}: %{y:.4f} nats<extra></extra>", name: "mean entropy",
    }],
    layout: layout({
      title: { text: `Mean entropy over ${BATCH} rows<br>dashed: log V = ${data.max_entropy.toFixed(3)}`,
        font: { size: 14 } },
      margin: { l: 48, r: 12, t: 56, b: 48 },
      xaxis: { tickangle: 0 },
      yaxis: { title: { text: "entropy H (nats)" }, range: [0, data.max_entropy * 1.18] },
      shapes: [{ type: "line", xref: "paper", yref: "y", x0: 0, x1: 1, y0: data.max_entropy,
        y1: data.max_entropy, line: { color: "#1d2433", dash: "dash", width: 1.5 } }],
      showlegend: false,
      height: 360,
    }),
  };
}

/** Log-axis ticks: about six decades labelled, whatever the spread of the probabilities. */
function logAxis(cases) {
  const positive = cases.flatMap((c) => c.example_probs).filter((p) => p > 0);
  const low = Math.floor(Math.log10(Math.min(...positive)));
  return { range: [low - 0.2, 0.2], dtick: Math.max(1, Math.ceil(-low / 6)) };
}

function probsChart(data) {
  const traces = data.cases.map((c) => ({
    x: c.example_probs.map((_, i) => i + 1), y: c.example_probs, mode: "lines+markers",
    name: `${style(c.name).label} (rest ${(100 * c.example_tail_mass).toFixed(1)}%)`,
    line: { color: style(c.name).color, shape: "hv", width: 2 }, marker: { size: 4 },
    hovertemplate: "rank %{x}: p = %{y:.3g}<extra></extra>",
  }));
  return {
    traces,
    layout: layout({
      title: { text: `Row 0's ${TOP_K} largest probabilities`, font: { size: 14 } },
      xaxis: { title: { text: "token rank" } },
      yaxis: { title: { text: "probability (log scale)" }, type: "log", exponentformat: "power", automargin: true,
        ...logAxis(data.cases) },
      legend: { orientation: "h", y: -0.25 },
      height: 360,
    }),
  };
}

function tempChart(data, temperature) {
  const curve = data.temperature_curve;
  const traces = data.cases.map((c) => ({
    x: curve.temperature, y: curve.entropy[c.name], mode: "lines", name: style(c.name).label,
    line: { color: style(c.name).color, width: 2 },
    hovertemplate: "T = %{x:.3g}: H = %{y:.3f}<extra>%{fullData.name}</extra>",
  }));
  traces.push({
    x: data.cases.map(() => temperature), y: data.cases.map((c) => c.per_row[0]), mode: "markers",
    name: `at T = ${temperature.toPrecision(3)}`,
    marker: { size: 10, color: data.cases.map((c) => style(c.name).color), line: { color: "#1d2433", width: 1.5 } },
    hovertemplate: "T = %{x:.3g}: H = %{y:.3f}<extra></extra>",
  });
  return {
    traces,
    layout: layout({
      title: { text: "Entropy of row 0 against temperature", font: { size: 14 } },
      xaxis: { title: { text: "temperature T (log scale)" }, type: "log",
        tickvals: [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20] },
      legend: { orientation: "h", y: -0.28 },
      yaxis: { title: { text: "entropy H (nats)" }, range: [0, data.max_entropy * 1.08] },
      shapes: [
        { type: "line", xref: "x", yref: "y domain", x0: temperature, x1: temperature, y0: 0, y1: 1,
          line: { color: "#555", dash: "dash", width: 1.5 } },
        { type: "line", xref: "paper", yref: "y", x0: 0, x1: 1, y0: data.max_entropy, y1: data.max_entropy,
          line: { color: "#1d2433", dash: "dot", width: 1 } },
      ],
      height: 360,
    }),
  };
}

function readout(data, temperature) {
  const parts = data.cases.map((c) =>
    `${style(c.name).label} <strong>${c.entropy.toFixed(3)}</strong> (${(100 * c.entropy / data.max_entropy).toFixed(0)}% of log V)`);
  return `<p>V = ${data.vocab_size}, T = ${temperature.toPrecision(3)}: ${parts.join(" · ")}.</p>`;
}

async function update(panel, v) {
  const q = query(v);
  // The vocabulary is an integer; show the rounded value the API receives.
  panel.root.querySelector("#entropy-vocab-out").textContent = String(q.vocab_size);
  panel.controls.element("eV").setAttribute("aria-valuetext", String(q.vocab_size));
  const data = await getJSON("/api/v1/entropy-comparison", q);
  const a = barsChart(data);
  const b = probsChart(data);
  const c = tempChart(data, q.temperature);
  await Promise.all([
    panel.draw("entropy-chart-bars", a.traces, a.layout),
    panel.draw("entropy-chart-probs", b.traces, b.layout),
    panel.draw("entropy-chart-temp", c.traces, c.layout),
  ]);
  panel.root.querySelector("#entropy-readout").innerHTML = readout(data, q.temperature);
  panel.setApiLink(apiUrl("/api/v1/entropy-comparison", q));
  panel.rendered();
}

export default () => createPanel("entropy", { presets: PRESETS, update });
