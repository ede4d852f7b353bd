"""Liveness: cheap, dependency-free, used by Docker / Kubernetes probes."""

from __future__ import annotations

import torch
from fastapi import APIRouter
from pydantic import BaseModel

from app import __version__

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    version: str
    torch: str


_HEALTH = Health(status="ok", version=__version__, torch=torch.__version__)


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Always ``ok`` while the process serves requests."""
    return _HEALTH
