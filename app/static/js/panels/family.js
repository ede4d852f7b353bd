// The family panel: the policy-loss family of today's LLM trainers beside PPO's clip. Three chart
// groups share the panel's knobs: objective and gradient weight against the ratio for A > 0 and
// A < 0 (GET /objective-curves, twice), GSPO's sequence view (POST /policy-loss, twice), and
// the loss_agg_mode weights (GET /aggregation-weights). Recipes come from GET /conventions.
import { apiUrl, getJSON, postJSON } from "../api.js";
import { createPanel, layout, NARROW_PX, redrawAcrossBreakpoint } from "../panel.js";

/** Each loss: its policy_loss_mode, checkbox key, name, colour and dash, the same everywhere. */
const MODES = [
  { mode: "vanilla", key: "fmV", label: "PPO", color: "#1f4e9c", dash: "solid" },
  { mode: "gspo", key: "fmGs", label: "GSPO", color: "#2ca02c", dash: "dash" },
  { mode: "cispo", key: "fmCi", label: "CISPO", color: "#d62728", dash: "solid" },
  { mode: "sapo", key: "fmSa", label: "SAPO", color: "#9467bd", dash: "solid" },
  { mode: "gpg", key: "fmGp", label: "GPG", color: "#ff7f0e", dash: "dot" },
  { mode: "geo_mean", key: "fmGm", label: "GMPO", color: "#8c564b", dash: "dashdot" },
];
const BY_MODE = Object.fromEntries(MODES.map((m) => [m.mode, m]));

/** loss_agg_modes, in the order the API documents them, with their own palette (they are a
 * different idea from the losses above, so they do not borrow the losses' colours). */
const AGG_MODES = [
  ["token-mean", "#17becf"],
  ["token-sum", "#7f7f7f"],
  ["seq-mean-token-mean", "#393b79"],
  ["seq-mean-token-sum", "#bcbd22"],
  ["seq-mean-token-sum-norm", "#e377c2"],
];

const POINTS = 101;
const TOKENS = 12;
const ZERO = 1e-12;
/** Charts narrower than this stack the four subplots of the curve figure in one column. */

const enabledModes = (v) => MODES.filter((m) => v[m.key]).map((m) => m.mode);
const ratioRange = (v) => v.fR.split("-").map(Number);
const epsLow = (v) => (v.fAs ? v.fel : v.fe);
const epsHigh = (v) => (v.fAs ? v.feh : v.fe);

// ---------------------------------------------------------------- objective & gradient weight

function curveQuery(v, sign, modes) {
  const [lo, hi] = ratioRange(v);
  return {
    modes: modes.join(","),
    advantage: sign * v.fA,
    epsilon: v.fe,
    epsilon_low: v.fAs ? v.fel : undefined,
    epsilon_high: v.fAs ? v.feh : undefined,
    dual_clip: v.fDu ? v.fc : undefined,
    sapo_tau_pos: v.ftp,
    sapo_tau_neg: v.ftn,
    cispo_clip: v.fCc,
    ratio_min: lo,
    ratio_max: hi,
    points: POINTS,
  };
}

/** `y` at r = 1, interpolated on the grid. */
function atOne(ratio, y) {
  for (let i = 0; i + 1 < ratio.length; i++) {
    if (ratio[i] <= 1 && ratio[i + 1] >= 1) {
      const t = (1 - ratio[i]) / (ratio[i + 1] - ratio[i] || 1);
      return y[i] + t * (y[i + 1] - y[i]);
    }
  }
  return 0;
}

/** [lo, hi] padded by 8 % of the span. */
function padded(lo, hi) {
  const pad = 0.08 * (hi - lo || 1);
  return [lo - pad, hi + pad];
}

/**
 * Axis ranges from |A| and the ratio range alone, so they hold still while ε, τ, the CISPO
 * clip or the set of losses change. Bounds, for A > 0 (A < 0 mirrors them), with objectives
 * drawn relative to their value at r = 1: PPO, GSPO, GMPO and SAPO move by at most |r − 1|·A
 * (SAPO's gate has slope ≤ 1); CISPO and GPG move by w·A·log r with w ≤ max(1, r), i.e. by at
 * most A·log(1/r_min) on the left and A·r_max·log r_max on the right (both ≥ |r − 1|). Every
 * gradient weight lies in [0, r_max·A]: r·A inside the clip, clip(r)·A ≤ max(1, r)·A, A.
 */
