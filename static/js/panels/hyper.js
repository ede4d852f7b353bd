// Panel 6: the seed's hyperparameter table, served by the API. Each row links to the control
// on this page that moves it (focused on click), and shows that control's current value.
import { getJSON } from "../api.js";
import { valueOf } from "../controls.js";
import { createPanel } from "../panel.js";

const URL_PATH = "/api/v1/hyperparameters";
let rows = null;

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
  const control = row.control && document.getElementById(row.control);
  if (control) {
    return `${label}<br><a class="hyper-link" href="#${escape(row.control)}" data-control="${escape(row.control)}">` +
      `move it in “${escape(panelTitle(control))}”</a>`;
  }
  // No control on the page: the training lab illustrates epochs and step size.
  const lab = document.getElementById("panel-lab");
  return lab
    ? `${label}<br><a class="hyper-link" href="#panel-lab" data-control="panel-lab">see the training lab</a>`
    : `${label}<br><span class="hyper-none">no control here; the upcoming training lab illustrates it</span>`;
}

function nowCell(row) {
  const control = row.control && document.getElementById(row.control);
  return control ? show(valueOf(control)) : "—";
}

function render(panel) {
  const body = rows.map((row) => `<tr data-name="${escape(row.name)}">` +
    `<th scope="row">${nameCell(row)}</th><td data-label="Default">${escape(show(row.default))}</td>` +
    `<td class="hyper-now" data-label="Now" data-control="${escape(row.control || "")}">${escape(nowCell(row))}</td>` +
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
