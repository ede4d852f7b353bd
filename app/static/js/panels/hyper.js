// The hyperparameter panel: the seed's table, served by the API. Each row links to the control
// on this page that moves it (focused on click), and shows that control's current value.
import { getJSON } from "../api.js";
import { valueOf } from "../controls.js";
import { createPanel } from "../panel.js";

const URL_PATH = "/api/v1/hyperparameters";
// Knobs the API table has no loss-panel control for: the training lab moves them (on its own
// scale: plain SGD on a toy policy, so its learning rate is not the table's Adam one).
const LAB_CONTROLS = { ppo_epochs: "lab-epochs", learning_rate: "lab-lr" };
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

function nameCell(row) {
  const label = `<code>${escape(row.name)}</code> (${escape(row.symbol)})`;
  const id = controlId(row);
  const control = id && document.getElementById(id);
  if (control) {
    const scale = row.control ? "" : ' <span class="hyper-none">(plain SGD on a toy: its own scale)</span>';
    return `${label}<br><a class="hyper-link" href="#${escape(id)}" data-control="${escape(id)}">` +
      `move it in “${escape(panelTitle(control))}”</a>${scale}`;
  }
  // No control on the page for this knob: point to the training lab, where the page has one.
  return `${label}<br><a class="hyper-link" href="#panel-lab" data-control="panel-lab">see the training lab</a>`;
}

function nowCell(row) {
  const id = controlId(row);
  const control = id && document.getElementById(id);
  return control ? show(valueOf(control)) : "—";
}

function render(panel) {
  const body = rows.map((row) => `<tr data-name="${escape(row.name)}">` +
    `<th scope="row">${nameCell(row)}</th><td data-label="Default">${escape(show(row.default))}</td>` +
    `<td class="hyper-now" data-label="Now" data-control="${escape(controlId(row) || "")}">${escape(nowCell(row))}</td>` +
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
  const link = event.target.closest("a.hyper-link");
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
