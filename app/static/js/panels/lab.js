// The training lab: runs vanilla PG, PPO and PPO + KL side by side on a toy language policy,
// streamed one iteration at a time over server-sent events; the curves fill in live.
// Nothing runs until the Run button is pressed; the charts stay hidden until the first run.
//
// The presets and the work budget come from the server (./lab/presets.js): the page says
// before Run whether a run is too large. A run can be paused (the stream goes on; its
// iterations wait in memory), stepped one iteration at a time, and scrubbed: a slider over the
// iterations shown marks one on every chart (./lab/charts.js) with its numbers and samples
// (./lab/readouts.js).
import { ApiError } from "../api.js";
import { setEnabled } from "../controls.js";
import { createPanel } from "../panel.js";
import { colourTerms } from "../terms.js";
import { ALGORITHMS, drawEmpty, extendCharts, markIteration } from "./lab/charts.js";
import { budget, KNOB_KEYS, loadPresets, presetValues } from "./lab/presets.js";
import { addSamples, atIteration, observed, plural, resetSamples, sampleAt } from "./lab/readouts.js";

const STREAM_PATH = "/api/v1/lab/stream";

/** The run in progress or the last one (see start()); { state: "idle" } before any. */
let run = null;
const $ = (panel, selector) => panel.root.querySelector(selector);

function chosen(v) {
  return ALGORITHMS.filter((a) => v[a.key]).map((a) => a.name);
}

function millions(n) {
  return `${Number((n / 1e6).toPrecision(3))} M`;
}

/** The knobs' problems the page can see before asking the server (which checks them all). */
function problem(v) {
  if (chosen(v).length === 0) return "Pick at least one algorithm to train.";
  if (v.lTgt && v.lKl <= 0) return "A KL target needs a KL coef β above 0 (β adapts from it).";
  const b = budget(v, chosen(v));
  if (b.over) {
    return `Too large for this server: ${millions(b.work)} work units, the limit is ` +
      `${millions(b.max)}. Lower the iterations, epochs, batch size or algorithms.`;
  }
  return null;
}

function streamUrl(v) {
  const query = new URLSearchParams();
  for (const name of chosen(v)) query.append("algorithms", name);
  for (const [knob, key] of Object.entries(KNOB_KEYS)) {
    if (knob === "target_kl" && !v.lTgt) continue;
    query.set(knob, String(v[key]));
  }
  return `${STREAM_PATH}?${query}`;
}

function setStatus(panel, text) {
  const status = $(panel, "#lab-status");
  if (status.textContent !== text) status.textContent = text; // a live region: say news only
}

// ---- the budget and the errors, next to the Run button ----------------------------------

function showBudget(panel, v) {
  const line = $(panel, "#lab-budget");
  const b = budget(v, chosen(v));
  line.classList.toggle("over", b.over);
  if (b.work === null) {
    delete line.dataset.work;
    line.textContent = b.failure
      ? `Work budget unknown (${b.failure}); the server checks it on Run.`
      : "Work budget: reading the server's limit…";
    return;
  }
  line.dataset.work = String(b.work);
  line.dataset.max = String(b.max);
  const terms = `${v.lIt} it × ${v.lEp} epochs × ${v.lBs} × ${b.seqLen} words × ` +
    `${plural(chosen(v).length, "algorithm")}`;
  line.textContent = b.over
    ? `Over budget: ${millions(b.work)} work units (${terms}) against this server's ` +
      `${millions(b.max)}. Run is off until it fits: lower the iterations, epochs, batch size or algorithms.`
    : `Work: ${millions(b.work)} of ${millions(b.max)} (${terms}).`;
}

/** An error (or a problem with the knobs) right beside Run, where the eye is. */
function showError(panel, message) {
  const line = $(panel, "#lab-error");
  line.hidden = false;
  line.textContent = message;
  window.__ppo.errors.lab = message;
}

function clearError(panel) {
  const line = $(panel, "#lab-error");
  line.hidden = true;
  line.textContent = "";
  window.__ppo.errors.lab = null;
}

/** Results on screen that no longer match the knobs: marked (kept to compare), or unmarked. */
function markStale(panel, stale) {
  const note = $(panel, "#lab-stale");
  note.hidden = !stale;
  note.textContent = stale
    ? "The results below are from earlier settings: press Run to train with the current ones."
    : "";
  for (const el of panel.root.querySelectorAll(".lab-results")) el.classList.toggle("is-stale", stale);
}