function fixedRanges(v) {
  const [lo, hi] = ratioRange(v);
  const a = v.fA;
  const objective = padded(-a * Math.log(1 / lo), a * hi * Math.log(hi));
  const weight = padded(0, a * hi);
  return {
    pos: { objective, weight },
    neg: { objective: [-objective[1], -objective[0]], weight: [-weight[1], -weight[0]] },
  };
}

function modeTraces(data, sign, axes, focus) {
  const traces = [];
  if (!data) return traces;
  const side = sign > 0 ? "pos" : "neg";
  for (const m of MODES) {
    const curve = data.curves[m.mode];
    if (!curve) continue;
    const dim = focus && focus !== m.mode;
    const style = {
      mode: "lines",
      legendgroup: m.mode,
      opacity: dim ? 0.35 : 1,
      line: { color: m.color, dash: m.dash, width: focus === m.mode ? 4 : 2.5 },
    };
    const shift = atOne(data.ratio, curve.objective);
    traces.push(
      { ...style, x: data.ratio, y: curve.objective.map((y) => y - shift), name: `${m.label} objective`,
        uid: `${m.mode}-${side}-objective`, xaxis: axes.x, yaxis: axes.y,
        hovertemplate: `${m.label}: r %{x:.3f}, objective − obj(1) %{y:.3f}<extra></extra>` },
      { ...style, x: data.ratio, y: curve.gradient_weight, name: `${m.label} gradient weight`,
        uid: `${m.mode}-${side}-gradient`, xaxis: axes.gx, yaxis: axes.gy,
        hovertemplate: `${m.label}: r %{x:.3f}, weight %{y:.3f}<extra></extra>` },
    );
  }
  return traces;
}

const SIDES = [
  { x: "x", y: "y", gx: "x3", gy: "y3" },
  { x: "x2", y: "y2", gx: "x4", gy: "y4" },
];

/** The shaded trust region, r = 1, the read-out ratio and (absolute CISPO) the cap on r, each
 * spanning both rows of a side. */
function sideShapes(v, bounds, axes, top, bottom, marker, modes) {
  const span = { xref: axes.x, yref: "paper", y0: bottom, y1: top };
  const vline = (at, color, dash) => ({ type: "line", ...span, x0: at, x1: at,
    line: { color, dash, width: 1.5 } });
  const shapes = [
    { type: "rect", ...span, x0: bounds.low, x1: bounds.high, fillcolor: "rgba(31,78,156,0.09)",
      line: { width: 0 }, layer: "below" },
    vline(1, "#888", "dot"),
    vline(marker, "#555", "dash"),
  ];
  if (modes.includes("cispo") && v.fCc === "absolute") shapes.push(vline(epsHigh(v), BY_MODE.cispo.color, "dot"));
  return shapes;
}

