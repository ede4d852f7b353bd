// The lab's presets and this server's work budget, read once from GET /api/v1/lab/presets
// (ppo_core.lab.PRESETS is their one source: issue 13), and the one map between the API's
// knob names and the page's controls.
import { getJSON } from "../../api.js";

const PRESETS_PATH = "/api/v1/lab/presets";

// API knob name -> the page's control (URL key). `target_kl` is also the checkbox lTgt: null
// (no target, β fixed) is the checkbox off. The page has no seq_len control.
export const KNOB_KEYS = {
  iterations: "lIt", lr: "lLr", epochs: "lEp", batch_size: "lBs", clip_ratio: "eps",
  entropy_coef: "ent", kl_coef: "lKl", target_kl: "lTkl", seed: "lSeed",
};
// API preset name -> the page's preset button (data-preset). A preset the page has no button
// for gets one, labelled with its API name.
const PRESET_BUTTONS = {
  default: "default", "high learning rate": "high-lr", "no entropy bonus": "no-ent",
  "with KL penalty": "kl",
};
// How a preset's label names the knobs it changes from "default".
const KNOB_SYMBOLS = {
  iterations: "iterations", lr: "α", epochs: "K", batch_size: "batch", clip_ratio: "ε",
  entropy_coef: "c₂", kl_coef: "β", target_kl: "KL target", seed: "seed", seq_len: "words",
};

/** What the server answered: { presets, limits, max_work, work }; null until then. */
let server = null;
/** Why the presets could not be read (the budget is then unknown). */
let failure = null;
/** Page button name -> control values, filled from the server; bindControls reads it on click. */
export const presetValues = {};

/** A preset's knobs as control values (API names mapped to the page's keys). */
function controlValues(knobs) {
  const out = {};
  for (const [knob, key] of Object.entries(KNOB_KEYS)) {
    if (knob in knobs && knobs[knob] !== null) out[key] = knobs[knob];
  }
  out.lTgt = knobs.target_kl !== null && knobs.target_kl !== undefined;
  return out;
}

/**
 * A run's cost against the server's budget: work = iterations x epochs x batch_size x seq_len x
 * algorithms (the server's own count). The page sends no seq_len, so the server takes the
 * default preset's: so does this. `work` is null while the budget is unknown.
 */
export function budget(v, algorithms) {
  if (!server) return { work: null, max: null, seqLen: null, over: false, failure };
  const seqLen = server.presets.default.seq_len;
  const work = v.lIt * v.lEp * v.lBs * seqLen * algorithms.length;
  return { work, max: server.max_work, seqLen, over: work > server.max_work, failure: null };
}

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

/** Fill the panel's preset buttons from GET /lab/presets (they wait, disabled, until it
 * answers), then redraw the panel (its budget line). */
export async function loadPresets(panel) {
  const group = panel.root.querySelector(".presets");
  const buttons = () => [...group.querySelectorAll("button.preset:not(.reset)")];
  for (const b of buttons()) b.disabled = true;
  try {
    server = await getJSON(PRESETS_PATH);
    failure = null;
  } catch (error) {
    failure = `the presets could not be read: ${error.message}`;
    for (const b of buttons()) b.title = failure;
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
  const apiName = Object.fromEntries(Object.entries(PRESET_BUTTONS).map(([api, page]) => [page, api]));
  for (const b of buttons()) {
    const knobs = server.presets[apiName[b.dataset.preset] || b.dataset.preset];
    if (knobs) labelChanges(b, knobs, server.presets.default);
    const known = b.dataset.preset in presetValues;
    b.disabled = !known;
    b.title = known ? "" : "The server has no such preset.";
  }
  panel.refresh();
}
