// The clip panel: the clipped objective for A > 0 and A < 0 side by side, with d objective / d r
// underneath, the trust region shaded, and a marker at a chosen ratio.
import { apiUrl, getJSON, prefetch } from "../api.js";
import { dragMarker } from "../drag.js";
import { createPanel, layout, NARROW_PX, redrawAcrossBreakpoint } from "../panel.js";
import { colourTerms } from "../terms.js";

const PRESETS = {
  neg: { r: 2, adv: 1 },
  asym: { asym: true, epsl: 0.1, epsh: 0.3 },
  dual: { dual: true, c: 2, r: 2.2 },
  tight: { eps: 0.05 },
};

/** The ratio axis: [0, 2.5], widened with dual clip so that r = c, where it binds, shows. */
function ratioMax(v) {
  return v.dual ? Math.max(2.5, Math.ceil((v.c + 0.5) * 2) / 2) : 2.5;
}

/** Both signs of A come in one answer ({positive, negative}: /clip-objective for +|A| and
 * -|A|): one request per move, not two (a jump waited on the slower of two). */
const CURVES_URL = "/api/v1/clip-objective/both-signs";

function query(v) {
  return {
    epsilon: v.eps,
    advantage: v.adv,
    ratio_min: 0,
    ratio_max: ratioMax(v),
    points: 101,
    epsilon_low: v.asym ? v.epsl : undefined,
    epsilon_high: v.asym ? v.epsh : undefined,
    dual_clip: v.dual ? v.c : undefined,
    ratio: v.r,
  };
}

// A > 0 on the left, A < 0 on the right, in one figure: one Plotly.react per update. The figure
// is kept lean because a full Plotly redraw costs about 1 ms per axis, tick label set and shape
// here: axis ranges are fixed from the data's extent (it depends on |A| and the ratio range, not
// on ε, so the axes do not move with ε), ticks are few, and the legend is HTML. What a slider
// moves (the curves, the marker, the trust region and the marker's line) is all trace data, and
// the layout stays the same, so that such a move redraws the traces alone (panel.js,
// tracesOnly): ~6 ms instead of ~13.
const SIDES = [
  { x: "x", y: "y", gx: "x3", gy: "y3" },
  { x: "x2", y: "y2", gx: "x4", gy: "y4" },
];

/** [label, colour, dash, width] per curve: the traces, the HTML legend and the formula's
 * coloured terms all read it (colours dark enough for text: contrast >= 4.5:1). */
const CURVES = [
  ["r·A (unclipped)", "#d62728", "dash", 2],
  ["clip(r)·A", "#b45309", "dot", 2],
  ["PPO objective", "#1f4e9c", "solid", 3],
  ["d objective / d r", "#2ca02c", "solid", 2],
];

/** One legend item per curve, before the template's marker and band items. */
function drawLegend(list) {
  const SVG = "http://www.w3.org/2000/svg";
  const dashes = { dash: "6 4", dot: "2 3" };
  const items = CURVES.map(([label, color, dash, width]) => {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("width", "28");
    svg.setAttribute("height", "10");
    svg.setAttribute("aria-hidden", "true");
    const stroke = document.createElementNS(SVG, "line");
    const attrs = { x1: 1, y1: 5, x2: 27, y2: 5, stroke: color, "stroke-width": width };
    if (dashes[dash]) attrs["stroke-dasharray"] = dashes[dash];
    for (const [name, value] of Object.entries(attrs)) stroke.setAttribute(name, String(value));
    svg.append(stroke);
    const item = document.createElement("li");
    item.append(svg, label);
    return item;
  });
  list.prepend(...items);
}

/** [lo, hi] covering `values` and 0, padded by 8 % of the span. */
function range(values) {
  let lo = 0;
  let hi = 0;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const pad = 0.08 * (hi - lo || 1);
  return [lo - pad, hi + pad];
}

/** The curves and the marker of one side. */
function sideTraces(data, s) {
  const line = ([name, color, dash, width], x, y, shape = "linear") =>
    ({ name, mode: "lines", line: { color, dash, width, shape }, xaxis: x, yaxis: y });
  return [
    { x: data.ratio, y: data.unclipped, ...line(CURVES[0], s.x, s.y) },
    { x: data.ratio, y: data.clipped, ...line(CURVES[1], s.x, s.y) },
    { x: data.ratio, y: data.objective, ...line(CURVES[2], s.x, s.y) },
    { x: data.ratio, y: data.gradient, ...line(CURVES[3], s.gx, s.gy, "hv") },
    { x: [data.point.ratio], y: [data.point.objective], name: "marker", mode: "markers",
      marker: { size: 11, color: data.point.clipped ? "#d62728" : "#1f4e9c" },
      xaxis: s.x, yaxis: s.y },
  ];
}

/** The shaded [low, high] band and the marker's line, in both subplots of
 * one side, each from the bottom to the top of its y range (`spans`: [objective, gradient]).
 * Traces, not layout shapes: they move with ε and r, and a move that changes only traces is
 * redrawn at half the cost (see the figure's comment above). */