function curveFigure(v, pos, neg, modes, width) {
  const narrow = width < NARROW_PX;
  const [left, right] = narrow ? [[0, 1], [0, 1]] : [[0, 0.46], [0.54, 1]];
  // Domains: [objective, gradient weight] for A > 0, then for A < 0.
  const rows = narrow
    ? [[0.79, 1], [0.56, 0.74], [0.26, 0.47], [0.03, 0.21]]
    : [[0.52, 1], [0, 0.4], [0.52, 1], [0, 0.4]];
  const [lo, hi] = ratioRange(v);
  const ranges = fixedRanges(v);
  const ratio = { range: [lo, hi], nticks: 6 };
  const ratioTitle = { text: "ratio r = π_new / π_old" };
  const yaxis = (range, domain, anchor, title) => ({ domain, anchor, range, nticks: 5,
    zeroline: true, title: title ? { text: title } : undefined });
  const title = (text, x, y) => ({ text, x, y, xref: "paper", yref: "paper", xanchor: "center",
    yanchor: "bottom", showarrow: false, font: { size: 14 } });
  const bounds = (pos || neg || { clip_bounds: { low: 1 - epsLow(v), high: 1 + epsHigh(v) } }).clip_bounds;
  const marker = Math.min(hi, Math.max(lo, v.fx));
  const adv = v.fA;
  return {
    traces: [...modeTraces(pos, 1, SIDES[0], v.fF), ...modeTraces(neg, -1, SIDES[1], v.fF)],
    layout: layout({
      xaxis: { domain: left, anchor: "y", matches: "x3", showticklabels: false, ...ratio },
      xaxis2: { domain: right, anchor: "y2", matches: "x4", showticklabels: false, ...ratio },
      xaxis3: { domain: left, anchor: "y3", title: narrow ? undefined : ratioTitle, ...ratio },
      xaxis4: { domain: right, anchor: "y4", title: ratioTitle, ...ratio },
      yaxis: yaxis(ranges.pos.objective, rows[0], "x", "objective"),
      yaxis3: yaxis(ranges.pos.weight, rows[1], "x3", "weight on ∇log π"),
      yaxis2: yaxis(ranges.neg.objective, rows[2], "x2", narrow ? "objective" : undefined),
      yaxis4: yaxis(ranges.neg.weight, rows[3], "x4", narrow ? "weight on ∇log π" : undefined),
      shapes: [
        ...sideShapes(v, bounds, SIDES[0], rows[0][1], rows[1][0], marker, modes),
        ...sideShapes(v, bounds, SIDES[1], rows[2][1], rows[3][0], marker, modes),
      ],
      annotations: [
        title(`A = +${adv} (good action: do more)`, (left[0] + left[1]) / 2, rows[0][1]),
        title(`A = −${adv} (bad action: do less)`, (right[0] + right[1]) / 2, rows[2][1]),
      ],
      showlegend: false,
      margin: { l: 52, r: 12, t: 28, b: 44 },
      height: narrow ? 820 : 460,
    }),
  };
}

/** "At r = 1.30 with A > 0, the weight on ∇log π is: PPO 0 (no gradient), CISPO 1.20, …" */
function curveReadout(v, data, sign) {
  if (!data) return "";
  const [lo, hi] = ratioRange(v);
  const target = Math.min(hi, Math.max(lo, v.fx));
  let i = 0;
  for (let j = 1; j < data.ratio.length; j++) {
    if (Math.abs(data.ratio[j] - target) < Math.abs(data.ratio[i] - target)) i = j;
  }
  const parts = MODES.filter((m) => data.curves[m.mode]).map((m) => {
    const w = data.curves[m.mode].gradient_weight[i];
    const said = Math.abs(w) < ZERO ? `<span class="bad">no gradient</span>` : w.toFixed(2);
    return `${m.label} ${said}`;
  });
  const digits = hi - lo < 0.1 ? 4 : 2; // the zoomed ranges step r by 2e-4
  return `<p>At r = ${data.ratio[i].toFixed(digits)} with <strong>A ${sign > 0 ? ">" : "<"} 0</strong>, ` +
    `the weight on ∇log π: ${parts.join(" · ")}</p>`;
}

async function drawCurves(panel, v) {
  const modes = enabledModes(v);
  const div = document.getElementById("family-chart");
  let pos = null;
  let neg = null;
  if (modes.length) {
    [pos, neg] = await Promise.all([
      getJSON("/api/v1/objective-curves", curveQuery(v, 1, modes)),
      getJSON("/api/v1/objective-curves", curveQuery(v, -1, modes)),
    ]);
  }
  const fig = curveFigure(v, pos, neg, modes, div.clientWidth);
  await panel.draw("family-chart", fig.traces, fig.layout);
  document.getElementById("family-readout").innerHTML = modes.length
    ? curveReadout(v, pos, 1) + curveReadout(v, neg, -1)
    : "<p>Tick at least one loss to draw it.</p>";
  if (modes.length) panel.setApiLink(apiUrl("/api/v1/objective-curves", curveQuery(v, 1, modes)));
}

// ---------------------------------------------------------------- GSPO's sequence view

