// What every panel shares: its error line, its "drawn by" API link, a coalesced update loop,
// chart drawing with Plotly.react, and a "rendered" signal that tests and benchmarks wait on.
import { coalesce } from "./api.js";
import { bindControls } from "./controls.js";

/**
 * plotly.js, once its deferred script has run. The panels start without it (controls live,
 * API answers asked for) and only their draws wait: the first chart appears as soon as both
 * the answer and plotly.js are in, and input made meanwhile is drawn, never lost.
 */
export const plotlyReady = new Promise((resolve, reject) => {
  if (window.Plotly) {
    resolve(window.Plotly);
    return;
  }
  const script = document.getElementById("plotly-js");
  if (!script) {
    reject(new Error("the page has no plotly.js script"));
    return;
  }
  script.addEventListener("load", () => resolve(window.Plotly), { once: true });
  script.addEventListener("error", () => reject(new Error("plotly.js could not be loaded; reload the page")), { once: true });
});
plotlyReady.catch(() => {}); // each draw reports it

/** An update dropped unfinished because newer input came while it waited for plotly.js. */
class Superseded extends Error {}

/** Resolves after the next frame is painted (or 100 ms, e.g. in a hidden tab). */
function afterPaint() {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 100);
    requestAnimationFrame(() => setTimeout(() => {
      clearTimeout(timer);
      resolve();
    }, 0));
  });
}

function inView(div) {
  const r = div.getBoundingClientRect();
  return r.height > 0 && r.top < window.innerHeight && r.bottom > 0;
}

// The first paint goes to a chart in view: until one has been drawn and painted (or 300 ms
// after plotly.js arrived, when none is in view), charts out of view wait for their first draw.
let firstChartShown;
const firstChartPainted = new Promise((resolve) => {
  firstChartShown = resolve;
});
plotlyReady.then(() => setTimeout(firstChartShown, 300), () => firstChartShown());

export const PLOT_CONFIG = { responsive: true, displaylogo: false, displayModeBar: false };

// On touch screens a chart's drag-to-zoom would take every swipe that starts on it, and a
// full-width chart (or the clip panel's sticky one) would stop the page from scrolling.
const TOUCH = window.matchMedia("(pointer: coarse)");

const FONT = { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12 };

/** A Plotly layout with the house margins and font; `extra` overrides. */
export function layout(extra = {}) {
  return {
    font: FONT,
    margin: { l: 48, r: 12, t: 36, b: 40 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "#fff",
    legend: { orientation: "h", y: -0.18 },
    ...extra,
  };
}

// Per panel: how many times it has drawn, when it first drew (ms since navigation), its error.
window.__ppo = window.__ppo || { rendered: {}, firstRender: {}, errors: {} };

export function createPanel(id, { presets = {}, update }) {
  const root = document.getElementById(`panel-${id}`);
  const errorLine = root.querySelector(".panel-error");
  const apiLink = document.getElementById(`${id}-api`);
  window.__ppo.rendered[id] = 0;

  function showError(error, prefix = "The API answered an error: ") {
    errorLine.hidden = false;
    errorLine.textContent = `${prefix}${error.message}`;
    window.__ppo.errors[id] = error.message;
  }

  const panel = {
    root,
    controls: null,
    setApiLink(url, label = url) {
      if (!apiLink) return;
      apiLink.href = url;
      apiLink.querySelector("code").textContent = label;
    },
    /** Draw or update a chart (shown if it was hidden); only touches the DOM of that chart. */
    async draw(divId, traces, chartLayout) {
      const waited = !window.Plotly;
      const Plotly = await plotlyReady;
      // Input made while plotly.js loaded: draw the newest values first, not these.
      if (waited && updating && schedule.hasNewer()) throw new Superseded();
      const div = document.getElementById(divId);
      div.hidden = false;
      // Every panel's first draw is ready at about the same moment: the chart in view is not
      // held up by drawing sixteen others before the browser may paint it.
      const first = !div.classList.contains("js-plotly-plot");
      const shown = inView(div);
      if (first && !shown) await firstChartPainted;
      div.removeAttribute("aria-busy");
      const drawn = TOUCH.matches && chartLayout.dragmode === undefined
        ? { ...chartLayout, dragmode: false } : chartLayout;
      const done = await Plotly.react(div, traces, drawn, PLOT_CONFIG);
      if (first && shown) afterPaint().then(firstChartShown);
      return done;
    },
    /** A chart with nothing to show is not drawn empty: it is removed and takes no space. */
    clearChart(divId) {
      const div = document.getElementById(divId);
      if (window.Plotly) window.Plotly.purge(div);
      div.hidden = true;
    },
    rendered() {
      errorLine.hidden = true;
      window.__ppo.errors[id] = null;
      window.__ppo.rendered[id] += 1;
      if (!(id in window.__ppo.firstRender)) window.__ppo.firstRender[id] = performance.now();
      document.dispatchEvent(new CustomEvent("panel:rendered", { detail: { panel: id } }));
    },
    showError,
  };
  let updating = false;
  const schedule = coalesce(async (values) => {
    updating = true;
    try {
      await update(panel, values);
    } finally {
      updating = false;
    }
  }, (error) => {
    if (!(error instanceof Superseded)) showError(error);
  });
  panel.refresh = () => schedule(panel.controls.values());
  panel.controls = bindControls(root, panel.refresh, presets);
  return panel;
}

/** Phones and desktops lay a panel's charts out differently (one column under `px`): redraw
 * when a resize (a phone turned sideways) crosses that width. */
export const NARROW_PX = 560;

export function redrawAcrossBreakpoint(panel, div, px = NARROW_PX) {
  let narrow = div.clientWidth < px;
  new ResizeObserver(() => {
    const now = div.clientWidth < px;
    if (now !== narrow) {
      narrow = now;
      panel.refresh();
    }
  }).observe(div);
}
