// The training lab: runs vanilla PG, PPO and PPO + KL side by side on a toy language
// policy, streamed one iteration at a time over server-sent events; the curves fill in live.
// Nothing runs until the Run button is pressed: the page load only draws empty charts.
import { ApiError } from "../api.js";
import { createPanel, layout } from "../panel.js";

const STREAM_PATH = "/api/v1/lab/stream";

// Control values of the server's four presets (ppo_core.lab.PRESETS); unnamed keys reset.
const PRESETS = {
  default: {},
  "high-lr": { lLr: 100 },
  "no-ent": { ent: 0 },
  kl: { lKl: 0.1, lTgt: true, lTkl: 0.1 },
};

const ALGORITHMS = [
  { name: "pg", key: "lPg", label: "PG", color: "#d62728" },
  { name: "ppo", key: "lPpo", label: "PPO", color: "#1f4e9c" },
  { name: "ppo-kl", key: "lPkl", label: "PPO + KL", color: "#2ca02c" },
];
const BY_NAME = Object.fromEntries(ALGORITHMS.map((a) => [a.name, a]));

const CHARTS = [
  { id: "lab-chart-reward", metric: "reward", title: "Mean reward", y: "reward" },
  { id: "lab-chart-kl-old", metric: "kl_old", title: "KL per update (new ‖ old), log axis",
    y: "nats per word", log: true },
  { id: "lab-chart-kl-ref", metric: "kl_ref", title: "KL to the reference", y: "nats per word" },
  { id: "lab-chart-entropy", metric: "entropy", title: "Entropy", y: "nats per word" },
  { id: "lab-chart-clip", metric: "clip_fraction", title: "Clip fraction (pg: where PPO would clip)",
    y: "share of words", range: [0, 1] },
];

/** The run in progress or the last one: its stream, the numbers so far, the points not drawn. */
let run = null;

function chosen(v) {
  return ALGORITHMS.filter((a) => v[a.key]).map((a) => a.name);
}

/** The knobs' problems the page can see before asking the server (which checks them all). */
function problem(v) {
  if (chosen(v).length === 0) return "Pick at least one algorithm to train.";
  if (v.lTgt && v.lKl <= 0) return "A KL target needs a KL coef β above 0 (β adapts from it).";
  return null;
}

function streamUrl(v) {
  const query = new URLSearchParams();
  for (const name of chosen(v)) query.append("algorithms", name);
  const knobs = {
    iterations: v.lIt, lr: v.lLr, epochs: v.lEp, batch_size: v.lBs, clip_ratio: v.eps,
    entropy_coef: v.ent, kl_coef: v.lKl, target_kl: v.lTgt ? v.lTkl : undefined, seed: v.lSeed,
  };
  for (const [key, value] of Object.entries(knobs)) {
    if (value !== undefined) query.set(key, String(value));
  }
  return `${STREAM_PATH}?${query}`;
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
  panel.root.querySelector("#lab-status").textContent = text;
}

function setRunning(panel, running) {
  const runButton = panel.root.querySelector("#lab-run");
  const stopButton = panel.root.querySelector("#lab-stop");
  const hadFocus = document.activeElement === runButton || document.activeElement === stopButton;
  runButton.disabled = running || problem(panel.controls.values()) !== null;
  stopButton.disabled = !running;
  // Keep keyboard focus on the button that now does something.
  if (hadFocus) (running ? stopButton : runButton).focus();
}

// ---- the "observed in this run" readout, from the streamed numbers only -------------------

function observed(r) {
  const n = r.received;
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
  const where = r.state === "done" ? `all ${plural(n, "iteration")}` : `${n} of ${plural(r.iterations, "iteration")}`;
  return `<p><strong>Observed in this run</strong> (${where}, ${r.stale ? "settings since changed" : "current settings"}):</p>` +
    ratio +
    `<div class="table-wrap"><table id="lab-observed-table"><thead><tr><th scope="col">Algorithm</th>` +
    "<th scope=\"col\">Largest update KL</th><th scope=\"col\">Final reward</th><th scope=\"col\">Final entropy</th>" +
    "<th scope=\"col\">Entropy halved at</th><th scope=\"col\">Final KL to reference</th></tr></thead>" +
    `<tbody>${rows.join("")}</tbody></table></div>`;
}

// ---- samples ---------------------------------------------------------------------------------

function resetSamples(panel, algorithms) {
  const box = panel.root.querySelector("#lab-samples");
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
  panel.root.querySelector("#lab-progress").value = r.received;
  panel.root.querySelector("#lab-readout").innerHTML = observed(r);
  return Promise.all(draws);
}

