// Rollout correction: the raw importance weights w = π_old / π_rollout as a histogram with the
// threshold C drawn on it, the share of tokens it truncates or masks, and the mismatch metrics.
// Dragging the slider redraws from the histogram alone; the panel re-runs on release.
import { setEnabled } from "../../controls.js";
import { layout } from "../../panel.js";
import { bars } from "./charts.js";
import { $, el, fmt, keyHeader, pct } from "./dom.js";

const ROLLOUT_METRICS = [
  ["rollout_is_eff_sample_size", "Effective sample size", "1 / mean(w̃²) with w̃ = w / mean(w): 1 is no mismatch"],
  ["chi2_token", "Chi-square (token)", "mean(w²) − 1"],
  ["chi2_seq", "Chi-square (sequence)", "mean(Π w²) − 1 over sequences"],
  ["kl", "Mismatch KL, k1", "mean(log π_rollout − log π_old)"],
  ["k3_kl", "Mismatch KL, k3", "mean(w − log w − 1), never negative"],
  ["log_ppl_diff", "Log-perplexity difference", "mean over sequences of (mean log π_rollout − mean log π_old)"],
  ["truncated_fraction", "Truncated share", "valid tokens whose weight the threshold capped"],
  ["masked_fraction", "Masked share", "valid tokens dropped outside [C_low, C]"],
];

/** Share of the histogram's mass above `high` (and below `low`): linear within a bin. */
function shareBeyond(h, high, low) {
  let total = 0;
  let out = 0;
  for (let i = 0; i < h.counts.length; i += 1) {
    const c = h.counts[i];
    total += c;
    if (!c) continue;
    const a = h.edges[i];
    const b = h.edges[i + 1];
    const w = b - a;
    const above = w > 0 ? Math.min(1, Math.max(0, (b - high) / w)) : Number(a > high);
    const below = low == null ? 0 : w > 0 ? Math.min(1, Math.max(0, (low - a) / w)) : Number(a < low);
    out += c * Math.min(1, above + below);
  }
  return total ? out / total : 0;
}

/** [low, high] of the kept band at threshold C: truncation has no lower bound. */
function band(rc, c) {
  if (rc.mode !== "mask") return [null, c];
  return [rc.threshold_low ?? 1 / c, c];
}

function rolloutFigure(rc, c) {
  const [low, high] = band(rc, c);
  const line = (x, text) => ({ type: "line", xref: "x", yref: "y domain", x0: x, x1: x, y0: 0, y1: 1,
    line: { color: "#b42318", width: 2, dash: "dash" }, label: { text, textposition: "end", textangle: 0, xanchor: "right", yanchor: "top", font: { size: 11, color: "#b42318" } } });
  const shapes = [line(high, `C = ${fmt(high)}`)];
  if (low !== null) shapes.push(line(low, `C_low = ${fmt(low)}`));
  const edges = rc.histogram.edges;
  const span = [Math.min(edges[0], low ?? edges[0]), Math.max(edges[edges.length - 1], high)];
  const pad = 0.04 * (span[1] - span[0] || 1);
  return {
    traces: [bars(rc.histogram, "raw weight w", "#7b4fa0")],
    layout: layout({
      title: { text: "raw rollout weights w", font: { size: 14 } },
      xaxis: { title: { text: "w = π_old / π_rollout" }, range: [span[0] - pad, span[1] + pad] },
      yaxis: { title: { text: "valid tokens" }, rangemode: "tozero" },
      bargap: 0, shapes, showlegend: false, height: 300,
    }),
  };
}

function shareText(rc, c) {
  const [low, high] = band(rc, c);
  const what = rc.mode === "mask" ? `masked (w outside [${fmt(low)}, ${fmt(high)}])` : `truncated (w > ${fmt(high)})`;
  const exactKey = rc.mode === "mask" ? "masked_fraction" : "truncated_fraction";
  const exact = Math.abs(c - rc.threshold) < 1e-9 && rc.metrics[exactKey] !== undefined;
  const share = exact
    ? `${pct(rc.metrics[exactKey])} of valid tokens ${what}, as the API computed it`
    : `≈ ${pct(shareBeyond(rc.histogram, high, low))} of valid tokens ${what}, estimated from the histogram's ` +
      `${rc.histogram.counts.length} bins (release the slider for the exact share)`;
  const applied = rc.applied
    ? `The correction is applied to the loss (${rc.level} level, ${rc.mode}).`
    : `Metrics only: the correction is not applied (choose a rollout correction level above to apply it; mode ${rc.mode}).`;
  return `At C = ${fmt(c)}: ${share}. ${applied}`;
}

/**
 * Draws the rollout-correction chart, share line and metrics table, and sets the slider to the
 * threshold the API applied (disabled without rollout_logprobs).
 * @param {{root: ParentNode, draw: Function}} panel
 * @param {object | null} data the API's answer, null before any batch
 * @returns {Promise<unknown>}
 */
export function drawRollout(panel, data) {
  const root = panel.root;
  const rc = data && data.rollout_correction;
  const slider = $(root, "#analyze-threshold");
  const table = $(root, "#analyze-rollout-metrics");
  const body = table.tBodies[0] || table.appendChild(el("tbody"));
  body.replaceChildren();
  setEnabled(slider, Boolean(rc), data
    ? "Off: this batch has no rollout_logprobs; send the inference engine's log-probs to use it."
    : "Off: analyze a batch with rollout_logprobs (the example has them) to use it.");
  if (!rc || !rc.histogram) {
    $(root, "#analyze-share").textContent = data
      ? "No rollout_logprobs in this batch: send the inference engine's log-probs to measure the mismatch."
      : "";
    body.append(el("tr", {}, el("td", {}, data ? "No rollout_logprobs given." : "No batch analyzed yet.")));
    return panel.clearChart("analyze-rollout-hist");
  }
  slider.max = String(Math.max(20, Math.ceil(rc.threshold)));
  slider.value = String(rc.threshold);
  $(root, "#analyze-threshold-out").textContent = fmt(rc.threshold);
  $(root, "#analyze-share").textContent = shareText(rc, rc.threshold);
  for (const [key, label, meaning] of ROLLOUT_METRICS) {
    if (rc.metrics[key] === undefined) continue;
    const value = key.endsWith("_fraction") ? pct(rc.metrics[key]) : fmt(rc.metrics[key]);
    body.append(el("tr", { "data-key": key }, keyHeader(label, key), el("td", {}, value), el("td", { class: "meaning" }, meaning)));
  }
  const fig = rolloutFigure(rc, rc.threshold);
  return panel.draw("analyze-rollout-hist", fig.traces, fig.layout);
}

/**
 * While dragging: redraws the line and the share at the slider's C from the histogram alone
 * (no request).
 * @param {{root: ParentNode, draw: Function}} panel
 * @param {object | null} data the API's answer, null before any batch
 */
export function dragThreshold(panel, data) {
  const rc = data && data.rollout_correction;
  if (!rc || !rc.histogram) return;
  const c = Number($(panel.root, "#analyze-threshold").value);
  $(panel.root, "#analyze-threshold-out").textContent = fmt(c);
  $(panel.root, "#analyze-share").textContent = shareText(rc, c);
  const fig = rolloutFigure(rc, c);
  panel.draw("analyze-rollout-hist", fig.traces, fig.layout);
}
