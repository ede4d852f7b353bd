"""The explorer page in headless Chromium: every panel draws, controls drive charts and URL,
URLs restore state, the page stays clean (no console error, no failed request, no CSP
violation) and readable at phone width."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

PANELS = ["clip", "family", "value", "entropy", "total", "kl", "lab", "hyper", "analyze", "run"]


def objective(page: Any, chart: str = "clip-chart", trace: int = 6) -> list[float]:
    """The y values of one trace: in the clip chart (4 trust-region bands first, then 5 traces
    per side), 6 is the PPO objective for A > 0 and 11 the one for A < 0."""
    return page.evaluate(f"() => Array.from(document.getElementById('{chart}').data[{trace}].y)")


def test_every_panel_renders_and_screenshot(page: Any, ui: Any, artifacts: Path) -> None:
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    for panel in PANELS:
        # Charts with no data yet (lab, inspector, run report) are not shown (issue 12).
        charts = page.evaluate(
            f"() => [...document.querySelectorAll('#panel-{panel} .chart')]"
            ".filter(c => c.getClientRects().length > 0)"
            ".map(c => c.querySelectorAll('.main-svg').length)"
        )
        assert all(n > 0 for n in charts), f"{panel}: a chart did not draw ({charts})"
        if panel not in ("lab", "hyper", "analyze", "run"):
            assert charts, f"{panel} shows no chart"
        error = page.locator(f"#panel-{panel} .panel-error")
        assert error.is_hidden(), f"{panel} shows an error: {error.text_content()}"
    # Each panel has a formula, a "what to notice" line and an API link that is a real path.
    for panel in [p for p in PANELS if p not in ("hyper", "analyze", "run")]:
        assert page.locator(f"#panel-{panel} math").count() >= 1
        href = page.get_attribute(f"#{panel}-api", "href")
        assert href and href.startswith("/api/v1/"), (panel, href)
    page.screenshot(path=str(artifacts / "page-1280.png"), full_page=True)


def test_moving_epsilon_changes_the_curve_and_the_url(page: Any, ui: Any) -> None:
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    before = objective(page)
    assert max(before) == pytest.approx(1.2)  # A = +1, eps 0.2: flat at 1 + eps
    # A < 0 is drawn in the same figure (traces 5-9): flat at -(1 - eps) for small r.
    assert max(objective(page, trace=11)) == pytest.approx(-0.8)
    ranges = (
        "() => ['yaxis', 'yaxis2', 'yaxis3', 'yaxis4']"
        ".map(a => document.getElementById('clip-chart').layout[a].range)"
    )
    axes_before = page.evaluate(ranges)
    count = ui.rendered("clip")
    page.focus("#clip-epsilon")
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    ui.wait_for("new URLSearchParams(location.search).get('eps') === '0.3'")
    ui.wait_for(f"window.__ppo.rendered.clip > {count}")
    ui.wait_for("Math.max(...document.getElementById('clip-chart').data[6].y) > 1.29")
    after = objective(page)
    assert max(after) == pytest.approx(1.3)
    assert max(objective(page, trace=11)) == pytest.approx(-0.7)
    # The axes depend on |A|, not on eps: a moving eps slider redraws only curves and shapes.
    assert page.evaluate(ranges) == axes_before
    assert page.text_content("#clip-epsilon-out") == "0.3"
    link = page.get_attribute("#clip-api", "href")
    assert "epsilon=0.3" in link


def test_loading_a_url_restores_the_state(page: Any, ui: Any) -> None:
    page.goto(page.base + "/?eps=0.35&adv=2&r=0.5")
    ui.wait_all_rendered()
    assert page.input_value("#clip-epsilon") == "0.35"
    assert page.text_content("#clip-adv-out") == "2"
    ui.wait_for("Math.max(...document.getElementById('clip-chart').data[6].y) > 2.69")
    assert max(objective(page)) == pytest.approx(2 * 1.35)
    readout = page.text_content("#clip-readout")
    assert "r = 0.50" in readout


def test_back_button_restores_the_previous_state(page: Any, ui: Any) -> None:
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    page.focus("#clip-adv")
    page.keyboard.press("ArrowRight")
    ui.wait_for("new URLSearchParams(location.search).get('adv') === '1.1'")
    page.go_back()
    ui.wait_for("new URLSearchParams(location.search).get('adv') === null")
    ui.wait_for("document.getElementById('clip-adv').value === '1'")


def test_a_drag_is_one_history_entry_written_a_few_times(page: Any, ui: Any) -> None:
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    before = page.evaluate("history.length")
    writes = page.evaluate(
        """async () => {
          let writes = 0;
          for (const name of ["pushState", "replaceState"]) {
            const original = history[name].bind(history);
            history[name] = (...args) => { writes += 1; return original(...args); };
          }
          const el = document.getElementById("clip-epsilon");
          for (let i = 1; i <= 30; i++) {  // a drag: input events only, 5 ms apart
            el.value = (0.2 + 0.01 * i).toFixed(2);
            el.dispatchEvent(new Event("input", { bubbles: true }));
            await new Promise((r) => setTimeout(r, 5));
          }
          await new Promise((r) => setTimeout(r, 400));
          return writes;
        }"""
    )
    # The address bar follows the drag (the last value lands without a release event), in a
    # handful of writes rather than one per input event, and as a single history entry.
    assert page.evaluate("new URLSearchParams(location.search).get('eps')") == "0.5"
    assert 1 <= writes <= 5, writes
    assert page.evaluate("history.length") == before + 1
    page.evaluate("document.getElementById('clip-epsilon').dispatchEvent(new Event('change'))")
    page.go_back()
    ui.wait_for("new URLSearchParams(location.search).get('eps') === null")
    ui.wait_for("document.getElementById('clip-epsilon').value === '0.2'")


def test_bad_url_values_fall_back_to_defaults(page: Any, ui: Any) -> None:
    page.goto(page.base + "/?eps=banana&adv=1e9")
    ui.wait_all_rendered()
    assert page.input_value("#clip-epsilon") == "0.2"
    assert page.input_value("#clip-adv") == "3"  # clamped to max


def test_presets_and_reset(page: Any, ui: Any) -> None:
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    page.click("#panel-clip button[data-preset='asym']")
    ui.wait_for("new URLSearchParams(location.search).get('epsh') === '0.3'")
    ui.wait_for("document.getElementById('clip-chart').data[6].y.some(y => y > 1.29)")
    page.click("#panel-clip button[data-preset='reset']")
    ui.wait_for("location.search === ''")


def test_clip_legend_names_the_drawn_curves(page: Any, ui: Any) -> None:
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    legend = page.evaluate(
        "() => [...document.querySelectorAll('#clip-legend li')].map(li => li.textContent.trim())"
    )
    names = page.evaluate(
        "() => document.getElementById('clip-chart').data.slice(4, 8).map(t => t.name)"
    )
    colors = page.evaluate(
        "() => document.getElementById('clip-chart').data.slice(4, 8).map(t => t.line.color)"
    )
    strokes = page.evaluate(
        "() => [...document.querySelectorAll('#clip-legend li line')]"
        ".map(l => l.getAttribute('stroke'))"
    )
    assert legend[:4] == names and strokes == colors
    assert legend[4:] == ["marker at r (red when clipped)", "[1−ε, 1+ε]"]


def test_a_broken_answer_is_not_remembered(page: Any, ui: Any) -> None:
    """A 200 whose body is cut off shows an error and is asked again next time (the page keeps
    GET answers by URL; it must not keep that one)."""
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    served = []

    def once_broken(route: Any) -> None:
        if "epsilon=0.21&advantage=1&" in route.request.url:
            served.append(route.request.url)
            if len(served) == 1:
                route.fulfill(status=200, body="{truncated", content_type="application/json")
                return
        route.continue_()

    page.route("**/api/v1/clip-objective/both-signs?*", once_broken)
    page.focus("#clip-epsilon")
    page.keyboard.press("ArrowRight")
    ui.wait_for("(window.__ppo.errors.clip || '').includes('not valid JSON')")
    page.keyboard.press("ArrowLeft")
    ui.wait_for("window.__ppo.errors.clip === null")
    page.keyboard.press("ArrowRight")
    ui.wait_for(
        "window.__ppo.errors.clip === null && document.getElementById('clip-chart')"
        ".data[6].y.some(y => y > 1.2)"
    )
    assert len(served) == 2


def test_dual_clip_widens_the_axis_to_show_the_floor(page: Any, ui: Any) -> None:
    page.goto(page.base + "/?dual=true&c=3")  # c = 3, A = -1 on the right
    ui.wait_all_rendered()
    ui.wait_for("document.getElementById('clip-chart').data[9].x.slice(-1)[0] === 3.5")
    ratio = page.evaluate("() => Array.from(document.getElementById('clip-chart').data[9].x)")
    neg = objective(page, trace=11)
    # min(rA, clip(r)A) = -r for r > 1.2, floored at c A = -3 from r = 3 on.
    assert min(neg) == pytest.approx(-3.0)
    assert all(y == pytest.approx(-3.0) for r, y in zip(ratio, neg, strict=True) if r >= 3)
    assert any(y < -2.9 and r < 3 for r, y in zip(ratio, neg, strict=True))
    shapes = page.evaluate(
        "() => document.getElementById('clip-chart').layout.shapes"
        ".filter(s => s.label && s.label.text.includes('dual')).map(s => s.y0)"
    )
    assert shapes == [pytest.approx(-3.0)]
    # The preset puts c within the marker's reach: at r = 2.2 the dual clip binds for A < 0.
    page.click("#panel-clip button[data-preset='dual']")
    ui.wait_for("new URLSearchParams(location.search).get('c') === '2'")
    ui.wait_for("document.getElementById('clip-readout').textContent.includes('-2.000')")
    readout = page.text_content("#clip-readout")
    assert "A < 0 at r = 2.20: objective -2.000, d/dr 0.000" in " ".join(readout.split())


def test_readable_at_phone_width(page: Any, ui: Any, artifacts: Path) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"page scrolls sideways at 390 px ({width} px wide)"
    page.screenshot(path=str(artifacts / "page-390.png"), full_page=True)
    # The clip chart stacks its four subplots in one column, and goes back to two columns
    # (A > 0 left, A < 0 right) when the screen gets wide.
    domain = "() => document.getElementById('clip-chart').layout.xaxis2.domain.join(',')"
    assert page.evaluate(domain) == "0,1"
    page.set_viewport_size({"width": 1280, "height": 844})
    ui.wait_for(f"({domain})() === '0.54,1'")


def test_keyboard_focus_is_visible(page: Any, ui: Any) -> None:
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    page.focus("#clip-epsilon")
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"


def test_api_docs_render_without_a_cdn(page: Any, ui: Any) -> None:
    page.goto(page.base + "/docs")
    ui.wait_for("document.querySelectorAll('.opblock').length > 10")
    assert "/api/v1/analyze" in page.text_content("#swagger-ui")
