"""``ppo-explorer``: serve the app with uvicorn."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

import uvicorn

from app.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    """Parse ``--host``, ``--port``, ``--workers`` (defaults from the environment) and serve."""
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="ppo-explorer", description="Serve PPO Explorer.")
    parser.add_argument("--host", default=settings.host, help=f"default {settings.host}")
    parser.add_argument("--port", type=int, default=settings.port, help=f"default {settings.port}")
    parser.add_argument(
        "--workers", type=int, default=settings.workers, help=f"default {settings.workers}"
    )
    args = parser.parse_args(argv)
    # uvicorn drains the requests in flight on SIGTERM, then re-raises the signal to the
    # handler it found. With the default one the process dies without running atexit, so
    # multiprocessing never unregisters the analyzer pool's semaphores (the resource tracker
    # then warns of leaks). This handler exits normally instead: status 143 = 128 + SIGTERM.
    signal.signal(signal.SIGTERM, _exit_after_drain)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        timeout_graceful_shutdown=10,
        # uvicorn's default, 5 s, equals httpx's keep-alive expiry: a client reusing a pooled
        # connection just as the server closes it gets a reset (seen under a mixed load).
        timeout_keep_alive=settings.keep_alive_s,
        access_log=False,  # app.middleware writes one structured line per request instead
        log_level="info",
    )


def _exit_after_drain(signum: int, frame: FrameType | None) -> None:
    sys.exit(128 + signum)


if __name__ == "__main__":
    main()
