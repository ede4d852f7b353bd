// Formula terms coloured like the curves they name, TensorFlow Playground's habit. A term is an
// element inside a panel with data-curve="<trace name>"; the panel passes each curve's colour
// and dash. Colour is not the only cue: the term is underlined in its curve's dash pattern
// (solid, dashed, dotted), and the chart's legend names the curve. Term colours are chosen for
// a text contrast of at least 4.5:1 on the formula's background.

const BORDER = { solid: "solid", dash: "dashed", dot: "dotted", dashdot: "dashed" };

/**
 * @param {HTMLElement} root the panel section
 * @param {Array<{name: string, color: string, dash?: string}>} curves as the charts draw them
 */
export function colourTerms(root, curves) {
  const byName = new Map(curves.map((c) => [c.name, c]));
  for (const term of root.querySelectorAll("[data-curve]")) {
    const curve = byName.get(term.dataset.curve);
    if (!curve) continue;
    term.classList.add("curve-term");
    term.style.color = curve.color;
    term.style.borderBottom = `2px ${BORDER[curve.dash || "solid"] || "solid"} ${curve.color}`;
  }
}
