// The token heatmap: each token's gradient weight g_t, coloured around 0, with marks for the
// tokens that were clipped or touched by the rollout correction; rows sorted on the client.
import { layout } from "../../panel.js";

// Marks drawn over the heatmap, per token state (token_view.states).
const STATE_MARKS = {
  clipped_low: { symbol: "triangle-down", label: "clipped low ▼" },
  clipped_high: { symbol: "triangle-up", label: "clipped high ▲" },
  dual_clip: { symbol: "x", label: "dual clip ✕" },
  rollout_truncated: { symbol: "square-open", label: "rollout-truncated □" },
  rollout_masked: { symbol: "circle-x-open", label: "rollout-masked ⊘" },
};

/** The token view's row indices in the chosen order (client-side: no new request). */
function rowOrder(tv, sort) {
  const order = tv.rows.map((_, i) => i);
  if (sort === "length") order.sort((a, b) => tv.lengths[b] - tv.lengths[a] || a - b);
  if (sort === "loss") {
    const total = tv.loss.map((row, i) => row.reduce((s, x, j) => s + (tv.mask[i][j] ? x : 0), 0));
    order.sort((a, b) => total[b] - total[a] || a - b);
  }
  return order;
}

function heatmapFigure(tv, sort) {
  const order = rowOrder(tv, sort);
  const width = tv.ratio.length ? tv.ratio[0].length : 0;
  const sameStart = tv.starts.every((s) => s === tv.starts[0]);
  // With one window start, columns are token positions; windows that start at different tokens
  // share the columns by offset, and the hover names each cell's position.
  const offset = sameStart && tv.starts.length ? tv.starts[0] : 0;
  const x = Array.from({ length: width }, (_, j) => offset + j);
  const padding = tv.states.indexOf("padding");
  const hasWeight = Array.isArray(tv.rollout_weight);
  const z = [];
  const custom = [];
  const marks = Object.fromEntries(Object.keys(STATE_MARKS).map((s) => [s, { x: [], y: [] }]));
  let extent = 0;
  order.forEach((i, k) => {
    const zRow = [];
    const cRow = [];
    for (let j = 0; j < width; j += 1) {
      const stateName = tv.states[tv.state[i][j]];
      const pad = tv.state[i][j] === padding || !tv.mask[i][j];
      const g = tv.gradient[i][j];
      zRow.push(pad ? null : g);
      if (!pad) extent = Math.max(extent, Math.abs(g));
      cRow.push([tv.ratio[i][j], tv.loss[i][j], tv.advantage[i][j], g, stateName,
        hasWeight ? tv.rollout_weight[i][j] : null, tv.rows[i], tv.starts[i] + j]);
      if (!pad && marks[stateName]) {
        marks[stateName].x.push(x[j]);
        marks[stateName].y.push(k);
      }
    }
    z.push(zRow);
    custom.push(cRow);
  });
  const m = extent > 0 ? extent : 1;
  const hover = "row %{customdata[6]}, token %{customdata[7]}<br>gradient %{customdata[3]:.4g}<br>" +
    "ratio %{customdata[0]:.4g}<br>loss %{customdata[1]:.4g}<br>advantage %{customdata[2]:.4g}<br>" +
    `state %{customdata[4]}${hasWeight ? "<br>rollout weight %{customdata[5]:.4g}" : ""}<extra></extra>`;
  const traces = [{
    type: "heatmap", x, y: order.map((_, k) => k), z, customdata: custom, hovertemplate: hover,
    hoverongaps: false, zmin: -m, zmax: m, zmid: 0, ygap: 1,
    colorscale: [[0, "#2166ac"], [0.5, "#f7f7f7"], [1, "#b2182b"]],
    colorbar: { title: { text: "g<sub>t</sub>", side: "top" }, thickness: 10, len: 1, x: 1.01, xpad: 2 },
    showscale: true, name: "gradient",
  }];
  for (const [stateName, pts] of Object.entries(marks)) {
    if (!pts.x.length) continue;
    traces.push({ type: "scatter", mode: "markers", x: pts.x, y: pts.y, name: `${STATE_MARKS[stateName].label} (${pts.x.length})`,
      marker: { symbol: STATE_MARKS[stateName].symbol, size: 7, color: "#1d2433", line: { width: 1, color: "#1d2433" } },
      hoverinfo: "skip", meta: stateName });
  }
  const labels = order.map((i) => `#${tv.rows[i]} · ${tv.lengths[i]} tok${sameStart || !tv.starts[i] ? "" : ` · t≥${tv.starts[i]}`}`);
  const fig = layout({
    margin: { l: 96, r: 8, t: 12, b: 44 },
    height: Math.max(220, 26 * order.length + 110),
    plot_bgcolor: "#c9ced8", // padding (no value) shows the background: grey
    xaxis: { title: { text: sameStart ? "token position" : "token in the shown window (hover: position)" }, zeroline: false, showgrid: false },
    yaxis: { tickvals: order.map((_, k) => k), ticktext: labels, autorange: "reversed", showgrid: false, zeroline: false },
    legend: { orientation: "h", y: -0.25, x: 0 },
    showlegend: traces.length > 1,
  });
  return { traces, layout: fig, order };
}

/**
 * Draws the token view into #analyze-heatmap, rows in the order #analyze-sort asks for.
 * @param {{root: ParentNode, draw: Function}} panel
 * @param {object | null} data the API's answer, null before any batch
 * @returns {Promise<unknown>}
 */
export function drawHeatmap(panel, data) {
  const tv = data && data.token_view;
  if (!tv || !tv.rows.length) {
    return panel.clearChart("analyze-heatmap");
  }
  const fig = heatmapFigure(tv, panel.root.querySelector("#analyze-sort").value);
  return panel.draw("analyze-heatmap", fig.traces, fig.layout);
}
