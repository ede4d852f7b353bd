"""The training lab in headless Chromium: nothing trains on page load; Run streams a small run
whose curves, progress bar, samples and "observed" readout fill in; Stop ends a long run early;
a run the server refuses (422) and a config the page can check itself show a clear message."""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

import pytest

from ppo_core.lab import VOCAB

pytestmark = pytest.mark.e2e

CHARTS = ["lab-chart-reward", "lab-chart-kl-old", "lab-chart-kl-ref", "lab-chart-entropy"]
CHARTS += ["lab-chart-clip"]


def traces(page: Any, chart: str) -> list[dict[str, Any]]:
    """Each trace of a chart as {name, n (points), y}."""
    return page.evaluate(
        f"() => document.getElementById('{chart}').data"
        ".map(t => ({name: t.name, n: t.x.length, y: Array.from(t.y)}))"
    )


def points(page: Any) -> int:
    return int(page.evaluate("() => document.getElementById('lab-chart-reward').data[0].x.length"))


def test_load_shows_no_chart_and_does_not_train(page: Any, ui: Any) -> None:
    streams: list[str] = []
    # The presets (GET /lab/presets) are read on load; nothing trains (/lab/stream, /lab/run).
    page.on(
        "request",
        lambda r: streams.append(r.url) if re.search(r"/lab/(stream|run)", r.url) else None,
    )
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    assert ui.rendered("lab") == 1
    # No empty chart before there is data (issue 12): the charts appear with the first run.
    assert page.locator(".lab-charts").is_hidden()
    for chart in CHARTS:
        assert page.evaluate(f"() => document.getElementById('{chart}').data") is None, chart
    time.sleep(0.5)
    assert streams == [], f"the page trained on load: {streams}"
    assert page.get_attribute("#lab-progress", "value") == "0"
    href = page.get_attribute("#lab-api", "href")
    assert href.startswith("/api/v1/lab/stream?algorithms=pg&algorithms=ppo&algorithms=ppo-kl")
    assert "iterations=100" in href and "lr=20" in href and "target_kl" not in href


def test_run_streams_curves_samples_and_readout(page: Any, ui: Any) -> None:
    page.goto(page.base + "/?lIt=15&lPkl=false")
    ui.wait_all_rendered()
    count = ui.rendered("lab")
    href = page.get_attribute("#lab-api", "href")
    assert "algorithms=pg&algorithms=ppo&" in href and "ppo-kl" not in href
    assert "iterations=15" in href
    page.click("#lab-run")
    ui.wait_for(f"window.__ppo.rendered.lab > {count}", timeout=60)
    assert page.text_content("#lab-status").startswith("Done: 15 iterations")
    for chart in CHARTS:
        drawn = traces(page, chart)
        assert [t["name"] for t in drawn] == ["PG", "PPO"], chart
        assert [t["n"] for t in drawn] == [15, 15], chart
        assert all(math.isfinite(y) for t in drawn for y in t["y"]), chart
    assert page.evaluate("() => document.getElementById('lab-chart-kl-old').layout.yaxis.type") == (
        "log"
    )
    # The progress bar reached its max.
    assert page.get_attribute("#lab-progress", "max") == "15"
    assert page.evaluate("() => document.getElementById('lab-progress').value") == 15
    # Sample sentences, per algorithm, made of the lab's words only.
    for alg in ("pg", "ppo"):
        sentences = page.evaluate(
            f"() => [...document.querySelectorAll('.lab-sample-col[data-alg=\"{alg}\"] q')]"
            ".map(q => q.textContent)"
        )
        assert len(sentences) >= 3, alg
        for sentence in sentences:
            words = sentence.split()
            assert len(words) == 8 and set(words) <= set(VOCAB), sentence
    # The readout states measured numbers: the same as the charts' series.
    rows = page.evaluate(
        "() => [...document.querySelectorAll('#lab-observed-table tbody tr')]"
        ".map(r => [r.dataset.alg, ...[...r.cells].slice(1).map(c => c.textContent)])"
    )
    assert [r[0] for r in rows] == ["pg", "ppo"]
    kl_old = {t["name"]: t["y"] for t in traces(page, "lab-chart-kl-old")}
    reward = {t["name"]: t["y"] for t in traces(page, "lab-chart-reward")}
    for row, name in zip(rows, ["PG", "PPO"], strict=True):
        alg, largest_kl, final_reward, final_entropy, _halved, final_kl_ref = row
        assert float(largest_kl.split()[0]) == pytest.approx(max(kl_old[name]), abs=1e-4), alg
        assert float(final_reward) == pytest.approx(reward[name][-1], abs=1e-3), alg
        assert float(final_entropy) > 0 and float(final_kl_ref) > 0, row
    ratio = page.text_content(".lab-ratio")
    shown = float(re.search(r"([\d.]+)×", ratio).group(1))
    assert shown == pytest.approx(max(kl_old["PG"]) / max(kl_old["PPO"]), abs=0.06)
    assert shown > 1, "PG's largest update should exceed PPO's on the default knobs"
    assert page.locator("#lab-error").is_hidden()
    assert page.is_enabled("#lab-run") and page.is_disabled("#lab-stop")


