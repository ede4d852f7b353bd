"""Pure-ASGI middleware: body-size limit, request id + access log, security headers."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("app.access")


def _json_response(status: int, detail: str, kind: str) -> tuple[Message, Message]:
    body = json.dumps({"detail": [{"loc": [], "msg": detail, "type": kind}]}).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the limit; an HTTPException so that
    FastAPI's body parsing re-raises it (it turns other exceptions into 400s)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            detail=[  # type: ignore[arg-type]  # a list, like FastAPI's own 422 details
                {
                    "loc": [],
                    "msg": f"request body over the limit of {limit} bytes",
                    "type": "body_too_large",
                }
            ],
        )


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``: at once from ``Content-Length``, or as soon as a
    streamed (chunked) body passes the limit — never after reading it whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        message = f"request body over the limit of {limit} bytes"
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(send, message)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, message)

    @staticmethod
    async def _refuse(send: Send, message: str) -> None:
        start, body = _json_response(413, message, "body_too_large")
        start["headers"].append((b"connection", b"close"))
        await send(start)
        await send(body)


class RequestContextMiddleware:
    """Adds ``X-Request-ID`` (kept from the client when sane) and the security headers to
    every response, and writes one structured access-log line per request."""

    def __init__(self, app: ASGIApp, frame_ancestors: str, log_json: bool = True) -> None:
        self.app = app
        self.log_json = log_json
        csp = (
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; "
            f"object-src 'none'; base-uri 'self'; form-action 'self'; "
            f"frame-ancestors {frame_ancestors}"
        )
        self.headers = [
            (b"content-security-policy", csp.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id" and 0 < len(value) <= 64 and value.isascii():
                request_id = value.decode(errors="ignore")
        request_id = request_id or uuid.uuid4().hex
        start = time.perf_counter()
        status = 0

        async def send_with_headers(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
                headers = list(msg.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(self.headers)
                msg["headers"] = headers
            await send(msg)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            self._log(scope, status, request_id, time.perf_counter() - start)

    def _log(self, scope: Scope, status: int, request_id: str, seconds: float) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        record: dict[str, Any] = {
            "request_id": request_id,
            "method": scope.get("method"),
            "path": scope.get("path"),
            "status": status,
            "ms": round(seconds * 1000, 3),
        }
        if self.log_json:
            access_log.info(json.dumps(record))
        else:
            access_log.info(
                "%s %s %s %.1fms %s",
                record["method"],
                record["path"],
                status,
                record["ms"],
                request_id,
            )
