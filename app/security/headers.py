"""Refuse a request whose headers are larger than a reverse proxy would pass on.

uvicorn accepts header blocks of tens of megabytes; nothing this proxy does needs
more than nginx allows by default, and every byte kept (in a memo, a log line) is
memory an attacker chose. Pure ASGI, first in line after the request log.
"""

from __future__ import annotations

from itertools import chain
from typing import Final

from starlette.responses import Response
from starlette.types import ASGIApp, Scope

from ..errors import HeadersTooLarge
from ..responses import Refusing, error_response

DEFAULT_MAX_HEADER_BYTES: Final = 32 * 1024  # nginx: large_client_header_buffers 4 8k


class HeaderLimit(Refusing):
    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_HEADER_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def refusal(self, scope: Scope) -> Response | None:
        """The error page for an HTTP request with too many header bytes, else None."""
        # Each header as it travels: name, ": ", value, CRLF. (One join in C rather
        # than a generator: this runs on every request.)
        headers = scope["headers"]
        size = len(b"".join(chain.from_iterable(headers))) + 4 * len(headers)
        if size <= self.max_bytes:
            return None
        error = HeadersTooLarge(f"{size} bytes of headers, at most {self.max_bytes}")
        accept = next((v for k, v in headers if k == b"accept"), b"")
        return error_response(error, scope, accept=accept[:200].decode("latin-1"))
