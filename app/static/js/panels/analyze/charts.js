// What the inspector's charts share (bars from a histogram), and the three
// histograms of the batch: ratio (with the clip band shaded), advantage and per-token loss.
import { layout } from "../../panel.js";

/**
 * A bar trace of an API histogram, one bar per bin, as wide as the bin.
 * @param {{counts: number[], edges: number[]}} h
 * @param {string} name
 * @param {string} color
 * @returns {object} a Plotly trace
 */
export function bars(h, name, color) {
  const x = [];
  const width = [];
  for (let i = 0; i < h.counts.length; i += 1) {
    x.push((h.edges[i] + h.edges[i + 1]) / 2);
    width.push(h.edges[i + 1] - h.edges[i]);
  }
  return { type: "bar", x, y: h.counts, width, marker: { color, line: { color: "#fff", width: 0.5 } },
    name, hovertemplate: "%{x:.3g}: %{y} tokens<extra></extra>" };
}

const HISTOGRAMS = [
  ["ratio", "analyze-hist-ratio", "probability ratio r", "#1f4e9c"],
  ["advantage", "analyze-hist-advantage", "advantage A (as used)", "#2ca02c"],
  ["per_token_loss", "analyze-hist-loss", "per-token policy loss", "#d62728"],
];

function histogramChart(h, title, color, shade) {
  const shapes = shade ? [{ type: "rect", xref: "x", yref: "y domain", x0: shade[0], x1: shade[1], y0: 0, y1: 1,
    fillcolor: "rgba(31,78,156,0.10)", line: { width: 0 }, layer: "below" }] : [];
  return {
    traces: [bars(h, title, color)],
    layout: layout({
      title: { text: title, font: { size: 14 } },
      xaxis: { title: { text: title } },
      yaxis: { title: { text: "valid tokens" }, rangemode: "tozero" },
      bargap: 0,
      shapes,
      showlegend: false,
      height: 300,
    }),
  };
}

/** [1 − ε_low, 1 + ε_high] from the convention's knobs, to shade on the ratio histogram. */
function clipBand(knobs) {
  const eps = knobs.clip_ratio;
  const low = knobs.clip_ratio_low ?? eps;
  const high = knobs.clip_ratio_high ?? eps;
  return low == null || high == null ? null : [1 - low, 1 + high];
}

/**
 * Draws the three histograms of an analysis, or their empty state.
 * @param {{draw: Function}} panel
 * @param {object | null} data the API's answer, null before any batch
 * @returns {Promise<unknown[]>}
 */
export function drawHistograms(panel, data) {
  const clip = data && clipBand(data.convention.knobs);
  return Promise.all(HISTOGRAMS.map(([key, id, title, color]) => {
    if (!data) return panel.clearChart(id);
    const c = histogramChart(data.histograms[key], title, color, key === "ratio" ? clip : null);
    return panel.draw(id, c.traces, c.layout);
  }));
}
