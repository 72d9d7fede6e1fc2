"""A lean HTTP/1.1 client on raw asyncio streams, for bursts, probes and the fallback load.

httpx's pool bookkeeping costs more per request than the proxy's warm path does, so
a client built on it would measure itself; these plain keep-alive sockets don't.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Final

HOST: Final = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    elapsed: float  # seconds from the first byte written to the last byte read
    received: float  # time.time() when the last byte arrived


def encode_request(
    port: int,
    path: str,
    headers: Mapping[str, str] | None = None,
    *,
    method: str = "GET",
    close: bool = False,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if method != "GET":
        lines.append("Content-Length: 0")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Connection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def send(self, raw: bytes) -> Reply:
        started = time.perf_counter()
        self._writer.write(raw)
        await self._writer.drain()
        status, headers, body = await _read_reply(self._reader)
        return Reply(status, headers, body, time.perf_counter() - started, time.time())

    async def close(self) -> None:
        self._writer.close()
        with suppress(OSError):  # the peer may have gone first
            await self._writer.wait_closed()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def fetch(
    port: int, path: str, headers: Mapping[str, str] | None = None, *, method: str = "GET"
) -> Reply:
    """One request on its own connection."""
    async with await Connection.open(port) as connection:
        return await connection.send(encode_request(port, path, headers, method=method, close=True))


async def burst(port: int, path: str, cookies: list[str], patience: float = 60.0) -> list[Reply]:
    """Every request at once: all connections are opened first, then all are sent.

    A request that fails is left out of the result; the caller counts the shortfall.
    """
    opened = await asyncio.gather(*(Connection.open(port) for _ in cookies), return_exceptions=True)
    connections = [c for c in opened if isinstance(c, Connection)]
    try:
        replies = await asyncio.wait_for(
            asyncio.gather(
                *(
                    c.send(encode_request(port, path, {"Cookie": cookie}, close=True))
                    for c, cookie in zip(connections, cookies, strict=False)
                ),
                return_exceptions=True,
            ),
            patience,
        )
    finally:
        await asyncio.gather(*(c.close() for c in connections))
    return [r for r in replies if isinstance(r, Reply)]


async def _read_reply(
    reader: asyncio.StreamReader,
) -> tuple[int, tuple[tuple[str, str], ...], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = tuple(
        (name.strip().lower(), value.strip())
        for name, _, value in (line.partition(":") for line in lines)
    )
    fields = dict(headers)
    if "content-length" in fields:
        body = await reader.readexactly(int(fields["content-length"]))
    elif fields.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:
        body = await reader.read()  # delimited by the connection's end
    return status, headers, body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers are expected
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
