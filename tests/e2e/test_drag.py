"""Touch the math: the r marker (clip panel) and the V marker (value panel) drag on the chart
itself with the mouse; the slider, its live value, the URL and the readout follow, and the
keyboard still moves the slider afterwards."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.e2e

# Where a value sits on a chart's x axis, in page pixels, from Plotly's own axis layout; and
# the vertical middle of that axis' subplot.
AXIS_POINT = """([id, axis, value]) => {
  const div = document.getElementById(id);
  const ax = div._fullLayout[axis];
  const y = div._fullLayout['yaxis' + ax.anchor.slice(1)];
  const box = div.getBoundingClientRect();
  const perUnit = ax._length / (ax.range[1] - ax.range[0]);
  return {x: box.left + ax._offset + (value - ax.range[0]) * perUnit,
          y: box.top + y._offset + y._length / 2, perUnit};
}"""


def query(page: Any) -> dict[str, str]:
    return dict(page.evaluate("() => [...new URLSearchParams(location.search)]"))


def drag(page: Any, chart: str, axis: str, start: float, by: float) -> None:
    """Press on the marker line at `start` and move the mouse by `by` axis units."""
    page.locator(f"#{chart}").scroll_into_view_if_needed()
    at = page.evaluate(AXIS_POINT, [chart, axis, start])
    page.mouse.move(at["x"], at["y"])
    page.mouse.down()
    page.mouse.move(at["x"] + by * at["perUnit"], at["y"], steps=12)
    page.mouse.up()


def test_drag_the_ratio_marker_on_the_clip_chart(page: Any, ui: Any) -> None:
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    assert page.input_value("#clip-ratio") == "1.3"
    count = ui.rendered("clip")
    drag(page, "clip-chart", "xaxis", 1.3, 0.7)
    ui.wait_for("new URLSearchParams(location.search).get('r') !== null")
    r = float(page.input_value("#clip-ratio"))
    assert r == pytest.approx(2.0, abs=0.02)
    assert query(page)["r"] == page.input_value("#clip-ratio")
    assert float(page.text_content("#clip-ratio-out")) == pytest.approx(r)
    ui.wait_for(f"window.__ppo.rendered.clip > {count}")
    ui.wait_for(
        "(() => { const m = document.getElementById('clip-chart').data"
        ".filter(t => t.name === 'marker'); "
        f"return m.length === 2 && m.every(t => Math.abs(t.x[0] - {r}) < 1e-9); }})()"
    )
    assert f"r = {r:.2f}" in page.text_content("#clip-readout")
    # The drag left the focus on the slider: the keyboard fine-tunes from there.
    assert page.evaluate("() => document.activeElement.id") == "clip-ratio"
    page.keyboard.press("ArrowRight")
    ui.wait_for(f"new URLSearchParams(location.search).get('r') === '{round(r + 0.01, 2):g}'")
    # The right-hand (A < 0) subplot's marker drags too, back towards 1.
    r = float(page.input_value("#clip-ratio"))
    drag(page, "clip-chart", "xaxis2", r, -1.0)
    ui.wait_for(
        f"Math.abs(Number(new URLSearchParams(location.search).get('r')) - {r - 1.0}) < 0.021"
    )


def test_a_press_away_from_the_marker_does_not_move_it(page: Any, ui: Any) -> None:
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    page.locator("#clip-chart").scroll_into_view_if_needed()
    at = page.evaluate(AXIS_POINT, ["clip-chart", "xaxis", 0.4])
    page.mouse.click(at["x"], at["y"])
    assert page.input_value("#clip-ratio") == "1.3"
    assert "r" not in query(page)


def test_drag_the_value_marker_on_either_value_chart(page: Any, ui: Any) -> None:
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    assert page.input_value("#value-pred") == "0.5"
    drag(page, "value-chart-sb3", "xaxis", 0.5, -1.5)
    ui.wait_for("new URLSearchParams(location.search).get('vV') !== null")
    v = float(page.input_value("#value-pred"))
    assert v == pytest.approx(-1.0, abs=0.11)
    assert query(page)["vV"] == page.input_value("#value-pred")
    ui.wait_for(f"document.getElementById('value-readout').textContent.includes('At V = {v:.2f}')")
    # Both charts' markers moved with it.
    for chart in ("value-chart-max", "value-chart-sb3"):
        ui.wait_for(
            f"(() => {{ const m = document.getElementById('{chart}').data"
            ".find(t => t.name === 'marker'); "
            f"return m && Math.abs(m.x[0] - {v}) < 1e-6; }})()"
        )
    drag(page, "value-chart-max", "xaxis", v, 2.0)
    ui.wait_for(
        f"Math.abs(Number(new URLSearchParams(location.search).get('vV')) - {v + 2.0}) < 0.11"
    )
    # One history entry per drag: back undoes the second drag whole.
    page.go_back()
    ui.wait_for(f"new URLSearchParams(location.search).get('vV') === '{v:g}'")
    assert page.input_value("#value-pred") == f"{v:g}"
