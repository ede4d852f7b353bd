// The batch under every preset (what each computes and logs), and the chosen convention's
// formula and notes.
import { $, el, emptyTable, fmt, tableHead } from "./dom.js";

function showPresets(table, data) {
  const c = data.conventions;
  const sampled = c.rows_used < c.rows_total
    ? ` Computed on ${c.rows_used} of ${c.rows_total} rows, evenly spaced (the batch is large).` : "";
  const body = el("tbody");
  for (const p of c.presets) {
    const here = p.name === data.convention.name;
    body.append(el("tr", { "data-key": p.name, class: here ? "current" : "" },
      el("th", { scope: "row" }, el("code", {}, p.name), here ? " (selected)" : ""),
      el("td", {}, p.library), el("td", {}, el("code", {}, p.policy_loss_mode)), el("td", {}, fmt(p.loss)),
      el("td", {}, fmt(p.clip_fraction_as_logged), " ", el("small", {}, el("code", {}, p.clip_fraction_metric))),
      el("td", {}, fmt(p.approx_kl_as_logged), " ", el("small", {}, el("code", {}, p.approx_kl_metric)))));
  }
  table.replaceChildren(el("caption", {}, `What each preset computes and logs for this batch.${sampled}`),
    tableHead("preset", "library", "policy_loss_mode", "policy loss", "clip fraction as logged", "approx KL as logged"), body);
}

/**
 * Fills #analyze-conventions and #analyze-convention, or their empty state.
 * @param {ParentNode} root the panel
 * @param {object | null} data the API's answer, null before any batch
 */
export function showConventions(root, data) {
  const table = $(root, "#analyze-conventions");
  const box = $(root, "#analyze-convention");
  box.replaceChildren();
  if (!data) {
    emptyTable(table, "Conventions");
    return;
  }
  showPresets(table, data);
  const c = data.convention;
  const notes = el("ul", {}, ...[c.notes, ...data.notes].map((text) => el("li", {}, text)));
  box.append(el("h3", {}, `Convention: ${c.library} (${c.source})`), el("p", {}, el("code", {}, c.formula)), notes);
}
