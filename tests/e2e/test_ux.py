"""The page as people use it (issue 12, items 1, 3, 4 and 5) in headless Chromium: an error
shows beside the control that caused it and in view, results that no longer match the inputs
are cleared or marked stale; axes hold still while a knob moves until "Fit axes"; ε, c1 and c2
are one state across panels, the URL and the hyperparameter table (old links still work); a
control the panel ignores is off and says what turns it on."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def open_page(page: Any, ui: Any, query: str = "") -> None:
    page.goto(page.base + "/" + query)
    ui.wait_all_rendered()


def box(page: Any, selector: str) -> dict[str, float]:
    """The element's box in viewport coordinates, and the viewport's height."""
    return page.evaluate(
        f"""() => {{ const el = document.querySelector({json.dumps(selector)});
          const r = el.getBoundingClientRect();
          return {{ top: r.top, bottom: r.bottom, left: r.left, right: r.right,
                    height: innerHeight, width: innerWidth }}; }}"""
    )


def assert_in_view_and_beside(page: Any, error: str, control: str, gap: float = 80) -> None:
    """`error` is wholly inside the viewport and within `gap` px of `control` (above, below
    or on the same line)."""
    e = box(page, error)
    c = box(page, control)
    assert e["top"] >= 0 and e["bottom"] <= e["height"], (error, e)
    vertical = max(e["top"] - c["bottom"], c["top"] - e["bottom"], 0)
    assert vertical <= gap, (error, e, control, c)


def drop_422_console(problems: Any) -> None:
    """Chromium logs a refused request (a 4xx) on the console; the tests expect those."""
    problems.items[:] = [p for p in problems.items if "422" not in p]


def range_of(page: Any, chart: str, axis: str) -> list[float]:
    return page.evaluate(
        f"() => document.getElementById('{chart}')._fullLayout.{axis}.range"
        ".map(v => Math.round(v * 1e6) / 1e6)"
    )


def press(page: Any, ui: Any, control: str, panel: str, key: str, times: int) -> None:
    """Keyboard moves of a slider, then wait for its panel to draw the last one."""
    page.focus(f"#{control}")
    for _ in range(times):
        page.keyboard.press(key)
    value = page.input_value(f"#{control}")
    ui.wait_for(f"document.getElementById('{control}').value === '{value}'")
    count = ui.rendered(panel)
    ui.wait_for(f"window.__ppo.rendered['{panel}'] >= {count}")


def settle(page: Any, ui: Any, panel: str) -> None:
    """Wait until `panel` has drawn what its controls hold now (one more render after a poke)."""
    count = ui.rendered(panel)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    ui.wait_for(f"window.__ppo.rendered['{panel}'] >= {count}")


# ---------------------------------------------------------------- 1. errors near, stale results


def test_analyze_with_an_empty_box_errors_beside_the_button(page: Any, ui: Any) -> None:
    open_page(page, ui)
    page.locator("#analyze-run").scroll_into_view_if_needed()
    page.click("#analyze-run")
    ui.wait_for("!document.getElementById('analyze-error').hidden")
    assert "Nothing to analyze" in page.text_content("#analyze-error")
    assert_in_view_and_beside(page, "#analyze-error", "#analyze-run")
    # The box that needs the input is marked invalid and described by the message.
    assert page.get_attribute("#analyze-json", "aria-invalid") == "true"
    assert "analyze-error" in page.get_attribute("#analyze-json", "aria-describedby")


def test_analyze_invalid_json_clears_results_and_an_edit_marks_them_stale(
    page: Any, ui: Any
) -> None:
    open_page(page, ui)
    count = ui.rendered("analyze")
    page.click("#analyze-example")
    page.click("#analyze-run")
    ui.wait_for(f"window.__ppo.rendered.analyze > {count}")
    assert "Analyzed" in page.text_content("#analyze-status")
    assert "total" in page.text_content("#analyze-breakdown")
    # An edit: the results stay for comparison but are marked stale.
    page.fill("#analyze-json", page.input_value("#analyze-json") + " ")
    assert page.locator("#analyze-out > .stale-note").is_visible()
    assert "is-stale" in page.get_attribute("#analyze-out", "class")
    # Invalid JSON: the error beside the button, in view; old results and status are gone.
    page.fill("#analyze-json", '{"logprobs": [1, 2')
    page.locator("#analyze-run").scroll_into_view_if_needed()
    page.click("#analyze-run")
    ui.wait_for("!document.getElementById('analyze-error').hidden")
    assert "does not parse" in page.text_content("#analyze-error")
    assert_in_view_and_beside(page, "#analyze-error", "#analyze-run")
    assert "Analyzed" not in page.text_content("#analyze-status")
    assert "No batch analyzed yet" in page.text_content("#analyze-breakdown")
    assert "is-stale" not in (page.get_attribute("#analyze-out", "class") or "")
    # A good batch clears the error and the invalid mark.
    count = ui.rendered("analyze")
    page.click("#analyze-example")
    page.click("#analyze-run")
    ui.wait_for(f"window.__ppo.rendered.analyze > {count}")
    assert page.locator("#analyze-error").is_hidden()
    assert page.get_attribute("#analyze-json", "aria-invalid") is None


def test_run_report_refusal_is_beside_the_file_input_in_view(
    page: Any, ui: Any, problems: Any
) -> None:
    problems.allowed_statuses.add(422)
    open_page(page, ui)
    count = ui.rendered("run")
    page.click("#run-example")
    ui.wait_for(f"window.__ppo.rendered.run > {count}")
    page.locator("#run-file").scroll_into_view_if_needed()
    page.set_input_files(
        "#run-file",
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"just notes\n"}],
    )
    ui.wait_for("!document.getElementById('run-file-error').hidden")
    assert_in_view_and_beside(page, "#run-file-error", "#run-file")
    assert page.get_attribute("#run-file", "aria-invalid") == "true"
    # The earlier report does not pass for this file's.
    assert "No run loaded yet" in page.text_content("#run-findings")
    assert "notes.txt" not in page.text_content("#run-status")
    drop_422_console(problems)


def test_an_api_error_shows_under_the_controls_and_marks_the_charts_stale(
    page: Any, ui: Any, problems: Any
) -> None:
    problems.allowed_statuses.add(422)
    open_page(page, ui)
    refusal = json.dumps(
        {
            "detail": [
                {
                    "loc": ["query", "advantage"],
                    "msg": "refused for the test",
                    "type": "value_error",
                }
            ]
        }
    )
    page.route(
        "**/api/v1/clip-objective/both-signs?*",
        lambda route: route.fulfill(status=422, body=refusal, content_type="application/json"),
    )
    page.focus("#clip-adv")
    page.keyboard.press("ArrowRight")
    ui.wait_for("!document.querySelector('#panel-clip .panel-error').hidden")
    assert "refused for the test" in page.text_content("#panel-clip .panel-error")
    assert "panel-stale" in page.get_attribute("#panel-clip", "class")
    # Under the presets, above the chart: beside the knob that caused it, and in view.
    error = box(page, "#panel-clip .panel-error")
    assert box(page, "#panel-clip .presets")["bottom"] <= error["top"]
    chart = box(page, "#clip-chart")  # under the controls, or beside them on a wide screen
    assert error["bottom"] <= chart["top"] or error["right"] <= chart["left"]
    assert_in_view_and_beside(page, "#panel-clip .panel-error", "#panel-clip .presets")
    # The API answers again: the error and the stale mark go with the next draw.
    page.unroute("**/api/v1/clip-objective/both-signs?*")
    count = ui.rendered("clip")
    page.keyboard.press("ArrowRight")
    ui.wait_for(f"window.__ppo.rendered.clip > {count}")
    assert page.locator("#panel-clip .panel-error").is_hidden()
    assert "panel-stale" not in page.get_attribute("#panel-clip", "class")
    drop_422_console(problems)


# ---------------------------------------------------------------- 3. fixed axes, "Fit axes"


def test_clip_axes_hold_while_a_moves_and_fit_refits(page: Any, ui: Any) -> None:
    open_page(page, ui)
    before = range_of(page, "clip-chart", "yaxis")
    data = page.evaluate("() => JSON.stringify(document.getElementById('clip-chart').data[4].y)")
    count = ui.rendered("clip")
    page.focus("#clip-adv")
    for _ in range(20):  # |A| 1 -> 3
        page.keyboard.press("ArrowRight")
    ui.wait_for("document.getElementById('clip-adv-out').textContent === '3'")
    ui.wait_for(
        f"window.__ppo.rendered.clip > {count} && "
        "document.getElementById('clip-chart').data[4].y.some(y => y > 7)"
    )
    assert (
        page.evaluate("() => JSON.stringify(document.getElementById('clip-chart').data[4].y)")
        != data
    )
    assert range_of(page, "clip-chart", "yaxis") == before  # the curves steepen; axes stay
    # Dual clip widens the ratio the API draws (c = 3 binds at r = 3), not the axis.
    x_before = range_of(page, "clip-chart", "xaxis4")
    count = ui.rendered("clip")
    page.check("#clip-dual")
    ui.wait_for(f"window.__ppo.rendered.clip > {count}")
    assert range_of(page, "clip-chart", "xaxis4") == x_before
    # Fit: the axes take what is drawn now.
    count = ui.rendered("clip")
    page.click("#clip-fit")
    ui.wait_for(f"window.__ppo.rendered.clip > {count}")
    after = range_of(page, "clip-chart", "yaxis")
    assert after != before and after[1] > before[1] * 2, (before, after)
    assert range_of(page, "clip-chart", "xaxis4")[1] > x_before[1]


def test_value_axes_hold_when_the_marker_moves(page: Any, ui: Any) -> None:
    open_page(page, ui)
    x = range_of(page, "value-chart-max", "xaxis")
    y = range_of(page, "value-chart-max", "yaxis")
    count = ui.rendered("value")
    page.focus("#value-pred")
    for _ in range(35):  # V 0.5 -> 4
        page.keyboard.press("ArrowRight")
    ui.wait_for("document.getElementById('value-pred-out').textContent === '4'")
    ui.wait_for(f"window.__ppo.rendered.value > {count}")
    settle(page, ui, "value")
    ui.wait_for("document.getElementById('value-chart-max').layout.shapes.some(s => s.x0 === 4)")
    assert range_of(page, "value-chart-max", "xaxis") == x
    assert range_of(page, "value-chart-max", "yaxis") == y
    count = ui.rendered("value")
    page.click("#value-fit")
    ui.wait_for(f"window.__ppo.rendered.value > {count}")
    assert range_of(page, "value-chart-max", "xaxis")[1] > x[1]


def test_kl_means_axis_ignores_an_estimators_outlier(page: Any, ui: Any) -> None:
    # Few samples far from the reference: k3's band is wild; the means' axis follows the true KL.
    open_page(page, ui, "?kD=5&kS=16")
    y = range_of(page, "kl-chart-mean", "yaxis")
    true_top = page.evaluate(
        "() => Math.max(...document.getElementById('kl-chart-mean').data.at(-1).y)"
    )
    assert y[1] == pytest.approx(1.6 * true_top, rel=1e-3)
    count = ui.rendered("kl")
    page.focus("#kl-seed")
    page.keyboard.press("ArrowRight")
    ui.wait_for(f"window.__ppo.rendered.kl > {count}")
    assert range_of(page, "kl-chart-mean", "yaxis") == y


# ---------------------------------------------------------------- 4. one set of hyperparameters


def test_one_epsilon_moves_every_panel_the_url_and_the_table(page: Any, ui: Any) -> None:
    open_page(page, ui)
    counts = {p: ui.rendered(p) for p in ("clip", "total")}
    page.focus("#total-clip")
    for _ in range(5):  # 0.2 -> 0.25
        page.keyboard.press("ArrowRight")
    ui.wait_for("new URLSearchParams(location.search).get('eps') === '0.25'")
    for control in ("clip-epsilon", "total-clip", "lab-clip"):
        assert page.input_value(f"#{control}") == "0.25", control
        assert page.text_content(f"#{control}-out") == "0.25", control
    ui.wait_for(f"window.__ppo.rendered.clip > {counts['clip']}")
    ui.wait_for(f"window.__ppo.rendered.total > {counts['total']}")
    ui.wait_for("document.getElementById('clip-api').href.includes('epsilon=0.25')")
    ui.wait_for("document.getElementById('total-api').href.includes('clip_ratio=0.25')")
    assert "clip_ratio=0.25" in page.get_attribute("#lab-api", "href")
    now = page.text_content("#panel-hyper tr[data-name='clip_ratio'] td.hyper-now")
    assert now == "0.25"
    # One key in the URL, no per-panel copies.
    keys = page.evaluate("() => [...new URLSearchParams(location.search).keys()]")
    assert keys == ["eps"], keys


def test_old_per_panel_keys_still_work(page: Any, ui: Any) -> None:
    open_page(page, ui, "?tClip=0.3&lEnt=0.05&tVf=1")
    query = dict(page.evaluate("() => [...new URLSearchParams(location.search)]"))
    assert query == {"eps": "0.3", "ent": "0.05", "vf": "1"}, query
    for control in ("clip-epsilon", "total-clip", "lab-clip"):
        assert page.input_value(f"#{control}") == "0.3"
    assert page.input_value("#total-ent") == "0.05" and page.input_value("#lab-ent") == "0.05"
    assert "entropy_coef=0.05" in page.get_attribute("#lab-api", "href")
    assert "vf_coef=1" in page.get_attribute("#total-api", "href")


def test_the_table_does_not_compare_the_labs_learning_rate(page: Any, ui: Any) -> None:
    open_page(page, ui)
    ui.wait_for("document.querySelector('#panel-hyper a[href=\"#lab-lr\"]') !== null")
    row = "#panel-hyper tr[data-name='learning_rate']"
    assert page.text_content(f"{row} td.hyper-now") == "—"
    assert "its own scale" in page.text_content(row)
    # ε's row links to every control of the one ε.
    eps_row = "#panel-hyper tr[data-name='clip_ratio']"
    for control in ("clip-epsilon", "total-clip", "lab-clip"):
        assert page.locator(f"{eps_row} a[href='#{control}']").count() == 1
    # Panel-specific knobs say so.
    assert "This panel only" in page.text_content("#family-eps-hint")
    assert "This panel only" in page.text_content("#lab-lr-hint")
    assert "Shared" in page.text_content("#total-clip-hint")


# ---------------------------------------------------------------- 5. dead controls say why


def test_asymmetric_clip_disables_epsilon_and_says_why(page: Any, ui: Any) -> None:
    open_page(page, ui)
    assert page.is_enabled("#clip-epsilon")
    assert page.is_disabled("#clip-eps-low")
    why = page.get_attribute("#clip-eps-low", "aria-describedby")
    assert why and "clip-eps-low-why" in why
    assert page.locator("#clip-eps-low-why").is_visible()
    assert "Asymmetric clip" in page.text_content("#clip-eps-low-why")
    count = ui.rendered("clip")
    page.check("#clip-asym")
    ui.wait_for(f"window.__ppo.rendered.clip > {count}")
    assert page.is_disabled("#clip-epsilon")
    assert page.is_enabled("#clip-eps-low") and page.is_enabled("#clip-eps-high")
    assert "clip-epsilon-why" in page.get_attribute("#clip-epsilon", "aria-describedby")
    # Its hint is still part of the description.
    assert "clip-epsilon-hint" in page.get_attribute("#clip-epsilon", "aria-describedby")
    reason = page.text_content("#clip-epsilon-why")
    assert "Asymmetric clip" in reason and "untick" in reason
    assert page.locator("#clip-epsilon-why").is_visible()
    assert page.locator("#clip-eps-low-why").is_hidden()
    # The lab's KL target is off until its checkbox, and says so.
    assert page.is_disabled("#lab-target")
    assert "KL target" in page.text_content("#lab-target-why")
    # The inspector's threshold slider is off until a batch with rollout_logprobs.
    assert page.is_disabled("#analyze-threshold")
    assert "rollout_logprobs" in page.text_content("#analyze-threshold-why")
    assert "analyze-threshold-why" in page.get_attribute("#analyze-threshold", "aria-describedby")
    count = ui.rendered("analyze")
    page.click("#analyze-example")
    page.click("#analyze-run")
    ui.wait_for(f"window.__ppo.rendered.analyze > {count}")
    assert page.is_enabled("#analyze-threshold")
    assert page.locator("#analyze-threshold-why").is_hidden()


def test_total_loss_axis_holds_while_c1_moves(page: Any, ui: Any) -> None:
    open_page(page, ui)
    y = range_of(page, "total-chart", "yaxis")
    count = ui.rendered("total")
    page.click("#panel-total button[data-preset='value']")  # c1 0.5 -> 2
    ui.wait_for(f"window.__ppo.rendered.total > {count}")
    ui.wait_for("document.getElementById('total-api').href.includes('vf_coef=2')")
    assert range_of(page, "total-chart", "yaxis") == y  # the value bar grows past the top
    count = ui.rendered("total")
    page.click("#total-fit")
    ui.wait_for(f"window.__ppo.rendered.total > {count}")
    assert range_of(page, "total-chart", "yaxis")[1] > 2 * y[1]
