// Panel 7: analyze your own rollout batch (JSON or .npy uploads) under a framework's
// conventions. Runs on the Analyze button, not on every keystroke; a convention change re-runs
// the last submitted batch. Results: breakdown, diagnostics, convention, three histograms, and
// downloads as JSON or CSV.
import { postForm, postJSON } from "../api.js";
import { createPanel, layout } from "../panel.js";

const PATH = "/api/v1/analyze";
const DOCS = "/docs#/analyze/analyze_api_v1_analyze_post";

// A small RLHF-like batch: 4 responses of 8, 6, 5 and 3 tokens (padding masked out).
const EXAMPLE = {
  logprobs: [
    [-1.348, -1.53, -0.849, -0.698, -0.887, -0.373, -1.33, -2.155],
    [-0.839, -0.756, -1.727, -1.438, -1.07, -0.781, 0, 0],
    [-0.355, -0.58, -0.017, -0.477, -0.078, 0, 0, 0],
    [-1.32, -0.969, -0.346, 0, 0, 0, 0, 0],
  ],
  old_logprobs: [
    [-1.201, -1.409, -1.008, -0.577, -0.882, -0.506, -1.242, -2.138],
    [-0.855, -0.766, -1.543, -1.45, -1.274, -0.549, 0, 0],
    [-0.259, -0.88, -0.131, -0.297, -0.089, 0, 0, 0],
    [-1.31, -1.069, -0.562, 0, 0, 0, 0, 0],
  ],
  advantages: [
    [-0.579, -0.196, 0.899, 1.145, -1.324, -0.795, 0.647, -1.992],
    [-0.463, -0.097, 1.257, 0.689, -0.327, -0.369, 0, 0],
    [-0.428, -0.304, 0.353, -0.121, -0.197, 0, 0, 0],
    [1.166, 0.653, -0.024, 0, 0, 0, 0, 0],
  ],
  values: [
    [-0.345, 0.473, -0.544, -0.718, 0.148, -0.15, 0.382, 1.422],
    [-0.116, -0.012, 0.403, 0.547, 0.212, 0.197, 0, 0],
    [-0.217, 0.26, 0.318, -0.227, 0.43, 0, 0, 0],
    [0.345, 0.004, 0.241, 0, 0, 0, 0, 0],
  ],
  returns: [
    [-1.044, 0.776, -0.882, -0.406, 0.2, -0.765, 0.882, 1.999],
    [-0.142, -0.122, 0.339, 0.156, 0.651, -0.02, 0, 0],
    [-0.467, -0.251, 0.82, -0.289, 0.816, 0, 0, 0],
    [0.121, 0.008, 0.091, 0, 0, 0, 0, 0],
  ],
  old_values: [
    [-0.398, 0.49, -0.474, -0.79, 0.137, -0.182, 0.294, 1.459],
    [-0.117, -0.008, 0.365, 0.569, 0.185, 0.19, 0, 0],
    [-0.15, 0.235, 0.332, -0.229, 0.408, 0, 0, 0],
    [0.337, 0.006, 0.3, 0, 0, 0, 0, 0],
  ],
  mask: [
    [1, 1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1, 0, 0],
    [1, 1, 1, 1, 1, 0, 0, 0],
    [1, 1, 1, 0, 0, 0, 0, 0],
  ],
  bins: 10,
};

const HISTOGRAMS = [
  ["ratio", "analyze-hist-ratio", "probability ratio r", "#1f4e9c"],
  ["advantage", "analyze-hist-advantage", "advantage A (as used)", "#2ca02c"],
  ["per_token_loss", "analyze-hist-loss", "per-token policy loss", "#d62728"],
];

let files = []; // chosen .npy files (sent instead of the JSON when present)
let submitted = null; // the batch of the last Analyze press: {json} or {files}
let result = null; // {data, convention} of the last successful run

const $ = (root, selector) => root.querySelector(selector);

/** A row of the example per line: readable, and still valid JSON. */
function formatExample(batch) {
  const lines = Object.entries(batch).map(([key, value]) => {
    if (!Array.isArray(value)) return `  ${JSON.stringify(key)}: ${JSON.stringify(value)}`;
    const rows = value.map((row) => `    [${row.join(", ")}]`).join(",\n");
    return `  ${JSON.stringify(key)}: [\n${rows}\n  ]`;
  });
  return `{\n${lines.join(",\n")}\n}`;
}