/** mulberry32: a tiny deterministic generator, so a seed gives the same sequence everywhere. */
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A sample answer: old log-probs in [-2.7, -0.2] and token log-ratios drift + spread·z, with z
 * standardised (mean 0, std 1) so that the sequence's mean log-ratio, log s, is the drift.
 */
function sampleSequence(seed, drift, spread) {
  const rand = mulberry32(seed * 2654435761 + 1);
  const z = [];
  const old = [];
  for (let t = 0; t < TOKENS; t++) {
    const u1 = 1 - rand();
    const u2 = rand();
    z.push(Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2));
    old.push(-(0.2 + 2.5 * rand()));
  }
  const mean = z.reduce((s, x) => s + x, 0) / TOKENS;
  const std = Math.sqrt(z.reduce((s, x) => s + (x - mean) ** 2, 0) / TOKENS) || 1;
  const logRatio = z.map((x) => drift + (spread * (x - mean)) / std);
  return { old, logprobs: old.map((o, t) => o + logRatio[t]), logRatio };
}

function sequenceBody(v, seq, mode) {
  return {
    logprobs: [seq.logprobs],
    old_logprobs: [seq.old],
    advantages: [Number(v.fSg) * v.fA],
    policy_loss_mode: mode,
    clip_ratio: v.fe,
    clip_ratio_low: v.fAs ? v.fel : undefined,
    clip_ratio_high: v.fAs ? v.feh : undefined,
    dual_clip: v.fDu ? v.fc : undefined,
    loss_agg_mode: v.fAgg,
    loss_scale_factor: v.fLo ? v.fLs : undefined,
  };
}

const TOKEN_LABELS = Array.from({ length: TOKENS }, (_, t) => `t${t + 1}`);

/**
 * The ratio axis is logarithmic (r = 0.8 and 1.25 sit equally far from 1) and its half-width
 * grows in steps of 0.25 in log r, so that it does not jump on every slider tick.
 */
function ratioAxisRange(ratios, low, high) {
  const extent = Math.max(0.25, ...ratios.map((r) => Math.abs(Math.log(r))),
    Math.abs(Math.log(low)), Math.abs(Math.log(high)));
  const half = Math.ceil((extent * 1.1) / 0.25) * 0.25;
  return [-half / Math.LN10, half / Math.LN10];
}

function sequenceFigures(v, ppo, gspo) {
  const ratios = ppo.ratio[0];
  const s = gspo.ratio[0][0];
  const low = 1 - epsLow(v);
  const high = 1 + epsHigh(v);
  const outside = ratios.map((r) => r < low || r > high);
  const ratioChart = {
    traces: [{
      type: "bar", name: "token ratio r_t", x: TOKEN_LABELS, y: ratios.map((r) => r - 1), base: 1,
      customdata: ratios, marker: { color: outside.map((o) => (o ? "#e07b39" : "#9aa5b8")) },
      hovertemplate: "%{x}: r = %{customdata:.3f}<extra></extra>",
    }, {
      type: "scatter", mode: "lines", name: "GSPO sequence ratio s", x: TOKEN_LABELS,
      y: TOKEN_LABELS.map(() => s), line: { color: BY_MODE.gspo.color, width: 3, dash: BY_MODE.gspo.dash },
      hovertemplate: `s = ${s.toFixed(4)}<extra></extra>`,
    }],
    layout: layout({
      title: { text: "Token ratios (bars), sequence ratio s (line)", font: { size: 14 } },
      yaxis: { type: "log", range: ratioAxisRange(ratios, low, high), title: { text: "ratio" } },
      xaxis: { fixedrange: true },
      shapes: [{ type: "rect", xref: "paper", x0: 0, x1: 1, yref: "y", y0: low, y1: high,
        fillcolor: "rgba(31,78,156,0.12)", line: { width: 0 }, layer: "below" }],
      showlegend: true,
      height: 340,
    }),
  };
  const push = (d) => d.logprob_gradient[0].map((g) => -g);
  const gradChart = {
    traces: [ppo, gspo].map((d, k) => {
      const m = BY_MODE[k === 0 ? "vanilla" : "gspo"];
      return { type: "bar", name: m.label, x: TOKEN_LABELS, y: push(d), marker: { color: m.color },
        hovertemplate: `${m.label} %{x}: %{y:.4f}<extra></extra>` };
    }),
    layout: layout({
      title: { text: "Push on each token: −d loss / d log π_t", font: { size: 14 } },
      barmode: "group",
      yaxis: { zeroline: true, title: { text: "−d loss / d log π_t" } },
      xaxis: { fixedrange: true },
      height: 340,
    }),
  };
  return { ratioChart, gradChart };
}

