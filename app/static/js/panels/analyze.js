// Panel 9: the batch inspector. Analyze your own rollout batch (JSON, one .npy per field, or one
// .npz / .safetensors) under a framework's conventions: findings first, then the loss breakdown
// and every diagnostic explained, a token heatmap of the gradient, rollout correction with a
// live threshold, the loss under every loss_agg_mode (and micro-batch accumulation), what every
// preset would log, the convention's formula and three histograms. Runs on the Analyze button,
// not on every keystroke; a change of the convention or of an option re-runs the last submitted
// batch. Downloads as JSON or CSV.
import { getJSON, postForm, postJSON } from "../api.js";
import { createPanel, layout } from "../panel.js";
import * as state from "../state.js";

const PATH = "/api/v1/analyze";
const DOCS = "/docs#/analyze/analyze_api_v1_analyze_post";
const CONVENTIONS = "/api/v1/conventions";

// A small RLHF-like batch: 4 responses of 8, 6, 5 and 3 tokens (padding masked out), with the
// inference engine's log-probs a little off the trainer's. Nothing in it crosses a threshold.
const EXAMPLE = {
  logprobs: [
    [-1.348, -1.53, -0.849, -0.698, -0.887, -0.373, -1.33, -2.155],
    [-0.839, -0.756, -1.727, -1.438, -1.07, -0.781, 0, 0],
    [-0.355, -0.58, -0.017, -0.477, -0.078, 0, 0, 0],
    [-1.32, -0.969, -0.346, 0, 0, 0, 0, 0],
  ],
  old_logprobs: [
    [-1.201, -1.409, -1.008, -0.577, -0.882, -0.506, -1.242, -2.138],
    [-0.855, -0.766, -1.543, -1.45, -1.274, -0.549, 0, 0],
    [-0.259, -0.88, -0.131, -0.297, -0.089, 0, 0, 0],
    [-1.31, -1.069, -0.562, 0, 0, 0, 0, 0],
  ],
  rollout_logprobs: [
    [-1.199, -1.327, -0.935, -0.608, -0.9, -0.538, -1.208, -2.141],
    [-0.81, -0.877, -1.449, -1.456, -1.233, -0.557, 0, 0],
    [-0.21, -0.892, -0.14, -0.256, -0.141, 0, 0, 0],
    [-1.425, -1.118, -0.59, 0, 0, 0, 0, 0],
  ],
  advantages: [
    [-0.579, -0.196, 0.899, 1.145, -1.324, -0.795, 0.647, -1.992],
    [-0.463, -0.097, 1.257, 0.689, -0.327, -0.369, 0, 0],
    [-0.428, -0.304, 0.353, -0.121, -0.197, 0, 0, 0],
    [1.166, 0.653, -0.024, 0, 0, 0, 0, 0],
  ],
  values: [
    [-0.345, 0.473, -0.544, -0.718, 0.148, -0.15, 0.382, 1.422],
    [-0.116, -0.012, 0.403, 0.547, 0.212, 0.197, 0, 0],
    [-0.217, 0.26, 0.318, -0.227, 0.43, 0, 0, 0],
    [0.345, 0.004, 0.241, 0, 0, 0, 0, 0],
  ],
  returns: [
    [-1.044, 0.776, -0.882, -0.406, 0.2, -0.765, 0.882, 1.999],
    [-0.142, -0.122, 0.339, 0.156, 0.651, -0.02, 0, 0],
    [-0.467, -0.251, 0.82, -0.289, 0.816, 0, 0, 0],
    [0.121, 0.008, 0.091, 0, 0, 0, 0, 0],
  ],
  old_values: [
    [-0.398, 0.49, -0.474, -0.79, 0.137, -0.182, 0.294, 1.459],
    [-0.117, -0.008, 0.365, 0.569, 0.185, 0.19, 0, 0],
    [-0.15, 0.235, 0.332, -0.229, 0.408, 0, 0, 0],
    [0.337, 0.006, 0.3, 0, 0, 0, 0, 0],
  ],
  mask: [
    [1, 1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1, 0, 0],
    [1, 1, 1, 1, 1, 0, 0, 0],
    [1, 1, 1, 0, 0, 0, 0, 0],
  ],
  bins: 10,
};

// What goes wrong in real runs, in one batch: the first update (first_epoch) with ratios off 1
// (the two forward passes disagree), one token whose log-ratio is -23.5 (stale old_logprobs), an
// inference engine far from the trainer, and a GRPO group whose answers all scored the same.
const BROKEN = {
  logprobs: [
    [-0.604, -0.375, -1.002, -1.258, -1.699, -1.218, -0.697, -0.741],
    [-1.234, -1.731, -1.376, -0.35, -24.021, -1.796, -1.096, 0],
    [-0.986, -0.449, -0.57, -0.898, -0.554, 0, 0, 0],
    [-1.031, -1.347, -0.005, 0, 0, 0, 0, 0],
  ],
  old_logprobs: [
    [-0.599, -0.338, -0.876, -1.21, -1.568, -1.055, -0.724, -0.608],
    [-1.374, -1.817, -1.136, -0.383, -0.521, -1.8, -1.101, 0],
    [-0.958, -0.418, -0.685, -0.756, -0.643, 0, 0, 0],
    [-1.205, -1.415, -0.178, 0, 0, 0, 0, 0],
  ],
  rollout_logprobs: [
    [-0.005, -1.438, -0.782, -1.221, -1.263, -1.237, -0.8, -0.487],
    [-1.322, -2.249, -0.688, -1.032, -1.122, -2.441, -0.618, 0],
    [-1.444, -0.986, -0.474, -1.283, -1.279, 0, 0, 0],
    [-1.208, -1.638, -0.205, 0, 0, 0, 0, 0],
  ],
  mask: [
    [1, 1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1, 1, 0],
    [1, 1, 1, 1, 1, 0, 0, 0],
    [1, 1, 1, 0, 0, 0, 0, 0],
  ],
  scores: [1, 1, 0, 1],
  group_ids: [0, 0, 1, 1],
  first_epoch: true,
  micro_batches: 2,
  bins: 20,
};

