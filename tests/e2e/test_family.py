"""The objective-family panel and the KL panel's gradient chart in headless Chromium: every loss
draws and toggles, the axes hold still while ε moves, PPO's weight is 0 past the clip where
CISPO's is not, recipes set the knobs the API states, GSPO gates a whole sequence where PPO
clips token by token, the state survives a reload, and the page fits a phone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

MODES = ["vanilla", "gspo", "cispo", "sapo", "gpg", "geo_mean"]


@pytest.fixture(autouse=True)
def no_panel_error(page: Any) -> Iterator[None]:
    """A panel that catches an error shows it in its error line, not on the console: fail on
    that too."""
    yield
    errors = page.evaluate("() => window.__ppo ? window.__ppo.errors : {}")
    assert not errors.get("family") and not errors.get("kl"), errors


def uids(page: Any, chart: str = "family-chart") -> list[str]:
    return page.evaluate(f"() => document.getElementById('{chart}').data.map(t => t.uid)")


def trace(page: Any, uid: str) -> dict[str, list[float]]:
    """x and y of the family chart's trace ``uid`` (``<mode>-<pos|neg>-<objective|gradient>``)."""
    return page.evaluate(
        "(uid) => { const t = document.getElementById('family-chart').data"
        ".find(t => t.uid === uid); return {x: Array.from(t.x), y: Array.from(t.y)}; }",
        uid,
    )


def bars(page: Any, chart: str) -> dict[str, list[float]]:
    """The y values of each named trace of a chart."""
    return page.evaluate(
        f"() => Object.fromEntries(document.getElementById('{chart}').data"
        ".map(t => [t.name, Array.from(t.y)]))"
    )


def query(page: Any, key: str) -> str | None:
    return page.evaluate(f"() => new URLSearchParams(location.search).get('{key}')")


def set_range(page: Any, control: str, value: float) -> None:
    """Move a slider as a drag does (an input event, then the release)."""
    page.evaluate(
        "([id, v]) => { const el = document.getElementById(id); el.value = String(v);"
        " el.dispatchEvent(new Event('input', {bubbles: true}));"
        " el.dispatchEvent(new Event('change', {bubbles: true})); }",
        [control, value],
    )


def test_every_loss_draws_for_both_signs(page: Any, ui: Any) -> None:
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    expected = {
        f"{m}-{s}-{k}" for m in MODES for s in ("pos", "neg") for k in ("objective", "gradient")
    }
    assert set(uids(page)) == expected
    # A loss keeps its colour in both signs and both rows.
    colours = page.evaluate(
        "() => document.getElementById('family-chart').data.map(t => [t.uid, t.line.color])"
    )
    by_mode: dict[str, set[str]] = {}
    for uid, colour in colours:
        by_mode.setdefault(uid.split("-")[0], set()).add(colour)
    assert all(len(c) == 1 for c in by_mode.values()) and len({*map(min, by_mode.values())}) == 6
    href = page.get_attribute("#family-api", "href")
    assert href.startswith("/api/v1/objective-curves?modes=vanilla%2Cgspo%2Ccispo")
    assert page.get_attribute("#family-agg-api", "href").startswith(
        "/api/v1/aggregation-weights?lengths=16%2C64%2C256%2C1024"
    )
    assert "POST /api/v1/policy-loss" in page.text_content("#family-seq-api")
    assert page.locator("#panel-family .family-modes math").count() == 6


def test_toggling_a_loss_removes_and_adds_its_traces(page: Any, ui: Any) -> None:
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    page.focus("#family-m-cispo")
    page.keyboard.press("Space")  # keyboard toggles it like a click
    ui.wait_for("new URLSearchParams(location.search).get('fmCi') === 'false'")
    ui.wait_for(
        "!document.getElementById('family-chart').data.some(t => t.uid.startsWith('cispo-'))"
    )
    assert len(uids(page)) == 20
    ui.wait_for(
        "document.getElementById('family-api').href.includes('modes=vanilla%2Cgspo%2Csapo')"
    )
    assert "CISPO" not in page.text_content("#family-readout")
    page.keyboard.press("Space")
    ui.wait_for("new URLSearchParams(location.search).get('fmCi') === null")
    ui.wait_for("document.getElementById('family-chart').data.length === 24")
    assert "cispo-pos-gradient" in uids(page)


