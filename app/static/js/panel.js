// What every panel shares: its error line, its "drawn by" API link, a coalesced update loop,
// chart drawing with Plotly.react, and a "rendered" signal that tests and benchmarks wait on.
// Also: errors shown beside the control that caused them and results marked stale (issue 12,
// item 1), and charts whose axes hold still while knobs move until "Fit axes" (item 3).
import { coalesce } from "./api.js";
import { bindControls, describedBy } from "./controls.js";

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
// The charts that waited then draw in slices of ~50 ms of main thread, each slice a task of its
// own, not all in the one that saw the paint: together they take ~350 ms (software rendering),
// which input and frames should not wait on. (One task per chart costs a frame per chart.)
const SLICE_MS = 50;
let drawTurns = firstChartPainted;
let sliceStart = -Infinity;
function ownTask() {
  const turn = drawTurns.then(async () => {
    if (performance.now() - sliceStart < SLICE_MS) return;
    await new Promise((resolve) => setTimeout(resolve, 0));
    sliceStart = performance.now();
  });
  drawTurns = turn;
  return turn;
}
// Then the whole page is laid out (app.css, .cv-defer): nothing shifts under later scrolling.
firstChartPainted.then(afterPaint).then(() => document.documentElement.classList.remove("cv-defer"));

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


// ---------------------------------------------------------------- errors near their control

/** A form field can be marked invalid; a button or a drop zone cannot. */
const isField = (el) => el && /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName);

/**
 * The error line that belongs to `anchor`: an element in the page marked
 * `data-error-for="<anchor id>"` (placed by the template), else one made and put right after
 * the anchor's `.control` box (or the anchor itself).
 */
function errorLineFor(anchor) {
  const existing = document.querySelector(`[data-error-for="${anchor.id}"]`);
  if (existing) return existing;
  const line = document.createElement("p");
  line.className = "near-error";
  line.id = `${anchor.id}-error`;
  line.dataset.errorFor = anchor.id;
  line.setAttribute("role", "alert");
  line.hidden = true;
  (anchor.closest(".control") || anchor).after(line);
  return line;
}

/** Scroll just enough that `el` is on screen (nothing moves when it already is). */
function bringIntoView(el) {
  const box = el.getBoundingClientRect();
  if (box.top < 0 || box.bottom > window.innerHeight) el.scrollIntoView({ block: "nearest" });
}

/**
 * Show `message` next to `anchor` (the control or button whose input caused it), scrolled into
 * view. `fields` (default: the anchor, when it is a form field) are marked aria-invalid and
 * described by the message. Returns the error line.
 * @param {HTMLElement} anchor
 * @param {string} message
 * @param {{fields?: HTMLElement[]}} [options]
 */
export function showErrorNear(anchor, message, { fields } = {}) {
  const line = errorLineFor(anchor);
  line.textContent = message;
  line.hidden = false;
  if (!line.id) line.id = `${anchor.id}-error`;
  const marked = fields || (isField(anchor) ? [anchor] : []);
  for (const field of marked) {
    field.setAttribute("aria-invalid", "true");
    describedBy(field, line.id, true);
  }
  line.dataset.fields = marked.map((f) => f.id).join(" ");
  bringIntoView(line);
  return line;
}

/** Hide the error next to `anchor` and unmark the fields it described. */
export function clearErrorNear(anchor) {
  const line = document.querySelector(`[data-error-for="${anchor.id}"]`);
  if (!line) return;
  for (const id of (line.dataset.fields || "").split(" ").filter(Boolean)) {
    const field = document.getElementById(id);
    if (!field) continue;
    field.removeAttribute("aria-invalid");
    describedBy(field, line.id, false);
  }
  line.dataset.fields = "";
  line.hidden = true;
  line.textContent = "";
}

// ---------------------------------------------------------------- stale results

/**
 * Mark `region` (an element holding results) as no longer matching the inputs: it is dimmed
 * (class `is-stale`) and a note is put first inside it (or updated), saying what to do.
 */
export function markStale(region, note) {
  region.classList.add("is-stale");
  let line = region.querySelector(":scope > .stale-note");
  if (!line) {
    line = document.createElement("p");
    line.className = "stale-note";
    region.prepend(line);
  }
  line.textContent = note;
  line.hidden = false;
}

/** The results in `region` match the inputs again. */
export function clearStale(region) {
  region.classList.remove("is-stale");
  const line = region.querySelector(":scope > .stale-note");
  if (line) {
    line.hidden = true;
    line.textContent = "";
  }
}

// ---------------------------------------------------------------- fixed axes

