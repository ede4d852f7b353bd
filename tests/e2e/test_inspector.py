"""The batch inspector ("Analyze your batch") in headless Chromium: findings with links to the
panels that teach them, the token heatmap and its hover, row sorting, the rollout threshold
slider, .safetensors uploads, every preset in the menu, errors next to the Analyze button that
clear stale results, and "not provided" instead of 0 for what was not sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from safetensors.numpy import save

pytestmark = pytest.mark.e2e

PATH = "/api/v1/analyze"
BROKEN_CODES = {
    "log_ratio_extreme",
    "ratio_off_one_first_epoch",
    "approx_kl_high",
    "rollout_mismatch",
    "zero_std_groups",
}


def run(page: Any, ui: Any) -> None:
    """Press Analyze and wait for the panel to draw the answer."""
    count = ui.rendered("analyze")
    page.click("#analyze-run")
    ui.wait_for(f"window.__ppo.rendered.analyze > {count}")


def analyze_example(page: Any, ui: Any, button: str = "analyze-example") -> dict[str, Any]:
    """Load an example into the JSON box, analyze it in the page, and return the API's answer
    to the same body."""
    page.click(f"#{button}")
    run(page, ui)
    return httpx.post(page.base + PATH, json=sent_body(page)).json()


def sent_body(page: Any, **extra: Any) -> dict[str, Any]:
    body = json.loads(page.input_value("#analyze-json"))
    return {**body, "convention": page.input_value("#analyze-conv"), **extra}


def open_page(page: Any, ui: Any, query: str = "") -> None:
    page.goto(page.base + "/" + query)
    ui.wait_all_rendered()


def heatmap(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => {
          const gd = document.getElementById('analyze-heatmap');
          const t = gd.data[0];
          return {type: t.type, x: t.x, y: t.y, z: t.z, custom: t.customdata, zmin: t.zmin,
                  zmax: t.zmax, hover: t.hovertemplate, ticks: gd.layout.yaxis.ticktext,
                  marks: gd.data.slice(1).map(m => ({state: m.meta, x: m.x, y: m.y}))};
        }"""
    )


def breakdown_shown(page: Any) -> dict[str, str]:
    return page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('#analyze-breakdown tr[data-key]')]"
        ".map(r => [r.dataset.key, r.cells[1].textContent.trim()]))"
    )


def test_example_draws_the_heatmap_with_its_numbers(page: Any, ui: Any) -> None:
    open_page(page, ui)
    api = analyze_example(page, ui)
    tv = api["token_view"]
    shown = heatmap(page)
    width = len(tv["ratio"][0])
    assert shown["type"] == "heatmap"
    assert len(shown["z"]) == len(tv["rows"]) == 4
    assert all(len(row) == width for row in shown["z"]) and width == 8
    assert shown["x"] == [tv["starts"][0] + j for j in range(width)]
    # Rows are labelled by their original index and length, in the API's order by default.
    assert shown["ticks"] == [
        f"#{r} · {n} tok" for r, n in zip(tv["rows"], tv["lengths"], strict=True)
    ]
    # Colour = gradient on a symmetric scale; padding has no value (drawn grey).
    assert shown["zmin"] == -shown["zmax"] and shown["zmax"] > 0
    for k, i in enumerate(range(len(tv["rows"]))):
        for j in range(width):
            cell = shown["custom"][k][j]
            if not tv["mask"][i][j]:
                assert shown["z"][k][j] is None
                continue
            assert shown["z"][k][j] == pytest.approx(tv["gradient"][i][j])
            assert cell[:4] == pytest.approx(
                [tv["ratio"][i][j], tv["loss"][i][j], tv["advantage"][i][j], tv["gradient"][i][j]]
            )
            assert cell[4] == tv["states"][tv["state"][i][j]]
            assert cell[5] == pytest.approx(tv["rollout_weight"][i][j])
            assert cell[6:] == [tv["rows"][i], tv["starts"][i] + j]
    # Clipped tokens are marked where the API says.
    clipped = {
        (tv["starts"][i] + j, i)
        for i in range(len(tv["rows"]))
        for j in range(width)
        if tv["states"][tv["state"][i][j]] in ("clipped_low", "clipped_high")
    }
    marked = {(x, y) for m in shown["marks"] for x, y in zip(m["x"], m["y"], strict=True)}
    assert clipped and clipped <= marked
    # A real hover over a valid cell names every number.
    page.locator("#analyze-heatmap").scroll_into_view_if_needed()
    point = page.evaluate(
        """() => {
          const gd = document.getElementById('analyze-heatmap');
          const fl = gd._fullLayout, box = gd.getBoundingClientRect();
          return {x: box.left + fl._size.l + fl.xaxis.l2p(1),
                  y: box.top + fl._size.t + fl.yaxis.l2p(0)};
        }"""
    )
    page.mouse.move(point["x"], point["y"])
    ui.wait_for("document.querySelector('#analyze-heatmap .hovertext') !== null")
    label = page.text_content("#analyze-heatmap .hovertext")
    for word in ("ratio", "loss", "advantage", "gradient", "state", "rollout weight"):
        assert word in label, label
    i = 0
    assert f"row {tv['rows'][i]}, token {tv['starts'][i] + 1}" in label
    assert f"{tv['ratio'][i][1]:.4g}" in label


