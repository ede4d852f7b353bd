// "Your training run": drop in a run's metrics log (verl JSON lines or console lines, TRL's
// trainer_state.json, a TensorBoard event file, a CSV), and see every metric on the common map
// plotted over steps (small multiples on one step axis), the findings marked at their step and
// linked to the panel that explains them, and the names not on the map. The report is made when
// a file is chosen (or the example loaded); a change of the format re-reads the same file.
// Exports the report as one self-contained HTML file.
//
// This module holds the form, the request and the panel's state; the figure, the lists, the
// example and the export are under ./run/.
import { getJSON, postForm } from "../api.js";
import { createPanel } from "../panel.js";
import { $, bindDropZone } from "./analyze/dom.js";
import { EXAMPLE_NAME, exampleRunText } from "./run/example.js";
import { exportReport } from "./run/export.js";
import { MAX_POINTS, runFigure } from "./run/figure.js";
import { fillMetricTable, findingItems, unmappedItems } from "./run/report.js";

const PATH = "/api/v1/runs/report";
const MAP = "/api/v1/runs/metric-map";
const DOCS = "/docs#/runs";
const NO_MAP = { canonical: {}, aliases: [] };

let submitted = null; // the File of the last choice (or the example), or null
let shown = null; // {report, fileName, map, figure} of the last successful report
let metricMap = Promise.resolve(NO_MAP);
let mapError = null; // why the metric map could not be loaded, shown after every draw

// ------------------------------------------------------------------ errors next to their control

// Each error line belongs to a control (its template marks it data-error-for): panel.js shows
// it beside that control, in view, and marks the control invalid.
const ERROR_ANCHORS = ["#run-file", "#run-format", "#run-export"];

function showLineError(panel, anchor, message) {
  panel.errorNear($(panel.root, anchor), message);
}

function clearLineErrors(panel, anchors = ERROR_ANCHORS) {
  for (const anchor of anchors) panel.clearErrorNear($(panel.root, anchor));
}

/** A refused file: next to the format menu when the API blames the format, else next to the file. */
function showReportError(panel, error) {
  const messages = error.messages || [error.message];
  const blamesFormat = messages.some((m) => /\((?:[\w]+\.)*format\)$/.test(m));
  const what = error.status === 413 ? "The file is too large" : "The file was refused";
  showLineError(panel, blamesFormat ? "#run-format" : "#run-file", `${what}: ${error.message}`);
}

// ------------------------------------------------------------------ drawing

async function drawAll(panel) {
  const root = panel.root;
  const report = shown && shown.report;
  $(root, "#run-findings").replaceChildren(...findingItems(report));
  $(root, "#run-unmapped").replaceChildren(...unmappedItems(report));
  fillMetricTable($(root, "#run-metrics"), report, shown ? shown.map : NO_MAP, shown ? shown.figure.names : []);
  $(root, "#run-export").disabled = !report;
  if (!report) {
    return panel.clearChart("run-charts");
  }
  if (!shown.figure.names.length) {
    return panel.clearChart("run-charts");
  }
  return panel.draw("run-charts", shown.figure.data, shown.figure.layout);
}

const sizeOf = (bytes) => (bytes < 1024 ? `${bytes} B` : bytes < 1048576 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1048576).toFixed(1)} MB`);

async function update(panel, v) {
  const root = panel.root;
  const status = $(root, "#run-status");
  const map = await metricMap;
  if (!submitted) {
    shown = null;
    await drawAll(panel);
    panel.setApiLink(DOCS, `POST ${PATH}`);
    rendered(panel);
    return;
  }
  const file = submitted;
  const form = new FormData();
  form.append("file", file, file.name);
  if (v.rFmt) form.append("format", v.rFmt);
  status.textContent = `Reading ${file.name}…`;
  $(root, "#run-out").setAttribute("aria-busy", "true");
  let report;
  try {
    report = await postForm(PATH, form);
  } catch (error) {
    // The results of an earlier file must not pass for this one's: clear them.
    shown = null;
    status.textContent = "";
    $(root, "#run-out").removeAttribute("aria-busy");
    await drawAll(panel);
    clearLineErrors(panel);
    showReportError(panel, error);
    return;
  }
  $(root, "#run-out").removeAttribute("aria-busy");
  clearLineErrors(panel);
  shown = { report, fileName: file.name, map, figure: runFigure(report, map) };
  await drawAll(panel);
  const n = report.findings.length;
  status.textContent = `${file.name}: ${report.format}, ${report.steps} steps, ` +
    `${shown.figure.names.length} metrics on the map, ${report.unmapped.length} not; ` +
    `${n ? `${n} finding${n > 1 ? "s" : ""}` : "no findings"}.` +
    (Object.values(report.metrics).some((m) => m.steps.length > MAX_POINTS)
      ? ` Long series are drawn from at most ${MAX_POINTS} points each (every stretch's lowest and highest value, so spikes stay).` : "");
  panel.setApiLink(DOCS, `POST ${PATH} (${file.name}, format=${v.rFmt || "detected"})`);
  rendered(panel);
}

/** The draw is done; a metric map that failed to load stays said (the charts lack its meanings). */
function rendered(panel) {
  panel.rendered();
  if (mapError) panel.showError(mapError, "Could not load the metric map (meanings and formulas): ");
}

// ------------------------------------------------------------------ the form

function choose(panel, file, note = "") {
  submitted = file;
  $(panel.root, "#run-file-list").textContent = `${file.name} (${sizeOf(file.size)})${note}`;
  clearLineErrors(panel);
  panel.refresh();
}

function wire(panel) {
  const root = panel.root;
  const input = $(root, "#run-file");
  const drop = $(root, "#run-drop");

  input.addEventListener("change", () => {
    if (input.files.length) choose(panel, input.files[0]);
  });
  bindDropZone(drop, (files) => {
    input.value = "";
    choose(panel, files[0], files.length > 1 ? ` — only the first of the ${files.length} files dropped is read` : "");
  });
  $(root, "#run-example").addEventListener("click", () => {
    input.value = "";
    const file = new File([exampleRunText()], EXAMPLE_NAME, { type: "application/x-ndjson" });
    choose(panel, file, " — the example: a verl run whose entropy collapses and whose KL spikes at step 90");
  });
  $(root, "#run-export").addEventListener("click", async () => {
    if (!shown) return;
    const button = $(root, "#run-export");
    button.disabled = true;
    clearLineErrors(panel, ["#run-export"]);
    try {
      await exportReport(shown);
    } catch (error) {
      showLineError(panel, "#run-export", `The export failed: ${error.message}`);
    } finally {
      button.disabled = !shown;
    }
  });
}

export default () => {
  const panel = createPanel("run", { update });
  metricMap = getJSON(MAP).catch((error) => {
    mapError = error;
    return NO_MAP;
  });
  wire(panel);
  return panel;
};