// ------------------------------------------------------------------ what each number means

/** One line per finding code (docs/inspector.md): why it matters. */
const FINDING_WHY = {
  clip_fraction_high: "Most tokens get no gradient: the step is too large for ε (learning rate, epochs per batch).",
  approx_kl_high: "The policy moved far from the one that sampled; SB3 / CleanRL stop the epoch at target_kl ≈ 0.01–0.05.",
  log_ratio_extreme: "Stale or mismatched old_logprobs: such ratios get no gradient (clamped) or blow the loss up.",
  ratio_off_one_first_epoch: "On the first update π = π_old, so every ratio must be 1: the trainer's two forward passes disagree (dropout, kernels, precision).",
  fully_masked_rows: "Rows without a valid token change the row count of sequence means (TRL counts them, verl / OpenRLHF do not).",
  zero_std_groups: "A group whose answers all scored the same gets zero group-relative advantage: no learning signal (DAPO's dynamic sampling drops them).",
  rollout_mismatch: "The inference engine's distribution differs from the trainer's: correct it with TIS / MIS (rollout_is_level) or align kernels and precision.",
  explained_variance_negative: "The critic predicts the returns worse than their mean: GAE's advantages are noise.",
  low_entropy: "The policy is nearly deterministic and stops exploring (entropy collapse).",
  nonfinite_in_padding: "Ignored here, but a library that multiplies by the mask (inf · 0 = NaN) returns NaN.",
};

// [label, meaning, formula]; why each exists and which library logs it.
const BREAKDOWN_INFO = {
  policy_loss: ["Policy loss", "the surrogate to minimise, reduced by the convention's loss_agg_mode", "agg[max(−A·r, −A·clip(r, 1−ε, 1+ε))] (PPO clip)"],
  value_loss: ["Value loss", "the critic's squared error (clipped around old_values when the convention says)", "scale · agg[max((V−R)², (V_clip−R)²)]"],
  entropy: ["Entropy", "mean entropy of the policy over valid tokens, in nats", "mean[−Σ p log p]"],
  value_term: ["Value term", "the value loss times its weight c₁", "c₁ · L^V"],
  entropy_term: ["Entropy term", "the entropy bonus: subtracted, so more entropy lowers the loss", "−c₂ · H"],
  kl: ["KL to reference", "the policy's KL to the reference model, with the convention's estimator", "mean[k(log π − log π_ref)]"],
  kl_term: ["KL term", "β · KL when the convention puts the KL in the loss (else 0)", "β · KL"],
  total_loss: ["Total loss", "what the trainer back-propagates", "L^CLIP + c₁L^V − c₂H + β·KL"],
};

const DIAGNOSTIC_INFO = {
  clip_fraction: ["Clip fraction", "share of valid tokens where the clipped term is taken, so the token gets no gradient (verl pg_clipfrac, TRL clip_ratio)", "mean[−A·clip(r) > −A·r]"],
  clip_fraction_lower: ["Dual-clip fraction", "share of valid tokens where the dual clip binds: A < 0 and r > c, the loss capped at −c·A (verl pg_clipfrac_lower)", "mean[A < 0 ∧ r > c]"],
  ratio_outside_fraction: ["Ratio outside the band", "share of valid tokens whose ratio left [1−ε, 1+ε], whatever the sign of A (CleanRL / SB3 clipfrac)", "mean[|r − 1| > ε]"],
  approx_kl: ["Approx KL, k1", "mean of old − new log-probs: unbiased but noisy, can go negative (verl ppo_kl, OpenRLHF)", "mean[−log r]"],
  approx_kl_k2: ["Approx KL, k2", "half the mean squared log-ratio: low variance, slightly biased (TRL approxkl)", "mean[(log r)² / 2]"],
  approx_kl_k3: ["Approx KL, k3", "unbiased and never negative (CleanRL / SB3 approx_kl)", "mean[(r − 1) − log r]"],
  ratio_min: ["Ratio min", "smallest probability ratio over valid tokens", "min r, r = exp(log π_θ − log π_old)"],
  ratio_mean: ["Ratio mean", "mean probability ratio: 1 on the first update", "mean[r]"],
  ratio_max: ["Ratio max", "largest probability ratio over valid tokens", "max r"],
  explained_variance: ["Explained variance", "how much of the returns' variance the critic predicts: 1 perfect, 0 no better than their mean, < 0 worse", "1 − Var(R − V) / Var(R)"],
  value_clip_fraction: ["Value clip fraction", "share of valid tokens where the clipped value error is the one taken", "mean[(V_clip − R)² > (V − R)²]"],
  value_clip_applied: ["Value clip applied", "whether the value was clipped around old_values (needs old_values and the convention's clip range)", "V_clip = V_old + clip(V − V_old, −c, c)"],
  kl_to_reference: ["KL to reference", "KL of the policy to the reference model (needs ref_logprobs)", "mean[k(log π − log π_ref)]"],
  advantage_mean: ["Advantage mean", "mean advantage as used (after the convention's normalisation)", "mean[A]"],
  advantage_std: ["Advantage std", "spread of the advantages as used: 0 means no learning signal", "std[A]"],
  clip_fraction_as_logged: ["Clip fraction as logged", "the clip fraction this convention's library logs", ""],
  approx_kl_as_logged: ["Approx KL as logged", "the approximate KL this convention's library logs", ""],
};

const MODE_INFO = {
  "token-mean": "every valid token counts the same: a long answer weighs more",
  "token-sum": "sum over tokens: scales with the batch's token count",
  "seq-mean-token-mean": "each answer counts once (GRPO's original): a long answer's tokens each weigh less",
  "seq-mean-token-sum": "sum per answer, then mean over answers",
  "seq-mean-token-sum-norm": "sum per answer ÷ a constant length L (Dr. GRPO): no length bias",
};