def test_broken_batch_shows_its_findings_with_links(page: Any, ui: Any) -> None:
    open_page(page, ui)
    api = analyze_example(page, ui, "analyze-example-broken")
    assert {f["code"] for f in api["findings"]} == BROKEN_CODES
    items = page.evaluate(
        """() => [...document.querySelectorAll('#analyze-findings li.finding')].map(li => ({
          code: li.dataset.code, cls: li.className, text: li.textContent,
          href: li.querySelector('a') && li.querySelector('a').getAttribute('href')}))"""
    )
    assert [item["code"] for item in items] == [f["code"] for f in api["findings"]]
    for item, finding in zip(items, api["findings"], strict=True):
        assert f"sev-{finding['severity']}" in item["cls"]
        assert finding["message"] in item["text"]
        assert "vs threshold" in item["text"]
        assert item["href"] == f"#panel-{finding['panel']}"
        assert page.locator(item["href"]).count() == 1, item["href"]  # a panel that exists
    # The findings come first in the results, before the loss breakdown.
    assert page.evaluate(
        "() => !!(document.getElementById('analyze-findings').compareDocumentPosition("
        "document.getElementById('analyze-breakdown')) & Node.DOCUMENT_POSITION_FOLLOWING)"
    )
    # The link takes the learner to the panel that teaches it.
    page.click("#analyze-findings li[data-code='log_ratio_extreme'] a")
    ui.wait_for("location.hash === '#panel-clip'")
    # The batch asked for 2 micro-batches: the accumulation table shows where token-mean breaks.
    assert page.locator("#analyze-micro-wrap").is_visible()
    modes = api["microbatch"]["modes"]
    broken = page.text_content("#analyze-micro-table tr[data-key='token-mean']")
    assert "breaks" in broken and modes["token-mean"]["gradient_relative_error"] > 0
    assert "matches" in page.text_content("#analyze-micro-table tr[data-key='seq-mean-token-mean']")
    assert "5 findings" in page.text_content("#analyze-status")


def test_clean_example_says_no_findings(page: Any, ui: Any) -> None:
    open_page(page, ui)
    api = analyze_example(page, ui)
    assert api["findings"] == []
    assert page.locator("#analyze-findings li.finding").count() == 0
    assert "No findings" in page.text_content("#analyze-findings")


def test_sorting_reorders_the_rows(page: Any, ui: Any) -> None:
    open_page(page, ui)
    api = analyze_example(page, ui)
    tv = api["token_view"]
    before = heatmap(page)
    page.select_option("#analyze-sort", "length")
    ui.wait_for(
        "document.getElementById('analyze-heatmap').layout.yaxis.ticktext[0] === '#0 · 8 tok'"
    )
    after = heatmap(page)
    by_length = sorted(range(len(tv["rows"])), key=lambda i: -tv["lengths"][i])
    assert after["ticks"] == [f"#{tv['rows'][i]} · {tv['lengths'][i]} tok" for i in by_length]
    assert after["ticks"] != before["ticks"]
    # The cells move with their labels.
    for k, i in enumerate(by_length):
        assert after["custom"][k][0][6] == tv["rows"][i]
    page.select_option("#analyze-sort", "loss")
    totals = [
        sum(x for x, m in zip(row, mask, strict=True) if m)
        for row, mask in zip(tv["loss"], tv["mask"], strict=True)
    ]
    by_loss = sorted(range(len(tv["rows"])), key=lambda i: -totals[i])
    want = [f"#{tv['rows'][i]} · {tv['lengths'][i]} tok" for i in by_loss]
    text = json.dumps(json.dumps(want, ensure_ascii=False, separators=(",", ":")))
    ticks = "JSON.stringify(document.getElementById('analyze-heatmap').layout.yaxis.ticktext)"
    ui.wait_for(f"{ticks} === {text}")