function scheduleFlush(panel, r) {
  if (!r.frame) r.frame = window.requestAnimationFrame(() => { r.drawn = r.drawn.then(() => flush(panel, r)); });
}

/** Draw what is left now, then `then()`: the end of a run, whatever ended it. */
function finish(panel, r, state, message) {
  if (r.state !== "running") return;
  r.state = state;
  r.source.close();
  if (r.frame) window.cancelAnimationFrame(r.frame);
  r.frame = 0;
  setRunning(panel, false);
  r.drawn = r.drawn.then(() => flush(panel, r)).then(() => {
    panel.root.querySelector("#lab-progress").value = r.received;
    panel.root.querySelector("#lab-readout").innerHTML = observed(r);
    if (state === "error") {
      setStatus(panel, r.received === 0
        ? "Not started: see the message below."
        : `Stopped by an error after ${r.received} of ${plural(r.iterations, "iteration")}.`);
      panel.showError(message.error, message.prefix);
      return;
    }
    setStatus(panel, state === "done"
      ? `Done: ${plural(r.iterations, "iteration")} of ${r.algorithms.join(", ")}.`
      : `Stopped after ${r.received} of ${plural(r.iterations, "iteration")}.`);
    panel.rendered();
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
    panel.showError(new Error(why), "");
    return;
  }
  stop(panel);
  const url = streamUrl(v);
  panel.setApiLink(url);
  const r = {
    url, algorithms: chosen(v), iterations: v.lIt, received: 0, state: "running", stale: false,
    series: {}, pending: [], frame: 0, opened: false, drawn: Promise.resolve(), source: null,
  };
  for (const name of r.algorithms) {
    r.series[name] = { reward: [], kl_old: [], kl_ref: [], entropy: [], clip_fraction: [] };
  }
  run = r;
  const progress = panel.root.querySelector("#lab-progress");
  progress.max = r.iterations;
  progress.value = 0;
  panel.root.querySelector(".panel-error").hidden = true;
  panel.root.querySelector("#lab-readout").innerHTML = "";
  resetSamples(panel, r.algorithms);
  r.drawn = drawEmpty(panel, r.algorithms, r.iterations);
  setRunning(panel, true);
  setStatus(panel, `Training ${r.algorithms.join(", ")} for ${plural(r.iterations, "iteration")}…`);

  const source = new EventSource(url);
  r.source = source;
  source.addEventListener("start", () => {
    r.opened = true;
  });
  source.addEventListener("step", (event) => {
    if (r.state !== "running") return;
    const step = JSON.parse(event.data);
    r.received += 1;
    for (const name of r.algorithms) {
      const m = step.metrics[name];
      for (const key of Object.keys(r.series[name])) r.series[name][key].push(m[key]);
    }
    r.pending.push(step);
    addSamples(panel, step.iteration, step.metrics);
    scheduleFlush(panel, r);
  });
  source.addEventListener("done", () => finish(panel, r, "done"));
  source.addEventListener("error", async (event) => {
    if (r.state !== "running") return;
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
  const why = problem(v);
  // A problem shows at once; an old run's error goes when the settings change.
  if (why) panel.showError(new Error(why), "");
  else if (!run || run.state !== "error" || run.url !== streamUrl(v)) {
    panel.root.querySelector(".panel-error").hidden = true;
  }
  if (first) {
    run = { state: "idle" };
    await drawEmpty(panel, algorithms, v.lIt);
    panel.root.querySelector("#lab-progress").max = v.lIt;
    panel.root.querySelector("#lab-readout").innerHTML =
      "<p>Nothing has run yet: press <strong>Run</strong> to train (a 100-iteration run takes a few seconds).</p>";
    setStatus(panel, "Ready.");
    setRunning(panel, false);
    panel.rendered();
    return;
  }
  if (run.state === "running") {
    panel.root.querySelector("#lab-run").disabled = true;
    return;
  }
  setRunning(panel, false);
  if (run.url && run.url !== streamUrl(v) && !run.stale) {
    run.stale = true;
    panel.root.querySelector("#lab-readout").innerHTML = observed(run);
    setStatus(panel, "Settings changed: press Run to train with them.");
  } else if (run.url === streamUrl(v) && run.stale) {
    run.stale = false;
    panel.root.querySelector("#lab-readout").innerHTML = observed(run);
  }
}

export default () => {
  const panel = createPanel("lab", { presets: PRESETS, update });
  panel.root.querySelector("#lab-run").addEventListener("click", () => start(panel));
  panel.root.querySelector("#lab-stop").addEventListener("click", () => stop(panel));
  return panel;
};
