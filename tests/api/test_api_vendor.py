"""The vendored plotly.js partial bundle: the version recorded beside it, the version in its
header and the plotly.js version of the installed Python `plotly` package agree; its licence
ships with it; the page links it and it is served compressed with a long cache."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import plotly
from fastapi.testclient import TestClient

from app.routes import page

HEADER = re.compile(r"plotly\.js(?: \(cartesian - minified\))? v(\d+\.\d+\.\d+)")


def header_version(path: Path) -> str:
    head = path.read_bytes()[:300].decode()
    match = HEADER.search(head)
    assert match, head
    return match.group(1)


def test_vendored_bundle_matches_its_recorded_version_and_the_python_package() -> None:
    recorded = (page.PLOTLY_DIR / "VERSION").read_text().strip()
    assert header_version(page.PLOTLY_JS) == recorded
    assert "(cartesian - minified)" in page.PLOTLY_JS.read_bytes()[:200].decode()
    python_side = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert header_version(python_side) == recorded, (
        "the vendored partial bundle and the Python plotly package ship different plotly.js "
        "versions: npm pack plotly.js-cartesian-dist-min@<the Python package's version>"
    )
    assert page.PLOTLY_URL.endswith(f"/plotly-cartesian-{recorded}.min.js")


def test_the_licence_and_the_note_ship_with_the_bundle() -> None:
    licence = (page.PLOTLY_DIR / "LICENSE").read_text()
    assert "MIT License" in licence or "Permission is hereby granted" in licence
    assert "Plotly" in licence
    note = (page.PLOTLY_DIR / "README.md").read_text()
    assert "plotly.js-cartesian-dist-min" in note and page.PLOTLY_VERSION in note


def test_the_page_loads_the_partial_bundle_compressed_and_cached(client: TestClient) -> None:
    html = client.get("/").text
    assert f'src="{page.PLOTLY_URL}"' in html
    assert "plotly.min.js" not in html
    response = client.get(page.PLOTLY_URL, headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["content-type"].startswith("text/javascript")
    # httpx decoded it: the vendored bundle behind V8's one-line compile hint
    assert response.content == page.PLOTLY_COMPILE_HINT + page.PLOTLY_JS.read_bytes()
    compressed = page.plotly_asset().gzipped
    assert len(compressed) < 600_000
    served = page.PLOTLY_COMPILE_HINT + page.PLOTLY_JS.read_bytes()  # the bundle, unchanged
    assert gzip.decompress(compressed) == served
    again = client.get(page.PLOTLY_URL, headers={"if-none-match": response.headers["etag"]})
    assert again.status_code == 304
    raw = client.get(page.PLOTLY_URL, headers={"accept-encoding": "identity"})
    assert "content-encoding" not in raw.headers and raw.content == served
