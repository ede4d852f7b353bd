// The batch inspector ("Analyze your batch"): analyze your own rollout batch (JSON, one .npy per
// field, or one .npz / .safetensors) under a framework's conventions: findings first, then the
// loss breakdown and every diagnostic explained, a token heatmap of the gradient, rollout
// correction with a live threshold, the loss under every loss_agg_mode (and micro-batch
// accumulation), what every preset would log, the convention's formula and three histograms.
// Runs on the Analyze button, not on every keystroke; a change of the convention or of an option
// re-runs the last submitted batch. Downloads as JSON or CSV.
//
// This module holds the form, the request and the panel's state; each part of the results is
// drawn by its module under ./analyze/.
import { getJSON, postForm, postJSON } from "../api.js";
import { createPanel } from "../panel.js";
import * as state from "../state.js";
import { drawAggregation } from "./analyze/aggregation.js";
import { drawHistograms } from "./analyze/charts.js";
import { showConventions } from "./analyze/conventions.js";
import { showDiagnostics } from "./analyze/diagnostics.js";
import { $, bindDropZone, el } from "./analyze/dom.js";
import { saveAnalysis } from "./analyze/downloads.js";
import { BROKEN, EXAMPLE, formatExample } from "./analyze/examples.js";
import { showFindings } from "./analyze/findings.js";
import { drawHeatmap } from "./analyze/heatmap.js";
import { dragThreshold, drawRollout } from "./analyze/rollout.js";

const PATH = "/api/v1/analyze";
const DOCS = "/docs#/analyze/analyze_api_v1_analyze_post";
const CONVENTIONS = "/api/v1/conventions";

// ------------------------------------------------------------------ state of the panel

let files = []; // chosen files (sent instead of the JSON when present)
let submitted = null; // the batch of the last Analyze press: {json} or {files}
let result = null; // {data, convention} of the last successful run
let inputChanged = false; // the JSON or the files changed since the shown results
let rolloutThreshold = null; // the slider's C once released (null: the batch's / convention's)

/** The API's answer shown now, or null. */
const shownData = () => result && result.data;

// ------------------------------------------------------------------ input, errors, staleness

/** An error next to the Analyze button, in view (bad JSON, or the API's 422); the callers clear
 * the results. A JSON problem also marks the box invalid and described by the message. */
function showRunError(panel, message, { json = false } = {}) {
  const fields = json ? [$(panel.root, "#analyze-json")] : [];
  panel.errorNear($(panel.root, "#analyze-run"), message, { fields });
}

function clearRunError(panel) {
  panel.clearErrorNear($(panel.root, "#analyze-run"));
}

/** The shown results no longer describe the input: say so (they stay for comparison). */
function markStale(panel) {
  inputChanged = true;
  if (!result) return;
  panel.markStale($(panel.root, "#analyze-out"), "The input changed since these results: press Analyze to update them.");
}

function unmarkStale(panel) {
  panel.clearStale($(panel.root, "#analyze-out"));
}

const isNpy = (f) => /\.npy$/i.test(f.name);
const isBundle = (f) => /\.(npz|safetensors)$/i.test(f.name);

function describeFiles() {
  if (!files.length) return "No files chosen.";
  const names = files.map((f) => (isNpy(f) ? `${f.name} → ${f.name.replace(/\.npy$/i, "")}` : `${f.name} (fields by name)`));
  return `${files.length} file${files.length > 1 ? "s" : ""}: ${names.join(", ")}`;
}

function setFiles(panel, list) {
  const chosen = [...list];
  files = chosen.filter((f) => isNpy(f) || isBundle(f));
  const ignored = chosen.length - files.length;
  $(panel.root, "#analyze-file-list").textContent = describeFiles() +
    (ignored ? ` (ignored ${ignored} file(s) not ending in .npy, .npz or .safetensors)` : "");
  $(panel.root, "#analyze-clear-files").disabled = files.length === 0;
}

/** The form's options, sent over the JSON's own keys when set away from their defaults. */
function knobs(v) {
  const k = { convention: v.aConv };
  const micro = Math.round(Number(v.aMb));
  if (micro > 1) k.micro_batches = micro;
  if (v.aFirst) k.first_epoch = true;
  if (v.aRisL) k.rollout_is_level = v.aRisL;
  if (v.aRisM) k.rollout_is_mode = v.aRisM;
  if (rolloutThreshold !== null) k.rollout_is_threshold = rolloutThreshold;
  return k;
}

async function send(batch, options) {
  if (batch.files) {
    const form = new FormData();
    let bundles = 0;
    for (const file of batch.files) {
      // A .npy part is named after its field; a .npz / .safetensors part may have any name.
      const part = isNpy(file) ? file.name.replace(/\.npy$/i, "") : `batch${bundles ? `_${bundles}` : ""}`;
      if (!isNpy(file)) bundles += 1;
      form.append(part, file, file.name);
    }
    for (const [key, value] of Object.entries(options)) form.append(key, String(value));
    return postForm(PATH, form);
  }
  const body = Array.isArray(batch.json) || typeof batch.json !== "object" || batch.json === null
    ? batch.json : { ...batch.json, ...options };
  return postJSON(PATH, body);
}

// ------------------------------------------------------------------ drawing

function drawAll(panel) {
  const root = panel.root;
  const data = shownData();
  showFindings(root, data);
  showDiagnostics(root, data);
  $(root, "#analyze-rule").textContent = data ? `Rows and tokens shown: ${data.token_view.rule}` : "";
  showConventions(root, data);
  for (const button of root.querySelectorAll("#analyze-download-json, #analyze-download-csv")) button.disabled = !data;
  return Promise.all([
    drawHeatmap(panel, data),
    drawRollout(panel, data),
    drawAggregation(panel, data),
    drawHistograms(panel, data),
  ]);
}

