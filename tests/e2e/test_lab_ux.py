"""The training lab as people use it: pause, step and scrub through a run; the work budget
shown live with Run kept off (and why) while over it; presets read from the server; an error
beside Run, in view, and results that no longer match the knobs marked or cleared."""

from __future__ import annotations

import math
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

CHARTS = ["lab-chart-reward", "lab-chart-kl-old", "lab-chart-kl-ref", "lab-chart-entropy"]
CHARTS += ["lab-chart-clip"]
METRICS = dict(zip(CHARTS, ["reward", "kl_old", "kl_ref", "entropy", "clip_fraction"], strict=True))


def lab(page: Any, what: str) -> str:
    """The lab's state as the page publishes it: data-lab-state, -received, -shown."""
    return str(page.get_attribute("#panel-lab", f"data-lab-{what}"))


def points(page: Any) -> list[int]:
    """Points drawn, per chart and trace."""
    return page.evaluate(
        f"() => {CHARTS}.flatMap(id => document.getElementById(id).data.map(t => t.x.length))"
    )


def wait_points(ui: Any, n: int) -> None:
    ui.wait_for(
        f"{CHARTS}.every(id => document.getElementById(id).data.every(t => t.x.length === {n}))",
        timeout=60,
    )


def start_paused(page: Any, steps: int = 0) -> None:
    """Run, then Pause (and Step `steps` times) in one task: no iteration can arrive between."""
    page.evaluate(
        "(steps) => { document.getElementById('lab-run').click();"
        " document.getElementById('lab-pause').click();"
        " for (let i = 0; i < steps; i += 1) document.getElementById('lab-step').click(); }",
        steps,
    )


def test_pause_holds_the_run_and_step_adds_exactly_one(page: Any, ui: Any) -> None:
    page.goto(page.base + "/?lIt=30&lPkl=false")
    ui.wait_all_rendered()
    start_paused(page)
    assert page.text_content("#lab-pause") == "Resume"
    # The stream runs to its end; nothing of it reaches the charts while paused.
    ui.wait_for("document.getElementById('panel-lab').dataset.labState === 'done'", timeout=60)
    assert lab(page, "received") == "30"
    assert lab(page, "shown") == "0"
    assert points(page) == [0] * 10
    assert page.evaluate("() => document.getElementById('lab-progress').value") == 0
    assert "30 more to step through" in page.text_content("#lab-status")
    page.click("#lab-step")
    wait_points(ui, 1)
    assert lab(page, "shown") == "1"
    page.click("#lab-step")
    wait_points(ui, 2)
    assert lab(page, "shown") == "2"
    assert page.evaluate("() => document.getElementById('lab-progress').value") == 2
    # Resume shows the rest at once.
    page.click("#lab-pause")
    wait_points(ui, 30)
    assert lab(page, "shown") == "30"
    assert page.text_content("#lab-pause") == "Pause"
    assert page.is_disabled("#lab-pause") and page.is_disabled("#lab-step")


def test_a_step_while_paused_waits_for_the_next_iteration(page: Any, ui: Any) -> None:
    page.goto(page.base + "/?lIt=12&lPkl=false&lPpo=false")
    ui.wait_all_rendered()
    start_paused(page, steps=1)  # nothing had arrived: the step takes the first to come
    ui.wait_for("document.getElementById('panel-lab').dataset.labState === 'done'", timeout=60)
    wait_points(ui, 1)
    assert lab(page, "shown") == "1" and lab(page, "received") == "12"


