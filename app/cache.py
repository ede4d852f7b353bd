"""The one server-side cache of GET answers (serialised JSON bodies, bounded in bytes)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

from fastapi import Response


class JSONBytes(Response):
    """A response whose body is JSON already serialised (kept in :class:`ResponseCache`)."""

    media_type = "application/json"


class ResponseCache:
    """The one server-side cache of GET answers: serialised JSON bodies of pure endpoints,
    keyed by the endpoint and its *validated* query values (so unknown or differently spelled
    parameters cannot add entries), least recently used out first, bounded by the total bytes
    of the bodies it holds (``PPO_EXPLORER_RESPONSE_CACHE_BYTES``). Only successful answers are
    kept. Used from the event loop only (no locking needed)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> bytes | None:
        """The body kept for ``key`` (now the most recently used), or ``None``."""
        body = self._entries.get(key)
        if body is not None:
            self._entries.move_to_end(key)
        return body

    def put(self, key: Hashable, body: bytes) -> None:
        """Keep ``body`` for ``key``, dropping the least recently used bodies over the bound."""
        if len(body) > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= len(old)
        self._entries[key] = body
        self.bytes += len(body)
        while self.bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self.bytes -= len(dropped)

    def get_or_build(self, key: Hashable, build: Callable[[], bytes]) -> bytes:
        body = self.get(key)
        if body is None:
            body = build()
            self.put(key, body)
        return body
