"""Test helpers: session cookies, a fault-injecting upstream wrapper, the leak scanner."""

from __future__ import annotations

import json
import logging
import threading
import time
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import itsdangerous
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def session_cookie(secret: str, data: dict[str, Any], *, timestamp: float | None = None) -> str:
    """A cookie value exactly as Starlette's SessionMiddleware writes it."""
    signer = itsdangerous.TimestampSigner(secret)
    payload = b64encode(json.dumps(data).encode("utf-8"))
    if timestamp is not None:
        signer.get_timestamp = lambda: int(timestamp)  # type: ignore[method-assign]
    return signer.sign(payload).decode("utf-8")


# --- faults ---------------------------------------------------------------------


@dataclass(frozen=True)
class Respond:
    """Answer with this status, body and headers instead of the real upstream."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Hang:
    """Accept the request and never answer (until the test ends)."""


@dataclass(frozen=True)
class Drip:
    """Answer 200, then send the body a few bytes at a time, slower than any deadline."""

    interval: float
    chunks: int = 1000


@dataclass(frozen=True)
class CloseMidBody:
    """Promise a long body, send a little of it, then drop the connection."""


@dataclass(frozen=True)
class Refuse:
    """Refuse connections: the whole server is down (handled by the test's server)."""


Fault = Respond | Hang | Drip | CloseMidBody | Refuse


@dataclass
class Faults:
    """Per-kind faults ('signin', 'page') for the upstream in front of which it sits."""

    active: dict[str, Fault] = field(default_factory=dict)
    released: threading.Event = field(default_factory=threading.Event)

    def reset(self) -> None:
        self.active.clear()
        self.released.set()
        self.released = threading.Event()


def kind_of(scope: Scope) -> str:
    path: str = scope["path"]
    if scope["method"] == "POST" and path.endswith("/signin"):
        return "signin"
    if path.startswith(("/api/", "/static/")):
        return "other"
    return "page"


def with_faults(app: ASGIApp, faults: Faults) -> ASGIApp:
    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        fault = faults.active.get(kind_of(scope)) if scope["type"] == "http" else None
        if fault is None:
            await app(scope, receive, send)
        elif isinstance(fault, Hang):
            await anyio.to_thread.run_sync(faults.released.wait, 30)
        elif isinstance(fault, Drip):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(fault.chunks):
                await send({"type": "http.response.body", "body": b"<", "more_body": True})
                await anyio.sleep(fault.interval)
            await send({"type": "http.response.body", "body": b""})
        elif isinstance(fault, CloseMidBody):
            headers = [(b"content-length", b"100000"), (b"content-type", b"text/html")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"<html>", "more_body": True})
            raise ConnectionAbortedError("the test upstream drops the connection mid-body")
        elif isinstance(fault, Refuse):
            raise AssertionError("Refuse is played by stopping the server, not by the app")
        else:
            headers = [(k.lower().encode(), v.encode()) for k, v in fault.headers]
            start: Message = {"type": "http.response.start", "status": fault.status}
            start["headers"] = [*headers, (b"content-length", str(len(fault.body)).encode())]
            await send(start)
            await send({"type": "http.response.body", "body": fault.body})

    return wrapper


# --- leaks ----------------------------------------------------------------------


class LeakScanner(logging.Handler):
    """Remembers every secret of the run and fails on any text that contains one."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.secrets: set[str] = set()
        self.records: list[str] = []
        self.formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        self._lock_records = threading.Lock()

    def add(self, *values: str) -> None:
        self.secrets.update(v for v in values if v)

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)  # includes the formatted exception trace, if any
        with self._lock_records:
            self.records.append(text)

    def find(self, text: str) -> list[str]:
        return [s for s in self.secrets if s in text]

    def check(self, where: str, text: str) -> None:
        __tracebackhide__ = True  # the report must not print the text, or the secret in it
        if self.find(text):
            raise AssertionError(f"a secret leaked into {where}")

    def check_logs_since(self, index: int) -> None:
        with self._lock_records:
            new = self.records[index:]
        for text in new:
            self.check("a log record", text)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.02)