def test_pause_mid_run_stops_new_iterations_arriving(page: Any, ui: Any, problems: Any) -> None:
    page.goto(page.base + "/?lIt=500&lPkl=false")
    ui.wait_all_rendered()
    page.click("#lab-run")
    ui.wait_for("Number(document.getElementById('panel-lab').dataset.labShown) >= 3", timeout=60)
    held = page.evaluate(
        "() => { document.getElementById('lab-pause').click();"
        " return Number(document.getElementById('panel-lab').dataset.labShown); }"
    )
    assert 3 <= held < 500
    assert page.is_enabled("#lab-stop") and page.is_enabled("#lab-step")
    ui.wait_for(
        "Number(document.getElementById('panel-lab').dataset.labReceived) >= "
        f"{held} + 5 || document.getElementById('panel-lab').dataset.labState === 'done'",
        timeout=60,
    )
    wait_points(ui, held)
    assert lab(page, "shown") == str(held)
    page.click("#lab-step")
    wait_points(ui, held + 1)
    assert lab(page, "shown") == str(held + 1)
    if lab(page, "state") == "running":
        # Stop closes the EventSource, which aborts its request: wait for that report (it can
        # arrive after the click returns) before leaving it out of the page's problems.
        with page.expect_event(
            "requestfailed", predicate=lambda r: "/api/v1/lab/stream" in r.url, timeout=10_000
        ):
            page.click("#lab-stop")
        ui.wait_for("document.getElementById('panel-lab').dataset.labState === 'stopped'")
    assert lab(page, "shown") == str(held + 1)
    problems.items[:] = [
        p for p in problems.items if not ("/api/v1/lab/stream" in p and "ERR_ABORTED" in p)
    ]


def test_scrub_says_why_it_is_off_until_a_run_shows_an_iteration(page: Any, ui: Any) -> None:
    page.goto(page.base + "/?lIt=5")
    ui.wait_all_rendered()
    assert page.is_disabled("#lab-scrub")
    assert "lab-scrub-why" in (page.get_attribute("#lab-scrub", "aria-describedby") or "")
    page.locator("#lab-scrub-why").scroll_into_view_if_needed()
    assert page.locator("#lab-scrub-why").is_visible()
    assert "press Run" in page.text_content("#lab-scrub-why")
    page.click("#lab-run")
    ui.wait_for("document.getElementById('panel-lab').dataset.labState === 'done'", timeout=60)
    ui.wait_for("!document.getElementById('lab-scrub').disabled")
    assert page.locator("#lab-scrub-why").is_hidden()
    assert "lab-scrub-why" not in (page.get_attribute("#lab-scrub", "aria-describedby") or "")


def test_scrub_shows_the_chosen_iteration_on_every_chart(page: Any, ui: Any) -> None:
    page.goto(page.base + "/?lIt=20")
    ui.wait_all_rendered()
    page.click("#lab-run")
    ui.wait_for("document.getElementById('panel-lab').dataset.labState === 'done'", timeout=60)
    wait_points(ui, 20)
    assert page.get_attribute("#lab-scrub", "max") == "19"
    page.focus("#lab-scrub")
    page.keyboard.press("Home")
    for _ in range(7):
        page.keyboard.press("ArrowRight")
    ui.wait_for("document.getElementById('lab-at').textContent.includes('At iteration 7')")
    assert page.text_content("#lab-scrub-out") == "it 7"
    # Every chart carries a vertical marker at iteration 7.
    for chart in CHARTS:
        ui.wait_for(
            f"(() => {{ const s = document.getElementById('{chart}').layout.shapes || [];"
            " return s.length === 1 && s[0].x0 === 7 && s[0].x1 === 7; })()"
        )
    # The readout's numbers are those the charts plot at iteration 7.
    rows = page.evaluate(
        "() => [...document.querySelectorAll('#lab-at-table tbody tr')].map(r => [r.dataset.alg,"
        " Object.fromEntries([...r.querySelectorAll('td')]"
        ".map(c => [c.dataset.metric, c.textContent]))])"
    )
    assert [alg for alg, _ in rows] == ["pg", "ppo", "ppo-kl"]
    for chart in CHARTS:
        plotted = page.evaluate(f"() => document.getElementById('{chart}').data.map(t => t.y[7])")
        for (alg, cells), y in zip(rows, plotted, strict=True):
            assert math.isclose(float(cells[METRICS[chart]]), y, rel_tol=1e-3, abs_tol=1e-4), (
                chart,
                alg,
            )
    # The sample sentences of the newest checkpoint at or before it 7, highlighted in the lists.
    sampled = page.evaluate(
        "() => [...document.querySelectorAll('.lab-sample-list li.lab-at')]"
        ".map(li => Number(li.dataset.iteration))"
    )
    assert len(sampled) == 3 and len(set(sampled)) == 1 and 0 <= sampled[0] <= 7
    assert f"sampled at it {sampled[0]}" in page.text_content("#lab-at")
    page.keyboard.press("End")
    ui.wait_for("document.getElementById('lab-at').textContent.includes('At iteration 19')")


