// The loss under every loss_agg_mode: each sequence's weight against its length, the policy loss
// per mode, and (with micro_batches > 1) whether gradient accumulation reproduces the full batch.
import { layout } from "../../panel.js";
import { $, el, emptyTable, fmt, pct, tableHead } from "./dom.js";

const MODE_INFO = {
  "token-mean": "every valid token counts the same: a long answer weighs more",
  "token-sum": "sum over tokens: scales with the batch's token count",
  "seq-mean-token-mean": "each answer counts once (GRPO's original): a long answer's tokens each weigh less",
  "seq-mean-token-sum": "sum per answer, then mean over answers",
  "seq-mean-token-sum-norm": "sum per answer ÷ a constant length L (Dr. GRPO): no length bias",
};

const MODE_COLORS = ["#1f4e9c", "#d62728", "#2ca02c", "#ff7f0e", "#7b4fa0", "#8c564b"];

function showMicroBatches(root, mb) {
  $(root, "#analyze-micro-wrap").hidden = !mb;
  if (!mb) return;
  const body = el("tbody");
  for (const [mode, row] of Object.entries(mb.modes)) {
    const broken = row.gradient_relative_error > 1e-6;
    body.append(el("tr", { "data-key": mode },
      el("th", { scope: "row" }, el("code", {}, mode)), el("td", {}, fmt(row.loss_full)), el("td", {}, fmt(row.loss_accumulated)),
      el("td", { class: broken ? "bad" : "good" }, `${pct(row.gradient_relative_error)}${broken ? " (breaks)" : " (matches)"}`)));
  }
  const caption = `Gradient accumulation over ${mb.micro_batches} micro-batches, each normalised on its own and scaled by 1/${mb.micro_batches}`;
  const head = tableHead("loss_agg_mode", "full batch", `${mb.micro_batches} micro-batches, accumulated`, "gradient error");
  $(root, "#analyze-micro-table").replaceChildren(el("caption", {}, caption), head, body);
}

/**
 * Draws #analyze-agg-chart and fills the per-mode and micro-batch tables, or their empty state.
 * @param {{root: ParentNode, draw: Function}} panel
 * @param {object | null} data the API's answer, null before any batch
 * @returns {Promise<unknown>}
 */
export function drawAggregation(panel, data) {
  const root = panel.root;
  const aggTable = $(root, "#analyze-agg-table");
  if (!data) {
    emptyTable(aggTable, "Policy loss per mode");
    showMicroBatches(root, null);
    return panel.clearChart("analyze-agg-chart");
  }
  const agg = data.aggregation;
  const current = data.convention.knobs.loss_agg_mode;
  const modes = Object.entries(agg.modes);
  const traces = modes.map(([mode, row], k) => ({
    type: "scatter", mode: "lines+markers", x: agg.lengths, y: row.sequence_weight, name: mode,
    customdata: agg.rows, line: { color: MODE_COLORS[k % MODE_COLORS.length], width: mode === current ? 3.5 : 1.8 },
    hovertemplate: `${mode}<br>row %{customdata}, %{x} tokens: weight %{y:.4g}<extra></extra>`,
  }));
  const body = el("tbody");
  for (const [mode, row] of modes) {
    body.append(el("tr", { "data-key": mode, class: mode === current ? "current" : "" },
      el("th", { scope: "row" }, el("code", {}, mode), mode === current ? " (this convention)" : ""),
      el("td", {}, row.loss === null ? "— (its own mean)" : fmt(row.loss)), el("td", { class: "meaning" }, MODE_INFO[mode] || "")));
  }
  aggTable.replaceChildren(el("caption", {}, "Policy loss of this batch under each mode"),
    tableHead("loss_agg_mode", "policy loss", "what it does"), body);
  showMicroBatches(root, data.microbatch);
  return panel.draw("analyze-agg-chart", traces, layout({
    title: { text: "each sequence's weight vs its length", font: { size: 14 } },
    xaxis: { title: { text: "valid tokens in the sequence" } },
    yaxis: { title: { text: "weight in the loss (log)" }, type: "log" },
    height: 320,
    legend: { orientation: "h", y: -0.3 },
  }));
}
