"""The run report ("Your training run") in headless Chromium: the example run's small multiples
on one step axis (a drag on one zooms all), its planted findings listed with links to the panels
that explain them and marked on their metric's chart, the meaning and formula of each metric, a
CSV upload, the format menu in the URL, refused files (the 422 next to the control, old results
cleared), the metrics not on the map, the self-contained HTML export opened offline from disk,
and a phone's width."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

PATH = "/api/v1/runs/report"
MAP = "/api/v1/runs/metric-map"
PLANTED = {"entropy_collapse", "kl_spike"}
EXAMPLE_UNMAPPED = ["perf/throughput", "timing_s/gen"]


def open_page(page: Any, ui: Any, query: str = "") -> None:
    page.goto(page.base + "/" + query)
    ui.wait_all_rendered()


def wait_report(page: Any, ui: Any, action: Any) -> None:
    """Do `action` and wait for the panel to draw the report it asked for."""
    count = ui.rendered("run")
    action()
    ui.wait_for(f"window.__ppo.rendered.run > {count}")


def load_example(page: Any, ui: Any) -> dict[str, Any]:
    """Load the example run in the page and return the API's report of the same file."""
    wait_report(page, ui, lambda: page.click("#run-example"))
    text = page.evaluate(
        "async () => (await import('/static/js/panels/run/example.js')).exampleRunText()"
    )
    answer = httpx.post(page.base + PATH, files={"file": ("example.jsonl", text.encode())})
    assert answer.status_code == 200, answer.text
    return answer.json()


def upload(page: Any, ui: Any, name: str, body: bytes, mime: str = "text/plain") -> None:
    page.set_input_files("#run-file", files=[{"name": name, "mimeType": mime, "buffer": body}])


def charts(page: Any) -> dict[str, Any]:
    """The drawn figure: metric traces, finding markers, axes and the subplot titles."""
    return page.evaluate(
        """() => {
          const gd = document.getElementById('run-charts');
          const L = gd.layout;
          const metrics = gd.data.filter(t => typeof t.meta === 'string');
          const marks = gd.data.filter(t => t.meta && t.meta.finding);
          const xaxes = Object.keys(L).filter(k => /^xaxis\\d*$/.test(k));
          return {
            metrics: metrics.map(t => ({name: t.meta, x: Array.from(t.x), xaxis: t.xaxis,
                                        yaxis: t.yaxis, hover: t.hovertemplate})),
            marks: marks.map(t => ({code: t.meta.finding, metric: t.meta.metric,
                                    x: Array.from(t.x), xaxis: t.xaxis})),
            xaxes: Object.fromEntries(xaxes.map(k => [k, L[k].matches || null])),
            domains: metrics.map(t => L['yaxis' + t.yaxis.slice(1)].domain),
            titles: (L.annotations || []).map(a => ({text: a.text, hover: a.hovertext})),
          };
        }"""
    )


def test_example_draws_one_subplot_per_metric_on_one_step_axis(page: Any, ui: Any) -> None:
    open_page(page, ui)
    api = load_example(page, ui)
    metric_map = httpx.get(page.base + MAP).json()
    shown = charts(page)
    names = [m["name"] for m in shown["metrics"]]
    # One subplot per metric the file has on the map, in the map's order.
    assert names == [n for n in metric_map["canonical"] if n in api["metrics"]]
    assert len(names) == len(api["metrics"]) >= 8
    axes = [m["xaxis"] for m in shown["metrics"]]
    assert len(set(axes)) == len(axes)  # one x axis per subplot ...
    assert shown["xaxes"]["xaxis"] is None
    assert all(shown["xaxes"][f"xaxis{a[1:]}"] == "x" for a in axes[1:])  # ... all matched
    assert axes[0] == "x"
    # The subplots are stacked: their y domains do not overlap.
    domains = sorted(shown["domains"], key=lambda d: d[0])
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(domains))
    for metric in shown["metrics"]:
        assert metric["x"] == api["metrics"][metric["name"]]["steps"]
        # The hover says what the metric means and how it is computed.
        info = metric_map["canonical"][metric["name"]]
        assert info["meaning"].split()[0] in metric["hover"], metric["name"]
    for title, name in zip(shown["titles"], names, strict=True):
        assert name in title["text"] and api["metrics"][name]["source"] in title["text"]
        assert metric_map["canonical"][name]["meaning"].split()[0] in title["hover"]
    assert "verl_jsonl" in page.text_content("#run-status")
    assert page.is_enabled("#run-export")