def test_epsilon_moves_the_band_but_not_the_axes(page: Any, ui: Any) -> None:
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    axes = (
        "() => { const l = document.getElementById('family-chart').layout;"
        " return ['xaxis', 'xaxis2', 'yaxis', 'yaxis2', 'yaxis3', 'yaxis4'].map(a => l[a].range); }"
    )
    band = (
        "() => document.getElementById('family-chart').layout.shapes"
        ".filter(s => s.type === 'rect').map(s => [s.x0, s.x1])"
    )
    before = page.evaluate(axes)
    assert page.evaluate(band) == [[pytest.approx(0.8), pytest.approx(1.2)]] * 2
    page.focus("#family-eps")
    for _ in range(5):  # a log slider: 5 steps of 0.02 in log10 ε, 0.2 -> 0.25
        page.keyboard.press("ArrowRight")
    ui.wait_for("new URLSearchParams(location.search).get('fe') === '-0.6'")
    assert page.text_content("#family-eps-out") == "0.25"
    ui.wait_for(f"({band})()[0][1] > 1.249")
    assert page.evaluate(band) == [[pytest.approx(0.75), pytest.approx(1.25)]] * 2
    assert page.evaluate(axes) == before
    assert "epsilon=0.25&" in page.get_attribute("#family-api", "href")
    # PPO's weight now drops to 0 at 1.25 instead of 1.2.
    ppo = trace(page, "vanilla-pos-gradient")
    assert all(y != 0 for x, y in zip(ppo["x"], ppo["y"], strict=True) if 1.0 <= x <= 1.249)
    # The advantage does move the axes (they are computed from |A| and the ratio range).
    set_range(page, "family-adv", 2)
    ui.wait_for("new URLSearchParams(location.search).get('fA') === '2'")
    ui.wait_for(f"JSON.stringify(({axes})()) !== {json.dumps(json.dumps(before))}")


def test_past_the_clip_ppo_gives_no_gradient_and_cispo_does(page: Any, ui: Any) -> None:
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    ppo = trace(page, "vanilla-pos-gradient")
    cispo = trace(page, "cispo-pos-gradient")
    past = [i for i, x in enumerate(ppo["x"]) if x > 1.2 + 1e-9]
    assert len(past) > 10
    assert all(ppo["y"][i] == 0 for i in past)
    assert all(cispo["y"][i] == pytest.approx(1.2) for i in past)  # clip(r)·A, A = 1
    inside = [i for i, x in enumerate(ppo["x"]) if 0.8 < x < 1.2]
    assert all(ppo["y"][i] == pytest.approx(ppo["x"][i]) for i in inside)  # r·A
    readout = " ".join(page.text_content("#family-readout").split())
    assert "At r = 1.30 with A > 0" in readout
    assert "PPO no gradient" in readout and "CISPO 1.20" in readout


def test_a_recipe_sets_the_knobs_the_api_states(page: Any, ui: Any) -> None:
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    conventions = httpx.get(page.base + "/api/v1/conventions").json()
    conv = next(c for c in conventions if c["name"] == "trl-cispo")
    knobs = conv["knobs"]
    page.click("#family-recipes button[data-recipe='trl-cispo']")
    ui.wait_for("new URLSearchParams(location.search).get('fP') === 'trl-cispo'")
    assert query(page, "fCc") == knobs["cispo_clip"] == "absolute"
    assert query(page, "fF") == knobs["policy_loss_mode"] == "cispo"
    assert query(page, "fAs") == "true"
    assert page.input_value("#family-cispo-clip") == "absolute"
    assert float(page.text_content("#family-eps-high-out")) == knobs["clip_ratio_high"]
    assert float(page.text_content("#family-eps-out")) == knobs["clip_ratio"]
    assert page.input_value("#family-agg-mode") == knobs["loss_agg_mode"]
    assert page.get_attribute(
        "#family-recipes button[data-recipe='trl-cispo']", "aria-pressed"
    ) == ("true")
    ui.wait_for("!document.getElementById('family-preset-info').hidden")
    info = page.text_content("#family-preset-info")
    assert conv["formula"] in info and conv["notes"] in info and conv["source"] in info
    ui.wait_for("document.getElementById('family-api').href.includes('cispo_clip=absolute')")
    href = page.get_attribute("#family-api", "href")
    assert f"epsilon_high={knobs['clip_ratio_high']:g}" in href
    # CISPO is highlighted, the rest dimmed; absolute: the weight is min(r, 5)·A, no lower clip.
    widths = page.evaluate(
        "() => Object.fromEntries(document.getElementById('family-chart').data"
        ".map(t => [t.uid, [t.line.width, t.opacity]]))"
    )
    assert widths["cispo-pos-gradient"] == [4, 1] and widths["vanilla-pos-gradient"][1] < 1
    cispo = trace(page, "cispo-pos-gradient")
    assert cispo["y"] == pytest.approx(cispo["x"])
    # Another recipe: verl's GSPO, with its tiny ε 3e-4 / 4e-4 read exactly off the log sliders.
    gspo = next(c for c in conventions if c["name"] == "verl-gspo")["knobs"]
    page.click("#family-recipes button[data-recipe='verl-gspo']")
    ui.wait_for("new URLSearchParams(location.search).get('fP') === 'verl-gspo'")
    assert float(page.text_content("#family-eps-low-out")) == gspo["clip_ratio_low"]
    assert float(page.text_content("#family-eps-high-out")) == gspo["clip_ratio_high"]
    assert page.input_value("#family-cispo-clip") == "band"
    # Reset puts every knob back and hides the recipe.
    page.click("#panel-family button[data-preset='reset']")
    ui.wait_for("location.search === ''")
    ui.wait_for("document.getElementById('family-preset-info').hidden")


