// Loaded first (async, tiny, a classic script): input handling the page needs before its
// modules have run.
//
// 1. Scrolling never moves a slider. A touch that lands on a range input makes the browser
//    jump the thumb to the finger at once (an `input` event), before anyone knows whether the
//    finger will drag the thumb or scroll the page. Sliders are `touch-action: pan-y`
//    (app.css): a vertical move scrolls and cancels the pointer. Until the gesture is known,
//    the jump is kept from the page (its `input` / `change` events stop here); a scroll puts
//    the old value back, a sideways drag or a tap hands the value on.
// 2. Controls a hand changes before the modules have bound them are remembered, so that
//    controls.js keeps those values instead of the URL's (input made while the page loads is
//    applied once it is ready, never lost).
(() => {
  const touches = new Map(); // pointerId -> { el, before, x, y, state: "undecided" | "drag" }
  const cancelled = new Set(); // sliders whose jump a scroll undid: their late events stop
  // ... until the touch has ended (and the events it queued have run).
  document.addEventListener("touchend", () => setTimeout(() => cancelled.clear(), 0), true);
  document.addEventListener("touchcancel", () => setTimeout(() => cancelled.clear(), 0), true);

  const isRange = (el) => el instanceof HTMLInputElement && el.type === "range";
  const tell = (el) => {
    el.dispatchEvent(new Event("input", { bubbles: true }));
  };

  document.addEventListener("pointerdown", (event) => {
    if (event.pointerType !== "touch" || !isRange(event.target)) return;
    cancelled.delete(event.target);
    touches.set(event.pointerId, { el: event.target, before: event.target.value,
      x: event.clientX, y: event.clientY, state: "undecided" });
  }, true);

  document.addEventListener("pointermove", (event) => {
    const t = touches.get(event.pointerId);
    if (!t || t.state !== "undecided") return;
    const dx = Math.abs(event.clientX - t.x);
    const dy = Math.abs(event.clientY - t.y);
    if (dx > 4 && dx > dy) {
      t.state = "drag";
      tell(t.el);
    }
  }, true);

  document.addEventListener("pointercancel", (event) => {
    const t = touches.get(event.pointerId);
    if (!t) return;
    touches.delete(event.pointerId);
    if (t.state !== "undecided") return;
    // The browser took the touch for a scroll: the slider keeps the value it had.
    t.el.value = t.before;
    cancelled.add(t.el);
  }, true);

  document.addEventListener("pointerup", (event) => {
    const t = touches.get(event.pointerId);
    if (!t) return;
    touches.delete(event.pointerId);
    if (t.state === "undecided" && t.el.value !== t.before) {
      // A tap on the track: the thumb went there, as it does with a mouse.
      tell(t.el);
      t.el.dispatchEvent(new Event("change", { bubbles: true }));
    }
  }, true);

  const undecided = (el) => {
    for (const t of touches.values()) if (t.el === el && t.state === "undecided") return true;
    return cancelled.has(el);
  };
  for (const type of ["input", "change"]) {
    document.addEventListener(type, (event) => {
      if (event.isTrusted && isRange(event.target) && undecided(event.target)) event.stopImmediatePropagation();
    }, true);
  }

  window.__ppoTouched = window.__ppoTouched || new Set();
  for (const type of ["input", "change"]) {
    document.addEventListener(type, (event) => {
      const el = event.target;
      if (el && el.dataset && el.dataset.key) window.__ppoTouched.add(el);
    }, true);
  }
})();