const ROLLOUT_METRICS = [
  ["rollout_is_eff_sample_size", "Effective sample size", "1 / mean(w̃²) with w̃ = w / mean(w): 1 is no mismatch"],
  ["chi2_token", "Chi-square (token)", "mean(w²) − 1"],
  ["chi2_seq", "Chi-square (sequence)", "mean(Π w²) − 1 over sequences"],
  ["kl", "Mismatch KL, k1", "mean(log π_rollout − log π_old)"],
  ["k3_kl", "Mismatch KL, k3", "mean(w − log w − 1), never negative"],
  ["log_ppl_diff", "Log-perplexity difference", "mean over sequences of (mean log π_rollout − mean log π_old)"],
  ["truncated_fraction", "Truncated share", "valid tokens whose weight the threshold capped"],
  ["masked_fraction", "Masked share", "valid tokens dropped outside [C_low, C]"],
];

// Marks drawn over the heatmap, per token state (token_view.states).
const STATE_MARKS = {
  clipped_low: { symbol: "triangle-down", label: "clipped low ▼" },
  clipped_high: { symbol: "triangle-up", label: "clipped high ▲" },
  dual_clip: { symbol: "x", label: "dual clip ✕" },
  rollout_truncated: { symbol: "square-open", label: "rollout-truncated □" },
  rollout_masked: { symbol: "circle-x-open", label: "rollout-masked ⊘" },
};

const HISTOGRAMS = [
  ["ratio", "analyze-hist-ratio", "probability ratio r", "#1f4e9c"],
  ["advantage", "analyze-hist-advantage", "advantage A (as used)", "#2ca02c"],
  ["per_token_loss", "analyze-hist-loss", "per-token policy loss", "#d62728"],
];

// ------------------------------------------------------------------ state of the panel

let files = []; // chosen files (sent instead of the JSON when present)
let submitted = null; // the batch of the last Analyze press: {json} or {files}
let result = null; // {data, convention} of the last successful run
let inputChanged = false; // the JSON or the files changed since the shown results
let rolloutThreshold = null; // the slider's C once released (null: the batch's / convention's)

const $ = (root, selector) => root.querySelector(selector);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-") || key === "scope" || key === "href") node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

/** A row of the example per line: readable, and still valid JSON. */
function formatExample(batch) {
  const lines = Object.entries(batch).map(([key, value]) => {
    if (!Array.isArray(value) || !Array.isArray(value[0])) return `  ${JSON.stringify(key)}: ${JSON.stringify(value)}`;
    const rows = value.map((row) => `    [${row.join(", ")}]`).join(",\n");
    return `  ${JSON.stringify(key)}: [\n${rows}\n  ]`;
  });
  return `{\n${lines.join(",\n")}\n}`;
}

function fmt(x) {
  if (x === null || x === undefined) return "—";
  if (typeof x === "boolean") return x ? "yes" : "no";
  if (typeof x !== "number") return String(x);
  if (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e5)) return x.toExponential(3);
  return String(Math.round(x * 1e5) / 1e5);
}

const pct = (x) => `${(100 * x).toFixed(1)}%`;

// ------------------------------------------------------------------ findings

function panelTitle(id) {
  const head = document.getElementById(`panel-${id}-title`);
  return head ? head.textContent.trim() : null;
}

function showFindings(root, findings) {
  const list = $(root, "#analyze-findings");
  list.replaceChildren();
  if (!findings.length) {
    list.append(el("li", { class: "analyze-none finding-clean" },
      "No findings: nothing in this batch crossed a threshold (clip fraction, approx KL, log-ratio, first-epoch ratio, empty rows, zero-std groups, rollout mismatch, explained variance, entropy, NaN in padding)."));
    return;
  }
  for (const f of findings) {
    const head = el("p", { class: "finding-head" },
      el("span", { class: "finding-sev" }, f.severity), " ", el("code", {}, f.code));
    const numbers = f.value === null && f.threshold === null ? null
      : el("p", { class: "finding-num" }, `value ${fmt(f.value)} vs threshold ${fmt(f.threshold)}`);
    const title = panelTitle(f.panel);
    const learn = title
      ? el("p", { class: "finding-link" }, "Explained in ", el("a", { href: `#panel-${f.panel}` }, title))
      : el("p", { class: "finding-link" }, `Explained in the ${f.panel} panel`);
    list.append(el("li", { class: `finding sev-${f.severity}`, "data-code": f.code },
      head, el("p", { class: "finding-msg" }, f.message), numbers,
      FINDING_WHY[f.code] ? el("p", { class: "finding-why" }, FINDING_WHY[f.code]) : null, learn));
  }
}

// ------------------------------------------------------------------ breakdown and diagnostics

/** Why a number is missing, or null when it was computed: "not provided" beats a silent 0. */
function missing(data, section, key) {
  const notes = data.notes.join(" ");
  const noValues = notes.includes("no values");
  const noEntropy = notes.includes("no logits or entropy");
  const noRef = data.breakdown.kl === null;
  const value = data[section][key];
  if (noValues && ["value_loss", "value_term", "explained_variance", "value_clip_fraction", "value_clip_applied"].includes(key)) {
    return "not provided (no values)";
  }
  if (noEntropy && ["entropy", "entropy_term"].includes(key)) return "not provided (send entropy or logits)";
  if (noRef && ["kl", "kl_term", "kl_to_reference"].includes(key)) return "not provided (no ref_logprobs)";
  if (key === "explained_variance" && value === null) return "undefined (the returns do not vary)";
  if (value === null) return "not provided";
  return null;
}

