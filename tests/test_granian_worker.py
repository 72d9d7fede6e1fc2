"""What a granian worker puts around serve's app (`Served`): uvicorn's path under a mount
path, readiness once the app has started, and the end of a drain. As real processes:
tests/test_granian_server.py."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable

import pytest
from starlette.types import Message, Receive, Scope, Send

from widget_proxy.granian_worker import Served


class Inner:
    """An app that records each request's scope and holds it until released; its
    lifespan starts and stops at once."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []
        self.release = asyncio.Event()
        self.cancelled = 0
        self.lifespan: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
                self.lifespan.append("started")
            self.lifespan.append("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.scopes.append(scope)
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


def request(path: str, root: str = "") -> Scope:
    return {"type": "http", "path": path, "raw_path": path.encode(), "root_path": root}


async def until(predicate: Callable[[], bool]) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("condition not met in time")


async def nothing() -> Message:
    return {"type": "http.disconnect"}


async def ignore(message: Message) -> None:
    return None


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("root", "path", "raw_path"),
    [("", "/widget", b"/widget"), ("/rewards", "/rewards/widget", b"/rewards/widget")],
)
async def test_the_mount_path_goes_in_front_of_the_path_as_uvicorn_puts_it(
    root: str, path: str, raw_path: bytes
) -> None:
    inner = Inner()
    inner.release.set()

    await Served(inner)(request("/widget", root), nothing, ignore)

    (scope,) = inner.scopes
    assert (scope["path"], scope["raw_path"], scope["root_path"]) == (path, raw_path, root)


@pytest.mark.anyio
async def test_the_lifespan_sets_ready_and_its_shutdown_waits_for_the_requests_running() -> None:
    inner = Inner()
    ready = multiprocessing.get_context("spawn").Event()
    served = Served(inner, ready=ready)
    messages: asyncio.Queue[Message] = asyncio.Queue()
    await messages.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(served({"type": "lifespan"}, messages.get, ignore))
    await until(ready.is_set)
    running = asyncio.create_task(served(request("/widget"), nothing, ignore))
    await until(lambda: len(inner.scopes) == 1)

    await messages.put({"type": "lifespan.shutdown"})
    await asyncio.sleep(0.2)
    assert inner.lifespan == ["started"]  # the app is not shut under a request
    inner.release.set()
    await asyncio.wait_for(lifespan, 5)

    assert running.done()
    assert inner.lifespan == ["started", "shutdown"]


@pytest.mark.anyio
async def test_cancel_ends_every_request_still_running(caplog: pytest.LogCaptureFixture) -> None:
    inner = Inner()
    served = Served(inner)
    tasks = [asyncio.create_task(served(request(f"/{i}"), nothing, ignore)) for i in range(3)]
    await until(lambda: len(inner.scopes) == 3)

    with caplog.at_level(logging.ERROR, logger="widget_proxy"):
        served.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert inner.cancelled == 3

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "widget_proxy"]

    assert said() == ["SHUTDOWN_TIMEOUT passed: cancelling 3 requests still running"]
    served.cancel()  # nothing left to cancel: nothing said
    assert len(said()) == 1
