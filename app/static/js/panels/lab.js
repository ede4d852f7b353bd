// The training lab: runs vanilla PG, PPO and PPO + KL side by side on a toy language policy,
// streamed one iteration at a time over server-sent events; the curves fill in live.
// Nothing runs until the Run button is pressed: the page load only draws empty charts.
//
// The presets and the work budget come from the server (GET /api/v1/lab/presets, which reads
// ppo_core.lab.PRESETS): the page says before Run whether a run is too large. A run can be
// paused (the stream goes on; its iterations wait in memory), stepped one iteration at a time,
// and scrubbed: a slider over the iterations shown marks one on every chart with its numbers.
import { ApiError, getJSON } from "../api.js";
import { createPanel, layout } from "../panel.js";
import { colourTerms } from "../terms.js";

const STREAM_PATH = "/api/v1/lab/stream";
const PRESETS_PATH = "/api/v1/lab/presets";

// The one map between the API's knob names and the page's controls (URL keys). `target_kl`
// is also the checkbox lTgt: null (no target, β fixed) is the checkbox off. ε and c₂ are the
// page's shared keys (eps, ent: one state with the clip and total-loss panels).
const KNOB_KEYS = {
  iterations: "lIt", lr: "lLr", epochs: "lEp", batch_size: "lBs", clip_ratio: "eps",
  entropy_coef: "ent", kl_coef: "lKl", target_kl: "lTkl", seed: "lSeed",
};
// The API's preset names -> the page's preset buttons (data-preset). A preset the page has no
// button for gets one, labelled with its API name.
const PRESET_BUTTONS = {
  default: "default", "high learning rate": "high-lr", "no entropy bonus": "no-ent",
  "with KL penalty": "kl",
};

// How a preset's label names the knobs it changes from "default" (the values are the server's).
const KNOB_SYMBOLS = {
  iterations: "iterations", lr: "α", epochs: "K", batch_size: "batch", clip_ratio: "ε",
  entropy_coef: "c₂", kl_coef: "β", target_kl: "KL target", seed: "seed", seq_len: "words",
};

const ALGORITHMS = [
  { name: "pg", key: "lPg", label: "PG", color: "#d62728" },
  { name: "ppo", key: "lPpo", label: "PPO", color: "#1f4e9c" },
  { name: "ppo-kl", key: "lPkl", label: "PPO + KL", color: "#1a7f37" },
];
const BY_NAME = Object.fromEntries(ALGORITHMS.map((a) => [a.name, a]));

const CHARTS = [
  { id: "lab-chart-reward", metric: "reward", title: "Mean reward", y: "reward", label: "Reward" },
  { id: "lab-chart-kl-old", metric: "kl_old", title: "KL per update (new ‖ old), log axis",
    y: "nats per word", log: true, label: "KL per update" },
  { id: "lab-chart-kl-ref", metric: "kl_ref", title: "KL to the reference", y: "nats per word",
    label: "KL to reference" },
  { id: "lab-chart-entropy", metric: "entropy", title: "Entropy", y: "nats per word", label: "Entropy" },
  { id: "lab-chart-clip", metric: "clip_fraction", title: "Clip fraction (pg: where PPO would clip)",
    y: "share of words", range: [0, 1], label: "Clip fraction" },
];

/** The run in progress or the last one (see start()); { state: "idle" } before any. */
let run = null;
/** What GET /lab/presets answered: { presets, limits, max_work, work }; null until then. */
let server = null;
/** Why the presets could not be read (the budget is then unknown). */
let serverError = null;
/** Page button name -> control values, filled from the server; bindControls reads it on click. */
const presetValues = {};

const $ = (panel, selector) => panel.root.querySelector(selector);

function chosen(v) {
  return ALGORITHMS.filter((a) => v[a.key]).map((a) => a.name);
}

/** A preset's knobs as control values (API names mapped to the page's keys). */
function controlValues(knobs) {
  const out = {};
  for (const [knob, key] of Object.entries(KNOB_KEYS)) {
    if (knob in knobs && knobs[knob] !== null) out[key] = knobs[knob];
  }
  out.lTgt = knobs.target_kl !== null && knobs.target_kl !== undefined;
  return out;
}

/** The work units of a run: iterations x epochs x batch_size x seq_len x algorithms. The page
 * has no seq_len control, so the server takes the default preset's: so does this. */
function workOf(v) {
  if (!server) return null;
  const seqLen = server.presets.default.seq_len;
  return v.lIt * v.lEp * v.lBs * seqLen * chosen(v).length;
}

function millions(n) {
  return `${Number((n / 1e6).toPrecision(3))} M`;
}