async function update(panel, v) {
  const root = panel.root;
  const status = $(root, "#analyze-status");
  await conventionsReady;
  if (!submitted) {
    result = null;
    await drawAll(panel);
    panel.setApiLink(DOCS, `POST ${PATH}`);
    panel.rendered();
    return;
  }
  const options = knobs(v);
  status.textContent = "Analyzing…";
  $(root, "#analyze-out").setAttribute("aria-busy", "true");
  let data;
  try {
    data = await send(submitted, options);
  } catch (error) {
    // Results of an earlier batch must not pass for this one's: clear them.
    result = null;
    status.textContent = "";
    $(root, "#analyze-out").removeAttribute("aria-busy");
    unmarkStale(panel);
    await drawAll(panel);
    showRunError(panel, `The batch was refused: ${error.message}`);
    return;
  }
  $(root, "#analyze-out").removeAttribute("aria-busy");
  clearRunError(panel);
  result = { data, convention: v.aConv };
  await drawAll(panel);
  if (inputChanged) markStale(panel);
  else unmarkStale(panel);
  const how = submitted.files ? `${submitted.files.length} file${submitted.files.length > 1 ? "s" : ""}` : "JSON";
  const n = data.findings.length;
  status.textContent = `Analyzed ${data.tokens} tokens (${how}) with the ${data.convention.name} convention: ` +
    `${n ? `${n} finding${n > 1 ? "s" : ""}` : "no findings"}.`;
  const shown = Object.entries(options).map(([key, value]) => `${key}=${value}`).join(", ");
  panel.setApiLink(DOCS, `POST ${PATH} (${how}, ${shown})`);
  panel.rendered();
}

// ------------------------------------------------------------------ the convention menu

let conventionsReady = Promise.resolve();

/** Every preset from GET /conventions, grouped by library; the URL's choice restored after. */
function fillConventions(panel, list) {
  const select = $(panel.root, "#analyze-conv");
  const groups = new Map();
  for (const c of list) {
    if (!groups.has(c.library)) groups.set(c.library, el("optgroup", { label: c.library }));
    groups.get(c.library).append(el("option", { value: c.name }, c.name));
  }
  select.replaceChildren(...groups.values());
  panel.controls.restore(state.params());
}

function wire(panel) {
  const root = panel.root;
  const text = $(root, "#analyze-json");
  const input = $(root, "#analyze-files");
  const drop = $(root, "#analyze-drop");
  const status = $(root, "#analyze-status");

  const load = (batch, message) => {
    text.value = formatExample(batch);
    input.value = "";
    setFiles(panel, []);
    markStale(panel);
    status.textContent = message;
  };
  $(root, "#analyze-example").addEventListener("click", () =>
    load(EXAMPLE, "Example loaded: 4 responses of 8, 6, 5 and 3 tokens, with the engine's log-probs. Press Analyze."));
  $(root, "#analyze-example-broken").addEventListener("click", () =>
    load(BROKEN, "Broken batch loaded: first update with ratios off 1, a stale log-prob, a drifting engine and a group with equal scores. Press Analyze."));
  text.addEventListener("input", () => markStale(panel));
  input.addEventListener("change", () => {
    setFiles(panel, input.files);
    markStale(panel);
  });
  $(root, "#analyze-clear-files").addEventListener("click", () => {
    input.value = "";
    setFiles(panel, []);
    markStale(panel);
    input.focus();
  });
  bindDropZone(drop, (files) => {
    setFiles(panel, files);
    markStale(panel);
  });

  $(root, "#analyze-run").addEventListener("click", async () => {
    let batch;
    if (files.length) {
      batch = { files: [...files] };
    } else if (text.value.trim()) {
      try {
        batch = { json: JSON.parse(text.value) };
      } catch (error) {
        batch = { error: `The JSON does not parse: ${error.message}` };
      }
    } else {
      batch = { error: "Nothing to analyze: paste a batch as JSON (or load an example), or choose files." };
    }
    if (batch.error) {
      // The shown results are not this input's: clear them rather than let them pass for it.
      submitted = null;
      result = null;
      unmarkStale(panel);
      status.textContent = "";
      await drawAll(panel);
      showRunError(panel, batch.error, { json: true });
      return;
    }
    submitted = batch;
    inputChanged = false;
    rolloutThreshold = null;
    clearRunError(panel);
    panel.refresh();
  });

  $(root, "#analyze-sort").addEventListener("change", () => drawHeatmap(panel, shownData()));

  // Dragging redraws from the histogram already here; releasing re-runs the analysis with that
  // rollout_is_threshold, so the exact shares (and the loss, when the correction is applied)
  // follow: one request per release, not one per pixel.
  const slider = $(root, "#analyze-threshold");
  slider.addEventListener("input", () => dragThreshold(panel, shownData()));
  slider.addEventListener("change", () => {
    if (!submitted) return;
    rolloutThreshold = Number(slider.value);
    panel.refresh();
  });

  $(root, "#analyze-download-json").addEventListener("click", () => {
    if (result) saveAnalysis(result, "json");
  });
  $(root, "#analyze-download-csv").addEventListener("click", () => {
    if (result) saveAnalysis(result, "csv");
  });
}

export default () => {
  const panel = createPanel("analyze", { update });
  conventionsReady = getJSON(CONVENTIONS).then(
    (list) => fillConventions(panel, list),
    (error) => panel.showError(error, "Could not load the conventions: "),
  );
  wire(panel);
  return panel;
};