def test_rollout_threshold_slider(page: Any, ui: Any) -> None:
    open_page(page, ui)
    api = analyze_example(page, ui, "analyze-example-broken")
    rc = api["rollout_correction"]
    assert rc["threshold"] == 2 and rc["metrics"]["truncated_fraction"] > 0
    line = "() => document.getElementById('analyze-rollout-hist').layout.shapes[0].x0"
    assert page.evaluate(line) == 2
    share = page.text_content("#analyze-share")
    assert f"{100 * rc['metrics']['truncated_fraction']:.1f}%" in share
    bars = page.evaluate("() => document.getElementById('analyze-rollout-hist').data[0].y")
    assert list(bars) == rc["histogram"]["counts"]
    # Dragging moves the line and the share at once, without a request.
    count = ui.rendered("analyze")
    page.evaluate(
        """() => { const s = document.getElementById('analyze-threshold');
                   s.value = '1.5'; s.dispatchEvent(new Event('input', {bubbles: true})); }"""
    )
    ui.wait_for(f"({line})() === 1.5")
    dragged = page.text_content("#analyze-share")
    assert dragged != share and "C = 1.5" in dragged and "≈" in dragged
    assert page.text_content("#analyze-threshold-out") == "1.5"
    assert ui.rendered("analyze") == count
    # Releasing re-runs the analysis with that threshold: the exact share replaces the estimate.
    page.evaluate(
        "() => document.getElementById('analyze-threshold').dispatchEvent(new Event('change'))"
    )
    ui.wait_for(f"window.__ppo.rendered.analyze > {count}")
    exact = httpx.post(page.base + PATH, json=sent_body(page, rollout_is_threshold=1.5)).json()
    fraction = exact["rollout_correction"]["metrics"]["truncated_fraction"]
    assert fraction > rc["metrics"]["truncated_fraction"]
    text = page.text_content("#analyze-share")
    assert f"{100 * fraction:.1f}% of valid tokens truncated" in text and "≈" not in text
    assert page.input_value("#analyze-threshold") == "1.5"
    assert "rollout_is_threshold=1.5" in page.text_content("#analyze-api")


def test_safetensors_upload_matches_the_json(page: Any, ui: Any, tmp_path: Path) -> None:
    open_page(page, ui)
    api = analyze_example(page, ui)
    from_json = breakdown_shown(page)
    body = json.loads(page.input_value("#analyze-json"))
    arrays = {
        key: np.asarray(value, dtype=np.int64 if key == "mask" else np.float64)
        for key, value in body.items()
        if isinstance(value, list)
    }
    path = tmp_path / "batch.safetensors"
    path.write_bytes(save(arrays))
    page.set_input_files("#analyze-files", str(path))
    ui.wait_for(
        "document.getElementById('analyze-file-list').textContent.includes('batch.safetensors')"
    )
    run(page, ui)
    assert "1 file" in page.text_content("#analyze-status")
    assert breakdown_shown(page) == from_json
    assert float(from_json["total_loss"]) == pytest.approx(api["breakdown"]["total_loss"], rel=1e-4)
    assert page.locator("#analyze-findings li.finding").count() == 0


