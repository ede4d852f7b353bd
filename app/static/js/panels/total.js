// The total-loss panel: the seed's total loss on its reproducible sample batch, as a breakdown (policy,
// vf_coef × value, −entropy_coef × entropy, total) that moves with the coefficients, plus the
// batch's diagnostics.
import { apiUrl, getJSON } from "../api.js";
import { createPanel, layout } from "../panel.js";

const PRESETS = {
  value: { vf: 2 },
  explore: { ent: 0.2 },
  tight: { eps: 0.05 },
  batch: { tSeed: 7 },
};

const DIAGNOSTICS = [
  ["clip_fraction", "clip fraction", "share of tokens where the clipped branch is taken"],
  ["ratio_outside_fraction", "ratio outside [1−ε, 1+ε]", "CleanRL's clipfrac"],
  ["approx_kl", "approx KL k1", "mean(old − new log-prob)"],
  ["approx_kl_k2", "approx KL k2", "mean((log r)²/2)"],
  ["approx_kl_k3", "approx KL k3", "mean((r − 1) − log r)"],
  ["ratio_min", "ratio min", ""],
  ["ratio_mean", "ratio mean", ""],
  ["ratio_max", "ratio max", ""],
  ["explained_variance", "explained variance", "1 − Var(R − V)/Var(R)"],
];

function query(v) {
  return { seed: v.tSeed, clip_ratio: v.eps, vf_coef: v.vf, entropy_coef: v.ent };
}

const fmt = (x) => (x === null || x === undefined ? "—" : Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3)
  ? x.toExponential(2) : x.toFixed(4));

/** A waterfall drawn with bars (the cartesian plotly.js bundle has no waterfall trace): each
 * term floats from the running sum before it, the total stands on zero, dotted connectors. */
function chart(b, v) {
  const labels = ["policy loss", `c₁ × value (${v.vf})`, `−c₂ × entropy (${v.ent})`, "total"];
  const terms = [b.policy_loss, b.value_term, b.entropy_term];
  const base = [];
  let sum = 0;
  for (const t of terms) {
    base.push(sum);
    sum += t;
  }
  const values = [...terms, b.total_loss];
  const ends = [...terms.map((t, i) => base[i] + t), b.total_loss];
  const connectors = ends.slice(0, -1).map((y, i) => ({
    type: "line", xref: "x", yref: "y", x0: i + 0.4, x1: i + 0.6, y0: y, y1: y,
    line: { color: "#999", dash: "dot", width: 1 },
  }));
  return {
    traces: [{
      type: "bar", x: labels, y: values, base: [...base, 0],
      marker: { color: values.map((y, i) => (i === 3 ? "#1f4e9c" : y >= 0 ? "#d62728" : "#2ca02c")) },
      text: values.map((y) => y.toFixed(3)), textposition: "outside", cliponaxis: false,
      hovertext: values.map((y) => y.toFixed(4)),
      hovertemplate: "%{x}: %{hovertext}<extra></extra>", name: "breakdown",
    }],
    layout: layout({
      title: { text: `Total loss = ${b.total_loss.toFixed(4)}`, font: { size: 14 } },
      yaxis: { title: { text: "contribution to the loss" }, zeroline: true },
      xaxis: { automargin: true, type: "category" },
      shapes: connectors,
      showlegend: false,
      height: 380,
      margin: { l: 56, r: 12, t: 40, b: 64 },
    }),
  };
}

function table(b, d) {
  const raw = [
    ["policy loss L<sup>CLIP</sup>", b.policy_loss],
    ["value loss L<sup>V</sup> (unweighted)", b.value_loss],
    ["entropy H (unweighted)", b.entropy],
  ].map(([name, x]) => `<tr><th scope="row">${name}</th><td>${fmt(x)}</td><td></td></tr>`);
  const diag = DIAGNOSTICS.map(([key, name, note]) =>
    `<tr><th scope="row">${name}</th><td>${fmt(d[key])}</td><td>${note}</td></tr>`);
  return `<table><caption>The batch: raw terms and diagnostics</caption>` +
    `<thead><tr><th scope="col">quantity</th><th scope="col">value</th><th scope="col">meaning</th></tr></thead>` +
    `<tbody>${raw.join("")}${diag.join("")}</tbody></table>`;
}

function readout(b) {
  const parts = [["policy", b.policy_loss], ["value term", b.value_term], ["entropy term", b.entropy_term]];
  const big = parts.reduce((m, p) => (Math.abs(p[1]) > Math.abs(m[1]) ? p : m));
  return `<p>Total <strong>${b.total_loss.toFixed(4)}</strong> = ${b.policy_loss.toFixed(4)} ` +
    `+ ${b.value_term.toFixed(4)} ${b.entropy_term < 0 ? "−" : "+"} ${Math.abs(b.entropy_term).toFixed(4)}; ` +
    `the largest share is the <strong>${big[0]}</strong>.</p>`;
}

async function update(panel, v) {
  const q = query(v);
  const data = await getJSON("/api/v1/loss/sample", q);
  const c = chart(data.breakdown, v);
  await panel.draw("total-chart", c.traces, c.layout);
  panel.root.querySelector("#total-diagnostics").innerHTML = table(data.breakdown, data.diagnostics);
  panel.root.querySelector("#total-readout").innerHTML = readout(data.breakdown);
  panel.setApiLink(apiUrl("/api/v1/loss/sample", q));
  panel.rendered();
}

// Fixed axes (panel.js): the loss axis of the first draw stays while c1, c2 or ε move, so a
// larger coefficient draws a taller bar instead of relabelled ticks ("Fit axes" re-fits).
export default () => createPanel("total", { presets: PRESETS, update, fixedAxes: ["total-chart"] });
