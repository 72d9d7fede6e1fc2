"""uvicorn's httptools protocol, refusing a request head over a bound before reading it all.

uvicorn's httptools protocol reads a request's whole head (request line and headers)
before the app sees it, however large: the parser grows a header value chunk by chunk
on the event loop, so one client's 128 MB block stalled every other request for
seconds and held its bytes in memory. The app's own checks (`headers.HeaderLimit`:
431, 414) come too late for that. This protocol counts the bytes of each head as they
arrive and, past `max_head` bytes without the head's end, answers 414 (the request
line has not ended) or 431, logs one line, and closes the connection: at most
`max_head` bytes of a head are ever parsed or kept.

The bound is uvicorn's `h11_max_incomplete_event_size`, the same setting h11 reads
for the same purpose (its default here: `head_bound()` of the default limits), so
`uvicorn --http widget_proxy.security.bounded:BoundedHttpTools
--h11-max-incomplete-event-size N` serves any app with it. `widget-proxy serve` sets
it from `MAX_HEADER_BYTES` and `MAX_REQUEST_TARGET_BYTES`; a head within it reaches
the app, whose checks then give the exact answer.

Each read is cut at the end of the head it holds (found by its blank line), so only a
head's own bytes are counted; a head that begins in the same read as a request body
ends (pipelining after a body) is counted from the next read on.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ..errors import HeadersTooLarge, RequestError, TargetTooLong
from ..ops.requestlog import new_request_id
from ..responses import error_page
from .headers import DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_TARGET_BYTES

log = logging.getLogger("widget_proxy")

END: Final = b"\r\n\r\n"  # a head's end: the blank line after its last header
# Room for what neither limit counts: the method, the version, line ends.
_FRAMING: Final = 64


def head_bound(max_header_bytes: int, max_target_bytes: int) -> int:
    """The largest head the app's own limits could let through, with its framing."""
    return max_header_bytes + max_target_bytes + _FRAMING


DEFAULT_MAX_HEAD: Final = head_bound(DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_TARGET_BYTES)


class BoundedHttpTools(HttpToolsProtocol):
    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        bound = config.h11_max_incomplete_event_size
        self.max_head: int = DEFAULT_MAX_HEAD if bound is None else bound
        self._in_head = True  # between two requests, or reading one's head
        self._head = 0  # bytes of the current head so far
        self._tail = b""  # the last bytes of a head that continues in the next read
        self._line_ended = False  # the current head's request line is complete
        self._heads = 0  # heads the parser completed (a cut's outcome)

    def data_received(self, data: bytes) -> None:
        # The usual read: one whole head within the bound and nothing after it (a GET).
        whole = self._in_head and not self._head and data.find(END) == len(data) - 4
        if whole and len(data) <= self.max_head:
            HttpToolsProtocol.data_received(self, data)
            return
        start = 0
        while start < len(data) and self.parser is not None and not self.transport.is_closing():
            if not self._in_head:  # a body: the parser says where its message ends
                HttpToolsProtocol.data_received(self, data[start:] if start else data)
                self._head, self._tail, self._line_ended = 0, b"", False
                return
            start = self._read_head(data, start)

    def _read_head(self, data: bytes, start: int) -> int:
        """Feed the parser from `start` up to the end of the current head, within the
        bound; where the rest of the read starts."""
        tail = self._tail  # a head's end may straddle two reads
        found = (tail + data[start : start + 4]).find(END) if tail else -1
        if found >= 0:
            end = start + found + 4 - len(tail)
        else:
            found = data.find(END, start)
            end = len(data) if found < 0 else found + 4
        room = self.max_head - self._head
        if not self._line_ended:  # (within the bound: a line that ends past it is too long)
            self._line_ended = data.find(b"\n", start, min(end, start + room)) >= 0
        if end - start > room:
            # What fits is read, so that the headers complete so far (Accept) are known.
            HttpToolsProtocol.data_received(self, data[start : start + room])
            if self.parser is not None and not self.transport.is_closing():
                self._refuse(self._line_ended)
            return len(data)
        heads = self._heads
        HttpToolsProtocol.data_received(self, data[start:end])
        if self._heads != heads:  # the parser completed it: the next head starts afresh
            self._head, self._tail, self._line_ended = 0, b"", False
        else:
            self._head += end - start
            self._tail = (tail + data[max(start, end - 3) : end])[-3:]
        return end

    def on_headers_complete(self) -> None:
        self._heads += 1
        self._in_head = False
        HttpToolsProtocol.on_headers_complete(self)

    def on_message_complete(self) -> None:
        self._in_head = True
        HttpToolsProtocol.on_message_complete(self)

    def _refuse(self, line_ended: bool) -> None:
        """Answer 414 or 431 with the error page, log one line, close the connection."""
        error: RequestError
        if line_ended:
            error = HeadersTooLarge(f"the request head went past {self.max_head} bytes")
        else:
            error = TargetTooLong(f"the request line went past {self.max_head} bytes")
        headers = self.headers or []  # those complete so far: Accept may be among them
        accept = next((v for k, v in headers if k == b"accept"), b"")[:200].decode("latin-1")
        rid = new_request_id()
        page = error_page(error.status, error.code, error.message, accept=accept, request_id=rid)
        client = self.client[0] if self.client else "-"
        log.info(
            "%d %s: %s; connection closed (request_id=%s client=%s)",
            error.status, error.code, error.detail, rid, client,
            extra={"status": error.status, "request_id": rid, "client_ip": client,
                   "error": f"{error.code}: {error.detail}"},
        )  # fmt: skip
        head = [STATUS_LINE[error.status]]
        head += [k + b": " + v + b"\r\n" for k, v in page.raw_headers]
        head.append(b"connection: close\r\n\r\n")
        self.transport.write(b"".join(head) + page.body)
        self.transport.close()
