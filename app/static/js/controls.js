// Binds a panel's controls ([data-key] inputs) to the URL state and to the panel's redraw.
// A key used by controls in several panels (ε, c1, c2: `data-shared`) is one state: moving any
// of them moves the others and redraws their panels. Preset buttons carry aria-pressed (the
// preset whose values are all set now); a control turned off says why beside it.
import * as state from "./state.js";

/** Every panel's binding, so that a shared key moved in one panel reaches the others. */
const bindings = new Set();

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
  const text = format(valueOf(el));
  if (out) out.textContent = text;
  // A log slider's own value is log10 of the knob: screen readers must hear the knob.
  if (el.type === "range") el.setAttribute("aria-valuetext", text);
}

/** The browser's spelling of `value` on a control like `el` (clamped, rounded to its step). */
function normalised(el, value) {
  const probe = el.cloneNode(el.tagName === "SELECT");
  setRaw(probe, String(value));
  return rawOf(probe);
}

/** Add (`on`) or remove the element `id` from `el`'s accessible description. */
export function describedBy(el, id, on) {
  const ids = new Set((el.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean));
  if (on) ids.add(id);
  else ids.delete(id);
  if (ids.size) el.setAttribute("aria-describedby", [...ids].join(" "));
  else el.removeAttribute("aria-describedby");
}

/**
 * Turn a control on or off. Off, `reason` (what it is ignored for and what turns it on) shows
 * beside it and is part of its accessible description; on, the reason goes.
 */
export function setEnabled(el, enabled, reason = "") {
  el.disabled = !enabled;
  const id = `${el.id}-why`;
  let note = document.getElementById(id);
  if (!enabled && reason) {
    if (!note) {
      note = document.createElement("small");
      note.id = id;
      note.className = "why-disabled";
      (el.closest(".control") || el.parentElement).append(note);
    }
    note.textContent = reason;
    note.hidden = false;
    describedBy(el, id, true);
  } else if (note) {
    note.hidden = true;
    note.textContent = "";
    describedBy(el, id, false);
  }
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
  const presetButtons = [...root.querySelectorAll("button.preset")];
  const binding = { byKey, receive };

  /** aria-pressed on each preset button (not Reset, an action): true when every control of the
   * panel holds what that preset would set (its values, the rest at their defaults). Buttons
   * and presets may arrive later (the lab reads its presets from the API): both are read now,
   * and a preset not known yet is not pressed. */
  function syncPressed() {
    for (const button of root.querySelectorAll("button.preset")) {
      const name = button.dataset.preset;
      if (name === "reset") continue;
      const values = presets[name];
      const on = values !== undefined && inputs.every((el) =>
        rawOf(el) === (el.dataset.key in values ? normalised(el, values[el.dataset.key]) : el.dataset.default));
      button.setAttribute("aria-pressed", String(on));
    }
  }

  /** Pass a shared key's new raw value to the other panels that show it. During a drag
   * (`redraw` false) their sliders follow at once but they redraw when it ends (the `change`
   * of the release, or of each arrow key press): the dragged panel keeps the frame budget. */
  function share(el, redraw = true) {
    if (!el.hasAttribute("data-shared")) return;
    for (const other of bindings) if (other !== binding) other.receive(el.dataset.key, rawOf(el), redraw);
  }

  /** Another panel moved a shared key: follow it and (unless mid-drag) redraw. */
  const behind = new Set(); // shared keys followed mid-drag, not yet redrawn
  function receive(key, raw, redraw) {
    const el = byKey.get(key);
    if (!el) return;
    if (rawOf(el) !== raw) {
      setRaw(el, raw);
      show(el);
      syncPressed();
      behind.add(key);
    }
    if (redraw && behind.has(key)) {
      behind.delete(key);
      onChange();
    }
  }

  function record(el, gesture) {
    const raw = rawOf(el);
    state.update({ [el.dataset.key]: raw === el.dataset.default ? null : raw }, { gesture });
  }

  function restore(query) {
    for (const el of inputs) {
      setRaw(el, query.get(el.dataset.key) ?? el.dataset.default);
      show(el);
    }
    syncPressed();
  }

  function apply(values) {
    const changes = {};
    const moved = [];
    for (const el of inputs) {
      const before = rawOf(el);
      const raw = el.dataset.key in values ? String(values[el.dataset.key]) : el.dataset.default;
      setRaw(el, raw);
      show(el);
      if (rawOf(el) !== before) moved.push(el);
      changes[el.dataset.key] = rawOf(el) === el.dataset.default ? null : rawOf(el);
    }
    state.update(changes);
    onChange();
    for (const el of moved) share(el);
  }

  for (const el of inputs) {
    const live = el.type === "range";
    el.addEventListener(live ? "input" : "change", () => {
      show(el);
      record(el, live);
      onChange(); // the panel's refresh, which also syncs the presets' aria-pressed
      share(el, !live);
    });
    if (live) {
      el.addEventListener("change", () => {
        state.endGesture();
        share(el);
      });
    }
  }
  for (const button of presetButtons) {
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
  if (early.length) syncPressed();
  bindings.add(binding);

  return {
    restore,
    apply,
    /** Re-read which preset is active (after presets or preset buttons arrive). */
    syncPressed,
    /** Turn the control of `key` on or off, saying why when off (see setEnabled). */
    setEnabled: (key, enabled, reason) => setEnabled(byKey.get(key), enabled, reason),
    values() {
      const out = {};
      for (const [key, el] of byKey) out[key] = valueOf(el);
      return out;
    },
    element: (key) => byKey.get(key),
  };
}