/** Enable the buttons that do something now; keep keyboard focus on one that does. */
function syncButtons(panel) {
  const buttons = {
    run: $(panel, "#lab-run"), pause: $(panel, "#lab-pause"), step: $(panel, "#lab-step"),
    stop: $(panel, "#lab-stop"),
  };
  const focused = Object.values(buttons).includes(document.activeElement) ? document.activeElement : null;
  const r = run && run.steps ? run : null;
  const running = r !== null && r.state === "running";
  const waiting = r !== null && r.shown < r.received;
  buttons.run.disabled = running || problem(panel.controls.values()) !== null;
  buttons.stop.disabled = !running;
  buttons.pause.disabled = !(running || (r && r.paused && waiting));
  buttons.pause.textContent = r && r.paused ? "Resume" : "Pause";
  buttons.step.disabled = !(r && r.paused && (running || waiting));
  if (focused && focused.disabled) {
    const next = [running ? buttons.stop : buttons.run, buttons.run].find((b) => !b.disabled);
    if (next) next.focus();
  }
  panel.root.dataset.labState = r ? r.state : "idle";
  panel.root.dataset.labReceived = String(r ? r.received : 0);
  panel.root.dataset.labShown = String(r ? r.shown : 0);
}

// ---- drawing: points are buffered and drawn at most once per animation frame ----------------

function flush(panel, r) {
  r.frame = 0;
  const pending = r.pending;
  if (pending.length === 0) return Promise.resolve();
  r.pending = [];
  const drawn = extendCharts(r.algorithms, pending);
  $(panel, "#lab-progress").value = r.shown;
  $(panel, "#lab-readout").innerHTML = observed(r);
  return drawn.then(() => showScrub(panel, r));
}

function scheduleFlush(panel, r) {
  if (!r.frame) r.frame = window.requestAnimationFrame(() => { r.drawn = r.drawn.then(() => flush(panel, r)); });
}

/** Put the received iterations up to `upTo` (a count) on the charts, samples and readouts. */
function reveal(panel, r, upTo) {
  for (let i = r.shown; i < upTo; i += 1) {
    const step = r.steps[i];
    for (const name of r.algorithms) {
      const m = step.metrics[name];
      for (const key of Object.keys(r.series[name])) r.series[name][key].push(m[key]);
    }
    r.pending.push(step);
    addSamples(panel.root, step.iteration, step.metrics);
  }
  if (upTo > r.shown) {
    r.shown = upTo;
    scheduleFlush(panel, r);
  }
}

// ---- pause, step and scrub ---------------------------------------------------------------

function describe(panel, r) {
  if (r.state === "running") {
    setStatus(panel, r.paused
      ? `Paused at ${r.shown} of ${plural(r.iterations, "iteration")}: the run goes on; Step shows one more, Resume the rest.`
      : `Training ${r.algorithms.join(", ")} for ${plural(r.iterations, "iteration")}…`);
    return;
  }
  const waiting = r.received - r.shown;
  const more = waiting > 0 ? ` Showing ${r.shown}: ${waiting} more to step through or resume.` : "";
  if (r.state === "done") {
    setStatus(panel, `Done: ${plural(r.iterations, "iteration")} of ${r.algorithms.join(", ")}.${more}`);
  } else if (r.state === "stopped") {
    setStatus(panel, `Stopped after ${r.received} of ${plural(r.iterations, "iteration")}.${more}`);
  }
}

function togglePause(panel) {
  const r = run;
  if (!r || !r.steps) return;
  r.paused = !r.paused;
  r.want = 0;
  if (!r.paused) reveal(panel, r, r.received);
  describe(panel, r);
  syncButtons(panel);
  r.drawn = r.drawn.then(() => showScrub(panel, r));
}

/** Show exactly one more iteration: a received one, or the next to arrive. */
function stepOnce(panel) {
  const r = run;
  if (!r || !r.steps || !r.paused) return;
  if (r.shown < r.received) reveal(panel, r, r.shown + 1);
  else if (r.state === "running") r.want += 1;
  describe(panel, r);
  syncButtons(panel);
}

/** Why the scrub slider is off while no iteration is shown (before a run, or before a run's
 * first iteration arrives). */
function scrubOff(r) {
  return r && r.state === "running"
    ? "Off until the run shows its first iteration."
    : "Off until a run shows an iteration: press Run, then drag to look back through it.";
}

/** The scrubbed iteration, or the newest shown while the slider follows the run. */
function scrubbed(r) {
  return r.follow ? r.shown - 1 : r.at;
}

/** Sync the scrub slider with the iterations shown; mark the chosen one on every chart (not
 * while a run streams live and the slider follows it: that would redraw five charts a frame). */