def test_a_bad_batch_shows_the_error_and_clears_the_results(
    page: Any, ui: Any, problems: Any
) -> None:
    problems.allowed_statuses.add(422)
    open_page(page, ui)
    analyze_example(page, ui)
    assert page.locator("#analyze-breakdown tr[data-key='total_loss']").count() == 1
    # Editing the input marks the shown results as stale at once.
    page.fill("#analyze-json", '{"logprobs": [[0.1, 0.2]], "old_logprobs": ')
    assert page.locator("#analyze-stale").is_visible()
    assert "is-stale" in page.get_attribute("#analyze-out", "class")
    # JSON that does not parse: the message sits next to the button, the results are cleared.
    page.click("#analyze-run")
    ui.wait_for("!document.getElementById('analyze-error').hidden")
    assert page.locator("#analyze-run + #analyze-error").count() == 1
    assert "does not parse" in page.text_content("#analyze-error")
    cleared = (
        "document.querySelectorAll('#analyze-breakdown tr[data-key]').length === 0 && "
        "document.getElementById('analyze-heatmap').hidden"
    )
    ui.wait_for(cleared)
    assert page.is_disabled("#analyze-download-json")
    assert not page.locator("#analyze-stale").is_visible()
    # A batch the API refuses (422): its message, naming the field, next to the button.
    analyze_example(page, ui)
    assert page.locator("#analyze-error").is_hidden()
    bad = {"logprobs": [[0.1, 0.2]], "old_logprobs": [[0.0]], "advantages": [[1.0, 1.0]]}
    page.fill("#analyze-json", json.dumps(bad))
    page.click("#analyze-run")
    ui.wait_for("!document.getElementById('analyze-error').hidden")
    assert "old_logprobs" in page.text_content("#analyze-error")
    ui.wait_for(cleared)
    assert "No batch analyzed yet" in page.text_content("#analyze-findings")
    assert page.locator("#panel-analyze .panel-error").is_hidden()
    # The browser logs a failed (4xx) fetch on the console: that one is expected here.
    problems.items[:] = [p for p in problems.items if "422" not in p]


def test_missing_fields_read_not_provided(page: Any, ui: Any) -> None:
    open_page(page, ui)
    api = analyze_example(page, ui)
    assert api["breakdown"]["entropy"] == 0  # what the API counts; the page says why
    entropy = "#analyze-breakdown tr[data-key='entropy'] td"
    assert page.text_content(entropy).startswith("not provided")
    assert page.text_content("#analyze-diagnostics tr[data-key='kl_to_reference'] td").startswith(
        "not provided"
    )
    assert float(
        page.text_content("#analyze-diagnostics tr[data-key='explained_variance'] td")
    ) == (pytest.approx(api["diagnostics"]["explained_variance"], abs=1e-4))
    # Every diagnostic has a label and a meaning, not just its snake_case key.
    rows = page.evaluate(
        "() => [...document.querySelectorAll('#analyze-diagnostics tr[data-key]')].map(r => "
        "[r.dataset.key, r.cells[0].textContent, r.cells[2].textContent])"
    )
    assert {key for key, _, _ in rows} == set(api["diagnostics"])
    for key, label, meaning in rows:
        assert label.replace(key, "").strip() and len(meaning) > 20, key
    # With entropy sent, the number shows.
    body = json.loads(page.input_value("#analyze-json"))
    body["entropy"] = [[0.5 + 0.1 * j for j in range(8)] for _ in range(4)]
    page.fill("#analyze-json", json.dumps(body))
    run(page, ui)
    value = httpx.post(page.base + PATH, json=sent_body(page)).json()["breakdown"]["entropy"]
    assert float(page.text_content(entropy)) == pytest.approx(value, rel=1e-4)
    # The broken batch has no values: the value loss is not provided either.
    analyze_example(page, ui, "analyze-example-broken")
    value_loss = "#analyze-breakdown tr[data-key='value_loss'] td"
    assert page.text_content(value_loss).startswith("not provided")


def test_every_preset_is_in_the_menu_and_the_table(page: Any, ui: Any) -> None:
    names = [c["name"] for c in httpx.get(page.base.rstrip("/") + "/api/v1/conventions").json()]
    open_page(page, ui, "?aConv=verl-gspo")
    options = page.evaluate(
        "() => [...document.getElementById('analyze-conv').options].map(o => o.value)"
    )
    assert sorted(options) == sorted(names)  # grouped by library in the menu
    assert page.input_value("#analyze-conv") == "verl-gspo"  # restored once the menu filled
    api = analyze_example(page, ui)
    assert api["convention"]["name"] == "verl-gspo"
    rows = page.evaluate(
        "() => [...document.querySelectorAll('#analyze-conventions tbody tr')]"
        ".map(r => r.dataset.key)"
    )
    assert rows == [p["name"] for p in api["conventions"]["presets"]]
    assert "current" in page.get_attribute("#analyze-conventions tr[data-key='verl-gspo']", "class")
    cleanrl = next(p for p in api["conventions"]["presets"] if p["name"] == "cleanrl")
    text = page.text_content("#analyze-conventions tr[data-key='cleanrl']")
    assert cleanrl["clip_fraction_metric"] in text and cleanrl["approx_kl_metric"] in text
    # The aggregation chart: one line per mode, weights against lengths.
    agg = page.evaluate(
        "() => document.getElementById('analyze-agg-chart').data.map(t => [t.name, t.x, t.y])"
    )
    assert [a[0] for a in agg] == list(api["aggregation"]["modes"])
    for name, x, y in agg:
        assert list(x) == api["aggregation"]["lengths"]
        assert list(y) == pytest.approx(api["aggregation"]["modes"][name]["sequence_weight"])