def test_over_budget_keeps_run_off_and_says_why(page: Any, ui: Any) -> None:
    page.goto(page.base + "/?lIt=500&lEp=16&lBs=512")
    ui.wait_all_rendered()
    ui.wait_for("document.getElementById('lab-budget').dataset.work !== undefined")
    work = 500 * 16 * 512 * 8 * 3
    assert page.get_attribute("#lab-budget", "data-work") == str(work)
    assert page.get_attribute("#lab-budget", "data-max") == "8000000"
    budget = page.text_content("#lab-budget")
    assert "Over budget: 98.3 M" in budget and "8 M" in budget
    assert page.is_disabled("#lab-run")
    assert "lab-budget" in page.get_attribute("#lab-run", "aria-describedby")
    assert "over" in page.get_attribute("#lab-budget", "class")
    # The reason sits beside Run.
    run = page.locator("#lab-run").bounding_box()
    box = page.locator("#lab-budget").bounding_box()
    assert abs((box["y"] + box["height"] / 2) - (run["y"] + run["height"] / 2)) < 80
    # Live: fewer iterations, and it fits (40 x 16 x 512 x 8 x 3 = 7.86 M).
    page.fill("#lab-iters", "40")
    ui.wait_for("document.getElementById('lab-budget').dataset.work === String(40*16*512*8*3)")
    assert page.is_enabled("#lab-run")
    assert "over" not in page.get_attribute("#lab-budget", "class")
    assert page.text_content("#lab-budget").startswith("Work: 7.86 M of 8 M")
    page.fill("#lab-iters", "41")
    ui.wait_for("document.getElementById('lab-run').disabled")


def test_the_budget_is_the_servers_not_a_constant(page: Any, ui: Any) -> None:
    def smaller_budget(route: Any) -> None:
        route.fulfill(json={**route.fetch().json(), "max_work": 500_000})

    page.route("**/api/v1/lab/presets", smaller_budget)
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    ui.wait_for("document.getElementById('lab-budget').dataset.max === '500000'")
    # The default run (100 x 6 x 64 x 8 x 3 = 0.92 M) is over this server's 0.5 M.
    assert page.is_disabled("#lab-run")
    assert "0.922 M" in page.text_content("#lab-budget")
    page.uncheck("#lab-alg-ppokl")
    page.uncheck("#lab-alg-ppo")
    ui.wait_for("!document.getElementById('lab-run').disabled")


def test_presets_come_from_the_api(page: Any, ui: Any) -> None:
    asked: list[str] = []

    def modified(route: Any) -> None:
        asked.append(route.request.url)
        answer = route.fetch().json()
        presets = answer["presets"]
        presets["high learning rate"] = {**presets["high learning rate"], "lr": 150.0}
        presets["a short run"] = {**presets["default"], "iterations": 5, "seed": 7}
        route.fulfill(json=answer)

    page.route("**/api/v1/lab/presets", modified)
    page.goto(page.base + "/?lIt=20")
    ui.wait_all_rendered()
    ui.wait_for("!document.querySelector(\"#panel-lab button[data-preset='high-lr']\").disabled")
    assert len(asked) == 1
    # Labels name what each preset changes, with the server's values.
    label = page.text_content("#panel-lab button[data-preset='high-lr']")
    assert label == "High learning rate (α 150)"
    page.click("#panel-lab button[data-preset='high-lr']")
    ui.wait_for("new URLSearchParams(location.search).get('lLr') === '150'")
    assert page.text_content("#lab-lr-out") == "150"
    assert "lr=150" in page.get_attribute("#lab-api", "href")
    # A preset the page had no button for gets one, named as the server names it.
    extra = page.locator("#panel-lab button.preset", has_text="a short run")
    extra.click()
    ui.wait_for("new URLSearchParams(location.search).get('lIt') === '5'")
    query = dict(page.evaluate("() => [...new URLSearchParams(location.search)]"))
    assert query == {"lIt": "5", "lSeed": "7"}
    assert extra.text_content() == "a short run (iterations 5, seed 7)"