def test_gspo_gates_the_whole_sequence_while_ppo_clips_tokens(page: Any, ui: Any) -> None:
    # Drift 0: the sequence ratio s = e^0 = 1 is inside [0.8, 1.2]; spread 0.3 puts tokens out.
    page.goto(page.base + "/?fD=0&fSp=0.3")
    ui.wait_all_rendered()
    ratios = bars(page, "family-chart-seq-ratio")
    tokens = ratios["token ratio r_t"]
    s = ratios["GSPO sequence ratio s"][0]
    assert len(tokens) == 12 and s == pytest.approx(1.0)
    # The bars start at 1 (base), so their y is r - 1.
    assert any(r + 1 > 1.2 for r in tokens) and any(0.8 <= r + 1 <= 1.2 for r in tokens)
    push = bars(page, "family-chart-seq-grad")
    assert all(g != 0 for g in push["GSPO"])
    assert len(set(round(g, 12) for g in push["GSPO"])) == 1  # the same push on every token
    assert any(g == 0 for g in push["PPO"]) and any(g != 0 for g in push["PPO"])
    readout = " ".join(page.text_content("#family-seq-readout").split())
    assert "every token gets a gradient" in readout
    # Drift past log(1.2): the whole sequence is outside, GSPO drops every token.
    set_range(page, "family-seq-drift", 0.3)
    ui.wait_for("new URLSearchParams(location.search).get('fD') === '0.3'")
    ui.wait_for("document.getElementById('family-chart-seq-grad').data[1].y.every(g => g === 0)")
    push = bars(page, "family-chart-seq-grad")
    assert any(g != 0 for g in push["PPO"])  # tokens pulled below 1.2 by the spread still count
    assert "no token gets any gradient" in page.text_content("#family-seq-readout")
    body = json.loads(page.text_content("#family-seq-body"))
    assert body["policy_loss_mode"] == "gspo" and body["advantages"] == [1]


def test_aggregation_weights_follow_the_lengths(page: Any, ui: Any) -> None:
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    weights = bars(page, "family-chart-agg-token")
    assert set(weights) == {
        "token-mean",
        "token-sum",
        "seq-mean-token-mean",
        "seq-mean-token-sum",
        "seq-mean-token-sum-norm",
    }
    # seq-mean-token-mean: 1 / (B·L), a 16-token answer's token counts 64 times a 1024-token one's.
    short, *_, long = weights["seq-mean-token-mean"]
    assert short / long == pytest.approx(64)
    assert len(set(weights["token-mean"])) == 1
    page.select_option("#family-agg-lengths", "100,200,400,800")
    ui.wait_for("new URLSearchParams(location.search).get('fL') === '100,200,400,800'")
    ui.wait_for(
        "document.getElementById('family-chart-agg-token').data[0].x.join() === '100,200,400,800'"
    )
    page.check("#family-agg-lsf-on")
    ui.wait_for("document.getElementById('family-agg-api').href.includes('loss_scale_factor=1024')")
    norm = bars(page, "family-chart-agg-token")["seq-mean-token-sum-norm"]
    assert norm == pytest.approx([1 / (4 * 1024)] * 4)


