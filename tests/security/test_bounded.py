"""The bounded httptools protocol (`app/security/bounded.py`): a head past the bound is
refused before it is read, and every other request is read as uvicorn's own protocol
reads it, however the reads cut it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from starlette.types import Receive, Scope, Send

from tests.support.wire import exchange, flood
from widget_proxy.security.bounded import DEFAULT_MAX_HEAD, BoundedHttpTools
from widget_proxy.servers import BackgroundServer

BOUND = 1000


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the method, path and body length it was given."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = f"{scope['method']} {scope['path']} {size}".encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with BackgroundServer(
        echo, http=BoundedHttpTools, h11_max_incomplete_event_size=BOUND, timeout_keep_alive=5
    ) as server:
        yield server.url


def get(path: str, extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n"


def bodies(answer: bytes) -> list[str]:
    """The echoed lines of each 200 answer, in order."""
    return [part.split(b"\r\n\r\n", 1)[1][:40].decode() for part in answer.split(b"HTTP/1.1 ")[1:]]


@pytest.mark.parametrize(
    "parts",
    [
        [get("/a") + get("/b") + get("/c")],  # pipelined in one read
        # cut at a head's end, and within it
        [get("/a")[:-1], get("/a")[-1:] + get("/b")[:5], get("/b")[5:] + get("/c")],
        [get("/a")[:-3], get("/a")[-3:], get("/b") + get("/c")[:-2], get("/c")[-2:]],
        [b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000
         + get("/b") + get("/c")],  # a body larger than the bound, then heads
        [b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n",
         b"0\r\n\r\n" + get("/b"), get("/c")],
        # a head at the bound (1,000 bytes)
        [get("/a", b"X-Fill: " + b"f" * (BOUND - 38) + b"\r\n"), get("/b"), get("/c")],
    ],
    ids=["pipelined", "cut-at-end", "cut-in-end", "body", "chunked", "at-the-bound"],
)  # fmt: skip
def test_every_request_within_the_bound_is_answered(url: str, parts: list[bytes]) -> None:
    answer = exchange(url, *parts, answers=3)

    lines = bodies(answer)
    assert [line.split()[1] for line in lines] == ["/a", "/b", "/c"], answer[:300]


def test_a_head_past_the_bound_is_a_431_and_the_connection_closes(url: str) -> None:
    head = b"GET /a HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nX-Junk: "

    refused = flood(url, head, 8 * 1024 * 1024)

    status, _, rest = refused.answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert b"connection: close" in rest
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["error"] == "headers_too_large"
    assert refused.sent < 8 * 1024 * 1024  # it stopped reading: the rest was never taken


def test_a_request_line_past_the_bound_is_a_414(url: str) -> None:
    answer = exchange(url, b"GET /" + b"a" * 2 * BOUND + b" HTTP/1.1\r\nHost: x\r\n\r\n")

    assert answer.startswith(b"HTTP/1.1 414 ")
    assert b"request_target_too_long" in answer or b"too long" in answer


def test_without_a_bound_the_default_covers_the_apps_own_limits() -> None:
    with BackgroundServer(echo, http=BoundedHttpTools) as server:
        within = exchange(server.url, get("/a", b"X-Fill: " + b"f" * 32_000 + b"\r\n"))
        past = exchange(server.url, get("/a", b"X-Fill: " + b"f" * DEFAULT_MAX_HEAD + b"\r\n"))

    assert within.startswith(b"HTTP/1.1 200 ")
    assert past.startswith(b"HTTP/1.1 431 ")