function showScrub(panel, r) {
  if (run !== r) return Promise.resolve();
  const slider = $(panel, "#lab-scrub");
  const out = $(panel, "#lab-scrub-out");
  const box = $(panel, "#lab-at");
  slider.max = String(Math.max(r.shown - 1, 0));
  setEnabled(slider, r.shown > 0, scrubOff(r));
  if (r.shown === 0) {
    out.textContent = "—";
    box.replaceChildren();
    return markIteration(null);
  }
  const at = scrubbed(r);
  slider.value = String(at);
  out.textContent = `it ${at}`;
  slider.setAttribute("aria-valuetext", `iteration ${at} of ${r.shown - 1}`);
  const live = r.follow && r.state === "running" && !r.paused;
  if (live) {
    box.replaceChildren();
    return markIteration(null);
  }
  box.innerHTML = atIteration(r, at);
  for (const li of panel.root.querySelectorAll(".lab-sample-list li.lab-at")) li.classList.remove("lab-at");
  for (const name of r.algorithms) {
    const checkpoint = sampleAt(r, name, at);
    if (!checkpoint) continue;
    const li = panel.root.querySelector(`.lab-sample-col[data-alg="${name}"] li[data-iteration="${checkpoint.iteration}"]`);
    if (li) li.classList.add("lab-at");
  }
  return markIteration(at);
}

function onScrub(panel) {
  const r = run;
  if (!r || !r.steps || r.shown === 0) return;
  const at = Number($(panel, "#lab-scrub").value);
  r.follow = at >= r.shown - 1;
  r.at = at;
  r.drawn = r.drawn.then(() => showScrub(panel, r));
}

// ---- a run -----------------------------------------------------------------------------------

/** The end of a run, whatever ended it: draw what is shown, then say how it ended. */
function finish(panel, r, state, message) {
  if (r.state !== "running") return;
  r.state = state;
  // After `done` the server ends the response itself: closing now could abort its last bytes
  // (the browser logs that as a failed request); the `error` event that follows closes it.
  if (state !== "done") r.source.close();
  r.want = 0;
  syncButtons(panel);
  r.drawn = r.drawn.then(() => flush(panel, r)).then(() => {
    $(panel, "#lab-progress").value = r.shown;
    $(panel, "#lab-readout").innerHTML = observed(r);
    if (state === "error") {
      setStatus(panel, r.received === 0
        ? "Not started."
        : `Stopped by an error after ${r.received} of ${plural(r.iterations, "iteration")}.`);
      showError(panel, `${message.prefix}${message.error.message}`);
      return showScrub(panel, r);
    }
    describe(panel, r);
    panel.rendered();
    panel.refresh(); // the knobs may have moved during the run: mark the results stale
    return showScrub(panel, r);
  });
}