function fillTable(table, caption, data, section, info) {
  table.replaceChildren();
  const head = el("thead", {}, el("tr", {},
    el("th", { scope: "col" }, "quantity"), el("th", { scope: "col" }, "value"), el("th", { scope: "col" }, "meaning")));
  const body = el("tbody");
  const knobs = data.convention.knobs;
  for (const [key, value] of Object.entries(data[section])) {
    const [label, meaning, formula] = info[key] || [key, "", ""];
    let form = formula;
    if (key === "clip_fraction_as_logged") form = `= ${knobs.clip_fraction_metric}`;
    if (key === "approx_kl_as_logged") form = `= ${knobs.approx_kl_metric}`;
    if (key === "policy_loss" && data.policy_loss_mode !== "vanilla") {
      form = `policy_loss_mode ${data.policy_loss_mode}: the convention's formula below`;
    }
    const why = missing(data, section, key);
    body.append(el("tr", { "data-key": key },
      el("th", { scope: "row" }, label, el("br"), el("code", { class: "key" }, key)),
      why ? el("td", { class: "not-provided" }, why) : el("td", {}, fmt(value)),
      el("td", { class: "meaning" }, meaning, form ? el("br") : null, form ? el("code", {}, form) : null)));
  }
  table.append(el("caption", {}, caption), head, body);
}

function emptyTable(table, caption) {
  table.replaceChildren(el("caption", {}, caption), el("tbody", {}, el("tr", {}, el("td", {}, "No batch analyzed yet."))));
}

// ------------------------------------------------------------------ charts

function emptyChart(title, message, height = 300) {
  return layout({
    title: { text: title, font: { size: 14 } },
    xaxis: { visible: false },
    yaxis: { visible: false },
    annotations: [{ text: message, xref: "paper", yref: "paper", x: 0.5, y: 0.5,
      showarrow: false, font: { color: "#5a6478" } }],
    height,
  });
}

function bars(h, name, color) {
  const x = [];
  const width = [];
  for (let i = 0; i < h.counts.length; i += 1) {
    x.push((h.edges[i] + h.edges[i + 1]) / 2);
    width.push(h.edges[i + 1] - h.edges[i]);
  }
  return { type: "bar", x, y: h.counts, width, marker: { color, line: { color: "#fff", width: 0.5 } },
    name, hovertemplate: "%{x:.3g}: %{y} tokens<extra></extra>" };
}

function histogramChart(h, title, color, shade) {
  const shapes = shade ? [{ type: "rect", xref: "x", yref: "y domain", x0: shade[0], x1: shade[1], y0: 0, y1: 1,
    fillcolor: "rgba(31,78,156,0.10)", line: { width: 0 }, layer: "below" }] : [];
  return {
    traces: [bars(h, title, color)],
    layout: layout({
      title: { text: title, font: { size: 14 } },
      xaxis: { title: { text: title } },
      yaxis: { title: { text: "valid tokens" }, rangemode: "tozero" },
      bargap: 0,
      shapes,
      showlegend: false,
      height: 300,
    }),
  };
}

/** [1 − ε_low, 1 + ε_high] from the convention's knobs, to shade on the ratio histogram. */
function clipBand(knobs) {
  const eps = knobs.clip_ratio;
  const low = knobs.clip_ratio_low ?? eps;
  const high = knobs.clip_ratio_high ?? eps;
  return low == null || high == null ? null : [1 - low, 1 + high];
}

// ------------------------------------------------------------------ token heatmap

/** The token view's row indices in the chosen order (client-side: no new request). */
function rowOrder(tv, sort) {
  const order = tv.rows.map((_, i) => i);
  if (sort === "length") order.sort((a, b) => tv.lengths[b] - tv.lengths[a] || a - b);
  if (sort === "loss") {
    const total = tv.loss.map((row, i) => row.reduce((s, x, j) => s + (tv.mask[i][j] ? x : 0), 0));
    order.sort((a, b) => total[b] - total[a] || a - b);
  }
  return order;
}

function heatmapFigure(tv, sort) {
  const order = rowOrder(tv, sort);
  const width = tv.ratio.length ? tv.ratio[0].length : 0;
  const sameStart = tv.starts.every((s) => s === tv.starts[0]);
  // With one window start, columns are token positions; windows that start at different tokens
  // share the columns by offset, and the hover names each cell's position.
  const offset = sameStart && tv.starts.length ? tv.starts[0] : 0;
  const x = Array.from({ length: width }, (_, j) => offset + j);
  const padding = tv.states.indexOf("padding");
  const hasWeight = Array.isArray(tv.rollout_weight);
  const z = [];
  const custom = [];
  const marks = Object.fromEntries(Object.keys(STATE_MARKS).map((s) => [s, { x: [], y: [] }]));
  let extent = 0;
  order.forEach((i, k) => {
    const zRow = [];
    const cRow = [];
    for (let j = 0; j < width; j += 1) {
      const stateName = tv.states[tv.state[i][j]];
      const pad = tv.state[i][j] === padding || !tv.mask[i][j];
      const g = tv.gradient[i][j];
      zRow.push(pad ? null : g);
      if (!pad) extent = Math.max(extent, Math.abs(g));
      cRow.push([tv.ratio[i][j], tv.loss[i][j], tv.advantage[i][j], g, stateName,
        hasWeight ? tv.rollout_weight[i][j] : null, tv.rows[i], tv.starts[i] + j]);
      if (!pad && marks[stateName]) {
        marks[stateName].x.push(x[j]);
        marks[stateName].y.push(k);
      }
    }
    z.push(zRow);
    custom.push(cRow);
  });
  const m = extent > 0 ? extent : 1;
  const hover = "row %{customdata[6]}, token %{customdata[7]}<br>gradient %{customdata[3]:.4g}<br>" +
    "ratio %{customdata[0]:.4g}<br>loss %{customdata[1]:.4g}<br>advantage %{customdata[2]:.4g}<br>" +
    `state %{customdata[4]}${hasWeight ? "<br>rollout weight %{customdata[5]:.4g}" : ""}<extra></extra>`;
  const traces = [{
    type: "heatmap", x, y: order.map((_, k) => k), z, customdata: custom, hovertemplate: hover,
    hoverongaps: false, zmin: -m, zmax: m, zmid: 0, ygap: 1,
    colorscale: [[0, "#2166ac"], [0.5, "#f7f7f7"], [1, "#b2182b"]],
    colorbar: { title: { text: "g<sub>t</sub>", side: "top" }, thickness: 10, len: 1, x: 1.01, xpad: 2 },
    showscale: true, name: "gradient",
  }];
  for (const [stateName, pts] of Object.entries(marks)) {
    if (!pts.x.length) continue;
    traces.push({ type: "scatter", mode: "markers", x: pts.x, y: pts.y, name: `${STATE_MARKS[stateName].label} (${pts.x.length})`,
      marker: { symbol: STATE_MARKS[stateName].symbol, size: 7, color: "#1d2433", line: { width: 1, color: "#1d2433" } },
      hoverinfo: "skip", meta: stateName });
  }
  const labels = order.map((i) => `#${tv.rows[i]} · ${tv.lengths[i]} tok${sameStart || !tv.starts[i] ? "" : ` · t≥${tv.starts[i]}`}`);
  const fig = layout({
    margin: { l: 96, r: 8, t: 12, b: 44 },
    height: Math.max(220, 26 * order.length + 110),
    plot_bgcolor: "#c9ced8", // padding (no value) shows the background: grey
    xaxis: { title: { text: sameStart ? "token position" : "token in the shown window (hover: position)" }, zeroline: false, showgrid: false },
    yaxis: { tickvals: order.map((_, k) => k), ticktext: labels, autorange: "reversed", showgrid: false, zeroline: false },
    legend: { orientation: "h", y: -0.25, x: 0 },
    showlegend: traces.length > 1,
  });
  return { traces, layout: fig, order };
}