def test_stop_ends_the_stream_early(page: Any, ui: Any, problems: Any) -> None:
    page.goto(page.base + "/?lIt=500")
    ui.wait_all_rendered()
    count = ui.rendered("lab")
    page.focus("#lab-run")
    page.keyboard.press("Enter")
    ui.wait_for("document.getElementById('lab-progress').value >= 3", timeout=60)
    assert page.is_disabled("#lab-run")
    # Focus moved to Stop, so the keyboard stops the run too.
    assert page.evaluate("() => document.activeElement.id") == "lab-stop"
    page.keyboard.press("Enter")
    ui.wait_for(f"window.__ppo.rendered.lab > {count}")
    assert page.text_content("#lab-status").startswith("Stopped after")
    stopped_at = points(page)
    assert 3 <= stopped_at < 500
    time.sleep(1.0)
    assert points(page) == stopped_at, "points kept arriving after Stop"
    assert page.evaluate("() => document.getElementById('lab-progress').value") == stopped_at
    assert page.is_enabled("#lab-run") and page.is_disabled("#lab-stop")
    assert "of 500 iterations" in page.text_content("#lab-readout")
    # Stop closes the EventSource, which aborts its request: that one failure is the point.
    aborted = [p for p in problems.items if "/api/v1/lab/stream" in p and "ERR_ABORTED" in p]
    assert len(aborted) == 1, problems.items
    problems.items.remove(aborted[0])


def test_a_refused_run_shows_the_server_message(page: Any, ui: Any, problems: Any) -> None:
    # The page refuses runs over the budget itself (tests/e2e/test_lab_ux.py); here it is told a
    # larger budget than the server's, so the run reaches the server and is refused there.
    def larger_budget(route: Any) -> None:
        answer = route.fetch().json()
        route.fulfill(json={**answer, "max_work": 10**12})

    page.route("**/api/v1/lab/presets", larger_budget)
    problems.allowed_statuses.add(422)
    page.goto(page.base + "/?lIt=500&lEp=16&lBs=512")
    ui.wait_all_rendered()
    ui.wait_for("document.getElementById('lab-budget').dataset.max === '1000000000000'")
    page.click("#lab-run")
    ui.wait_for("!document.getElementById('lab-error').hidden", timeout=30)
    message = page.text_content("#lab-error")
    assert "run too large" in message and "iterations" in message
    assert page.is_enabled("#lab-run") and page.is_disabled("#lab-stop")
    # Expected here: the browser logs the refused stream and its JSON re-read (422), and may
    # report the EventSource, which drops a response that is not an event stream, as aborted.
    problems.items[:] = [
        p
        for p in problems.items
        if "422" not in p and not ("/api/v1/lab/stream" in p and "ERR_ABORTED" in p)
    ]


def test_the_page_checks_what_it_can_before_asking(page: Any, ui: Any) -> None:
    page.goto(page.base + "/?lKl=0&lTgt=true")
    ui.wait_all_rendered()
    assert "KL target needs a KL coef" in page.text_content("#lab-error")
    assert page.is_disabled("#lab-run")
    page.click("#panel-lab button[data-preset='kl']")
    ui.wait_for("document.getElementById('lab-error').hidden")
    assert page.is_enabled("#lab-run")
    for box in ("#lab-alg-pg", "#lab-alg-ppo", "#lab-alg-ppokl"):
        page.uncheck(box)
    assert "at least one algorithm" in page.text_content("#lab-error")
    assert page.is_disabled("#lab-run")


def test_controls_presets_and_url(page: Any, ui: Any) -> None:
    page.goto(page.base + "/?lIt=20")
    ui.wait_all_rendered()
    assert page.text_content("#lab-iters-out") == "20"
    page.click("#panel-lab button[data-preset='high-lr']")
    ui.wait_for("new URLSearchParams(location.search).get('lLr') === '100'")
    assert "lr=100" in page.get_attribute("#lab-api", "href")
    assert page.text_content("#lab-lr-out") == "100"
    # A preset is a whole config, like the server's: the iterations go back to 100.
    assert "iterations=100" in page.get_attribute("#lab-api", "href")
    page.focus("#lab-epochs")
    page.keyboard.press("ArrowRight")
    ui.wait_for("new URLSearchParams(location.search).get('lEp') === '7'")
    assert "epochs=7" in page.get_attribute("#lab-api", "href")
    page.click("#panel-lab button[data-preset='kl']")
    ui.wait_for("new URLSearchParams(location.search).get('lTgt') === 'true'")
    query = dict(page.evaluate("() => [...new URLSearchParams(location.search)]"))
    assert query == {"lKl": "0.1", "lTgt": "true"}, json.dumps(query)
    assert "target_kl=0.1" in page.get_attribute("#lab-api", "href")
    page.click("#panel-lab button[data-preset='reset']")
    ui.wait_for("location.search === ''")


def test_hyperparameter_rows_link_to_the_lab(page: Any, ui: Any) -> None:
    page.goto(page.base + "/?lEp=9")
    ui.wait_all_rendered()
    ui.wait_for("document.querySelector('#panel-hyper a[href=\"#lab-epochs\"]') !== null")
    now = page.text_content("#panel-hyper tr[data-name='ppo_epochs'] td.hyper-now")
    assert now == "9"
    page.click("#panel-hyper a[href='#lab-lr']")
    ui.wait_for("document.activeElement && document.activeElement.id === 'lab-lr'")
