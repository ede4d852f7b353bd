// The page's layout: on a phone every panel but the first starts folded to its heading (the
// page would otherwise be some 30,000 px long); a heading's button folds and unfolds it, and a
// link to a panel or to a control inside one (nav, findings, the hyperparameter table)
// unfolds it. Folded panels still draw; their charts are fitted to their width when shown.
// Every panel is open on wider screens.
import { plotlyReady } from "./panel.js";

const PHONE = "(max-width: 640px)";

function body(section) {
  return document.getElementById(`${section.id}-body`);
}

/** Show or hide a panel's body; charts drawn while it was hidden are fitted to it. */
export function setOpen(section, open) {
  const toggle = section.querySelector(".panel-toggle");
  const content = body(section);
  if (!toggle || !content || content.hidden === !open) return;
  content.hidden = !open;
  toggle.setAttribute("aria-expanded", String(open));
  section.classList.toggle("is-folded", !open);
  if (open) {
    plotlyReady.then((Plotly) => {
      for (const chart of content.querySelectorAll(".js-plotly-plot")) Plotly.Plots.resize(chart);
    }).catch(() => {});
  }
}

/** Unfold the panel that holds the element `id` names (a panel, a control, a chart). */
function reveal(id) {
  const target = id && document.getElementById(id);
  const section = target && target.closest("section.panel");
  if (section) setOpen(section, true);
}

export function initLayout() {
  const sections = [...document.querySelectorAll("section.panel")];
  const hash = decodeURIComponent(window.location.hash.slice(1));
  const phone = window.matchMedia(PHONE);
  if (phone.matches) {
    sections.slice(1).forEach((section) => setOpen(section, false));
    reveal(hash);
  }
  // Folding is the phone's layout: a screen that gets wide (a tablet turned) shows them all.
  phone.addEventListener("change", () => {
    if (!phone.matches) sections.forEach((section) => setOpen(section, true));
  });
  for (const section of sections) {
    const toggle = section.querySelector(".panel-toggle");
    if (toggle) toggle.addEventListener("click", () => setOpen(section, toggle.getAttribute("aria-expanded") !== "true"));
  }
  // A click on an in-page link unfolds its target before the browser scrolls to it.
  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest('a[href^="#"]');
    if (link) reveal(decodeURIComponent(link.getAttribute("href").slice(1)));
  }, true);
  window.addEventListener("hashchange", () => reveal(decodeURIComponent(window.location.hash.slice(1))));
}
