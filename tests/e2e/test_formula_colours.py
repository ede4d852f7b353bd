"""Formula terms coloured like the curves they name: the same colour as the drawn trace, the
same dash as its underline (colour is not the only cue), and text contrast of at least 4.5:1
on the formula's background."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.e2e

# Each panel: the terms its formulas colour (data-curve = the name of the trace they name).
TERMS = {
    "clip": {"PPO objective", "r·A (unclipped)", "clip(r)·A"},
    "value": {"max(unclipped, clipped)", "(V − R)² unclipped", "(V_clip − R)² only"},
    "lab": {"PG", "PPO", "PPO + KL"},
    "kl": {"k1 mean", "k2 mean", "k3 mean", "k1", "k2", "k3"},
}
BORDER = {"solid": "solid", "dash": "dashed", "dot": "dotted"}

READ = """(panel) => {
  const root = document.getElementById('panel-' + panel);
  const traces = [...root.querySelectorAll('.chart')].flatMap(d => (d.data || [])
    .filter(t => t.line && t.line.color)
    .map(t => ({name: t.name, color: t.line.color, dash: t.line.dash || 'solid'})));
  const terms = [...root.querySelectorAll('.formula [data-curve]')].map(el => {
    const style = getComputedStyle(el);
    const bg = el.closest('.formula');
    return {curve: el.dataset.curve, color: style.color, border: style.borderBottomStyle,
            borderColor: style.borderBottomColor, text: el.textContent.trim(),
            background: getComputedStyle(bg).backgroundColor};
  });
  return {traces, terms};
}"""


def rgb(text: str) -> tuple[int, int, int]:
    """'#d62728' or 'rgb(214, 39, 40)' as a tuple."""
    if text.startswith("#"):
        return (int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16))
    parts = text[text.index("(") + 1 : text.index(")")].split(",")
    return (int(parts[0]), int(parts[1]), int(parts[2]))


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    def luminance(c: tuple[int, int, int]) -> float:
        lin = [
            (x / 255) / 12.92 if x / 255 <= 0.03928 else ((x / 255 + 0.055) / 1.055) ** 2.4
            for x in c
        ]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("panel", sorted(TERMS))
def test_formula_terms_wear_their_curves_colours(page: Any, ui: Any, panel: str) -> None:
    page.goto(page.base + ("/?lIt=3" if panel == "lab" else "/"))
    ui.wait_all_rendered()
    if panel == "lab":  # the lab's charts appear with its first run (issue 12: no empty chart)
        page.click("#lab-run")
        ui.wait_for("document.getElementById('panel-lab').dataset.labState === 'done'", timeout=60)
    seen = page.evaluate(READ, panel)
    terms = seen["terms"]
    assert {t["curve"] for t in terms} == TERMS[panel]
    for term in terms:
        drawn = [t for t in seen["traces"] if t["name"] == term["curve"]]
        assert drawn, f"no curve named {term['curve']!r} in panel {panel}"
        for trace in drawn:
            assert rgb(term["color"]) == rgb(trace["color"]), (term, trace)
            # Not colour alone: the term is underlined in the curve's dash.
            assert term["border"] == BORDER[trace["dash"]], (term, trace)
            assert rgb(term["borderColor"]) == rgb(trace["color"]), (term, trace)
        ratio = contrast(rgb(term["color"]), rgb(term["background"]))
        assert ratio >= 4.5, f"{term['text']!r}: contrast {ratio:.2f}:1"