def test_state_survives_a_reload(page: Any, ui: Any, problems: Any) -> None:
    page.goto(page.base + "/")
    ui.wait_all_rendered()
    page.uncheck("#family-m-gpg")
    page.select_option("#family-range", "0.8-1.2")
    page.select_option("#family-seq-sign", "-1")
    set_range(page, "family-tau-neg", 2)
    ui.wait_for("new URLSearchParams(location.search).get('ftn') === '2'")
    ui.wait_for("document.getElementById('family-chart').layout.xaxis.range[0] === 0.8")
    # Every chart has caught up (a reload would abort a request still in flight).
    ui.wait_for("document.getElementById('family-api').href.includes('sapo_tau_neg=2&')")
    ui.wait_for(
        "JSON.parse(document.getElementById('family-seq-body').textContent).advantages[0] === -1"
    )
    url = page.url
    page.reload()
    ui.wait_all_rendered()
    # The reload may cut off the first load's favicon request: that abort is not a page fault.
    problems.items[:] = [
        p for p in problems.items if not p.endswith("favicon.svg net::ERR_ABORTED")
    ]
    assert page.url == url
    assert not page.is_checked("#family-m-gpg")
    assert page.input_value("#family-range") == "0.8-1.2"
    assert page.text_content("#family-tau-neg-out") == "2"
    ui.wait_for("document.getElementById('family-chart').layout.xaxis.range.join() === '0.8,1.2'")
    assert not any(u.startswith("gpg-") for u in uids(page))
    assert "sapo_tau_neg=2&" in page.get_attribute("#family-api", "href")
    body = json.loads(page.text_content("#family-seq-body"))
    assert body["advantages"] == [-1]
    page.go_back()  # the reload kept the history: back undoes the last change
    ui.wait_for("new URLSearchParams(location.search).get('ftn') === null")


def test_kl_gradient_chart_teaches_the_trap(page: Any, ui: Any) -> None:
    page.goto(page.base + "/?kD=2")
    ui.wait_all_rendered()
    ui.wait_for("document.getElementById('kl-chart-grad').data[0].x.slice(-1)[0] === 2")
    traces = page.evaluate(
        "() => Object.fromEntries(document.getElementById('kl-chart-grad').data"
        ".map(t => [t.name.split(' ')[0], Array.from(t.y)]))"
    )
    assert {"k1", "k2", "k3", "k3+", "abs", "true", "gradient"} <= set(traces)
    true = traces["true"]
    reverse = traces["gradient"]  # "gradient of reverse KL(...)"
    assert max(abs(g) for g in traces["k1"]) < 1e-9
    assert traces["k2"] == pytest.approx(true, abs=1e-9)
    assert traces["k3+"] == pytest.approx(true, abs=1e-9)
    assert traces["k3"] == pytest.approx(reverse, abs=1e-9)
    assert traces["k3"][-1] > true[-1] + 0.1  # the trap: k3 is not the true gradient
    assert page.get_attribute("#kl-grad-api", "href") == page.get_attribute("#kl-api", "href")
    # The older charts still draw.
    for chart in ("kl-chart-mean", "kl-chart-std"):
        assert page.evaluate(f"() => document.getElementById('{chart}').data.length") > 0


def test_family_fits_a_phone(page: Any, ui: Any) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(page.base + "/#panel-family")  # panels but the first start folded on a phone
    ui.wait_all_rendered()
    assert page.locator("#family-chart").is_visible()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"page scrolls sideways at 390 px ({width} px wide)"
    overflow = page.evaluate(
        "() => [...document.querySelectorAll('#panel-family *')]"
        ".filter(el => el.getBoundingClientRect().right > 390.5).map(el => el.id || el.tagName)"
    )
    assert overflow == []
    # The four subplots stack in one column; the side-by-side charts stack too.
    assert page.evaluate("() => document.getElementById('family-chart').layout.xaxis2.domain") == [
        0,
        1,
    ]
    boxes = page.evaluate(
        "() => ['family-chart-seq-ratio', 'family-chart-seq-grad']"
        ".map(id => document.getElementById(id).getBoundingClientRect().toJSON())"
    )
    assert boxes[1]["top"] >= boxes[0]["bottom"] - 1
    page.set_viewport_size({"width": 1280, "height": 844})
    ui.wait_for("document.getElementById('family-chart').layout.xaxis2.domain.join() === '0.54,1'")
