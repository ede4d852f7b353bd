"""Accessibility in headless Chromium (issue 12, item 9): axe-core finds no serious or critical
issue on the whole page (at load, after the analyze example ran, with controls disabled); log
sliders announce their value, not its logarithm; preset buttons say which one is active; the
long readouts are not live regions re-announced on every arrow press.

axe-core is vendored for the tests only (tests/e2e/vendor/README.md); the app's CSP forbids
inline scripts, so the audit runs in a browser context that bypasses it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import ALL_RENDERED, wait_until

pytestmark = pytest.mark.e2e

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
BLOCKING = ("serious", "critical")


@pytest.fixture(params=[(1280, 900), (390, 844)], ids=["desktop", "phone"])
def audit_page(browser: Any, base_url: str, request: Any) -> Iterator[Any]:
    width, height = request.param
    context = browser.new_context(viewport={"width": width, "height": height}, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.base = base_url
    yield page
    context.close()
    assert errors == [], "\n".join(errors)


def axe_findings(page: Any) -> list[dict[str, Any]]:
    """Violations of impact serious or critical on the whole document, one dict per rule."""
    if not page.evaluate("() => !!window.axe"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async () => {
          const r = await window.axe.run(document, { resultTypes: ['violations'] });
          return r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => n.target.join(' ') + ' :: ' + n.failureSummary).slice(0, 6),
            count: v.nodes.length }));
        }"""
    )
    return [v for v in result if v["impact"] in BLOCKING]


def _report(findings: list[dict[str, Any]]) -> str:
    return json.dumps(findings, indent=1, ensure_ascii=False)


def _ready(page: Any, ui_wait: Any) -> None:
    page.goto(page.base + "/")
    ui_wait(ALL_RENDERED)


def test_axe_no_serious_findings_at_load(audit_page: Any) -> None:
    wait = functools.partial(wait_until, audit_page)
    _ready(audit_page, wait)
    findings = axe_findings(audit_page)
    assert findings == [], _report(findings)


def test_axe_no_serious_findings_after_analyze_and_with_disabled_controls(audit_page: Any) -> None:
    page = audit_page
    wait = functools.partial(wait_until, page)
    _ready(page, wait)
    # Disabled controls: the clip panel's ε (ignored under asymmetric clip) and the lab's
    # KL target (off until its checkbox), each with its reason beside it.
    page.check("#clip-asym")
    wait("document.getElementById('clip-epsilon').disabled")
    assert page.locator("#lab-target").is_disabled()
    count = page.evaluate("() => window.__ppo.rendered.analyze")
    if page.get_attribute("#panel-analyze .panel-toggle", "aria-expanded") == "false":
        page.click("#panel-analyze .panel-toggle")  # folded on a phone (issue 12, item 2)
    page.click("#analyze-example")
    page.click("#analyze-run")
    wait(f"window.__ppo.rendered.analyze > {count}")
    wait("document.querySelector('#analyze-breakdown').textContent.includes('total')")
    findings = axe_findings(page)
    assert findings == [], _report(findings)


def test_log_sliders_announce_their_value_not_its_log(page: Any, ui: Any) -> None:
    page.goto(page.base + "/?eV=3")
    ui.wait_all_rendered()
    # Vocabulary V = 10^3: the slider's own value is "3", screen readers must hear 1000.
    assert page.input_value("#entropy-vocab") == "3"
    text = "document.getElementById('{}').getAttribute('aria-valuetext')"
    ui.wait_for(text.format("entropy-vocab") + " === '1000'")
    assert page.get_attribute("#entropy-temp", "aria-valuetext") == "1"  # T = 10^0
    assert page.get_attribute("#family-eps", "aria-valuetext") == "0.2"  # ε = 10^-0.7
    # It follows the slider.
    page.focus("#entropy-temp")
    page.keyboard.press("ArrowRight")
    ui.wait_for(text.format("entropy-temp") + " === '1.122'")
    # Linear sliders carry it too, as their readout shows it.
    assert page.get_attribute("#clip-epsilon", "aria-valuetext") == "0.2"


def test_long_readouts_are_not_live_regions(page: Any, ui: Any) -> None:
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    live = page.evaluate(
        "() => [...document.querySelectorAll('.readouts')]"
        ".filter(el => el.closest('[aria-live]:not([aria-live=\"off\"])')).map(el => el.id)"
    )
    assert live == [], live


def test_preset_buttons_say_which_is_active(page: Any, ui: Any) -> None:
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    buttons = "#panel-clip button.preset:not([data-preset='reset'])"
    pressed = f'() => [...document.querySelectorAll("{buttons}")].map(b => b.ariaPressed)'
    assert page.evaluate(pressed) == ["false"] * 4
    page.click("#panel-clip button[data-preset='tight']")
    ui.wait_for("new URLSearchParams(location.search).get('eps') === '0.05'")
    assert page.get_attribute("#panel-clip button[data-preset='tight']", "aria-pressed") == "true"
    assert page.get_attribute("#panel-clip button[data-preset='neg']", "aria-pressed") == "false"
    # A knob moved away from the preset: no longer active.
    page.focus("#clip-adv")
    page.keyboard.press("ArrowRight")
    ui.wait_for(
        "document.querySelector(\"#panel-clip button[data-preset='tight']\")"
        ".getAttribute('aria-pressed') === 'false'"
    )
    # Reset is an action, not a state.
    assert page.get_attribute("#panel-clip button[data-preset='reset']", "aria-pressed") is None


def test_a_link_with_a_presets_values_shows_it_active(page: Any, ui: Any) -> None:
    # A fresh page (a second navigation could abort the first one's prefetches).
    page.goto(page.base + "/?r=2")
    ui.wait_all_rendered()
    assert page.get_attribute("#panel-clip button[data-preset='neg']", "aria-pressed") == "true"
    assert page.get_attribute("#panel-clip button[data-preset='tight']", "aria-pressed") == "false"


def _luminance(rgb: tuple[float, ...]) -> float:
    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_the_focus_ring_contrasts_with_the_page(page: Any, ui: Any) -> None:
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    page.focus("#copy-link")
    page.keyboard.press("Tab")
    page.keyboard.press("Shift+Tab")  # keyboard focus, so :focus-visible applies
    color = page.evaluate(
        "() => getComputedStyle(document.activeElement).outlineColor.match(/[\\d.]+/g).map(Number)"
    )
    assert page.evaluate("() => document.activeElement.id") == "copy-link"
    ring = _luminance(tuple(color))
    for background in ((255, 255, 255), (246, 247, 251)):  # cards, page
        light = _luminance(background)
        assert (light + 0.05) / (ring + 0.05) >= 3, (color, background)