def test_options_rerun_the_batch(page: Any, ui: Any) -> None:
    open_page(page, ui)
    analyze_example(page, ui)
    assert page.locator("#analyze-micro-wrap").is_hidden()
    count = ui.rendered("analyze")
    page.fill("#analyze-micro", "2")
    page.evaluate(
        "() => document.getElementById('analyze-micro').dispatchEvent(new Event('change'))"
    )
    ui.wait_for(f"window.__ppo.rendered.analyze > {count}")
    ui.wait_for("!document.getElementById('analyze-micro-wrap').hidden")
    assert page.locator("#analyze-micro-table tbody tr").count() == 5
    assert "micro_batches=2" in page.text_content("#analyze-api")
    count = ui.rendered("analyze")
    page.check("#analyze-first-epoch")
    ui.wait_for(f"window.__ppo.rendered.analyze > {count}")
    ui.wait_for(
        "!!document.querySelector(\"#analyze-findings li[data-code='ratio_off_one_first_epoch']\")"
    )
    assert "aFirst=true" in page.url


def test_downloads(page: Any, ui: Any) -> None:
    open_page(page, ui)
    api = analyze_example(page, ui, "analyze-example-broken")
    with page.expect_download() as info:
        page.click("#analyze-download-csv")
    csv = Path(info.value.path()).read_text()
    assert csv.startswith("section,key,value\n") and "breakdown,total_loss," in csv
    assert "findings,log_ratio_extreme," in csv
    with page.expect_download() as info:
        page.click("#analyze-download-json")
    data = json.loads(Path(info.value.path()).read_text())
    assert [f["code"] for f in data["findings"]] == [f["code"] for f in api["findings"]]


def test_inspector_fits_a_phone(page: Any, ui: Any, artifacts: Path) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    open_page(page, ui, "#panel-analyze")  # panels but the first start folded on a phone
    analyze_example(page, ui, "analyze-example-broken")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"page scrolls sideways at 390 px ({width} px wide)"
    page.locator("#panel-analyze").screenshot(path=str(artifacts / "inspector-390.png"))


def test_applied_rollout_correction_marks_the_tokens(page: Any, ui: Any) -> None:
    open_page(page, ui)
    analyze_example(page, ui, "analyze-example-broken")
    for control, value in (("#analyze-ris-level", "token"), ("#analyze-ris-mode", "mask")):
        count = ui.rendered("analyze")
        page.select_option(control, value)
        ui.wait_for(f"window.__ppo.rendered.analyze > {count}")
    api = httpx.post(
        page.base + PATH, json=sent_body(page, rollout_is_level="token", rollout_is_mode="mask")
    ).json()
    rc = api["rollout_correction"]
    assert rc["applied"] and rc["mode"] == "mask"
    tv = api["token_view"]
    masked = sum(
        tv["states"][s] == "rollout_masked"
        for row, m in zip(tv["state"], tv["mask"], strict=True)
        for s, v in zip(row, m, strict=True)
        if v
    )
    assert masked > 0
    marks = {m["state"]: len(m["x"]) for m in heatmap(page)["marks"]}
    assert marks.get("rollout_masked") == masked
    # Masking keeps [C_low, C]: both bounds are drawn, and the share says what was dropped.
    lines = page.evaluate(
        "() => document.getElementById('analyze-rollout-hist').layout.shapes.map(s => s.x0)"
    )
    assert lines == [pytest.approx(2.0), pytest.approx(0.5)]
    text = page.text_content("#analyze-share")
    assert f"{100 * rc['metrics']['masked_fraction']:.1f}% of valid tokens masked" in text
    assert "applied to the loss" in text
    assert float(page.text_content("#analyze-breakdown tr[data-key='policy_loss'] td")) == (
        pytest.approx(api["breakdown"]["policy_loss"], rel=1e-4)
    )
