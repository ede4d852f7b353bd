// The run's small multiples as one Plotly figure: one subplot per metric, stacked, each with
// its own x axis matched to the first (zoom on one, all follow), its title naming the metric
// and the name in the file (hover it: meaning and formula), and each finding marked at its step
// on its metric's subplot (a ✕ on the curve and a dotted line across the subplot).
import { layout } from "../../panel.js";

const ROW_PX = 150; // one subplot with its title
const TITLE_PX = 26; // above each subplot, inside its row
const MARGIN = { l: 58, r: 14, t: 8, b: 44 };
export const MAX_POINTS = 4000; // longer series are thinned for drawing (min and max per bucket)
export const SEVERITY_COLOR = { error: "#b42318", warning: "#b25e09", info: "#1f4e9c" };

/** Text for a Plotly label: its pseudo-HTML escaped, wrapped at about `width` characters. */
function plotlyText(text, width = 60) {
  const escaped = String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/%\{/g, "%&#123;");
  const lines = [];
  let line = "";
  for (const word of escaped.split(/\s+/)) {
    if (line && line.length + word.length + 1 > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines.join("<br>");
}

/** The metric's hover text: what it means and its formula (from GET /runs/metric-map). */
function about(info) {
  if (!info) return "Not described by the metric map.";
  return `${plotlyText(info.meaning)}<br><i>${plotlyText(info.formula)}</i>`;
}

/**
 * The series to draw: unchanged up to MAX_POINTS; longer, the first and last point and the
 * smallest and largest of each of MAX_POINTS / 2 buckets (spikes survive), a gap kept as null.
 */
export function thin(steps, values) {
  if (steps.length <= MAX_POINTS) return { x: steps, y: values };
  const buckets = MAX_POINTS / 2;
  const size = steps.length / buckets;
  const keep = new Set([0, steps.length - 1]);
  for (let b = 0; b < buckets; b += 1) {
    let lo = -1;
    let hi = -1;
    let gap = -1;
    for (let i = Math.floor(b * size); i < Math.floor((b + 1) * size); i += 1) {
      const v = values[i];
      if (v === null) gap = i;
      else {
        if (lo < 0 || v < values[lo]) lo = i;
        if (hi < 0 || v > values[hi]) hi = i;
      }
    }
    for (const i of [lo, hi, gap]) if (i >= 0) keep.add(i);
  }
  const order = [...keep].sort((a, b) => a - b);
  return { x: order.map((i) => steps[i]), y: order.map((i) => values[i]) };
}

/** The metrics of a report in the map's order (the order of GET /runs/metric-map), then the rest. */
export function metricOrder(report, map) {
  const known = Object.keys(map.canonical).filter((name) => name in report.metrics);
  return [...known, ...Object.keys(report.metrics).filter((name) => !known.includes(name))];
}

/** A constant series (a fixed learning rate) gets a range around its value, not Plotly's ±1. */
function constantRange(values) {
  const finite = values.filter((v) => v !== null);
  if (!finite.length || finite.some((v) => v !== finite[0]) || finite[0] === 0) return {};
  const v = finite[0];
  return { range: [v - Math.abs(v) / 2, v + Math.abs(v) / 2] };
}

/** The value drawn at `step` (the nearest finite one when the step's value is not finite). */
function valueAt(series, step) {
  let best = null;
  let distance = Infinity;
  series.steps.forEach((s, i) => {
    const v = series.values[i];
    if (v !== null && Math.abs(s - step) < distance) {
      best = v;
      distance = Math.abs(s - step);
    }
  });
  return best;
}

/**
 * The figure of a report.
 * @param {{metrics: Record<string, {source: string, steps: number[], values: (number|null)[]}>,
 *   findings: Array<{code: string, severity: string, message: string, step: number|null,
 *   metric: string|null}>}} report the API's answer
 * @param {{canonical: Record<string, {meaning: string, formula: string, panel: string|null}>}} map
 * @returns {{data: object[], layout: object, names: string[]}}
 */
export function runFigure(report, map) {
  const names = metricOrder(report, map);
  const plotPx = names.length * ROW_PX;
  const height = plotPx + MARGIN.t + MARGIN.b;
  const data = [];
  const axes = {};
  const annotations = [];
  const shapes = [];
  names.forEach((name, i) => {
    const k = i === 0 ? "" : String(i + 1);
    const series = report.metrics[name];
    const info = map.canonical[name];
    const top = 1 - (i * ROW_PX + TITLE_PX) / plotPx;
    const bottom = 1 - ((i + 1) * ROW_PX - 8) / plotPx;
    axes[`xaxis${k}`] = {
      anchor: `y${k}`,
      ...(i === 0 ? {} : { matches: "x" }),
      showticklabels: true,
      tickfont: { size: 10 },
      ...(i === names.length - 1 ? { title: { text: "step", standoff: 4 } } : {}),
      showspikes: true, spikemode: "across", spikethickness: 1, spikecolor: "#5a6478", spikedash: "dot",
    };
    axes[`yaxis${k}`] = { anchor: `x${k}`, domain: [Math.max(0, bottom), top], tickfont: { size: 10 }, nticks: 4,
      zeroline: false, exponentformat: "e", ...constantRange(series.values) };
    const { x, y } = thin(series.steps, series.values);
    data.push({
      type: "scatter", mode: x.length > 200 ? "lines" : "lines+markers", x, y,
      xaxis: `x${k}`, yaxis: `y${k}`, name, meta: name, connectgaps: false,
      line: { color: "#1f4e9c", width: 1.5 }, marker: { size: 3 },
      hovertemplate: `<b>${name}</b> = %{y:.4g} at step %{x}<br>${about(info)}<extra></extra>`,
    });
    annotations.push({
      xref: "paper", yref: "paper", x: 0, y: top, xanchor: "left", yanchor: "bottom", showarrow: false,
      align: "left", text: `<b>${name}</b>  <span style="color:#5a6478">${plotlyText(series.source, 200)}</span>`,
      hovertext: about(info), hoverlabel: { bgcolor: "#fff", bordercolor: "#1f4e9c", font: { color: "#1d2433" } },
    });
  });
  report.findings.forEach((f) => {
    const i = names.indexOf(f.metric);
    if (i < 0 || f.step === null || f.step === undefined) return;
    const k = i === 0 ? "" : String(i + 1);
    const color = SEVERITY_COLOR[f.severity] || SEVERITY_COLOR.info;
    shapes.push({ type: "line", xref: `x${k}`, yref: `y${k} domain`, x0: f.step, x1: f.step, y0: 0, y1: 1,
      line: { color, width: 1, dash: "dot" } });
    const y = valueAt(report.metrics[f.metric], f.step);
    if (y === null) return;
    data.push({
      type: "scatter", mode: "markers", x: [f.step], y: [y], xaxis: `x${k}`, yaxis: `y${k}`,
      name: f.code, meta: { finding: f.code, metric: f.metric }, showlegend: false,
      marker: { symbol: "x-thin-open", size: 14, color, line: { color, width: 3 } },
      hovertemplate: `<b>${f.code}</b> at step %{x}<br>${plotlyText(f.message)}<extra></extra>`,
    });
  });
  return {
    names,
    data,
    layout: layout({
      ...axes, annotations, shapes, height, margin: MARGIN, showlegend: false,
      hovermode: "closest", dragmode: "zoom",
    }),
  };
}
