// The lab's readouts, from the iterations shown: the "observed in this run" table, the numbers
// and samples at a scrubbed iteration, and the sample sentences per algorithm.
import { BY_NAME, CHARTS } from "./charts.js";

function escapeHtml(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

export function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function fmt(x, digits = 3) {
  if (!Number.isFinite(x)) return "—";
  if (x !== 0 && Math.abs(x) < 10 ** -digits) return x.toExponential(1);
  return x.toFixed(digits);
}

// ---- the "observed in this run" readout, from the iterations shown --------------------------

export function observed(r) {
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

export function resetSamples(box, algorithms) {
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

export function addSamples(root, iteration, metrics) {
  for (const [name, m] of Object.entries(metrics)) {
    if (!m.samples || m.samples.length === 0) continue;
    const list = root.querySelector(`.lab-sample-col[data-alg="${name}"] ol`);
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

/** The newest sample sentences of `name` at or before iteration `at`. */
export function sampleAt(r, name, at) {
  for (let i = at; i >= 0; i -= 1) {
    const m = r.steps[i].metrics[name];
    if (m.samples && m.samples.length) return { iteration: r.steps[i].iteration, sentences: m.samples };
  }
  return null;
}

export function atIteration(r, at) {
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

