// Binds a panel's controls ([data-key] inputs) to the URL state and to the panel's redraw.
import * as state from "./state.js";

function format(value) {
  if (typeof value !== "number") return String(value);
  if (value !== 0 && (Math.abs(value) < 0.01 || Math.abs(value) >= 1e4)) return value.toExponential(1);
  return String(Math.round(value * 1000) / 1000);
}

/** The control's value in model units (log-scale sliders hold log10 of the value). */
export function valueOf(el) {
  if (el.type === "checkbox") return el.checked;
  if (el.type === "range" || el.type === "number") {
    const raw = Number(el.value);
    if (el.dataset.scale !== "log") return raw;
    // A log slider steps in log10 units; data-digits rounds its value to that many significant
    // digits, so that e.g. ε = 0.2 or 3e-4 (GSPO) reads and is sent as typed, not 0.1995.
    const value = 10 ** raw;
    return el.dataset.digits ? Number(value.toPrecision(Number(el.dataset.digits))) : value;
  }
  return el.value;
}

function setRaw(el, text) {
  if (el.type === "checkbox") {
    el.checked = text === "true" || text === true;
    return;
  }
  // A URL value that is not a number falls back to the default (browsers would otherwise pick
  // the slider's midpoint); one out of range is clamped by the input itself.
  const numeric = el.type === "range" || el.type === "number";
  const bad = numeric && (String(text).trim() === "" || !Number.isFinite(Number(text)));
  el.value = bad ? el.dataset.default : String(text);
  if (el.tagName === "SELECT" && el.value === "") el.value = el.dataset.default;
}

function rawOf(el) {
  return el.type === "checkbox" ? String(el.checked) : el.value;
}

function show(el) {
  const out = document.getElementById(`${el.id}-out`);
  if (out) out.textContent = format(valueOf(el));
}

/**
 * @param {HTMLElement} root the panel section
 * @param {() => void} onChange called after any control changes
 * @param {Record<string, Record<string, string|number|boolean>>} presets named value sets
 */
export function bindControls(root, onChange, presets = {}) {
  const inputs = [...root.querySelectorAll("[data-key]")];
  // A control moved before this ran (early.js saw it) keeps the hand's value: it goes into the
  // URL state and is drawn, instead of being reset to the URL's value.
  const touched = window.__ppoTouched || new Set();
  const early = inputs.filter((el) => touched.has(el)).map((el) => [el, rawOf(el)]);
  // Normalise each default to the browser's own spelling of the value ("1.0" reads back as
  // "1"), so a control at its default compares equal and stays out of the URL.
  for (const el of inputs) {
    setRaw(el, el.dataset.default);
    el.dataset.default = rawOf(el);
  }
  const byKey = new Map(inputs.map((el) => [el.dataset.key, el]));

  function record(el, gesture) {
    const raw = rawOf(el);
    state.update({ [el.dataset.key]: raw === el.dataset.default ? null : raw }, { gesture });
  }

  function restore(query) {
    for (const el of inputs) {
      setRaw(el, query.get(el.dataset.key) ?? el.dataset.default);
      show(el);
    }
  }

  function apply(values) {
    const changes = {};
    for (const el of inputs) {
      const raw = el.dataset.key in values ? String(values[el.dataset.key]) : el.dataset.default;
      setRaw(el, raw);
      show(el);
      changes[el.dataset.key] = rawOf(el) === el.dataset.default ? null : rawOf(el);
    }
    state.update(changes);
    onChange();
  }

  for (const el of inputs) {
    const live = el.type === "range";
    el.addEventListener(live ? "input" : "change", () => {
      show(el);
      record(el, live);
      onChange();
    });
    if (live) el.addEventListener("change", () => state.endGesture());
  }
  for (const button of root.querySelectorAll("button.preset")) {
    button.addEventListener("click", () => {
      const name = button.dataset.preset;
      apply(name === "reset" ? {} : presets[name] || {});
    });
  }
  restore(state.params());
  for (const [el, raw] of early) {
    setRaw(el, raw);
    show(el);
    record(el, false);
    touched.delete(el);
  }

  return {
    restore,
    apply,
    values() {
      const out = {};
      for (const [key, el] of byKey) out[key] = valueOf(el);
      return out;
    },
    element: (key) => byKey.get(key),
  };
}
