// The hyperparameter panel: the seed's table, served by the API, as a live view of the page's
// one state: each row links to every control that moves its knob (a shared knob such as ε has
// one in several panels, all in step) and its "now" column shows that knob's value. A knob the
// page only has on another scale (the lab's plain-SGD learning rate) is linked, not compared.
import { getJSON } from "../api.js";
import { valueOf } from "../controls.js";
import { createPanel } from "../panel.js";

const URL_PATH = "/api/v1/hyperparameters";
// Knobs the API table has no loss-panel control for: the training lab moves them (on its own
// scale: plain SGD on a toy policy, so its learning rate is not the table's Adam one).
const LAB_CONTROLS = { ppo_epochs: "lab-epochs", learning_rate: "lab-lr" };
/** Rows whose page control is on another scale than the table's default: no "now" value. */
const OTHER_SCALE = new Set(["learning_rate"]);
let rows = null;

/** The id of the page control that moves a row's knob, or null. */
function controlId(row) {
  return row.control || LAB_CONTROLS[row.name] || null;
}

function escape(text) {
  const span = document.createElement("span");
  span.textContent = String(text);
  return span.innerHTML;
}

function show(x) {
  if (typeof x !== "number") return String(x);
  return x !== 0 && Math.abs(x) < 1e-3 ? x.toExponential() : String(Math.round(x * 1e4) / 1e4);
}

/** The panel that holds a control, for the link's accessible description. */
function panelTitle(control) {
  const section = control && control.closest("section.panel");
  const heading = section && section.querySelector("h2");
  return heading ? heading.textContent : "this page";
}

/** Every control on the page that holds the same key as `control` (a shared knob's copies). */
function copies(control) {
  const key = control.dataset.key;
  return key ? [...document.querySelectorAll(`[data-key="${CSS.escape(key)}"]`)] : [control];
}

function nameCell(row) {
  const label = `<code>${escape(row.name)}</code> (${escape(row.symbol)})`;
  const id = controlId(row);
  const control = id && document.getElementById(id);
  if (control) {
    const scale = OTHER_SCALE.has(row.name)
      ? ' <span class="hyper-none">(plain SGD on a toy: its own scale)</span>' : "";
    const links = copies(control).map((c) =>
      `<a class="hyper-link" href="#${escape(c.id)}" data-control="${escape(c.id)}">“${escape(panelTitle(c))}”</a>`);
    const where = links.length > 1 ? `one value, moved in ${links.join(", ")}` : `move it in ${links[0]}`;
    return `${label}<br><span class="hyper-where">${where}</span>${scale}`;
  }
  // No control on the page for this knob: point to the training lab, where the page has one.
  return `${label}<br><a class="hyper-link" href="#panel-lab" data-control="panel-lab">see the training lab</a>`;
}

function nowCell(row) {
  const id = controlId(row);
  const control = id && document.getElementById(id);
  return control && !OTHER_SCALE.has(row.name) ? show(valueOf(control)) : "—";
}

function render(panel) {
  const body = rows.map((row) => `<tr data-name="${escape(row.name)}">` +
    `<th scope="row">${nameCell(row)}</th><td data-label="Default">${escape(show(row.default))}</td>` +
    `<td class="hyper-now" data-label="Now" data-control="${escape(OTHER_SCALE.has(row.name) ? "" : controlId(row) || "")}">${escape(nowCell(row))}</td>` +
    `<td data-label="Controls">${escape(row.controls)}</td><td data-label="Too high">${escape(row.too_high)}</td>` +
    `<td data-label="Too low">${escape(row.too_low)}</td></tr>`);
  panel.root.querySelector("#hyper-table tbody").innerHTML = body.join("");
}

/** Refresh the "now" column after any control on the page moved. */
function refreshNow(panel) {
  for (const cell of panel.root.querySelectorAll("td.hyper-now[data-control]")) {
    const control = cell.dataset.control && document.getElementById(cell.dataset.control);
    if (control) cell.textContent = show(valueOf(control));
  }
}

function focusControl(event) {
  const link = event.target.closest("a.hyper-link[data-control]");
  if (!link) return;
  const target = document.getElementById(link.dataset.control);
  if (!target) return;
  // Focus in place instead of following the hash, which would add a history entry.
  event.preventDefault();
  target.scrollIntoView({ block: "center" });
  if (target.matches("section")) target.setAttribute("tabindex", "-1");
  target.focus({ preventScroll: true });
  const box = target.closest(".control") || target;
  box.classList.remove("flash");
  void box.offsetWidth; // restart the highlight animation
  box.classList.add("flash");
}

async function update(panel) {
  if (!rows) rows = await getJSON(URL_PATH);
  render(panel);
  panel.setApiLink(URL_PATH);
  panel.rendered();
}

export default () => {
  const panel = createPanel("hyper", { update });
  panel.root.addEventListener("click", focusControl);
  document.addEventListener("input", () => refreshNow(panel));
  document.addEventListener("panel:rendered", () => refreshNow(panel));
  return panel;
};