const AXIS = /^[xy]axis\d*$/;

/** The numeric axes' ranges Plotly drew `div` with: {xaxis: [lo, hi], ...}. */
function drawnRanges(div) {
  const full = div._fullLayout || {};
  const out = {};
  for (const [name, axis] of Object.entries(full)) {
    if (AXIS.test(name) && axis && (axis.type === "linear" || axis.type === "log") && axis.range) {
      out[name] = [...axis.range];
    }
  }
  return out;
}

// ---------------------------------------------------------------- data-only redraws

/**
 * `Plotly.react` of a chart whose layout is the one it was drawn with, only its traces' data
 * changed. Any change of trace data makes plotly.js redraw the whole figure (axes, ticks, grid,
 * shapes, annotations, drag boxes; ~13 ms p50 for the clip panel's four subplots here) unless
 * the layout asks for a transition: then it redraws the traces alone (~6 ms). With duration 0
 * nothing animates. Only for an unchanged layout: the transition path leaves the rest of the
 * layout as it was drawn. The traces are drawn (synchronously) once the transition starts;
 * plotly.js resolves react's promise a task later, and never if a newer react interrupts it,
 * so this resolves when the transition has started (or when react is done, if plotly.js chose
 * another path, e.g. nothing changed).
 */
function reactTracesOnly(Plotly, div, traces, chartLayout) {
  return new Promise((resolve, reject) => {
    const started = () => queueMicrotask(() => resolve(div));
    div.once("plotly_transitioning", started);
    Plotly.react(div, traces, { ...chartLayout, transition: { duration: 0 } }, PLOT_CONFIG).then(
      () => {
        div.removeListener("plotly_transitioning", started);
        resolve(div);
      },
      (error) => {
        div.removeListener("plotly_transitioning", started);
        reject(error);
      },
    );
  });
}

/**
 * A panel: its controls bound to the URL, `update(panel, values)` run coalesced on every change.
 * @param {string} id the panel's id (section#panel-<id>)
 * @param {object} options
 * @param {Record<string, object>} [options.presets] named value sets for its preset buttons
 * @param {(panel: object, values: object) => Promise<void>} options.update draws the panel
 * @param {string[]} [options.fixedAxes] ids of charts whose axes hold still while knobs move:
 *   the first draw (and the panel's "Fit axes" button, `button.fit-axes`) takes the ranges the
 *   chart was drawn with; later draws keep them.
 * @param {string[]} [options.tracesOnly] ids of charts whose moves mostly change trace data
 *   alone (x, y, marker colours; nothing in the layout): a draw with the same layout as the
 *   last one redraws only the traces (see reactTracesOnly).
 */
