"""Settings from environment variables (prefix ``PPO_EXPLORER_``), in one place."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every limit and deployment knob; each field is the env var ``PPO_EXPLORER_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="PPO_EXPLORER_", frozen=True)

    host: str = Field("127.0.0.1", description="Interface to bind.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port.")
    workers: int = Field(1, ge=1, le=64, description="Uvicorn worker processes.")
    max_body_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted; larger ones get 413 before being read whole.",
    )
    max_tensor_elements: int = Field(
        4 * 1024 * 1024,
        ge=1,
        description="Most elements in any one tensor of a request (logits count every entry).",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS; none by default (closed)."
    )
    heavy_concurrency: int = Field(
        2, ge=1, le=64, description="Heavy requests (analyze, lab) computed at once per worker."
    )
    heavy_queue: int = Field(
        8, ge=0, le=1024, description="Heavy requests allowed to wait; beyond it: 503."
    )
    heavy_timeout_s: float = Field(
        30.0, gt=0, le=600, description="Seconds a heavy request may take before a 503."
    )
    lab_max_work: int = Field(
        8_000_000,
        ge=1000,
        description="Most word-updates one lab run may cost: iterations x epochs x batch_size "
        "x seq_len x algorithms (the default run of all three, 100 iterations x 6 epochs x 64 x 8 "
        "x 3, is 0.92 M).",
    )
    response_cache_bytes: int = Field(
        64 * 1024 * 1024,
        ge=0,
        description="Bytes of GET answers (curves) kept per worker, least recently used out; "
        "0 turns the cache off.",
    )
    runs_max_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1024,
        description="Largest training log the run report reads (a 100k-step verl log with 60 "
        "metrics is about 150 MB).",
    )
    keep_alive_s: int = Field(
        75,
        ge=1,
        le=3600,
        description="Seconds an idle keep-alive connection stays open. Longer than clients' "
        "and load balancers' idle timeouts (httpx 5 s, AWS ALB 60 s), so the server never "
        "closes a connection that a client is reusing at that moment.",
    )
    torch_threads: int = Field(
        1,
        ge=1,
        le=64,
        description="torch intra-op threads of the server's event loop and heavy threads, set "
        "once as each starts: its requests are small (large analyses run in the analyzer's "
        "worker processes, which keep torch's default of one per core).",
    )
    frame_ancestors: str = Field(
        "'none'", description="CSP frame-ancestors value: who may embed the page."
    )
    log_json: bool = Field(True, description="Structured (JSON) access logs.")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