function sideBands(data, s, spans) {
  const b = data.clip_bounds;
  const r = data.point.ratio;
  const rows = [[s.x, s.y, spans[0]], [s.gx, s.gy, spans[1]]];
  const common = { mode: "lines", hoverinfo: "skip", showlegend: false };
  return {
    bands: rows.map(([x, y, [lo, hi]]) => ({ ...common, name: "trust region", xaxis: x,
      yaxis: y, x: [b.low, b.high, b.high, b.low, b.low], y: [lo, lo, hi, hi, lo],
      fill: "toself", fillcolor: "rgba(31,78,156,0.08)", line: { width: 0 } })),
    lines: rows.map(([x, y, [lo, hi]]) => ({ ...common, name: "marker line", xaxis: x,
      yaxis: y, x: [r, r], y: [lo, hi], line: { color: "#555", dash: "dash", width: 1.5 } })),
  };
}

/** The r = 1 line, spanning both rows of one side; with dual clip and A < 0, the floor c·A
 * across the objective. (Neither moves with ε or r.) */
function sideShapes(data, s, top, bottom, advantage) {
  const b = data.clip_bounds;
  const shapes = [
    { type: "line", xref: s.x, yref: "paper", y0: bottom, y1: top, x0: 1, x1: 1,
      line: { color: "#888", dash: "dot", width: 1.5 } },
  ];
  if (b.dual_clip && advantage < 0) {
    const floor = b.dual_clip * advantage;
    shapes.push({ type: "line", xref: `${s.x} domain`, yref: s.y, x0: 0, x1: 1, y0: floor,
      y1: floor, line: { color: "#7b3294", dash: "dashdot", width: 1.5 },
      label: { text: "c·A (dual clip)", textposition: "start", yanchor: "bottom",
        font: { size: 11, color: "#7b3294" } } });
  }
  return shapes;
}

/** Charts narrower than this stack their four subplots in one column. */

/** Both signs in one figure: 2 x 2 subplots on wide screens, one column of 4 on narrow ones.
 * `frozen`: the y ranges the chart keeps (panel.js's fixed axes), which the bands span. */
function chart(pos, neg, adv, width, frozen = {}) {
  const narrow = width < NARROW_PX;
  const [left, right] = narrow ? [[0, 1], [0, 1]] : [[0, 0.46], [0.54, 1]];
  // Domains: [objective, gradient] for A > 0, then for A < 0.
  const rows = narrow
    ? [[0.67, 0.95], [0.53, 0.62], [0.2, 0.44], [0.06, 0.15]]
    : [[0.36, 1], [0, 0.26], [0.36, 1], [0, 0.26]];
  const objectiveRange = (d) => range([...d.unclipped, ...d.clipped, ...d.objective]);
  const ranges = { yaxis: objectiveRange(pos), yaxis3: range(pos.gradient),
    yaxis2: objectiveRange(neg), yaxis4: range(neg.gradient) };
  const span = (axis) => frozen[axis] || ranges[axis];
  const ratio = { range: [pos.ratio[0], pos.ratio[pos.ratio.length - 1]], nticks: 6 };
  const ratioTitle = { text: "probability ratio r = π_new / π_old" };
  const objective = (axis, domain, anchor, titled) => ({ domain, anchor, range: ranges[axis],
    nticks: 5, title: titled ? { text: "objective" } : undefined });
  const gradient = (axis, domain, anchor, titled) => ({ domain, anchor, range: ranges[axis],
    nticks: narrow ? 2 : 3, title: titled ? { text: "gradient" } : undefined });
  const bandsPos = sideBands(pos, SIDES[0], [span("yaxis"), span("yaxis3")]);
  const bandsNeg = sideBands(neg, SIDES[1], [span("yaxis2"), span("yaxis4")]);
  const title = (text, x, y) => ({ text, x, y, xref: "paper", yref: "paper", xanchor: "center",
    yanchor: "bottom", showarrow: false, font: { size: 14 } });
  return {
    // Drawn in this order: the bands under the curves, the marker lines over them.
    traces: [...bandsPos.bands, ...bandsNeg.bands, ...sideTraces(pos, SIDES[0]),
      ...sideTraces(neg, SIDES[1]), ...bandsPos.lines, ...bandsNeg.lines],
    layout: layout({
      xaxis: { domain: left, anchor: "y", matches: "x3", showticklabels: false, ...ratio },
      xaxis2: { domain: right, anchor: "y2", matches: "x4", showticklabels: false, ...ratio },
      xaxis3: { domain: left, anchor: "y3", title: narrow ? undefined : ratioTitle, ...ratio },
      xaxis4: { domain: right, anchor: "y4", title: ratioTitle, ...ratio },
      yaxis: objective("yaxis", rows[0], "x", true),
      yaxis3: gradient("yaxis3", rows[1], "x3", true),
      yaxis2: objective("yaxis2", rows[2], "x2", narrow),
      yaxis4: gradient("yaxis4", rows[3], "x4", narrow),
      shapes: [
        ...sideShapes(pos, SIDES[0], rows[0][1], rows[1][0], adv),
        ...sideShapes(neg, SIDES[1], rows[2][1], rows[3][0], -adv),
      ],
      annotations: [
        title(`A = +${adv} (good action: do more)`, (left[0] + left[1]) / 2, rows[0][1]),
        title(`A = −${adv} (bad action: do less)`, (right[0] + right[1]) / 2, rows[2][1]),
      ],
      showlegend: false,
      margin: { l: 48, r: 12, t: 28, b: narrow ? 40 : 44 },
      // On a phone the chart stays on screen above the controls (app.css): kept short.
      height: narrow ? 440 : 400,
    }),
  };
}

