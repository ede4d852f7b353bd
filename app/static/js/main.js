// Entry point: starts every panel at once. plotly.js (a deferred classic script placed after
// this module, so it runs after it) is awaited only by the draws (panel.js, plotlyReady).
import * as state from "./state.js";
import { initLayout } from "./layout.js";
import clip from "./panels/clip.js";
import family from "./panels/family.js";
import value from "./panels/value.js";
import entropy from "./panels/entropy.js";
import total from "./panels/total.js";
import kl from "./panels/kl.js";
import lab from "./panels/lab.js";
import hyper from "./panels/hyper.js";
import analyze from "./panels/analyze.js";
import run from "./panels/run.js";

const PANELS = [clip, family, value, entropy, total, kl, lab, hyper, analyze, run];

function start() {
  initLayout();
  const panels = PANELS.map((init) => init());
  state.onRestore((query) => {
    for (const p of panels) {
      p.controls.restore(query);
      p.refresh();
    }
  });
  document.getElementById("reset-all").addEventListener("click", () => {
    state.clearAll();
    for (const p of panels) {
      p.controls.restore(state.params());
      p.refresh();
    }
  });
  const status = document.getElementById("copy-status");
  document.getElementById("copy-link").addEventListener("click", async () => {
    state.flush();
    try {
      await navigator.clipboard.writeText(window.location.href);
      status.textContent = "Link copied.";
    } catch {
      status.textContent = "Copy this address from the address bar.";
    }
  });
  for (const p of panels) p.refresh();
}

// Until a chart is drawn it says it is loading (app.css); assistive tech hears it is busy.
for (const chart of document.querySelectorAll(".chart:not([hidden])")) chart.setAttribute("aria-busy", "true");
start();
