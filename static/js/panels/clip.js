// Panel 1: the clipped objective for A > 0 and A < 0 side by side, with d objective / d r
// underneath, the trust region shaded, and a marker at a chosen ratio.
import { apiUrl, getJSON } from "../api.js";
import { createPanel, layout } from "../panel.js";

const PRESETS = {
  neg: { r: 2, adv: 1 },
  asym: { asym: true, epsl: 0.1, epsh: 0.3 },
  dual: { dual: true, c: 3, r: 2.2 },
  tight: { eps: 0.05 },
};

function query(v, sign) {
  return {
    epsilon: v.eps,
    advantage: sign * v.adv,
    ratio_min: 0,
    ratio_max: 2.5,
    points: 101,
    epsilon_low: v.asym ? v.epsl : undefined,
    epsilon_high: v.asym ? v.epsh : undefined,
    dual_clip: v.dual ? v.c : undefined,
    ratio: v.r,
  };
}

function chart(data, title) {
  const b = data.clip_bounds;
  const traces = [
    { x: data.ratio, y: data.unclipped, name: "r·A (unclipped)", mode: "lines",
      line: { dash: "dash", color: "#d62728" } },
    { x: data.ratio, y: data.clipped, name: "clip(r)·A", mode: "lines",
      line: { dash: "dot", color: "#ff7f0e" } },
    { x: data.ratio, y: data.objective, name: "PPO objective", mode: "lines",
      line: { color: "#1f4e9c", width: 3 } },
    { x: data.ratio, y: data.gradient, name: "d objective / d r", mode: "lines",
      line: { color: "#2ca02c", shape: "hv" }, xaxis: "x2", yaxis: "y2" },
    { x: [data.point.ratio], y: [data.point.objective], name: "marker", mode: "markers",
      marker: { size: 11, color: data.point.clipped ? "#d62728" : "#1f4e9c" }, showlegend: false },
  ];
  const region = (yref) => ({
    type: "rect", xref: yref === "y" ? "x" : "x2", yref: `${yref} domain`, x0: b.low, x1: b.high,
    y0: 0, y1: 1, fillcolor: "rgba(31,78,156,0.08)", line: { width: 0 },
  });
  const vline = (x, yref, color, dash) => ({
    type: "line", xref: yref === "y" ? "x" : "x2", yref: `${yref} domain`, x0: x, x1: x,
    y0: 0, y1: 1, line: { color, dash, width: 1.5 },
  });
  return {
    traces,
    layout: layout({
      title: { text: title, font: { size: 14 } },
      grid: { rows: 2, columns: 1, pattern: "independent" },
      xaxis: { anchor: "y", matches: "x2", showticklabels: false },
      yaxis: { title: { text: "objective" }, domain: [0.36, 1] },
      xaxis2: { anchor: "y2", title: { text: "probability ratio r = π_new / π_old" } },
      yaxis2: { title: { text: "gradient" }, domain: [0, 0.26], zeroline: true },
      shapes: [region("y"), region("y2"), vline(1, "y", "#888", "dot"),
        vline(data.point.ratio, "y", "#555", "dash"), vline(data.point.ratio, "y2", "#555", "dash")],
      height: 420,
    }),
  };
}

function readout(sign, data) {
  const p = data.point;
  const state = p.clipped ? "clipped — gradient 0, no push" : "not clipped — gradient flows";
  return `<p><strong>A ${sign > 0 ? ">" : "<"} 0</strong> at r = ${p.ratio.toFixed(2)}: ` +
    `objective ${p.objective.toFixed(3)}, d/dr ${p.gradient.toFixed(3)} · <span class="${p.clipped ? "bad" : "good"}">${state}</span></p>`;
}

async function update(panel, v) {
  for (const key of ["epsl", "epsh"]) panel.controls.element(key).disabled = !v.asym;
  panel.controls.element("c").disabled = !v.dual;
  const [pos, neg] = await Promise.all([
    getJSON("/api/v1/clip-objective", query(v, 1)),
    getJSON("/api/v1/clip-objective", query(v, -1)),
  ]);
  const a = chart(pos, `A = +${v.adv} (good action: do more)`);
  const b = chart(neg, `A = −${v.adv} (bad action: do less)`);
  await Promise.all([
    panel.draw("clip-chart-pos", a.traces, a.layout),
    panel.draw("clip-chart-neg", b.traces, b.layout),
  ]);
  panel.root.querySelector("#clip-readout").innerHTML = readout(1, pos) + readout(-1, neg);
  panel.setApiLink(apiUrl("/api/v1/clip-objective", query(v, 1)));
  panel.rendered();
}

export default () => createPanel("clip", { presets: PRESETS, update });