function sequenceReadout(v, ppo, gspo) {
  const low = 1 - epsLow(v);
  const high = 1 + epsHigh(v);
  const bound = (x) => String(Number(x.toFixed(6))); // 0.8, 1.2, but also GSPO's 0.9997
  const band = `[${bound(low)}, ${bound(high)}]`;
  const count = (d) => d.logprob_gradient[0].filter((g) => Math.abs(g) < ZERO).length;
  const ppoZero = count(ppo);
  const gspoZero = count(gspo);
  const s = gspo.ratio[0][0];
  const inside = s >= low && s <= high;
  const gspoSays = gspoZero === 0
    ? `<span class="good">every token gets a gradient</span>`
    : gspoZero === TOKENS ? `<span class="bad">no token gets any gradient</span>`
      : `${TOKENS - gspoZero} of ${TOKENS} tokens get a gradient`;
  return `<p><strong>PPO</strong>: ${TOKENS - ppoZero} of ${TOKENS} tokens get a gradient, ` +
    `${ppoZero} ${ppoZero === 1 ? "is" : "are"} clipped token by token (clip fraction ${ppo.clip_fraction.toFixed(2)}).</p>` +
    `<p><strong>GSPO</strong>: sequence ratio s = ${s.toFixed(4)}, ${inside ? "inside" : "outside"} ${band} → ${gspoSays}.</p>`;
}

async function drawSequence(panel, v) {
  const seq = sampleSequence(v.fSd, v.fD, v.fSp);
  const bodies = [sequenceBody(v, seq, "vanilla"), sequenceBody(v, seq, "gspo")];
  const [ppo, gspo] = await Promise.all(bodies.map((b) => postJSON("/api/v1/policy-loss", b)));
  const { ratioChart, gradChart } = sequenceFigures(v, ppo, gspo);
  await Promise.all([
    panel.draw("family-chart-seq-ratio", ratioChart.traces, ratioChart.layout),
    panel.draw("family-chart-seq-grad", gradChart.traces, gradChart.layout),
  ]);
  document.getElementById("family-seq-readout").innerHTML = sequenceReadout(v, ppo, gspo);
  document.getElementById("family-seq-body").textContent = JSON.stringify(bodies[1], null, 1);
}

// ---------------------------------------------------------------- aggregation weights

function aggQuery(v) {
  return { lengths: v.fL, loss_scale_factor: v.fLo ? v.fLs : undefined };
}

// token-sum is drawn too: on the log axis its weight (1 per token) sits a few decades above
// the means without squashing them, and hiding it would hide how far apart the modes are.
function aggFigure(d, v, field, title, yTitle) {
  return {
    traces: AGG_MODES.map(([mode, color]) => ({
      x: d.lengths, y: d.modes[mode][field], name: mode, mode: "lines+markers",
      line: { color, width: v.fAgg === mode ? 4 : 2 }, marker: { size: v.fAgg === mode ? 9 : 6 },
      hovertemplate: `${mode}: length %{x}, weight %{y:.3g}<extra></extra>`,
    })),
    layout: layout({
      title: { text: title, font: { size: 14 } },
      xaxis: { type: "log", title: { text: "answer length (tokens)" }, tickvals: [...new Set(d.lengths)] },
      yaxis: { type: "log", title: { text: yTitle }, exponentformat: "power", dtick: 1 },
      legend: { orientation: "h", y: -0.3 },
      margin: { l: 56, r: 12, t: 36, b: 40 },
      height: 400,
    }),
  };
}