def test_without_the_presets_the_page_says_so_and_the_server_decides(
    page: Any, ui: Any, problems: Any
) -> None:
    page.route("**/api/v1/lab/presets", lambda route: route.fulfill(status=503, json={}))
    problems.allowed_statuses.add(503)
    page.goto(page.base + "/?lIt=500&lEp=16&lBs=512")
    ui.wait_all_rendered()
    ui.wait_for("document.getElementById('lab-budget').textContent.includes('unknown')")
    assert "the server checks it on Run" in page.text_content("#lab-budget")
    assert page.is_enabled("#lab-run")
    assert page.is_disabled("#panel-lab button[data-preset='high-lr']")
    assert page.is_enabled("#panel-lab button[data-preset='reset']")
    # Expected: the browser logs the refused GET.
    problems.items[:] = [p for p in problems.items if "503" not in p]


def test_a_refused_run_is_explained_beside_run_and_old_results_go(
    page: Any, ui: Any, problems: Any
) -> None:
    # Told a larger budget than the server's, the page lets a large run through to a 422.
    def larger_budget(route: Any) -> None:
        route.fulfill(json={**route.fetch().json(), "max_work": 10**12})

    page.route("**/api/v1/lab/presets", larger_budget)
    problems.allowed_statuses.add(422)
    page.goto(page.base + "/?lIt=5&lPkl=false")
    ui.wait_all_rendered()
    page.click("#lab-run")
    ui.wait_for("document.getElementById('panel-lab').dataset.labState === 'done'", timeout=60)
    wait_points(ui, 5)
    assert page.locator("#lab-stale").is_hidden()
    # Knobs moved after the run: its results are marked as from earlier settings.
    page.fill("#lab-batch", "512")
    page.fill("#lab-epochs", "16")
    page.fill("#lab-iters", "500")
    ui.wait_for("!document.getElementById('lab-stale').hidden")
    assert "earlier settings" in page.text_content("#lab-stale")
    assert page.evaluate(
        "() => document.querySelector('#panel-lab .lab-results').classList.contains('is-stale')"
    )
    # Run with the Run button in view: the refusal appears beside it, in view, not far below.
    page.locator("#lab-run").scroll_into_view_if_needed()
    page.click("#lab-run")
    ui.wait_for("!document.getElementById('lab-error').hidden", timeout=30)
    message = page.text_content("#lab-error")
    assert "run too large" in message and "iterations" in message
    run = page.locator("#lab-run").bounding_box()
    error = page.locator("#lab-error").bounding_box()
    viewport = page.viewport_size
    assert error["y"] >= 0 and error["y"] + error["height"] <= viewport["height"]
    assert 0 <= error["y"] - (run["y"] + run["height"]) < 120
    # The old run's results are cleared, not left under the error.
    assert points(page) == [0] * 10
    assert page.locator("#lab-stale").is_hidden()
    # Settings changed again: the error no longer applies and goes.
    page.fill("#lab-iters", "5")
    ui.wait_for("document.getElementById('lab-error').hidden")
    problems.items[:] = [
        p
        for p in problems.items
        if "422" not in p and not ("/api/v1/lab/stream" in p and "ERR_ABORTED" in p)
    ]