/** The knobs' problems the page can see before asking the server (which checks them all). */
function problem(v) {
  if (chosen(v).length === 0) return "Pick at least one algorithm to train.";
  if (v.lTgt && v.lKl <= 0) return "A KL target needs a KL coef β above 0 (β adapts from it).";
  const work = workOf(v);
  if (work !== null && work > server.max_work) {
    return `Too large for this server: ${millions(work)} work units, the limit is ` +
      `${millions(server.max_work)}. Lower the iterations, epochs, batch size or algorithms.`;
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

function escapeHtml(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function fmt(x, digits = 3) {
  if (!Number.isFinite(x)) return "—";
  if (x !== 0 && Math.abs(x) < 10 ** -digits) return x.toExponential(1);
  return x.toFixed(digits);
}

function chartLayout(chart, iterations) {
  const yaxis = { title: { text: chart.y } };
  if (chart.log) {
    yaxis.type = "log";
    yaxis.exponentformat = "power";
  }
  if (chart.range) yaxis.range = chart.range;
  return layout({
    title: { text: chart.title, font: { size: 14 } },
    xaxis: { title: { text: "iteration" }, range: [0, Math.max(iterations - 1, 1)] },
    yaxis,
    height: 300,
    margin: { l: 56, r: 12, t: 36, b: 40 },
    legend: { orientation: "h", y: -0.28 },
  });
}

function emptyTraces(algorithms) {
  return algorithms.map((name) => ({
    x: [], y: [], mode: "lines", name: BY_NAME[name].label,
    line: { color: BY_NAME[name].color, width: 2 },
    hovertemplate: `it %{x}: %{y:.4g}<extra>${BY_NAME[name].label}</extra>`,
  }));
}

function drawEmpty(panel, algorithms, iterations) {
  return Promise.all(CHARTS.map((c) => panel.draw(c.id, emptyTraces(algorithms), chartLayout(c, iterations))));
}

function setStatus(panel, text) {
  const status = $(panel, "#lab-status");
  if (status.textContent !== text) status.textContent = text; // a live region: say news only
}

// ---- the budget and the errors, next to the Run button ----------------------------------

function showBudget(panel, v) {
  const line = $(panel, "#lab-budget");
  const work = workOf(v);
  if (work === null) {
    line.classList.remove("over");
    delete line.dataset.work;
    line.textContent = serverError
      ? `Work budget unknown (${serverError}); the server checks it on Run.`
      : "Work budget: reading the server's limit…";
    return;
  }
  const over = work > server.max_work;
  line.classList.toggle("over", over);
  line.dataset.work = String(work);
  line.dataset.max = String(server.max_work);
  const seqLen = server.presets.default.seq_len;
  const terms = `${v.lIt} it × ${v.lEp} epochs × ${v.lBs} × ${seqLen} words × ` +
    `${plural(chosen(v).length, "algorithm")}`;
  line.textContent = over
    ? `Over budget: ${millions(work)} work units (${terms}) against this server's ` +
      `${millions(server.max_work)}. Run is off until it fits: lower the iterations, epochs, batch size or algorithms.`
    : `Work: ${millions(work)} of ${millions(server.max_work)} (${terms}).`;
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

// ---- the "observed in this run" readout, from the iterations shown --------------------------

function observed(r) {
  const n = r.shown;
  if (n === 0) return "<p>No iteration finished yet.</p>";
  const rows = r.algorithms.map((name) => {
    const s = r.series[name];
    let peak = 0;
    for (let i = 1; i < s.kl_old.length; i += 1) if (s.kl_old[i] > s.kl_old[peak]) peak = i;
    const halved = s.entropy.findIndex((h) => h < s.entropy[0] / 2);
    const last = s.reward.length - 1;
    return `<tr data-alg="${name}"><th scope="row"><span class="lab-swatch lab-c-${name}"></span>${BY_NAME[name].label}</th>` +
      `<td data-label="Largest update KL">${fmt(s.kl_old[peak], 4)} <small>(it ${peak})</small></td>` +
      `<td data-label="Final reward">${fmt(s.reward[last])}</td>` +
      `<td data-label="Final entropy">${fmt(s.entropy[last])}</td>` +
      `<td data-label="Entropy halved at">${halved < 0 ? "not yet" : `it ${halved}`}</td>` +
      `<td data-label="Final KL to reference">${fmt(s.kl_ref[last])}</td></tr>`;
  });
  let ratio = "";
  if (r.series.pg && r.series.ppo) {
    const pg = Math.max(...r.series.pg.kl_old);
    const ppo = Math.max(...r.series.ppo.kl_old);
    if (ppo > 0) {
      ratio = `<p class="lab-ratio">Largest update KL, PG ÷ PPO: <strong>${fmt(pg / ppo, 1)}×</strong> ` +
        `(${fmt(pg, 4)} vs ${fmt(ppo, 4)} nats per word).</p>`;
    }
  }
  const where = r.state === "done" && n === r.iterations
    ? `all ${plural(n, "iteration")}` : `${n} of ${plural(r.iterations, "iteration")}`;
  return `<p><strong>Observed in this run</strong> (${where}, ${r.stale ? "settings since changed" : "current settings"}):</p>` +
    ratio +
    `<div class="table-wrap"><table id="lab-observed-table"><thead><tr><th scope="col">Algorithm</th>` +
    "<th scope=\"col\">Largest update KL</th><th scope=\"col\">Final reward</th><th scope=\"col\">Final entropy</th>" +
    "<th scope=\"col\">Entropy halved at</th><th scope=\"col\">Final KL to reference</th></tr></thead>" +
    `<tbody>${rows.join("")}</tbody></table></div>`;
}

// ---- samples ---------------------------------------------------------------------------------

function resetSamples(panel, algorithms) {
  const box = $(panel, "#lab-samples");
  box.replaceChildren();
  for (const name of algorithms) {
    const column = document.createElement("div");
    column.className = "lab-sample-col";
    column.dataset.alg = name;
    const heading = document.createElement("h4");
    heading.textContent = BY_NAME[name].label;
    heading.className = `lab-c-${name}`;
    const list = document.createElement("ol");
    list.className = "lab-sample-list";
    list.reversed = true;
    list.tabIndex = 0; // scrolls: reachable by keyboard
    list.setAttribute("aria-label", `${BY_NAME[name].label}: sample sentences, newest first`);
    column.append(heading, list);
    box.append(column);
  }
}

function addSamples(panel, iteration, metrics) {
  for (const [name, m] of Object.entries(metrics)) {
    if (!m.samples || m.samples.length === 0) continue;
    const list = panel.root.querySelector(`.lab-sample-col[data-alg="${name}"] ol`);
    if (!list) continue;
    const item = document.createElement("li");
    item.value = iteration;
    item.dataset.iteration = String(iteration);
    const at = document.createElement("span");
    at.className = "lab-it";
    at.textContent = `it ${iteration}`;
    item.append(at);
    for (const sentence of m.samples) {
      const q = document.createElement("q");
      q.className = "lab-sentence";
      q.textContent = sentence;
      item.append(q);
    }
    list.prepend(item); // newest first
  }
}

// ---- drawing: points are buffered and drawn at most once per animation frame ----------------

function flush(panel, r) {
  r.frame = 0;
  const pending = r.pending;
  if (pending.length === 0) return Promise.resolve();
  r.pending = [];
  const indices = r.algorithms.map((_, i) => i);
  const draws = CHARTS.map((c) => {
    const update = {
      x: r.algorithms.map(() => pending.map((p) => p.iteration)),
      y: r.algorithms.map((name) => pending.map((p) => p.metrics[name][c.metric])),
    };
    return window.Plotly.extendTraces(c.id, update, indices);
  });
  $(panel, "#lab-progress").value = r.shown;
  $(panel, "#lab-readout").innerHTML = observed(r);
  return Promise.all(draws).then(() => showScrub(panel, r));
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
    addSamples(panel, step.iteration, step.metrics);
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
  slider.disabled = r.shown === 0;
  if (r.shown === 0) {
    out.textContent = "—";
    box.replaceChildren();
    return markIteration(panel, null);
  }
  const at = scrubbed(r);
  slider.value = String(at);
  out.textContent = `it ${at}`;
  slider.setAttribute("aria-valuetext", `iteration ${at} of ${r.shown - 1}`);
  const live = r.follow && r.state === "running" && !r.paused;
  if (live) {
    box.replaceChildren();
    return markIteration(panel, null);
  }
  box.innerHTML = atIteration(r, at);
  for (const li of panel.root.querySelectorAll(".lab-sample-list li.lab-at")) li.classList.remove("lab-at");
  for (const name of r.algorithms) {
    const checkpoint = sampleAt(r, name, at);
    if (!checkpoint) continue;
    const li = panel.root.querySelector(`.lab-sample-col[data-alg="${name}"] li[data-iteration="${checkpoint.iteration}"]`);
    if (li) li.classList.add("lab-at");
  }
  return markIteration(panel, at);
}

/** The newest sample sentences of `name` at or before iteration `at`. */
function sampleAt(r, name, at) {
  for (let i = at; i >= 0; i -= 1) {
    const m = r.steps[i].metrics[name];
    if (m.samples && m.samples.length) return { iteration: r.steps[i].iteration, sentences: m.samples };
  }
  return null;
}

function atIteration(r, at) {
  const head = CHARTS.map((c) => `<th scope="col">${c.label}</th>`).join("");
  const rows = r.algorithms.map((name) => {
    const m = r.steps[at].metrics[name];
    const cells = CHARTS.map((c) => `<td data-label="${c.label}" data-metric="${c.metric}">${fmt(m[c.metric], 4)}</td>`);
    return `<tr data-alg="${name}"><th scope="row"><span class="lab-swatch lab-c-${name}"></span>${BY_NAME[name].label}</th>${cells.join("")}</tr>`;
  });
  const samples = r.algorithms.map((name) => {
    const s = sampleAt(r, name, at);
    if (!s) return "";
    const quotes = s.sentences.map((t) => `<q class="lab-sentence">${escapeHtml(t)}</q>`).join("");
    return `<li data-alg="${name}"><strong>${BY_NAME[name].label}</strong>, sampled at it ${s.iteration}: ${quotes}</li>`;
  }).join("");
  return `<p><strong>At iteration ${at}</strong> (marked on every chart):</p>` +
    `<div class="table-wrap"><table id="lab-at-table"><thead><tr><th scope="col">Algorithm</th>${head}</tr></thead>` +
    `<tbody>${rows.join("")}</tbody></table></div>` +
    (samples ? `<ul class="lab-at-samples">${samples}</ul>` : "");
}

/** A vertical line at iteration `at` on every chart (none for null). */
function markIteration(panel, at) {
  const shapes = at === null ? [] : [{
    type: "line", xref: "x", yref: "paper", x0: at, x1: at, y0: 0, y1: 1,
    line: { color: "#1d2433", width: 1.5, dash: "dot" },
  }];
  return Promise.all(CHARTS.map((c) => {
    const div = document.getElementById(c.id);
    const had = (div.layout && div.layout.shapes) || [];
    if (had.length === 0 && shapes.length === 0) return null;
    if (had.length === 1 && shapes.length === 1 && had[0].x0 === at) return null;
    return window.Plotly.relayout(c.id, { shapes });
  }));
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
  resetSamples(panel, r.algorithms);
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

// ---- presets from the server -------------------------------------------------------------

/** Append to a preset button's label the knobs it changes from the default, as the server
 * sets them: "High learning rate (α 100)". */
function labelChanges(button, knobs, base) {
  const changes = Object.keys(knobs)
    .filter((k) => knobs[k] !== base[k])
    .map((k) => `${KNOB_SYMBOLS[k] || k} ${knobs[k] === null ? "off" : knobs[k]}`);
  let note = button.querySelector(".preset-values");
  if (!changes.length) {
    if (note) note.remove();
    return;
  }
  if (!note) {
    note = document.createElement("span");
    note.className = "preset-values";
    button.append(" ", note);
  }
  note.textContent = `(${changes.join(", ")})`;
}

/** Fill the preset buttons from GET /lab/presets; buttons wait (disabled) until it answers. */
async function loadPresets(panel) {
  const group = panel.root.querySelector(".presets");
  const buttons = () => [...group.querySelectorAll("button.preset:not(.reset)")];
  for (const b of buttons()) b.disabled = true;
  try {
    server = await getJSON(PRESETS_PATH);
    serverError = null;
  } catch (error) {
    serverError = `the presets could not be read: ${error.message}`;
    for (const b of buttons()) b.title = serverError;
    panel.refresh();
    return;
  }
  for (const [name, knobs] of Object.entries(server.presets)) {
    const button = PRESET_BUTTONS[name];
    presetValues[button || name] = controlValues(knobs);
    if (button) continue;
    // A preset the page did not know: its own button, before Reset.
    const extra = document.createElement("button");
    extra.type = "button";
    extra.className = "preset";
    extra.dataset.panel = "lab";
    extra.dataset.preset = name;
    extra.textContent = name;
    extra.addEventListener("click", () => panel.controls.apply(presetValues[name]));
    group.insertBefore(extra, group.querySelector("button.reset"));
  }
  const names = Object.fromEntries(Object.entries(PRESET_BUTTONS).map(([api, page]) => [page, api]));
  for (const b of buttons()) {
    const knobs = server.presets[names[b.dataset.preset] || b.dataset.preset];
    if (knobs) labelChanges(b, knobs, server.presets.default);
    const known = b.dataset.preset in presetValues;
    b.disabled = !known;
    b.title = known ? "" : "The server has no such preset.";
  }
  panel.refresh();
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
  const budget = workOf(v) !== null && workOf(v) > server.max_work;
  if (why && !budget) showError(panel, why);
  else if (!run || run.state !== "error" || run.url !== streamUrl(v)) clearError(panel);
  if (first) {
    run = { state: "idle" };
    await drawEmpty(panel, algorithms, v.lIt);
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
  loadPresets(panel);
  return panel;
};