def test_a_drag_on_one_chart_zooms_them_all(page: Any, ui: Any) -> None:
    open_page(page, ui)
    load_example(page, ui)
    ranges = (
        "() => { const fl = document.getElementById('run-charts')._fullLayout;"
        " return Object.keys(fl).filter(k => /^xaxis\\d*$/.test(k))"
        ".map(k => fl[k].range.map(v => Math.round(v * 1000) / 1000)); }"
    )
    before = page.evaluate(ranges)
    assert len({tuple(r) for r in before}) == 1
    page.locator("#run-charts").scroll_into_view_if_needed()
    box = page.evaluate(
        """() => {
          const gd = document.getElementById('run-charts');
          const fl = gd._fullLayout, r = gd.getBoundingClientRect();
          const xa = fl.xaxis3, ya = fl.yaxis3;
          return {x0: r.left + xa._offset + 0.3 * xa._length,
                  x1: r.left + xa._offset + 0.6 * xa._length,
                  y: r.top + ya._offset + 0.5 * ya._length};
        }"""
    )
    page.mouse.move(box["x0"], box["y"])
    page.mouse.down()
    page.mouse.move(box["x1"], box["y"], steps=8)
    page.mouse.up()
    ui.wait_for(f"({ranges})()[0][1] !== {before[0][1]}")
    after = page.evaluate(ranges)
    assert len({tuple(r) for r in after}) == 1, after  # every subplot shows the same steps
    assert after[0][1] - after[0][0] < 0.5 * (before[0][1] - before[0][0])


def test_planted_findings_are_listed_linked_and_marked(page: Any, ui: Any) -> None:
    open_page(page, ui)
    api = load_example(page, ui)
    assert {f["code"] for f in api["findings"]} >= PLANTED
    items = page.evaluate(
        """() => [...document.querySelectorAll('#run-findings li.finding')].map(li => ({
          code: li.dataset.code, cls: li.className, text: li.textContent,
          href: li.querySelector('a') && li.querySelector('a').getAttribute('href')}))"""
    )
    assert [i["code"] for i in items] == [f["code"] for f in api["findings"]]
    for item, finding in zip(items, api["findings"], strict=True):
        assert f"sev-{finding['severity']}" in item["cls"]
        assert finding["message"] in item["text"]
        assert f"step {finding['step']}" in item["text"]
        assert item["href"] == f"#panel-{finding['panel']}"
        assert page.locator(item["href"]).count() == 1, item["href"]  # a panel that exists
    # Each finding is marked at its step on its own metric's subplot.
    shown = charts(page)
    axis_of = {m["name"]: m["xaxis"] for m in shown["metrics"]}
    marks = {m["code"]: m for m in shown["marks"]}
    for finding in api["findings"]:
        if finding["code"] not in PLANTED:
            continue
        mark = marks[finding["code"]]
        assert mark["metric"] == finding["metric"]
        assert mark["xaxis"] == axis_of[finding["metric"]]
        assert mark["x"] == [finding["step"]]
    lines = page.evaluate(
        "() => document.getElementById('run-charts').layout.shapes.map(s => [s.xref, s.x0])"
    )
    kl = next(f for f in api["findings"] if f["code"] == "kl_spike")
    assert [axis_of[kl["metric"]], kl["step"]] in lines
    # The link takes the reader to the panel that teaches the idea.
    page.click("#run-findings li[data-code='kl_spike'] a")
    ui.wait_for(f"location.hash === '#panel-{kl['panel']}'")


def test_metric_table_and_unmapped_names(page: Any, ui: Any) -> None:
    open_page(page, ui)
    api = load_example(page, ui)
    metric_map = httpx.get(page.base + MAP).json()
    rows = page.evaluate(
        """() => [...document.querySelectorAll('#run-metrics tbody tr')].map(r => ({
          key: r.dataset.key, text: r.textContent,
          href: r.querySelector('a') && r.querySelector('a').getAttribute('href')}))"""
    )
    assert [r["key"] for r in rows] == [n for n in metric_map["canonical"] if n in api["metrics"]]
    for row in rows:
        info = metric_map["canonical"][row["key"]]
        assert info["meaning"] in row["text"] and info["formula"] in row["text"]
        assert api["metrics"][row["key"]]["source"] in row["text"]
        assert row["href"] == f"#panel-{info['panel']}"
        assert page.locator(row["href"]).count() == 1
    unmapped = page.evaluate(
        "() => [...document.querySelectorAll('#run-unmapped li[data-name]')]"
        ".map(li => li.textContent)"
    )
    assert unmapped == api["unmapped"] == EXAMPLE_UNMAPPED


