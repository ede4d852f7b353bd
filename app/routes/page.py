"""The explorer page, its static assets, and plotly.js.

The page draws with plotly.js's cartesian partial bundle (scatter, bar, histogram, heatmap, ...:
1.5 MB against 4.8 MB for the full one), vendored under static/vendor/ from npm's
`plotly.js-cartesian-dist-min` at the plotly.js version of the installed Python `plotly` package
(a test keeps the two equal). It is read once, gzip-compressed once (about 0.5 MB), and served
under a versioned URL with a year-long immutable cache, an ETag, and the raw bytes for clients
that do not accept gzip. Nothing is ever fetched from a CDN.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from app import __version__
from ppo_core import lab

# The page ships inside the package (package data of the wheel): found where `app` is
# installed, never relative to a source checkout.
TEMPLATES_DIR = Path(str(importlib.resources.files("app") / "templates"))
STATIC_DIR = Path(str(importlib.resources.files("app") / "static"))
PLOTLY_DIR = STATIC_DIR / "vendor" / "plotly.js-cartesian-dist-min"
PLOTLY_JS = PLOTLY_DIR / "plotly-cartesian.min.js"
PLOTLY_VERSION = (PLOTLY_DIR / "VERSION").read_text().strip()
PLOTLY_URL = f"/vendor/plotly-cartesian-{PLOTLY_VERSION}.min.js"
# Swagger UI 5 (it reads OpenAPI 3.1) from the fastapi-offline package's static files.
SWAGGER_DIR = Path(str(importlib.resources.files("fastapi_offline") / "static"))

templates = Jinja2Templates(directory=TEMPLATES_DIR)


def _plain(values: dict[str, float | int | None]) -> dict[str, float | int | None]:
    """Whole floats as ints, so the page shows ``20``, not ``20.0``."""
    return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in values.items()}


LAB_DEFAULTS = _plain(asdict(lab.PRESETS["default"]))
"""The lab sliders' starting values: ppo_core's "default" preset (the one source of presets)."""
LAB_LIMITS = _plain(
    {
        "lr": lab.MAX_LR,
        "epochs": lab.MAX_EPOCHS,
        "batch_min": lab.MIN_BATCH_SIZE,
        "batch_max": lab.MAX_BATCH_SIZE,
        "iterations": lab.MAX_ITERATIONS,
        "kl_coef": lab.MAX_KL_COEF,
    }
)
"""The lab sliders' ends that are the core's limits (the page shows no wider range)."""

router = APIRouter(include_in_schema=False)


# V8's explicit compile hint (Chromium 133+; other engines read a comment): the bundle is
# compiled whole on a background thread while it streams in, instead of function by function on
# the main thread as its top level runs (measured: evaluation 270-340 ms -> 170-220 ms, cold,
# software rendering).
PLOTLY_COMPILE_HINT = b"//# allFunctionsCalledOnLoad\n"


@dataclass(frozen=True)
class Asset:
    raw: bytes
    gzipped: bytes
    etag: str


@cache
def plotly_asset() -> Asset:
    raw = PLOTLY_COMPILE_HINT + PLOTLY_JS.read_bytes()
    return Asset(
        raw=raw,
        gzipped=gzip.compress(raw, compresslevel=9, mtime=0),
        etag='"' + hashlib.sha256(raw).hexdigest()[:32] + '"',
    )


JS_DIR = STATIC_DIR / "js"
# Classic scripts, not modules of the page: early.js (index) and docs.js (the API docs).
NOT_PAGE_MODULES = {"early.js", "docs.js"}


@cache
def page_modules() -> list[str]:
    """The page's ES modules, announced in its head (modulepreload) so the browser fetches them
    at once instead of level by level as it parses imports (main -> panels -> helpers)."""
    return sorted(
        f"/static/js/{path.relative_to(JS_DIR).as_posix()}"
        for path in JS_DIR.rglob("*.js")
        if path.name not in NOT_PAGE_MODULES
    )


@router.get("/", response_class=HTMLResponse)
async def index(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        "index.html",
        {
            "plotly_url": PLOTLY_URL,
            "version": __version__,
            "modules": page_modules(),
            "lab": LAB_DEFAULTS,
            "lab_limits": LAB_LIMITS,
        },
        headers={"Cache-Control": "no-cache"},
    )


@router.get(PLOTLY_URL)
async def plotly_js(request: Request) -> Response:
    asset = plotly_asset()
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        "ETag": asset.etag,
        "Vary": "Accept-Encoding",
    }
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        body = asset.gzipped
    else:
        body = asset.raw
    return Response(body, media_type="text/javascript", headers=headers)


@router.get("/docs", response_class=HTMLResponse)
async def docs(request: Request) -> HTMLResponse:
    """Swagger UI served from an installed package (FastAPI's default loads it from a CDN)."""
    return templates.TemplateResponse(request, "docs.html", {})


@router.get("/favicon.ico")
async def favicon() -> Response:
    return Response(
        (STATIC_DIR / "favicon.svg").read_bytes(),
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )
