// Export of a run report as ONE self-contained HTML file: the title, the format, the findings,
// the table of metrics, the names not on the map and the charts, with plotly.js inlined (read
// from the page's own copy, the script the page loaded) so that it opens offline, attached to
// an issue or a pull request. Nothing in it points to another URL.
import { el } from "../analyze/dom.js";
import { fillMetricTable, findingItems, unmappedItems } from "./report.js";

let plotlySource = null;

/** plotly.js as text, from the same URL the page loaded it from (asked once). */
function plotlyText() {
  if (!plotlySource) {
    const script = document.querySelector('script[src*="plotly"]');
    if (!script) return Promise.reject(new Error("the page has no plotly.js script to inline"));
    plotlySource = fetch(script.src).then((response) => {
      if (!response.ok) throw new Error(`plotly.js could not be read (HTTP ${response.status})`);
      return response.text();
    });
    plotlySource.catch(() => { plotlySource = null; });
  }
  return plotlySource;
}

const STYLE = `
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2433; margin: 0 auto; padding: 16px; max-width: 1100px; line-height: 1.45; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 24px; }
.meta { color: #5a6478; }
ul.findings { list-style: none; padding: 0; display: grid; gap: 8px; }
.finding { border: 1px solid #d9deea; border-left: 6px solid var(--sev); border-radius: 6px; padding: 6px 12px; background: var(--sev-bg); }
.finding p { margin: 3px 0; overflow-wrap: anywhere; }
.finding-sev { text-transform: uppercase; font-size: 0.75rem; font-weight: 700; color: #fff; background: var(--sev); border-radius: 4px; padding: 1px 6px; }
.sev-error { --sev: #b42318; --sev-bg: #fdf1f0; } .sev-warning { --sev: #b25e09; --sev-bg: #fff7ea; } .sev-info { --sev: #1f4e9c; --sev-bg: #f1f5fc; }
.finding-clean { color: #1a7f37; font-weight: 600; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 0.92rem; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #d9deea; vertical-align: top; }
code { overflow-wrap: anywhere; } small { color: #5a6478; }
`;

/** JSON that is safe inside a <script> element. */
const scriptJSON = (value) => JSON.stringify(value).replace(/</g, "\\u003c");

/**
 * The report as the text of a standalone HTML file.
 * @param {{report: object, fileName: string, map: object, figure: {data: object[], layout: object, names: string[]}}} shown
 * @param {string} plotly the text of plotly.js
 * @returns {string}
 */
export function reportHTML({ report, fileName, map, figure }, plotly) {
  const title = `PPO run report: ${fileName}`;
  const table = el("table", {}, el("caption", {}, "The run's metrics on the common map"));
  fillMetricTable(table, report, map, figure.names, { links: false });
  const body = el("div", {},
    el("h1", {}, title),
    el("p", { class: "meta" }, `Format ${report.format} · ${report.steps} steps · ${figure.names.length} metrics on the map, ` +
      `${report.unmapped.length} not · exported ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC by PPO Explorer`),
    el("h2", {}, "Findings"),
    el("ul", { class: "findings" }, ...findingItems(report, { links: false })),
    el("h2", {}, "Metrics over steps"),
    el("div", { id: "charts" }),
    el("h2", {}, "What each metric is"),
    el("div", { class: "table-wrap" }, table),
    el("h2", {}, "Metrics not on the map"),
    el("ul", {}, ...unmappedItems(report)));
  const layout = { ...figure.layout, paper_bgcolor: "#fff" };
  // plotly.js holds no "</script" today; escaped anyway, so that a future copy cannot end the element early.
  const inlined = plotly.replace(/<\/script/gi, "<\\/script");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${el("span", {}, title).innerHTML}</title>
<style>${STYLE}</style>
<script>${inlined}</script>
</head>
<body>
${body.innerHTML}
<script type="application/json" id="figure">${scriptJSON({ data: figure.data, layout })}</script>
<script>
var figure = JSON.parse(document.getElementById("figure").textContent);
Plotly.newPlot("charts", figure.data, figure.layout, { responsive: true, displaylogo: false });
</script>
</body>
</html>
`;
}

/** Saves the shown report as run-report-<file name>.html. */
export async function exportReport(shown) {
  const html = reportHTML(shown, await plotlyText());
  const url = URL.createObjectURL(new Blob([html], { type: "text/html" }));
  const base = shown.fileName.replace(/\.[^.]*$/, "").replace(/[^\w.-]+/g, "_") || "run";
  const a = el("a", { href: url, download: `run-report-${base}.html`, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
