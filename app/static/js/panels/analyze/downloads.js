// Downloads of an analysis: the API's whole answer as JSON, or its headline numbers as CSV
// (section, key, value).
import { el } from "./dom.js";

function csvOf(data) {
  const quote = (s) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const lines = ["section,key,value"];
  const add = (section, key, value) =>
    lines.push([section, key, value === null || value === undefined ? "" : String(value)].map(quote).join(","));
  for (const [section, entries] of [["breakdown", data.breakdown], ["diagnostics", data.diagnostics]]) {
    for (const [key, value] of Object.entries(entries)) add(section, key, value);
  }
  for (const f of data.findings) add("findings", f.code, f.value);
  for (const [mode, row] of Object.entries(data.aggregation.modes)) add("aggregation", mode, row.loss);
  for (const p of data.conventions.presets) add("conventions", p.name, p.loss);
  return `${lines.join("\n")}\n`;
}

function download(text, type, name) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = el("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/**
 * Saves an analysis as ppo-analysis-<convention>.json or .csv.
 * @param {{data: object, convention: string}} result the shown analysis
 * @param {"json" | "csv"} format
 */
export function saveAnalysis(result, format) {
  const name = `ppo-analysis-${result.convention}.${format}`;
  if (format === "csv") download(csvOf(result.data), "text/csv", name);
  else download(JSON.stringify(result.data, null, 2), "application/json", name);
}
