"""Refuse a request whose target or headers are larger than a reverse proxy would pass on.

uvicorn accepts header blocks of tens of megabytes; nothing this proxy does needs
more than nginx allows by default, and every byte kept (in a memo, a log line) is
memory an attacker chose. Pure ASGI, first in line after the request log. (`serve`
also bounds the whole head before the app sees it: `bounded.py`; this check stays
for an app mounted in a merchant's own server, and gives the exact answer.)
"""

from __future__ import annotations

from itertools import chain
from typing import Final

from starlette.responses import Response
from starlette.types import ASGIApp, Scope

from ..errors import HeadersTooLarge, RequestError, TargetTooLong
from ..responses import Refusing, error_response

DEFAULT_MAX_HEADER_BYTES: Final = 32 * 1024  # nginx: large_client_header_buffers 4 8k
DEFAULT_MAX_TARGET_BYTES: Final = 8 * 1024  # nginx: one of those 8k buffers holds the line


class HeaderLimit(Refusing):
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_target_bytes: int = DEFAULT_MAX_TARGET_BYTES,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_target_bytes = max_target_bytes

    def refusal(self, scope: Scope) -> Response | None:
        """The error page for an HTTP request with too long a target (414) or too many
        header bytes (431), else None."""
        # The target as it travels: path, "?", query. (Starlette's test client sends
        # no raw_path: the decoded path stands in.)
        raw_path = scope.get("raw_path")
        query = len(scope["query_string"])
        target = (len(raw_path) if raw_path else len(scope["path"])) + (query + 1 if query else 0)
        # Each header as it travels: name, ": ", value, CRLF. (One join in C rather
        # than a generator: this runs on every request.)
        headers = scope["headers"]
        size = len(b"".join(chain.from_iterable(headers))) + 4 * len(headers)
        error: RequestError
        if target > self.max_target_bytes:
            error = TargetTooLong(f"a {target}-byte target, at most {self.max_target_bytes}")
        elif size > self.max_bytes:
            error = HeadersTooLarge(f"{size} bytes of headers, at most {self.max_bytes}")
        else:
            return None
        accept = next((v for k, v in headers if k == b"accept"), b"")
        return error_response(error, scope, accept=accept[:200].decode("latin-1"))
