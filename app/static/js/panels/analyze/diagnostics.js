// The loss breakdown and the diagnostics, one row per number: its value (or why it is missing),
// what it means, its formula and which library logs it.
import { $, el, emptyTable, fmt, keyHeader, tableHead } from "./dom.js";

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
      keyHeader(label, key),
      why ? el("td", { class: "not-provided" }, why) : el("td", {}, fmt(value)),
      el("td", { class: "meaning" }, meaning, form ? el("br") : null, form ? el("code", {}, form) : null)));
  }
  table.replaceChildren(el("caption", {}, caption), tableHead("quantity", "value", "meaning"), body);
}

/**
 * Fills #analyze-breakdown and #analyze-diagnostics, or their empty state.
 * @param {ParentNode} root the panel
 * @param {object | null} data the API's answer, null before any batch
 */
export function showDiagnostics(root, data) {
  const breakdown = $(root, "#analyze-breakdown");
  const diagnostics = $(root, "#analyze-diagnostics");
  if (!data) {
    emptyTable(breakdown, "Loss breakdown");
    emptyTable(diagnostics, "Diagnostics");
    return;
  }
  fillTable(breakdown, `Loss breakdown (${data.tokens} valid tokens, shape [${data.shape.join(", ")}])`,
    data, "breakdown", BREAKDOWN_INFO);
  fillTable(diagnostics, "Diagnostics", data, "diagnostics", DIAGNOSTIC_INFO);
}