def test_csv_upload_draws_its_metrics(page: Any, ui: Any) -> None:
    lines = ["step,loss,entropy,kl,reward,my_custom_metric"]
    lines += [
        f"{s},{0.5 - 0.01 * s:.3f},{1.0 - 0.005 * s:.3f},{0.01 + 0.001 * s:.4f},{0.1 * s:.2f},{s}"
        for s in range(1, 31)
    ]
    body = ("\n".join(lines) + "\n").encode()
    api = httpx.post(page.base + PATH, files={"file": ("run.csv", body)}).json()
    assert api["format"] == "csv" and len(api["metrics"]) >= 3
    open_page(page, ui)
    wait_report(page, ui, lambda: upload(page, ui, "run.csv", body, "text/csv"))
    shown = charts(page)
    assert sorted(m["name"] for m in shown["metrics"]) == sorted(api["metrics"])
    for metric in shown["metrics"]:
        assert metric["x"] == list(range(1, 31))
    assert "run.csv" in page.text_content("#run-file-list")
    assert "csv, 30 steps" in page.text_content("#run-status")
    unmapped = page.evaluate(
        "() => [...document.querySelectorAll('#run-unmapped li[data-name]')]"
        ".map(li => li.textContent)"
    )
    assert unmapped == api["unmapped"] and "my_custom_metric" in unmapped
    # The format menu is in the URL, and a change re-reads the same file.
    wait_report(page, ui, lambda: page.select_option("#run-format", "csv"))
    assert "rFmt=csv" in page.url
    assert "format=csv" in page.text_content("#run-api")
    open_page(page, ui, "?rFmt=csv")
    assert page.input_value("#run-format") == "csv"


def test_a_refused_file_shows_the_error_and_clears_the_results(
    page: Any, ui: Any, problems: Any
) -> None:
    problems.allowed_statuses.add(422)
    open_page(page, ui)
    load_example(page, ui)
    assert len(charts(page)["metrics"]) >= 8
    upload(page, ui, "notes.txt", b"just some notes\nnothing to plot here\n")
    ui.wait_for("!document.getElementById('run-file-error').hidden")
    message = page.text_content("#run-file-error")
    for name in ("verl_jsonl", "verl_console", "trl_state", "tensorboard", "csv"):
        assert name in message, message
    # Next to the file input, and the old report is gone.
    assert page.locator("#run-drop #run-file-error").count() == 1
    ui.wait_for("document.getElementById('run-charts').hidden")
    assert "No run loaded yet" in page.text_content("#run-findings")
    assert page.locator("#run-unmapped li[data-name]").count() == 0
    assert page.locator("#run-metrics tbody tr[data-key]").count() == 0
    assert page.is_disabled("#run-export")
    assert page.locator("#panel-run .panel-error").is_hidden()
    # A broken line: its number is named; a good file afterwards clears the error.
    broken = b'{"step": 1, "data": {"actor/entropy": 1.0}}\n{"step": 2, "data": \n'
    upload(page, ui, "broken.jsonl", broken)
    ui.wait_for("document.getElementById('run-file-error').textContent.includes('line 2')")
    load_example(page, ui)
    assert page.locator("#run-file-error").is_hidden()
    assert len(charts(page)["metrics"]) >= 8
    # The browser logs a failed (4xx) fetch on the console: those are expected here.
    problems.items[:] = [p for p in problems.items if "422" not in p]


def test_export_is_one_html_file_that_opens_offline(
    page: Any, ui: Any, browser: Any, tmp_path: Path
) -> None:
    open_page(page, ui)
    api = load_example(page, ui)
    with page.expect_download() as info:
        page.click("#run-export")
    download = info.value
    assert download.suggested_filename == "run-report-example-verl-run.html"
    path = tmp_path / download.suggested_filename
    download.save_as(str(path))
    html = path.read_text(encoding="utf-8")
    assert "Plotly" in html and len(html) > 1_000_000  # plotly.js is inlined
    external = re.findall(
        r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//",
        html,
        re.I,
    )
    assert external == []
    assert "<script src" not in html and "<link " not in html
    for finding in api["findings"]:
        assert finding["code"] in html
    assert "verl_jsonl" in html and "example-verl-run.jsonl" in html
    # Opened from disk with every network request refused, it draws the charts.
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    offline = context.new_page()
    seen: list[str] = []
    offline.on("console", lambda m: seen.append(m.text) if m.type == "error" else None)
    offline.on("pageerror", lambda e: seen.append(str(e)))
    requested: list[str] = []

    def only_files(route: Any) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            requested.append(route.request.url)
            route.abort()

    offline.route("**/*", only_files)
    try:
        offline.goto(path.as_uri())
        deadline_js = "document.querySelectorAll('#charts.js-plotly-plot .main-svg').length > 0"
        for _ in range(200):
            if offline.evaluate(f"() => {deadline_js}"):
                break
            offline.wait_for_timeout(50)
        assert offline.locator(".js-plotly-plot").count() == 1
        traces = offline.evaluate(
            "() => document.getElementById('charts').data.filter(t => typeof t.meta === 'string')"
            ".map(t => t.meta)"
        )
        assert sorted(traces) == sorted(api["metrics"])
        assert offline.evaluate(
            "() => document.querySelectorAll('#charts .subplot').length"
        ) == len(api["metrics"])
        assert "kl_spike" in offline.text_content("ul.findings")
        assert seen == [] and requested == []
    finally:
        context.close()


def test_run_panel_fits_a_phone(page: Any, ui: Any, artifacts: Path) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    open_page(page, ui, "#panel-run")  # panels but the first start folded on a phone
    load_example(page, ui)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"page scrolls sideways at 390 px ({width} px wide)"
    page.locator("#panel-run").screenshot(path=str(artifacts / "run-390.png"))
