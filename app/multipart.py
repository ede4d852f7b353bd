"""Reading a ``multipart/form-data`` upload into memory as it streams in.

Starlette's ``request.form()`` spools each file over 1 MB to a temporary file on disk, one
thread-pool hop per chunk, and is read back afterwards: about 0.35 s for a 170 MB log, three
times the parse itself. Here python-multipart's parser (the one Starlette uses) writes each
part straight into a ``bytearray``, and a file over its limit is refused as soon as the limit
is passed, not after the whole body was read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from app.errors import RequestInvalid, error_item
from ppo_core import PPOInputError

MAX_FIELD_BYTES = 64 * 1024
"""Largest plain (non-file) form field."""


@dataclass
class Upload:
    filename: str
    data: bytearray = field(default_factory=bytearray)


@dataclass
class Form:
    files: dict[str, Upload] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)


def _invalid(message: str) -> RequestInvalid:
    return RequestInvalid([error_item(["body"], message, "multipart_invalid")])


class _Collector:
    """python-multipart callbacks that build a :class:`Form`, with the limits."""

    def __init__(self, max_file_bytes: int, max_files: int, max_fields: int) -> None:
        self.form = Form()
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files
        self.max_fields = max_fields
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._target: bytearray | None = None
        self._limit = 0
        self._is_file = False
        self.ended = False

    def on_end(self) -> None:
        self.ended = True

    def on_part_begin(self) -> None:
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise _invalid("each part needs 'Content-Disposition: form-data; name=...'")
        self._name = options[b"name"].decode("utf-8", errors="replace")
        self._is_file = b"filename" in options
        if self._is_file:
            if len(self.form.files) >= self.max_files:
                raise _invalid(f"more than {self.max_files} files")
            filename = options[b"filename"].decode("utf-8", errors="replace")
            upload = self.form.files[self._name] = Upload(filename)
            self._target, self._limit = upload.data, self.max_file_bytes
        else:
            if len(self.form.fields) >= self.max_fields:
                raise _invalid(f"more than {self.max_fields} fields")
            self._target, self._limit = bytearray(), MAX_FIELD_BYTES

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        target = self._target
        assert target is not None
        target += data[start:end]
        if len(target) > self._limit:
            if self._is_file:
                raise PPOInputError(self._name, f"over the limit of {self._limit} bytes")
            raise _invalid(f"the field {self._name!r} is over {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if not self._is_file and self._target is not None:
            self.form.fields[self._name] = self._target.decode("utf-8", errors="replace")
        self._target = None


async def read_form(
    request: Request, *, max_file_bytes: int, max_files: int = 1, max_fields: int = 8
) -> Form:
    """The multipart body of ``request``, files kept in memory (each at most
    ``max_file_bytes``: past it, a 422 on the file's field, raised while streaming)."""
    content_type = request.headers.get("content-type", "")
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise RequestInvalid(
            [error_item(["header", "content-type"], "expected multipart/form-data", "content_type")]
        )
    boundary = options.get(b"boundary")
    if not boundary:
        raise _invalid("the content-type has no multipart boundary")
    collector = _Collector(max_file_bytes, max_files, max_fields)
    callbacks = {
        name: getattr(collector, name)
        for name in (
            "on_part_begin",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_part_data",
            "on_part_end",
            "on_end",
        )
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise _invalid(f"invalid multipart body: {exc}") from None
    if not collector.ended:
        raise _invalid("the multipart body ends before its closing boundary")
    return collector.form
