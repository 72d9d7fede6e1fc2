"""A lean HTTP/1.1 load client on raw asyncio streams.

httpx's pool bookkeeping grows with the number of queued requests, so 500
simultaneous requests through it measure the client more than the server; these
plain sockets keep the client out of the numbers.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Result:
    status: int
    elapsed: float
    body: bytes


async def get(url: str, headers: dict[str, str] | None = None) -> Result:
    """One GET on its own connection (Connection: close)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
             f"Host: {host}:{port}", "Connection: close"]  # fmt: skip
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return Result(status, time.monotonic() - started, body)


async def burst(url: str, headers: list[dict[str, str]]) -> list[Result]:
    """Every request at once, one connection each."""
    return await asyncio.gather(*(get(url, h) for h in headers))
