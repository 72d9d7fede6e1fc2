"""What a granian worker puts around serve's app: uvicorn's path under a mount path, and
the word that the drain's time is up. As real processes: tests/test_granian_server.py;
`Reloading`'s part (requests cancelled, its start announced): tests/test_reload.py."""

from __future__ import annotations

import logging

import pytest
from starlette.types import Message, Receive, Scope, Send

from widget_proxy.granian_worker import MountPath, cancel


class Recorder:
    def __init__(self) -> None:
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)


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
    inner = Recorder()
    scope = {"type": "http", "path": "/widget", "raw_path": b"/widget", "root_path": root}

    await MountPath(inner)(scope, nothing, ignore)
    await MountPath(inner)({"type": "lifespan", "root_path": root}, nothing, ignore)

    http, lifespan = inner.scopes
    assert (http["path"], http["raw_path"], http["root_path"]) == (path, raw_path, root)
    assert "path" not in lifespan


@pytest.mark.parametrize(("running", "said"), [(3, 1), (0, 0)])
def test_the_drains_end_is_logged_when_it_cancels_requests(
    caplog: pytest.LogCaptureFixture, running: int, said: int
) -> None:
    with caplog.at_level(logging.ERROR, logger="widget_proxy"):
        cancel(lambda: running)

    lines = [r.getMessage() for r in caplog.records if r.name == "widget_proxy"]
    assert lines == [f"SHUTDOWN_TIMEOUT passed: cancelled {running} running request(s)"][:said]