export function createPanel(id, { presets = {}, update, fixedAxes = [], tracesOnly = [] }) {
  const root = document.getElementById(`panel-${id}`);
  const errorLine = root.querySelector(".panel-error");
  const apiLink = document.getElementById(`${id}-api`);
  window.__ppo.rendered[id] = 0;
  // The panel's own error line sits under its controls and presets, where the knob that caused
  // it is, not at the end of the panel below its charts.
  const controlsBlock = root.querySelector(".controls");
  if (errorLine && controlsBlock) {
    const presetsRow = controlsBlock.nextElementSibling;
    (presetsRow && presetsRow.classList.contains("presets") ? presetsRow : controlsBlock).after(errorLine);
  }
  /** Ranges of each fixed chart, once drawn: {chartId: {xaxis: [lo, hi], ...}}. */
  const frozen = new Map();
  const fixed = new Set(fixedAxes);
  /** The layout (as JSON) each tracesOnly chart was last drawn with. */
  const drawnLayouts = new Map(tracesOnly.map((divId) => [divId, null]));

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
    /** Draw or update a chart (shown if it was hidden); only touches the DOM of that chart.
     * A fixed-axes chart keeps the ranges of its first draw (or of the last "Fit axes"). */
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
      if (first && !shown) await ownTask();
      div.removeAttribute("aria-busy");
      const ranges = fixed.has(divId) ? frozen.get(divId) : undefined;
      if (ranges) {
        for (const [name, range] of Object.entries(ranges)) {
          chartLayout[name] = { ...(chartLayout[name] || {}), range: [...range], autorange: false };
        }
      }
      const drawn = TOUCH.matches && chartLayout.dragmode === undefined
        ? { ...chartLayout, dragmode: false } : chartLayout;
      let done;
      if (drawnLayouts.has(divId)) {
        const key = JSON.stringify(drawn);
        const same = !first && drawnLayouts.get(divId) === key;
        drawnLayouts.set(divId, null); // unknown until this draw is done
        done = await (same ? reactTracesOnly(Plotly, div, traces, drawn)
          : Plotly.react(div, traces, drawn, PLOT_CONFIG));
        drawnLayouts.set(divId, key);
      } else {
        done = await Plotly.react(div, traces, drawn, PLOT_CONFIG);
      }
      if (fixed.has(divId) && !ranges) frozen.set(divId, drawnRanges(div));
      if (first && shown) afterPaint().then(firstChartShown);
      return done;
    },
    /** A chart with nothing to show is not drawn empty: it is removed and takes no space. */
    clearChart(divId) {
      const div = document.getElementById(divId);
      if (window.Plotly) window.Plotly.purge(div);
      frozen.delete(divId);
      if (drawnLayouts.has(divId)) drawnLayouts.set(divId, null);
      div.hidden = true;
    },
    /** The ranges a fixed-axes chart's next draw keeps ({yaxis: [lo, hi], ...}), if any. */
    frozenRanges(divId) {
      return frozen.get(divId);
    },
    /** Re-fit the fixed axes of this panel's charts to what the next draw shows. */
    fitAxes() {
      frozen.clear();
      panel.refresh();
    },
    rendered() {
      errorLine.hidden = true;
      root.classList.remove("panel-stale");
      window.__ppo.errors[id] = null;
      window.__ppo.rendered[id] += 1;
      if (!(id in window.__ppo.firstRender)) window.__ppo.firstRender[id] = performance.now();
      document.dispatchEvent(new CustomEvent("panel:rendered", { detail: { panel: id } }));
    },
    showError,
    /** An error next to the control that caused it (see showErrorNear); recorded for tests. */
    errorNear(anchor, message, options) {
      window.__ppo.errors[id] = message;
      return showErrorNear(anchor, message, options);
    },
    clearErrorNear(anchor) {
      clearErrorNear(anchor);
    },
    markStale,
    clearStale,
  };
  // A failed update leaves the previous charts up: they no longer match the knobs, so the panel
  // is marked stale (dimmed, and said in the error) until the next draw succeeds. An update
  // dropped for newer input (Superseded) is no error.
  let updating = false;
  const schedule = coalesce(async (values) => {
    updating = true;
    try {
      await update(panel, values);
    } finally {
      updating = false;
    }
  }, (error) => {
    if (error instanceof Superseded) return;
    showError(error, "The API answered an error (the charts still show the last settings that worked): ");
    root.classList.add("panel-stale");
    bringIntoView(errorLine);
  });
  panel.refresh = () => {
    panel.controls.syncPressed();
    schedule(panel.controls.values());
  };
  panel.controls = bindControls(root, panel.refresh, presets);
  for (const button of root.querySelectorAll("button.fit-axes")) {
    button.addEventListener("click", () => panel.fitAxes());
  }
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

// ---------------------------------------------------------------- scrolling regions

/**
 * A box that scrolls sideways (a wide table or formula on a phone) must be reachable by the
 * keyboard: while it overflows it gets tabindex 0 (a table's box also a region named by its
 * caption); when it fits again, the tab stop goes. Checked after each draw and on resize.
 */
function syncScrollRegions() {
  for (const box of document.querySelectorAll(".table-wrap, .formula")) {
    const overflows = box.scrollWidth > box.clientWidth + 1;
    if (overflows && !box.hasAttribute("tabindex")) {
      box.tabIndex = 0;
      box.dataset.scrollStop = "";
      if (box.classList.contains("table-wrap") && !box.hasAttribute("role")) {
        const caption = box.querySelector("caption");
        box.setAttribute("role", "region");
        box.setAttribute("aria-label", caption ? `${caption.textContent.trim()} (scrolls sideways)` : "Table (scrolls sideways)");
      }
    } else if (!overflows && "scrollStop" in box.dataset) {
      box.removeAttribute("tabindex");
      delete box.dataset.scrollStop;
      if (box.getAttribute("role") === "region") {
        box.removeAttribute("role");
        box.removeAttribute("aria-label");
      }
    }
  }
}

let scrollCheck = 0;
function scheduleScrollCheck() {
  // Not before the first chart is painted: the check lays the page out (~30 ms at load).
  if (!scrollCheck) {
    scrollCheck = -1;
    firstChartPainted.then(() => requestAnimationFrame(() => { scrollCheck = 0; syncScrollRegions(); }));
  }
}
if (typeof document !== "undefined") {
  document.addEventListener("panel:rendered", scheduleScrollCheck);
  window.addEventListener("resize", scheduleScrollCheck);
}