function drawHeatmap(panel) {
  const tv = result && result.data.token_view;
  if (!tv || !tv.rows.length) {
    return panel.draw("analyze-heatmap", [], emptyChart("", "Analyze a batch to see its tokens", 240));
  }
  const fig = heatmapFigure(tv, $(panel.root, "#analyze-sort").value);
  return panel.draw("analyze-heatmap", fig.traces, fig.layout);
}

// ------------------------------------------------------------------ rollout correction

/** Share of the histogram's mass above `high` (and below `low`): linear within a bin. */
function shareBeyond(h, high, low) {
  let total = 0;
  let out = 0;
  for (let i = 0; i < h.counts.length; i += 1) {
    const c = h.counts[i];
    total += c;
    if (!c) continue;
    const a = h.edges[i];
    const b = h.edges[i + 1];
    const w = b - a;
    const above = w > 0 ? Math.min(1, Math.max(0, (b - high) / w)) : Number(a > high);
    const below = low == null ? 0 : w > 0 ? Math.min(1, Math.max(0, (low - a) / w)) : Number(a < low);
    out += c * Math.min(1, above + below);
  }
  return total ? out / total : 0;
}

/** [low, high] of the kept band at threshold C: truncation has no lower bound. */
function band(rc, c) {
  if (rc.mode !== "mask") return [null, c];
  return [rc.threshold_low ?? 1 / c, c];
}

function rolloutFigure(rc, c) {
  const [low, high] = band(rc, c);
  const line = (x, text) => ({ type: "line", xref: "x", yref: "y domain", x0: x, x1: x, y0: 0, y1: 1,
    line: { color: "#b42318", width: 2, dash: "dash" }, label: { text, textposition: "end", textangle: 0, xanchor: "right", yanchor: "top", font: { size: 11, color: "#b42318" } } });
  const shapes = [line(high, `C = ${fmt(high)}`)];
  if (low !== null) shapes.push(line(low, `C_low = ${fmt(low)}`));
  const edges = rc.histogram.edges;
  const span = [Math.min(edges[0], low ?? edges[0]), Math.max(edges[edges.length - 1], high)];
  const pad = 0.04 * (span[1] - span[0] || 1);
  return {
    traces: [bars(rc.histogram, "raw weight w", "#7b4fa0")],
    layout: layout({
      title: { text: "raw rollout weights w", font: { size: 14 } },
      xaxis: { title: { text: "w = π_old / π_rollout" }, range: [span[0] - pad, span[1] + pad] },
      yaxis: { title: { text: "valid tokens" }, rangemode: "tozero" },
      bargap: 0, shapes, showlegend: false, height: 300,
    }),
  };
}

function shareText(rc, c) {
  const [low, high] = band(rc, c);
  const what = rc.mode === "mask" ? `masked (w outside [${fmt(low)}, ${fmt(high)}])` : `truncated (w > ${fmt(high)})`;
  const exactKey = rc.mode === "mask" ? "masked_fraction" : "truncated_fraction";
  const exact = Math.abs(c - rc.threshold) < 1e-9 && rc.metrics[exactKey] !== undefined;
  const share = exact
    ? `${pct(rc.metrics[exactKey])} of valid tokens ${what}, as the API computed it`
    : `≈ ${pct(shareBeyond(rc.histogram, high, low))} of valid tokens ${what}, estimated from the histogram's ` +
      `${rc.histogram.counts.length} bins (release the slider for the exact share)`;
  const applied = rc.applied
    ? `The correction is applied to the loss (${rc.level} level, ${rc.mode}).`
    : `Metrics only: the correction is not applied (choose a rollout correction level above to apply it; mode ${rc.mode}).`;
  return `At C = ${fmt(c)}: ${share}. ${applied}`;
}

