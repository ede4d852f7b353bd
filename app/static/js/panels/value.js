// The value panel: the value loss against the prediction V, unclipped and clipped around V_old,
// in the seed's / CleanRL's convention (max of the two errors) and SB3's (clipped error only).
import { apiUrl, getJSON } from "../api.js";
import { dragMarker } from "../drag.js";
import { createPanel, layout } from "../panel.js";
import { colourTerms } from "../terms.js";

const PRESETS = {
  near: { vR: 0.1, vV: 0.5 },
  far: { vR: 2.5, vV: 1 },
  over: { vR: 1, vV: 2.5 },
  wide: { vClip: 1.5 },
};

const MARGIN = 1.5;
/** The curves span every V the sliders can reach (R, V_old ± c and V, plus the margin), so the
 * fixed axes never show a curve cut short; the axes themselves fit around R, the band and V. */
const DOMAIN = [-6.5, 6.5];

/** The curves by name: the charts and the formula's coloured terms read them (colours dark
 * enough for text: contrast >= 4.5:1). */
const UNCLIPPED = { name: "(V − R)² unclipped", color: "#d62728", dash: "dash" };
const MAX = { name: "max(unclipped, clipped)", color: "#1f4e9c", dash: "solid" };
const SB3 = { name: "(V_clip − R)² only", color: "#7e57c2", dash: "solid" };

/** The fit view: V from the band, R and the marker, with a margin; the loss from 0 to the
 * curves' highest point inside it. The panel keeps it while knobs move, until "Fit axes". */
function fitRanges(data, v) {
  const lo = Math.min(v.vR, v.vOld - v.vClip, v.vV) - MARGIN;
  const hi = Math.max(v.vR, v.vOld + v.vClip, v.vV) + MARGIN;
  let top = 0;
  data.prediction.forEach((x, i) => {
    if (x >= lo && x <= hi) top = Math.max(top, data.unclipped[i], data.clipped_max[i], data.clipped_only[i]);
  });
  return { x: [lo, hi], y: [0, 1.08 * (top || 1)] };
}

function query(v) {
  return {
    returns: v.vR,
    old_value: v.vOld,
    clip_range: v.vClip,
    prediction_min: DOMAIN[0],
    prediction_max: DOMAIN[1],
    points: 521,
  };
}

/** The losses at the marker V: the endpoint has no single-point query, so a two-point curve from V. */
function pointQuery(v) {
  return { returns: v.vR, old_value: v.vOld, clip_range: v.vClip,
    prediction_min: v.vV, prediction_max: v.vV + 1e-9, points: 2 };
}

function chart(data, at, v, key, title, curve, fit) {
  const traces = [
    { x: data.prediction, y: data.unclipped, name: UNCLIPPED.name, mode: "lines",
      line: { dash: UNCLIPPED.dash, color: UNCLIPPED.color } },
    { x: data.prediction, y: data[key], name: curve.name,
      mode: "lines", line: { color: curve.color, dash: curve.dash, width: 3 } },
    { x: [at.prediction[0]], y: [at[key][0]], name: "marker", mode: "markers",
      marker: { size: 11, color: "#1d2433" }, showlegend: false,
      hovertemplate: "V = %{x:.2f}<br>loss %{y:.3f}<extra></extra>" },
  ];
  const vline = (x, color, dash) => ({ type: "line", xref: "x", yref: "y domain", x0: x, x1: x,
    y0: 0, y1: 1, line: { color, dash, width: 1.5 } });
  return {
    traces,
    layout: layout({
      title: { text: title, font: { size: 14 } },
      xaxis: { title: { text: "prediction V" }, range: fit.x },
      yaxis: { title: { text: "loss" }, range: fit.y },
      shapes: [
        { type: "rect", xref: "x", yref: "y domain", x0: data.clip_low, x1: data.clip_high, y0: 0, y1: 1,
          fillcolor: "rgba(31,78,156,0.10)", line: { width: 0 } },
        vline(v.vOld, "#1f4e9c", "dot"),
        vline(v.vR, "#1a7f37", "solid"),
        vline(v.vV, "#555", "dash"),
      ],
      annotations: [
        { x: v.vR, y: 1, xref: "x", yref: "y domain", text: "R", showarrow: false, yanchor: "bottom",
          font: { color: "#1a7f37" } },
        { x: v.vOld, y: 1, xref: "x", yref: "y domain", text: "V_old", showarrow: false, yanchor: "bottom",
          xanchor: v.vOld < v.vR ? "right" : "left", font: { color: "#1f4e9c" } },
      ],
      height: 380,
    }),
  };
}

function readout(v, at) {
  const inside = v.vV >= at.clip_low && v.vV <= at.clip_high;
  const plain = at.unclipped[0];
  const maxLoss = at.clipped_max[0];
  // The max form is flat in V where the clipped error wins outside the band.
  const maxFlat = !inside && maxLoss > plain + 1e-12;
  const fmt = (x) => x.toFixed(3);
  const state = (flat) => (flat
    ? '<span class="bad">clipped branch — gradient 0, V does not move</span>'
    : '<span class="good">gradient flows toward R</span>');
  return `<p>At V = ${v.vV.toFixed(2)} (band [${at.clip_low.toFixed(2)}, ${at.clip_high.toFixed(2)}]): ` +
    `unclipped ${fmt(plain)}.</p>` +
    `<p><strong>seed / CleanRL (max)</strong>: ${fmt(maxLoss)} · ${state(maxFlat)}</p>` +
    `<p><strong>SB3 (clipped only)</strong>: ${fmt(at.clipped_only[0])} · ${state(!inside)}</p>`;
}

async function update(panel, v) {
  const q = query(v);
  const [data, at] = await Promise.all([
    getJSON("/api/v1/value-loss-curve", q),
    getJSON("/api/v1/value-loss-curve", pointQuery(v)),
  ]);
  const fit = fitRanges(data, v);
  const a = chart(data, at, v, "clipped_max", "seed / CleanRL: max of the two errors", MAX, fit);
  const b = chart(data, at, v, "clipped_only", "Stable-Baselines3: clipped error only", SB3, fit);
  await Promise.all([
    panel.draw("value-chart-max", a.traces, a.layout),
    panel.draw("value-chart-sb3", b.traces, b.layout),
  ]);
  panel.root.querySelector("#value-readout").innerHTML = readout(v, at);
  panel.setApiLink(apiUrl("/api/v1/value-loss-curve", q));
  panel.rendered();
}

// Fixed axes (panel.js): moving the marker V, R or the band no longer rescales the charts.
export default () => {
  const panel = createPanel("value", {
    presets: PRESETS, update, fixedAxes: ["value-chart-max", "value-chart-sb3"],
  });
  colourTerms(panel.root, [UNCLIPPED, MAX, SB3]);
  for (const id of ["value-chart-max", "value-chart-sb3"]) {
    dragMarker(document.getElementById(id), panel.controls.element("vV"), ["xaxis"]);
  }
  return panel;
};