/** Why the stream could not open: ask the same URL with fetch to read the JSON error. */
async function connectionError(url) {
  const controller = new AbortController();
  try {
    const response = await fetch(url, { headers: { accept: "application/json" }, signal: controller.signal });
    if (response.ok) {
      controller.abort(); // it would start a run: we only wanted the status
      return new Error("could not connect to the training stream; try again");
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    const detail = body && body.detail;
    if (response.status === 503) {
      const wait = response.headers.get("retry-after");
      return new ApiError(503, [`the server is busy${wait ? `; retry in ${wait} s` : ""}`]);
    }
    // Name the knob unless the message already starts with it ("iterations: run too large…").
    const named = (d) => {
      const knob = d.loc && d.loc.length ? String(d.loc[d.loc.length - 1]) : "";
      return knob && !d.msg.startsWith(`${knob}:`) ? `${knob}: ${d.msg}` : d.msg;
    };
    const messages = Array.isArray(detail)
      ? detail.map(named)
      : [typeof detail === "string" ? detail : `HTTP ${response.status}`];
    return new ApiError(response.status, messages);
  } catch (error) {
    return new Error(`the server could not be reached (${error.message})`);
  }
}

function start(panel) {
  const v = panel.controls.values();
  const why = problem(v);
  if (why) {
    showError(panel, why);
    return;
  }
  stop(panel);
  const url = streamUrl(v);
  panel.setApiLink(url);
  const r = {
    url, algorithms: chosen(v), iterations: v.lIt, received: 0, shown: 0, steps: [],
    paused: false, want: 0, follow: true, at: 0, state: "running", stale: false,
    series: {}, pending: [], frame: 0, opened: false, drawn: Promise.resolve(), source: null,
  };
  for (const name of r.algorithms) {
    r.series[name] = { reward: [], kl_old: [], kl_ref: [], entropy: [], clip_fraction: [] };
  }
  run = r;
  const progress = $(panel, "#lab-progress");
  progress.max = r.iterations;
  progress.value = 0;
  clearError(panel);
  markStale(panel, false);
  $(panel, "#lab-readout").innerHTML = "";
  resetSamples($(panel, "#lab-samples"), r.algorithms);
  $(panel, ".lab-charts").hidden = false;
  r.drawn = drawEmpty(panel, r.algorithms, r.iterations).then(() => showScrub(panel, r));
  syncButtons(panel);
  describe(panel, r);

  const source = new EventSource(url);
  r.source = source;
  source.addEventListener("start", () => {
    r.opened = true;
  });
  source.addEventListener("step", (event) => {
    if (r.state !== "running") return;
    r.steps.push(JSON.parse(event.data));
    r.received += 1;
    if (!r.paused) reveal(panel, r, r.received);
    else if (r.want > 0) {
      r.want -= 1;
      reveal(panel, r, r.shown + 1);
    }
    if (r.paused) describe(panel, r);
    syncButtons(panel);
  });
  source.addEventListener("done", () => finish(panel, r, "done"));
  source.addEventListener("error", async (event) => {
    if (r.state !== "running") {
      source.close(); // the end of a finished stream: never reconnect (that would run again)
      return;
    }
    // The server's own `error` event carries a message; a bare Event is a failed connection,
    // which EventSource would retry by starting the run again: close it instead.
    if (event instanceof MessageEvent && event.data) {
      let detail = event.data;
      try {
        detail = JSON.parse(event.data).detail || detail;
      } catch {
        // not JSON: show it as sent
      }
      finish(panel, r, "error", { error: new Error(detail), prefix: "The training run failed: " });
      return;
    }
    source.close();
    if (r.opened) {
      finish(panel, r, "error", {
        error: new Error(`the connection was lost after ${r.received} iterations`),
        prefix: "The training stream broke: ",
      });
      return;
    }
    const error = await connectionError(url);
    finish(panel, r, "error", { error, prefix: "The API refused this run: " });
  });
}

function stop(panel) {
  if (run && run.state === "running") finish(panel, run, "stopped");
}

/** Called on load and whenever a control moves: never trains, only prepares the next run. */
async function update(panel, v) {
  const first = run === null;
  const algorithms = chosen(v);
  const onlyPkl = "Used by ppo-kl only: tick ppo-kl above to use it.";
  panel.controls.setEnabled("lTkl", v.lTgt && v.lPkl, v.lPkl ? "Off: tick “Adapt β to a KL target” to use it." : onlyPkl);
  panel.controls.setEnabled("lTgt", v.lPkl, onlyPkl);
  panel.controls.setEnabled("lKl", v.lPkl, onlyPkl);
  panel.setApiLink(streamUrl(v));
  showBudget(panel, v);
  const why = problem(v);
  // A problem shows at once (the budget's in its own line); an old run's error goes when the
  // settings change.
  if (why && !budget(v, algorithms).over) showError(panel, why);
  else if (!run || run.state !== "error" || run.url !== streamUrl(v)) clearError(panel);
  if (first) {
    run = { state: "idle" };
    $(panel, "#lab-progress").max = v.lIt;
    $(panel, "#lab-readout").innerHTML =
      "<p>Nothing has run yet: press <strong>Run</strong> to train (a 100-iteration run takes a few seconds).</p>";
    setStatus(panel, "Ready.");
    syncButtons(panel);
    panel.rendered();
    return;
  }
  syncButtons(panel);
  if (!run.steps || run.state === "running") return;
  const stale = run.url !== streamUrl(v);
  if (stale !== run.stale) {
    run.stale = stale;
    $(panel, "#lab-readout").innerHTML = observed(run);
    markStale(panel, stale && run.shown > 0);
    if (stale) setStatus(panel, "Settings changed: press Run to train with them.");
    else describe(panel, run);
  }
}

export default () => {
  const panel = createPanel("lab", { presets: presetValues, update });
  colourTerms(panel.root, ALGORITHMS.map((a) => ({ name: a.label, color: a.color })));
  $(panel, "#lab-run").addEventListener("click", () => start(panel));
  $(panel, "#lab-stop").addEventListener("click", () => stop(panel));
  $(panel, "#lab-pause").addEventListener("click", () => togglePause(panel));
  $(panel, "#lab-step").addEventListener("click", () => stepOnce(panel));
  $(panel, "#lab-scrub").addEventListener("input", () => onScrub(panel));
  setEnabled($(panel, "#lab-scrub"), false, scrubOff(run));
  loadPresets(panel);
  return panel;
};