async function drawAggregation(panel, v) {
  const q = aggQuery(v);
  const d = await getJSON("/api/v1/aggregation-weights", q);
  const a = aggFigure(d, v, "token_weight", `Weight of one token (padded length ${d.padded_length})`, "weight of one token");
  const b = aggFigure(d, v, "sequence_weight", "Weight of the whole answer", "weight of the answer");
  await Promise.all([
    panel.draw("family-chart-agg-token", a.traces, a.layout),
    panel.draw("family-chart-agg-seq", b.traces, b.layout),
  ]);
  const url = apiUrl("/api/v1/aggregation-weights", q);
  const link = document.getElementById("family-agg-api");
  link.href = url;
  link.querySelector("code").textContent = url;
}

// ---------------------------------------------------------------- recipes (GET /conventions)

/** The presets, fetched once per page (again only if that fetch failed). */
let conventionList = null;
function conventions() {
  if (!conventionList) {
    conventionList = getJSON("/api/v1/conventions");
    conventionList.catch(() => {
      conventionList = null;
    });
  }
  return conventionList;
}

/** Knobs a recipe leaves as the reader set them: the advantage, the view and the sample. */
const KEEP = ["fA", "fR", "fx", "fD", "fSp", "fSd", "fSg", "fL", ...MODES.map((m) => m.key)];
const log10 = (x) => Math.log10(x).toFixed(4);

/** The control values (raw, as the URL holds them) that a convention's knobs imply. */
function recipeValues(panel, conv) {
  const k = conv.knobs;
  const values = {};
  for (const key of KEEP) {
    const el = panel.controls.element(key);
    values[key] = el.type === "checkbox" ? el.checked : el.value;
  }
  const eps = k.clip_ratio ?? 0.2;
  Object.assign(values, {
    fP: conv.name,
    fe: log10(eps),
    fAs: k.clip_ratio_low != null || k.clip_ratio_high != null,
    fel: log10(k.clip_ratio_low ?? eps),
    feh: log10(k.clip_ratio_high ?? eps),
    fDu: k.dual_clip != null,
  });
  if (k.dual_clip != null) values.fc = k.dual_clip;
  if (k.sapo_tau_pos != null) values.ftp = k.sapo_tau_pos;
  if (k.sapo_tau_neg != null) values.ftn = k.sapo_tau_neg;
  if (k.cispo_clip) values.fCc = k.cispo_clip;
  if (k.loss_agg_mode) values.fAgg = k.loss_agg_mode;
  values.fLo = k.loss_scale_factor != null;
  if (k.loss_scale_factor != null) values.fLs = k.loss_scale_factor;
  const m = BY_MODE[k.policy_loss_mode];
  if (m) {
    values.fF = m.mode;
    values[m.key] = true;
  }
  return values;
}

/** One row of buttons per library, for each `<library>-<loss type>` preset. */
function drawRecipes(panel, list) {
  const box = document.getElementById("family-recipes");
  box.querySelector(".family-recipes-loading")?.remove();
  const byLibrary = new Map();
  for (const conv of list) {
    if (!conv.name.includes("-")) continue; // the plain library defaults live in "analyze"
    if (!byLibrary.has(conv.library)) byLibrary.set(conv.library, []);
    byLibrary.get(conv.library).push(conv);
  }
  for (const [library, items] of byLibrary) {
    const row = document.createElement("div");
    row.className = "presets";
    const name = document.createElement("span");
    name.textContent = `${library}:`;
    row.append(name);
    for (const conv of items) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "preset recipe";
      button.dataset.recipe = conv.name;
      button.textContent = conv.name.slice(conv.name.indexOf("-") + 1);
      button.setAttribute("aria-label", `${conv.name} preset`);
      button.setAttribute("aria-pressed", "false");
      button.title = conv.notes;
      button.addEventListener("click", () => panel.controls.apply(recipeValues(panel, conv)));
      row.append(button);
    }
    box.append(row);
  }
}

