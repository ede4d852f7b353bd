"""Application factory: ``create_app()`` wires settings, routers and static files."""

from __future__ import annotations

from fastapi import FastAPI

from app import __version__
from app.routes import health
from app.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the FastAPI app from ``settings`` (default: the environment)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="PPO Explorer",
        version=__version__,
        description="The PPO loss — clipped surrogate, value loss, entropy, KL, advantages — "
        "computed on demand by ppo_core.",
    )
    app.state.settings = settings
    app.include_router(health.router)
    return app
