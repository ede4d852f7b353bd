// The findings list: what the API flagged in the batch, each with its numbers, why it matters
// and a link to the panel that explains it.
import { $, el, fmt } from "./dom.js";

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

function panelTitle(id) {
  const head = document.getElementById(`panel-${id}-title`);
  return head ? head.textContent.trim() : null;
}

/**
 * Fills #analyze-findings.
 * @param {ParentNode} root the panel
 * @param {{findings: Array<{code: string, severity: string, message: string, panel: string,
 *   value: number | null, threshold: number | null}>} | null} data the API's answer, null before
 *   any batch
 */
export function showFindings(root, data) {
  const list = $(root, "#analyze-findings");
  list.replaceChildren();
  if (!data) {
    list.append(el("li", { class: "analyze-none" }, "No batch analyzed yet."));
    return;
  }
  const findings = data.findings;
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