function fmt(x) {
  if (x === null || x === undefined) return "—";
  if (typeof x === "boolean") return x ? "yes" : "no";
  if (typeof x !== "number") return String(x);
  if (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e5)) return x.toExponential(3);
  return String(Math.round(x * 1e5) / 1e5);
}

function fillTable(table, caption, entries) {
  table.replaceChildren();
  const cap = document.createElement("caption");
  cap.textContent = caption;
  const head = document.createElement("thead");
  head.innerHTML = '<tr><th scope="col">key</th><th scope="col">value</th></tr>';
  const body = document.createElement("tbody");
  for (const [key, value] of entries) {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row";
    th.innerHTML = `<code></code>`;
    th.firstChild.textContent = key;
    const td = document.createElement("td");
    td.textContent = fmt(value);
    tr.append(th, td);
    body.append(tr);
  }
  table.append(cap, head, body);
}

function emptyTable(table, caption) {
  table.innerHTML = "<caption></caption><tbody><tr><td>No batch analyzed yet.</td></tr></tbody>";
  table.querySelector("caption").textContent = caption;
}

function histogramChart(h, title, color, shade) {
  const x = [];
  const width = [];
  for (let i = 0; i < h.counts.length; i += 1) {
    x.push((h.edges[i] + h.edges[i + 1]) / 2);
    width.push(h.edges[i + 1] - h.edges[i]);
  }
  const shapes = shade ? [{ type: "rect", xref: "x", yref: "y domain", x0: shade[0], x1: shade[1], y0: 0, y1: 1,
    fillcolor: "rgba(31,78,156,0.10)", line: { width: 0 }, layer: "below" }] : [];
  return {
    traces: [{ type: "bar", x, y: h.counts, width, marker: { color, line: { color: "#fff", width: 0.5 } },
      name: title, hovertemplate: "%{x:.3g}: %{y} tokens<extra></extra>" }],
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

function emptyChart(title) {
  return layout({
    title: { text: title, font: { size: 14 } },
    xaxis: { visible: false },
    yaxis: { visible: false },
    annotations: [{ text: "Analyze a batch to see this histogram", xref: "paper", yref: "paper", x: 0.5, y: 0.5,
      showarrow: false, font: { color: "#5a6478" } }],
    height: 300,
  });
}

function drawEmpty(panel) {
  emptyTable($(panel.root, "#analyze-breakdown"), "Loss breakdown");
  emptyTable($(panel.root, "#analyze-diagnostics"), "Diagnostics");
  $(panel.root, "#analyze-convention").replaceChildren();
  for (const button of panel.root.querySelectorAll("#analyze-download-json, #analyze-download-csv")) {
    button.disabled = true;
  }
  return Promise.all(HISTOGRAMS.map(([, id, title]) => panel.draw(id, [], emptyChart(title))));
}

function showConvention(root, data) {
  const c = data.convention;
  const box = $(root, "#analyze-convention");
  box.replaceChildren();
  const head = document.createElement("h3");
  head.textContent = `Convention: ${c.library} (${c.source})`;
  const formula = document.createElement("p");
  formula.innerHTML = "<code></code>";
  formula.firstChild.textContent = c.formula;
  const notes = document.createElement("ul");
  for (const text of [c.notes, ...data.notes]) {
    const li = document.createElement("li");
    li.textContent = text;
    notes.append(li);
  }
  box.append(head, formula, notes);
}

/** [1 − ε_low, 1 + ε_high] from the convention's knobs, to shade on the ratio histogram. */
function clipBand(knobs) {
  const eps = knobs.clip_ratio;
  const low = knobs.clip_ratio_low ?? eps;
  const high = knobs.clip_ratio_high ?? eps;
  return low == null || high == null ? null : [1 - low, 1 + high];
}

function csvOf(data) {
  const quote = (s) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const lines = ["section,key,value"];
  for (const [section, entries] of [["breakdown", data.breakdown], ["diagnostics", data.diagnostics]]) {
    for (const [key, value] of Object.entries(entries)) {
      lines.push([section, key, value === null || value === undefined ? "" : String(value)].map(quote).join(","));
    }
  }
  return `${lines.join("\n")}\n`;
}

function download(text, type, name) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Show a problem with the user's input (not an API answer) in the panel's error line. */
function inputError(panel, message) {
  const line = $(panel.root, ".panel-error");
  line.hidden = false;
  line.textContent = message;
  window.__ppo.errors.analyze = message;
}

function describeFiles() {
  if (!files.length) return "No files chosen.";
  const names = files.map((f) => `${f.name} → ${f.name.replace(/\.npy$/i, "")}`);
  return `${files.length} file${files.length > 1 ? "s" : ""}: ${names.join(", ")}`;
}

function setFiles(panel, list) {
  const chosen = [...list];
  const npy = chosen.filter((f) => /\.npy$/i.test(f.name));
  files = npy;
  $(panel.root, "#analyze-file-list").textContent = describeFiles() +
    (npy.length < chosen.length ? ` (ignored ${chosen.length - npy.length} file(s) not ending in .npy)` : "");
  $(panel.root, "#analyze-clear-files").disabled = files.length === 0;
}

async function send(batch, convention) {
  if (batch.files) {
    const form = new FormData();
    for (const file of batch.files) form.append(file.name.replace(/\.npy$/i, ""), file, file.name);
    form.append("convention", convention);
    return postForm(PATH, form);
  }
  const body = Array.isArray(batch.json) || typeof batch.json !== "object" || batch.json === null
    ? batch.json : { ...batch.json, convention };
  return postJSON(PATH, body);
}

async function update(panel, v) {
  const status = $(panel.root, "#analyze-status");
  if (!submitted) {
    result = null;
    await drawEmpty(panel);
    panel.setApiLink(DOCS, `POST ${PATH}`);
    panel.rendered();
    return;
  }
  status.textContent = "Analyzing…";
  let data;
  try {
    data = await send(submitted, v.aConv);
  } catch (error) {
    result = null;
    status.textContent = "";
    await drawEmpty(panel);
    throw error;
  }
  result = { data, convention: v.aConv };
  const root = panel.root;
  fillTable($(root, "#analyze-breakdown"), `Loss breakdown (${data.tokens} valid tokens, shape [${data.shape.join(", ")}])`,
    Object.entries(data.breakdown));
  fillTable($(root, "#analyze-diagnostics"), "Diagnostics", Object.entries(data.diagnostics));
  showConvention(root, data);
  const band = clipBand(data.convention.knobs);
  await Promise.all(HISTOGRAMS.map(([key, id, title, color]) => {
    const c = histogramChart(data.histograms[key], title, color, key === "ratio" ? band : null);
    return panel.draw(id, c.traces, c.layout);
  }));
  for (const button of root.querySelectorAll("#analyze-download-json, #analyze-download-csv")) button.disabled = false;
  const how = submitted.files ? `${submitted.files.length} .npy files` : "JSON";
  status.textContent = `Analyzed ${data.tokens} tokens (${how}) with the ${data.convention.name} convention.`;
  panel.setApiLink(DOCS, `POST ${PATH} (${how}, convention=${v.aConv})`);
  panel.rendered();
}

function wire(panel) {
  const root = panel.root;
  const text = $(root, "#analyze-json");
  const input = $(root, "#analyze-files");
  const drop = $(root, "#analyze-drop");
  const status = $(root, "#analyze-status");

  $(root, "#analyze-example").addEventListener("click", () => {
    text.value = formatExample(EXAMPLE);
    input.value = "";
    setFiles(panel, []);
    status.textContent = "Example loaded: 4 responses of 8, 6, 5 and 3 tokens. Press Analyze.";
  });
  input.addEventListener("change", () => setFiles(panel, input.files));
  $(root, "#analyze-clear-files").addEventListener("click", () => {
    input.value = "";
    setFiles(panel, []);
    input.focus();
  });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer && event.dataTransfer.files.length) setFiles(panel, event.dataTransfer.files);
  });

  $(root, "#analyze-run").addEventListener("click", () => {
    if (files.length) {
      submitted = { files: [...files] };
    } else if (text.value.trim()) {
      try {
        submitted = { json: JSON.parse(text.value) };
      } catch (error) {
        inputError(panel, `The JSON does not parse: ${error.message}`);
        return;
      }
    } else {
      inputError(panel, "Nothing to analyze: paste a batch as JSON (or press Load example), or choose .npy files.");
      return;
    }
    panel.refresh();
  });

  $(root, "#analyze-download-json").addEventListener("click", () => {
    if (result) download(JSON.stringify(result.data, null, 2), "application/json", `ppo-analysis-${result.convention}.json`);
  });
  $(root, "#analyze-download-csv").addEventListener("click", () => {
    if (result) download(csvOf(result.data), "text/csv", `ppo-analysis-${result.convention}.csv`);
  });
}

export default () => {
  const panel = createPanel("analyze", { update });
  wire(panel);
  return panel;
};