/** Whether the knobs still hold what the recipe set (the reader may have moved one since). */
function recipeHolds(panel, conv) {
  const want = recipeValues(panel, conv);
  return Object.entries(want).every(([key, raw]) => {
    const el = panel.controls.element(key);
    const now = el.type === "checkbox" ? el.checked : el.value;
    if (el.type === "range") return Math.abs(Number(now) - Number(raw)) <= Number(el.step) / 2 + 1e-9;
    return String(now) === String(raw);
  });
}

async function showRecipe(panel, v) {
  const box = document.getElementById("family-preset-info");
  for (const b of document.querySelectorAll("#family-recipes button.recipe")) {
    b.setAttribute("aria-pressed", String(b.dataset.recipe === v.fP));
  }
  if (!v.fP) {
    box.hidden = true;
    return;
  }
  const conv = (await conventions()).find((c) => c.name === v.fP);
  if (!conv) {
    box.hidden = true;
    return;
  }
  const text = (tag, content, className) => {
    const el = document.createElement(tag);
    if (className) el.className = className;
    el.textContent = content;
    return el;
  };
  const heading = text("h3", `Recipe ${conv.name} (${conv.library})`);
  if (!recipeHolds(panel, conv)) heading.append(text("small", " — knobs changed since", "family-modified"));
  const formula = document.createElement("p");
  formula.append(text("strong", "Formula: "), text("code", conv.formula));
  const notes = document.createElement("p");
  notes.append(text("strong", "Notes: "), conv.notes);
  const source = document.createElement("p");
  source.append(text("strong", "Source: "), text("code", conv.source));
  box.replaceChildren(heading, formula, notes, source);
  box.hidden = false;
}

// ---------------------------------------------------------------- the panel

/** Each chart group redraws only when what it shows changed. */
const drawn = { curves: null, sequence: null, aggregation: null };

function groupKeys(v) {
  const narrow = document.getElementById("family-chart").clientWidth < NARROW_PX;
  const modes = enabledModes(v);
  return {
    curves: JSON.stringify([curveQuery(v, 1, modes), v.fF, v.fx, narrow]),
    sequence: JSON.stringify([v.fSd, v.fD, v.fSp, sequenceBody(v, { old: [], logprobs: [] }, "")]),
    aggregation: JSON.stringify([aggQuery(v), v.fAgg]),
  };
}

async function update(panel, v) {
  // A control the charts ignore is off, and says what turns it on.
  const c = panel.controls;
  c.setEnabled("fe", !v.fAs, "Ignored while Asymmetric clip is on (ε_low / ε_high replace it): untick it to use ε.");
  for (const key of ["fel", "feh"]) c.setEnabled(key, v.fAs, "Off: tick Asymmetric clip to use it.");
  c.setEnabled("fc", v.fDu, "Off: tick Dual clip to use it.");
  c.setEnabled("fLs", v.fLo, "Off: tick “Set loss_scale_factor” to use it.");
  const keys = groupKeys(v);
  const groups = { curves: drawCurves, sequence: drawSequence, aggregation: drawAggregation };
  await Promise.all([
    ...Object.entries(groups).map(async ([name, draw]) => {
      if (drawn[name] === keys[name]) return;
      await draw(panel, v);
      drawn[name] = keys[name];
    }),
    showRecipe(panel, v),
  ]);
  panel.rendered();
}

export default () => {
  const panel = createPanel("family", { update });
  for (const swatch of panel.root.querySelectorAll(".family-swatch")) {
    const m = BY_MODE[swatch.dataset.mode];
    const dashes = { dash: "6 4", dot: "2 3", dashdot: "6 3 2 3" };
    swatch.innerHTML = `<svg width="28" height="10" aria-hidden="true"><line x1="1" y1="5" x2="27" y2="5" ` +
      `stroke="${m.color}" stroke-width="3"${dashes[m.dash] ? ` stroke-dasharray="${dashes[m.dash]}"` : ""}/></svg>`;
  }
  conventions().then(
    (list) => {
      drawRecipes(panel, list);
      panel.refresh(); // marks the recipe in the URL as pressed
    },
    (error) => panel.showError(error, "Could not load the recipes: "),
  );
  redrawAcrossBreakpoint(panel, document.getElementById("family-chart"));
  return panel;
};