function readout(sign, data) {
  const p = data.point;
  const state = p.clipped ? "clipped — gradient 0, no push" : "not clipped — gradient flows";
  return `<p><strong>A ${sign > 0 ? ">" : "<"} 0</strong> at r = ${p.ratio.toFixed(2)}: ` +
    `objective ${p.objective.toFixed(3)}, d/dr ${p.gradient.toFixed(3)} · <span class="${p.clipped ? "bad" : "good"}">${state}</span></p>`;
}

/** A slider that moved further than this many steps jumped (a click on its track, a typed
 * value, a preset): where it goes next is anyone's guess, so nothing is prefetched for it. */
const DRAG_STEPS = 3;

/**
 * The states a drag is likely to ask for next, for each slider that moved a step or a few since
 * `before` (an arrow key, a drag): one step on and one step back after a single step (arrow
 * keys go on or come back), the same stride on after a stride of 2-3 steps (a quick drag: a
 * step's neighbours would not be asked for). They are fetched while the current curves are
 * on screen. After a jump nothing is: the guesses would sit in the server's queue ahead of the
 * next jump's own request (50 jumps fired back to back sent 200 requests; now 50, one per jump).
 * Values are rounded to the step as the browser does.
 */
function neighbours(controls, before, v) {
  const out = [];
  for (const [key, value] of Object.entries(v)) {
    const el = controls.element(key);
    if (!before || before[key] === value || el.type !== "range") continue;
    const step = Number(el.step);
    const stride = Math.round((value - before[key]) / step);
    if (!stride || Math.abs(stride) > DRAG_STEPS) continue;
    const decimals = (el.step.split(".")[1] || "").length;
    for (const by of Math.abs(stride) === 1 ? [stride, -stride] : [stride]) {
      const next = Number((value + by * step).toFixed(decimals));
      if (next >= Number(el.min) && next <= Number(el.max)) out.push({ ...v, [key]: next });
    }
  }
  return out;
}

let drawn = null;

async function update(panel, v) {
  // A control the curves ignore is off, and says what turns it on.
  const c = panel.controls;
  c.setEnabled("eps", !v.asym, "Ignored here while Asymmetric clip is on (ε_low / ε_high replace it): untick it to use ε.");
  for (const key of ["epsl", "epsh"]) c.setEnabled(key, v.asym, "Off: tick Asymmetric clip to use it.");
  c.setEnabled("c", v.dual, "Off: tick Dual clip to use it.");
  const { positive: pos, negative: neg } = await getJSON(CURVES_URL, query(v));
  const div = document.getElementById("clip-chart");
  const fig = chart(pos, neg, v.adv, div.clientWidth, panel.frozenRanges("clip-chart"));
  await panel.draw("clip-chart", fig.traces, fig.layout);
  panel.root.querySelector("#clip-readout").innerHTML = readout(1, pos) + readout(-1, neg);
  panel.setApiLink(apiUrl(CURVES_URL, query(v)));
  panel.rendered();
  for (const next of neighbours(panel.controls, drawn, v)) {
    prefetch(CURVES_URL, query(next));
  }
  drawn = v;
}

export default () => {
  // Fixed axes (panel.js): the ranges of the first draw (|A|'s objective and gradient extents
  // and r in [0, 2.5]) stay while knobs move, so a larger |A| draws steeper curves instead of
  // relabelled ticks and dual clip's wider ratio range waits for "Fit axes".
  const panel = createPanel("clip", {
    presets: PRESETS, update, fixedAxes: ["clip-chart"], tracesOnly: ["clip-chart"],
  });
  drawLegend(document.getElementById("clip-legend"));
  colourTerms(panel.root, CURVES.map(([name, color, dash]) => ({ name, color, dash })));
  redrawAcrossBreakpoint(panel, document.getElementById("clip-chart"));
  // The r marker's line crosses all four subplots: grab it on any of them.
  dragMarker(document.getElementById("clip-chart"), panel.controls.element("r"),
    ["xaxis", "xaxis2", "xaxis3", "xaxis4"]);
  return panel;
};
