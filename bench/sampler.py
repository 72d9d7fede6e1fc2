"""A checker that runs beside the load and looks at the tokens the proxy hands out.

wrk reports only counts and latencies, so a few connections of our own keep asking
for pages while it runs, and each token's `exp` (read without verification; we only
want the time) is compared with the moment the page arrived.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from bench.http import Connection, encode_request
from bench.loadgen import Target
from widget_proxy.cache.tokens import jwt_exp

_TOKEN: Final = re.compile(rb'token: "([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)"')


@dataclass
class Samples:
    checked: int = 0
    expired: int = 0  # exp at or before the moment the page arrived
    unreadable: int = 0  # a 200 whose token or exp could not be read
    failed: int = 0  # not a 200, or the connection broke
    least_left: float | None = None  # the shortest remaining lifetime seen, in seconds
    tokens: set[str] = field(default_factory=set)


async def sample(
    target: Target, cookies: Sequence[str], stop: asyncio.Event, connections: int = 2
) -> Samples:
    """Ask for pages, round-robin over `cookies`, until `stop` is set."""
    found = Samples()
    requests = [encode_request(target.port, target.path, {"Cookie": c}) for c in cookies]

    async def client(offset: int) -> None:
        index = offset
        connection: Connection | None = None
        try:
            while not stop.is_set():
                index = (index + connections) % len(requests)
                try:
                    if connection is None:
                        connection = await Connection.open(target.port)
                    reply = await connection.send(requests[index])
                except (OSError, asyncio.IncompleteReadError):
                    found.failed += 1
                    connection = None
                    await asyncio.sleep(0.05)
                    continue
                if reply.status != 200:
                    found.failed += 1
                    continue
                match = _TOKEN.search(reply.body)
                exp = jwt_exp(match.group(1).decode()) if match else None
                if match is None or exp is None:
                    found.unreadable += 1
                    continue
                found.checked += 1
                found.tokens.add(match.group(1).decode())
                left = exp - reply.received
                if left <= 0:
                    found.expired += 1
                if found.least_left is None or left < found.least_left:
                    found.least_left = left
        finally:
            if connection is not None:
                await connection.close()

    await asyncio.gather(*(client(i) for i in range(connections)))
    return found
