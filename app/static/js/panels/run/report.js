// The run report's lists, as DOM: the findings (each with its step, metric and the panel that
// explains it), the table of what each metric is, and the metrics not on the map. The panel
// shows them with links to the panels; the exported file names the panels in plain text.
import { el } from "../analyze/dom.js";

/** The title of the panel `id` on this page, or null when there is no such panel. */
export function panelTitle(id) {
  const head = id ? document.getElementById(`panel-${id}-title`) : null;
  return head ? head.textContent.trim() : null;
}

/** "Explained in <panel>": a link on the page, plain text in an export. */
function explainedIn(id, links) {
  const title = panelTitle(id);
  if (!title) return null;
  return el("p", { class: "finding-link" }, "Explained in ",
    links ? el("a", { href: `#panel-${id}` }, title) : el("strong", {}, `${title} (PPO Explorer)`));
}

/**
 * The findings as list items (or one "none" item).
 * @param {{findings: Array<{code: string, severity: string, message: string, step: number|null,
 *   metric: string|null, panel: string|null}>} | null} report
 * @param {{links?: boolean}} [options]
 * @returns {HTMLElement[]}
 */
export function findingItems(report, { links = true } = {}) {
  if (!report) return [el("li", { class: "analyze-none" }, "No run loaded yet.")];
  if (!report.findings.length) {
    return [el("li", { class: "analyze-none finding-clean" },
      "No findings: no rule fired (entropy collapse, KL spike, clip fraction zero or high, non-finite values, negative explained variance, reward up while KL runs away, length at its cap).")];
  }
  return report.findings.map((f) => {
    const where = [f.step === null ? null : `step ${f.step}`, f.metric].filter(Boolean).join(" · ");
    const head = el("p", { class: "finding-head" }, el("span", { class: "finding-sev" }, f.severity), " ",
      el("code", {}, f.code), where ? el("span", { class: "run-where" }, ` at ${where}`) : null);
    return el("li", { class: `finding sev-${f.severity}`, "data-code": f.code },
      head, el("p", { class: "finding-msg" }, f.message), explainedIn(f.panel, links));
  });
}

/** The alias of the name in the file, when the map knows it: its library and that library's formula. */
function aliasOf(map, source, canonical) {
  return map.aliases.find((a) => a.name === source && a.canonical === canonical) || null;
}

/**
 * The table of the report's metrics: name, the name in the file, meaning, formula, panel.
 * @param {HTMLTableElement} table
 * @param {object | null} report
 * @param {object} map the metric map
 * @param {string[]} names the metrics in drawing order
 * @param {{links?: boolean}} [options]
 */
export function fillMetricTable(table, report, map, names, { links = true } = {}) {
  const caption = table.querySelector("caption");
  const kept = caption ? [caption] : [];
  if (!report) {
    table.replaceChildren(...kept, el("tbody", {}, el("tr", {}, el("td", {}, "No run loaded yet."))));
    return;
  }
  const head = el("thead", {}, el("tr", {}, ...["Metric", "In the file", "Meaning", "Formula", "Explained in"]
    .map((t) => el("th", { scope: "col" }, t))));
  const rows = names.map((name) => {
    const info = map.canonical[name] || { meaning: "Not described by the metric map.", formula: "", panel: null };
    const series = report.metrics[name];
    const alias = aliasOf(map, series.source, name);
    const formula = el("td", { class: "run-formula" }, el("code", {}, info.formula));
    if (alias && alias.formula && alias.formula !== info.formula) {
      formula.append(el("br"), el("small", {}, `as ${alias.library} logs it: `), el("code", {}, alias.formula));
    }
    const title = panelTitle(info.panel);
    const panelCell = el("td", {}, !title ? "—" : links ? el("a", { href: `#panel-${info.panel}` }, title) : title);
    return el("tr", { "data-key": name, title: `${info.meaning}\n${info.formula}` },
      el("th", { scope: "row" }, el("code", {}, name)),
      el("td", {}, el("code", {}, series.source), alias ? el("small", {}, ` (${alias.library}` +
        `${alias.scale !== undefined && alias.scale !== 1 ? `, plotted × ${alias.scale}` : ""})`) : null),
      el("td", { class: "run-meaning" }, info.meaning), formula, panelCell);
  });
  table.replaceChildren(...kept, head, el("tbody", {}, ...rows));
}

/**
 * The names kept as they are, as list items (or one "none" item).
 * @param {{unmapped: string[]} | null} report
 * @returns {HTMLElement[]}
 */
export function unmappedItems(report) {
  if (!report) return [el("li", { class: "analyze-none" }, "No run loaded yet.")];
  if (!report.unmapped.length) return [el("li", { class: "analyze-none" }, "None: every metric in the file is on the map.")];
  return report.unmapped.map((name) => el("li", { "data-name": name }, el("code", {}, name)));
}