function drawRollout(panel) {
  const root = panel.root;
  const rc = result && result.data.rollout_correction;
  const slider = $(root, "#analyze-threshold");
  const table = $(root, "#analyze-rollout-metrics");
  const body = table.tBodies[0] || table.appendChild(el("tbody"));
  body.replaceChildren();
  slider.disabled = !rc;
  if (!rc || !rc.histogram) {
    $(root, "#analyze-share").textContent = result
      ? "No rollout_logprobs in this batch: send the inference engine's log-probs to measure the mismatch."
      : "";
    body.append(el("tr", {}, el("td", {}, result ? "No rollout_logprobs given." : "No batch analyzed yet.")));
    return panel.draw("analyze-rollout-hist", [], emptyChart("raw rollout weights w",
      result ? "No rollout_logprobs in this batch" : "Analyze a batch with rollout_logprobs"));
  }
  slider.max = String(Math.max(20, Math.ceil(rc.threshold)));
  slider.value = String(rc.threshold);
  $(root, "#analyze-threshold-out").textContent = fmt(rc.threshold);
  $(root, "#analyze-share").textContent = shareText(rc, rc.threshold);
  for (const [key, label, meaning] of ROLLOUT_METRICS) {
    if (rc.metrics[key] === undefined) continue;
    const value = key.endsWith("_fraction") ? pct(rc.metrics[key]) : fmt(rc.metrics[key]);
    body.append(el("tr", { "data-key": key },
      el("th", { scope: "row" }, label, el("br"), el("code", { class: "key" }, key)),
      el("td", {}, value), el("td", { class: "meaning" }, meaning)));
  }
  const fig = rolloutFigure(rc, rc.threshold);
  return panel.draw("analyze-rollout-hist", fig.traces, fig.layout);
}

/** While dragging: redraw the line and the share from the histogram alone (no request). */
function dragThreshold(panel) {
  const rc = result && result.data.rollout_correction;
  if (!rc || !rc.histogram) return;
  const c = Number($(panel.root, "#analyze-threshold").value);
  $(panel.root, "#analyze-threshold-out").textContent = fmt(c);
  $(panel.root, "#analyze-share").textContent = shareText(rc, c);
  const fig = rolloutFigure(rc, c);
  panel.draw("analyze-rollout-hist", fig.traces, fig.layout);
}

// ------------------------------------------------------------------ aggregation, micro-batches, conventions

const MODE_COLORS = ["#1f4e9c", "#d62728", "#2ca02c", "#ff7f0e", "#7b4fa0", "#8c564b"];

function drawAggregation(panel) {
  const root = panel.root;
  const data = result && result.data;
  const aggTable = $(root, "#analyze-agg-table");
  const microWrap = $(root, "#analyze-micro-wrap");
  if (!data) {
    emptyTable(aggTable, "Policy loss per mode");
    microWrap.hidden = true;
    return panel.draw("analyze-agg-chart", [], emptyChart("sequence weight vs length", "Analyze a batch to compare the modes"));
  }
  const agg = data.aggregation;
  const current = data.convention.knobs.loss_agg_mode;
  const modes = Object.entries(agg.modes);
  const traces = modes.map(([mode, row], k) => ({
    type: "scatter", mode: "lines+markers", x: agg.lengths, y: row.sequence_weight, name: mode,
    customdata: agg.rows, line: { color: MODE_COLORS[k % MODE_COLORS.length], width: mode === current ? 3.5 : 1.8 },
    hovertemplate: `${mode}<br>row %{customdata}, %{x} tokens: weight %{y:.4g}<extra></extra>`,
  }));
  const head = el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "loss_agg_mode"),
    el("th", { scope: "col" }, "policy loss"), el("th", { scope: "col" }, "what it does")));
  const body = el("tbody");
  for (const [mode, row] of modes) {
    body.append(el("tr", { "data-key": mode, class: mode === current ? "current" : "" },
      el("th", { scope: "row" }, el("code", {}, mode), mode === current ? " (this convention)" : ""),
      el("td", {}, row.loss === null ? "— (its own mean)" : fmt(row.loss)), el("td", { class: "meaning" }, MODE_INFO[mode] || "")));
  }
  aggTable.replaceChildren(el("caption", {}, "Policy loss of this batch under each mode"), head, body);

  const mb = data.microbatch;
  microWrap.hidden = !mb;
  if (mb) {
    const mHead = el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "loss_agg_mode"),
      el("th", { scope: "col" }, "full batch"), el("th", { scope: "col" }, `${mb.micro_batches} micro-batches, accumulated`),
      el("th", { scope: "col" }, "gradient error")));
    const mBody = el("tbody");
    for (const [mode, row] of Object.entries(mb.modes)) {
      const broken = row.gradient_relative_error > 1e-6;
      mBody.append(el("tr", { "data-key": mode },
        el("th", { scope: "row" }, el("code", {}, mode)), el("td", {}, fmt(row.loss_full)), el("td", {}, fmt(row.loss_accumulated)),
        el("td", { class: broken ? "bad" : "good" }, `${pct(row.gradient_relative_error)}${broken ? " (breaks)" : " (matches)"}`)));
    }
    $(root, "#analyze-micro-table").replaceChildren(el("caption", {},
      `Gradient accumulation over ${mb.micro_batches} micro-batches, each normalised on its own and scaled by 1/${mb.micro_batches}`), mHead, mBody);
  }
  return panel.draw("analyze-agg-chart", traces, layout({
    title: { text: "each sequence's weight vs its length", font: { size: 14 } },
    xaxis: { title: { text: "valid tokens in the sequence" } },
    yaxis: { title: { text: "weight in the loss (log)" }, type: "log" },
    height: 320,
    legend: { orientation: "h", y: -0.3 },
  }));
}

function showConventions(root, data) {
  const table = $(root, "#analyze-conventions");
  if (!data) {
    emptyTable(table, "Conventions");
    return;
  }
  const c = data.conventions;
  const sampled = c.rows_used < c.rows_total
    ? ` Computed on ${c.rows_used} of ${c.rows_total} rows, evenly spaced (the batch is large).` : "";
  const head = el("thead", {}, el("tr", {}, ...["preset", "library", "policy_loss_mode", "policy loss",
    "clip fraction as logged", "approx KL as logged"].map((t) => el("th", { scope: "col" }, t))));
  const body = el("tbody");
  for (const p of c.presets) {
    const here = p.name === data.convention.name;
    body.append(el("tr", { "data-key": p.name, class: here ? "current" : "" },
      el("th", { scope: "row" }, el("code", {}, p.name), here ? " (selected)" : ""),
      el("td", {}, p.library), el("td", {}, el("code", {}, p.policy_loss_mode)), el("td", {}, fmt(p.loss)),
      el("td", {}, fmt(p.clip_fraction_as_logged), " ", el("small", {}, el("code", {}, p.clip_fraction_metric))),
      el("td", {}, fmt(p.approx_kl_as_logged), " ", el("small", {}, el("code", {}, p.approx_kl_metric)))));
  }
  table.replaceChildren(el("caption", {}, `What each preset computes and logs for this batch.${sampled}`), head, body);
}

