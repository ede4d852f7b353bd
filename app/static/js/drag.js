// Drag a marker on a chart, TensorFlow Playground's habit: press on the marker's vertical line
// and move. The slider behind the marker is set and sent its own `input` event (and `change`
// on release), so the URL state, readouts and redraw follow exactly as for a slider move, and
// the keyboard keeps working on the slider.

/** How far from the marker line (px) a press grabs it: more for a finger. */
const GRAB_PX = { mouse: 10, pen: 10, touch: 22 };

/** The pixel map of a linear x axis, frozen: while the axis rescales during a drag, the
 * pointer keeps meaning the value it meant when the drag began. */
function axisMap(full, name) {
  const ax = full[name];
  if (!ax || ax.type !== "linear" || !ax._length) return null;
  const y = full[`yaxis${ax.anchor.slice(1)}`];
  if (!y) return null;
  const [r0, r1] = ax.range;
  return {
    left: ax._offset, width: ax._length, top: y._offset, height: y._length, r0, r1,
    toPx: (v) => ax._offset + ((v - r0) / (r1 - r0)) * ax._length,
    toValue: (px) => r0 + ((px - ax._offset) / ax._length) * (r1 - r0),
  };
}

/**
 * @param {HTMLElement} div a Plotly chart
 * @param {HTMLInputElement} input the (linear) slider whose value the marker shows
 * @param {string[]} axes layout names of the x axes the marker line is drawn on ("xaxis", ...)
 */
export function dragMarker(div, input, axes) {
  let drag = null;

  /** The axis under the point (client coordinates) whose marker line is within reach. */
  function grab(event) {
    const full = div._fullLayout;
    if (!full || input.disabled) return null;
    const box = div.getBoundingClientRect();
    const px = event.clientX - box.left;
    const py = event.clientY - box.top;
    const reach = GRAB_PX[event.pointerType] || GRAB_PX.mouse;
    for (const name of axes) {
      const map = axisMap(full, name);
      if (!map || py < map.top || py > map.top + map.height) continue;
      if (Math.abs(px - map.toPx(Number(input.value))) <= reach) return { map, left: box.left };
    }
    return null;
  }

  function set(clientX) {
    const { map, left } = drag;
    const min = Number(input.min);
    const max = Number(input.max);
    const step = Number(input.step) || 0;
    let value = Math.min(max, Math.max(min, map.toValue(clientX - left)));
    if (step) value = min + Math.round((value - min) / step) * step;
    const decimals = (input.step.split(".")[1] || "").length;
    const text = String(Number(value.toFixed(decimals)));
    if (text === input.value) return;
    input.value = text;
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }

  div.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    const hit = grab(event);
    if (!hit) return;
    // Ours, not Plotly's (no zoom box, no scroll): stop it before the chart's own handlers.
    event.preventDefault();
    event.stopPropagation();
    drag = { ...hit, pointerId: event.pointerId };
    div.setPointerCapture(event.pointerId);
    div.classList.add("marker-dragging");
    input.focus({ preventScroll: true }); // the arrow keys fine-tune from here
  }, { capture: true });
  // A touch that grabbed the marker must not scroll the page, nor reach Plotly.
  for (const type of ["touchstart", "mousedown"]) {
    div.addEventListener(type, (event) => {
      if (!drag) return;
      event.stopPropagation();
      if (event.cancelable) event.preventDefault();
    }, { capture: true, passive: false });
  }
  div.addEventListener("pointermove", (event) => {
    if (drag && event.pointerId === drag.pointerId) {
      set(event.clientX);
      return;
    }
    if (event.pointerType === "mouse") div.classList.toggle("marker-grab", grab(event) !== null);
  });
  const end = (event) => {
    if (!drag || event.pointerId !== drag.pointerId) return;
    drag = null;
    div.classList.remove("marker-dragging");
    input.dispatchEvent(new Event("change", { bubbles: true }));
  };
  div.addEventListener("pointerup", end);
  div.addEventListener("pointercancel", end);
  div.addEventListener("pointerleave", () => div.classList.remove("marker-grab"));
}