function showConvention(root, data) {
  const box = $(root, "#analyze-convention");
  box.replaceChildren();
  if (!data) return;
  const c = data.convention;
  const notes = el("ul", {}, ...[c.notes, ...data.notes].map((text) => el("li", {}, text)));
  box.append(el("h3", {}, `Convention: ${c.library} (${c.source})`), el("p", {}, el("code", {}, c.formula)), notes);
}

// ------------------------------------------------------------------ downloads

function csvOf(data) {
  const quote = (s) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const lines = ["section,key,value"];
  const add = (section, key, value) =>
    lines.push([section, key, value === null || value === undefined ? "" : String(value)].map(quote).join(","));
  for (const [section, entries] of [["breakdown", data.breakdown], ["diagnostics", data.diagnostics]]) {
    for (const [key, value] of Object.entries(entries)) add(section, key, value);
  }
  for (const f of data.findings) add("findings", f.code, f.value);
  for (const [mode, row] of Object.entries(data.aggregation.modes)) add("aggregation", mode, row.loss);
  for (const p of data.conventions.presets) add("conventions", p.name, p.loss);
  return `${lines.join("\n")}\n`;
}

function download(text, type, name) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = el("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// ------------------------------------------------------------------ input, errors, staleness

/** An error next to the Analyze button (bad JSON, or the API's 422): results are cleared. */
function showRunError(panel, message) {
  const line = $(panel.root, "#analyze-error");
  line.hidden = false;
  line.textContent = message;
  window.__ppo.errors.analyze = message;
}

function clearRunError(panel) {
  const line = $(panel.root, "#analyze-error");
  line.hidden = true;
  line.textContent = "";
}

/** The shown results no longer describe the input: say so (they stay for comparison). */
function markStale(panel) {
  inputChanged = true;
  if (!result) return;
  const note = $(panel.root, "#analyze-stale");
  note.hidden = false;
  note.textContent = "The input changed since these results: press Analyze to update them.";
  $(panel.root, "#analyze-out").classList.add("is-stale");
}

function unmarkStale(panel) {
  $(panel.root, "#analyze-stale").hidden = true;
  $(panel.root, "#analyze-out").classList.remove("is-stale");
}

const isNpy = (f) => /\.npy$/i.test(f.name);
const isBundle = (f) => /\.(npz|safetensors)$/i.test(f.name);

function describeFiles() {
  if (!files.length) return "No files chosen.";
  const names = files.map((f) => (isNpy(f) ? `${f.name} → ${f.name.replace(/\.npy$/i, "")}` : `${f.name} (fields by name)`));
  return `${files.length} file${files.length > 1 ? "s" : ""}: ${names.join(", ")}`;
}

function setFiles(panel, list) {
  const chosen = [...list];
  files = chosen.filter((f) => isNpy(f) || isBundle(f));
  const ignored = chosen.length - files.length;
  $(panel.root, "#analyze-file-list").textContent = describeFiles() +
    (ignored ? ` (ignored ${ignored} file(s) not ending in .npy, .npz or .safetensors)` : "");
  $(panel.root, "#analyze-clear-files").disabled = files.length === 0;
}

/** The form's options, sent over the JSON's own keys when set away from their defaults. */
function knobs(v) {
  const k = { convention: v.aConv };
  const micro = Math.round(Number(v.aMb));
  if (micro > 1) k.micro_batches = micro;
  if (v.aFirst) k.first_epoch = true;
  if (v.aRisL) k.rollout_is_level = v.aRisL;
  if (v.aRisM) k.rollout_is_mode = v.aRisM;
  if (rolloutThreshold !== null) k.rollout_is_threshold = rolloutThreshold;
  return k;
}

async function send(batch, options) {
  if (batch.files) {
    const form = new FormData();
    let bundles = 0;
    for (const file of batch.files) {
      // A .npy part is named after its field; a .npz / .safetensors part may have any name.
      const part = isNpy(file) ? file.name.replace(/\.npy$/i, "") : `batch${bundles ? `_${bundles}` : ""}`;
      if (!isNpy(file)) bundles += 1;
      form.append(part, file, file.name);
    }
    for (const [key, value] of Object.entries(options)) form.append(key, String(value));
    return postForm(PATH, form);
  }
  const body = Array.isArray(batch.json) || typeof batch.json !== "object" || batch.json === null
    ? batch.json : { ...batch.json, ...options };
  return postJSON(PATH, body);
}

// ------------------------------------------------------------------ drawing

function drawAll(panel) {
  const root = panel.root;
  const data = result && result.data;
  if (data) {
    showFindings(root, data.findings);
    fillTable($(root, "#analyze-breakdown"), `Loss breakdown (${data.tokens} valid tokens, shape [${data.shape.join(", ")}])`,
      data, "breakdown", BREAKDOWN_INFO);
    fillTable($(root, "#analyze-diagnostics"), "Diagnostics", data, "diagnostics", DIAGNOSTIC_INFO);
    $(root, "#analyze-rule").textContent = `Rows and tokens shown: ${data.token_view.rule}`;
  } else {
    $(root, "#analyze-findings").replaceChildren(el("li", { class: "analyze-none" }, "No batch analyzed yet."));
    emptyTable($(root, "#analyze-breakdown"), "Loss breakdown");
    emptyTable($(root, "#analyze-diagnostics"), "Diagnostics");
    $(root, "#analyze-rule").textContent = "";
  }
  showConventions(root, data);
  showConvention(root, data);
  for (const button of root.querySelectorAll("#analyze-download-json, #analyze-download-csv")) button.disabled = !data;
  const clip = data && clipBand(data.convention.knobs);
  return Promise.all([
    drawHeatmap(panel),
    drawRollout(panel),
    drawAggregation(panel),
    ...HISTOGRAMS.map(([key, id, title, color]) => {
      if (!data) return panel.draw(id, [], emptyChart(title, "Analyze a batch to see this histogram"));
      const c = histogramChart(data.histograms[key], title, color, key === "ratio" ? clip : null);
      return panel.draw(id, c.traces, c.layout);
    }),
  ]);
}

async function update(panel, v) {
  const root = panel.root;
  const status = $(root, "#analyze-status");
  await conventionsReady;
  if (!submitted) {
    result = null;
    await drawAll(panel);
    panel.setApiLink(DOCS, `POST ${PATH}`);
    panel.rendered();
    return;
  }
  const options = knobs(v);
  status.textContent = "Analyzing…";
  $(root, "#analyze-out").setAttribute("aria-busy", "true");
  let data;
  try {
    data = await send(submitted, options);
  } catch (error) {
    // Results of an earlier batch must not pass for this one's: clear them.
    result = null;
    status.textContent = "";
    $(root, "#analyze-out").removeAttribute("aria-busy");
    unmarkStale(panel);
    await drawAll(panel);
    showRunError(panel, `The batch was refused: ${error.message}`);
    return;
  }
  $(root, "#analyze-out").removeAttribute("aria-busy");
  clearRunError(panel);
  result = { data, convention: v.aConv };
  await drawAll(panel);
  if (inputChanged) markStale(panel);
  else unmarkStale(panel);
  const how = submitted.files ? `${submitted.files.length} file${submitted.files.length > 1 ? "s" : ""}` : "JSON";
  const n = data.findings.length;
  status.textContent = `Analyzed ${data.tokens} tokens (${how}) with the ${data.convention.name} convention: ` +
    `${n ? `${n} finding${n > 1 ? "s" : ""}` : "no findings"}.`;
  const shown = Object.entries(options).map(([key, value]) => `${key}=${value}`).join(", ");
  panel.setApiLink(DOCS, `POST ${PATH} (${how}, ${shown})`);
  panel.rendered();
}

// ------------------------------------------------------------------ the convention menu

let conventionsReady = Promise.resolve();

/** Every preset from GET /conventions, grouped by library; the URL's choice restored after. */
function fillConventions(panel, list) {
  const select = $(panel.root, "#analyze-conv");
  const groups = new Map();
  for (const c of list) {
    if (!groups.has(c.library)) groups.set(c.library, el("optgroup", { label: c.library }));
    groups.get(c.library).append(el("option", { value: c.name }, c.name));
  }
  select.replaceChildren(...groups.values());
  panel.controls.restore(state.params());
}

function wire(panel) {
  const root = panel.root;
  const text = $(root, "#analyze-json");
  const input = $(root, "#analyze-files");
  const drop = $(root, "#analyze-drop");
  const status = $(root, "#analyze-status");

  const load = (batch, message) => {
    text.value = formatExample(batch);
    input.value = "";
    setFiles(panel, []);
    markStale(panel);
    status.textContent = message;
  };
  $(root, "#analyze-example").addEventListener("click", () =>
    load(EXAMPLE, "Example loaded: 4 responses of 8, 6, 5 and 3 tokens, with the engine's log-probs. Press Analyze."));
  $(root, "#analyze-example-broken").addEventListener("click", () =>
    load(BROKEN, "Broken batch loaded: first update with ratios off 1, a stale log-prob, a drifting engine and a group with equal scores. Press Analyze."));
  text.addEventListener("input", () => markStale(panel));
  input.addEventListener("change", () => {
    setFiles(panel, input.files);
    markStale(panel);
  });
  $(root, "#analyze-clear-files").addEventListener("click", () => {
    input.value = "";
    setFiles(panel, []);
    markStale(panel);
    input.focus();
  });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer && event.dataTransfer.files.length) {
      setFiles(panel, event.dataTransfer.files);
      markStale(panel);
    }
  });

  $(root, "#analyze-run").addEventListener("click", async () => {
    let batch;
    if (files.length) {
      batch = { files: [...files] };
    } else if (text.value.trim()) {
      try {
        batch = { json: JSON.parse(text.value) };
      } catch (error) {
        batch = { error: `The JSON does not parse: ${error.message}` };
      }
    } else {
      batch = { error: "Nothing to analyze: paste a batch as JSON (or load an example), or choose files." };
    }
    if (batch.error) {
      // The shown results are not this input's: clear them rather than let them pass for it.
      submitted = null;
      result = null;
      unmarkStale(panel);
      status.textContent = "";
      await drawAll(panel);
      showRunError(panel, batch.error);
      return;
    }
    submitted = batch;
    inputChanged = false;
    rolloutThreshold = null;
    clearRunError(panel);
    panel.refresh();
  });

  $(root, "#analyze-sort").addEventListener("change", () => drawHeatmap(panel));

  // Dragging redraws from the histogram already here; releasing re-runs the analysis with that
  // rollout_is_threshold, so the exact shares (and the loss, when the correction is applied)
  // follow: one request per release, not one per pixel.
  const slider = $(root, "#analyze-threshold");
  slider.addEventListener("input", () => dragThreshold(panel));
  slider.addEventListener("change", () => {
    if (!submitted) return;
    rolloutThreshold = Number(slider.value);
    panel.refresh();
  });

  $(root, "#analyze-download-json").addEventListener("click", () => {
    if (result) download(JSON.stringify(result.data, null, 2), "application/json", `ppo-analysis-${result.convention}.json`);
  });
  $(root, "#analyze-download-csv").addEventListener("click", () => {
    if (result) download(csvOf(result.data), "text/csv", `ppo-analysis-${result.convention}.csv`);
  });
}

export default () => {
  const panel = createPanel("analyze", { update });
  conventionsReady = getJSON(CONVENTIONS).then(
    (list) => fillConventions(panel, list),
    (error) => panel.showError(error, "Could not load the conventions: "),
  );
  wire(panel);
  return panel;
};
