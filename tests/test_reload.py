"""SIGHUP re-reads the settings and swaps them whole: nothing in flight is dropped.

In-process, `Reloading` runs under a real uvicorn in the test's own event loop (so the
test calls `reload()` itself); as a real process, `serve` gets SIGHUP under load (under
uvicorn, and under granian: `--server granian`, whose supervisor passes SIGHUP on too).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.support import (
    EMAIL,
    UNLIMITED,
    LeakScanner,
    async_scanning_client,
    fifo,
    free_port,
    fresh_secret,
    scanning_client,
    session_cookie,
    wait_until,
)
from tests.support.processes import running
from widget_proxy import create_app
from widget_proxy.ops.logs import RedactionFilter
from widget_proxy.providers.returningai import ReturningAISettings, ReturningAIStandIn
from widget_proxy.reload import CLOSED, Reloading
from widget_proxy.servers import BackgroundServer, bind
from widget_proxy.settings import Settings

SECRET = fresh_secret("reload-")


def cookie(email: str) -> dict[str, str]:
    return {"cookie": f"session={session_cookie(SECRET, {'email': email})}"}


@asynccontextmanager
async def serving(app: Reloading) -> AsyncIterator[str]:
    """`app` under a real uvicorn in this event loop, lifespan included; its URL."""
    sock = bind()
    config = uvicorn.Config(
        app, log_config=None, access_log=False, proxy_headers=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "the server did not start"
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def until(predicate: Callable[[], bool]) -> None:
    """Poll `predicate` (state other tasks and threads change) for up to 10 s."""
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("condition not met in time")


def recording(closed: list[str]) -> Callable[[Settings], Starlette]:
    """`create_app`, noting each app's WIDGET_ID in `closed` when its lifespan has ended."""

    def build(settings: Settings) -> Starlette:
        app = create_app(settings)
        inner = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            async with inner(app):
                yield
            vendor = settings.vendor
            assert isinstance(vendor, ReturningAISettings)
            closed.append(vendor.widget_id)

        app.router.lifespan_context = lifespan
        return app

    return build


def widget_id(response: httpx2.Response) -> str:
    assert response.status_code == 200, response.status_code
    for name in ("old-store", "new-store"):
        if f'widgetId: "{name}"' in response.text:
            return name
    raise AssertionError("no known widget id in the page")


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_request_in_flight_finishes_with_the_old_settings(
    make_settings: Callable[..., Settings],
    vendor: ReturningAIStandIn,
    leak_scanner: LeakScanner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {"WIDGET_ID": "old-store"}
    closed: list[str] = []
    proxy = Reloading(lambda: make_settings(SESSION_SECRET=SECRET, **env), recording(closed))
    async with (
        serving(proxy) as url,
        async_scanning_client(leak_scanner, base_url=url, timeout=30) as client,
    ):
        old = proxy.current
        vendor.signin_delay = 1.0
        first = asyncio.create_task(client.get("/widget", headers=cookie("ann@example.com")))
        await until(lambda: vendor.calls["signin"] == 1)  # in flight, at the vendor

        env["WIDGET_ID"] = "new-store"
        with caplog.at_level(logging.INFO, logger="widget_proxy"):
            reload = asyncio.create_task(proxy.reload())
            await until(lambda: proxy.current is not old)  # swapped: new requests get new
            second = asyncio.create_task(client.get("/widget", headers=cookie("bob@example.com")))
            await asyncio.sleep(0.3)
            assert not first.done()
            assert not reload.done(), "the reload waits for the old settings' requests"
            assert closed == [], "the old app is open while a request of its own runs"

            assert widget_id(await first) == "old-store"  # finished, with the old settings
            assert await reload is True
        assert closed == ["old-store"]  # closed once drained, not before
        assert widget_id(await second) == "new-store"
        assert widget_id(await client.get("/widget", headers=cookie(EMAIL))) == "new-store"

    assert closed == ["old-store", "new-store"]  # the server's shutdown closed the new one
    reloaded = [r.getMessage() for r in caplog.records if "settings reloaded" in r.getMessage()]
    assert reloaded == ["settings reloaded (changed: WIDGET_ID)"]  # names, never values


@pytest.mark.anyio
async def test_the_old_settings_are_reported_closed_only_after_their_last_signin(
    make_settings: Callable[..., Settings],
    vendor: ReturningAIStandIn,
    leak_scanner: LeakScanner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The signal a key rotation waits for before revoking the old key at the vendor:
    a user the old app held no token for is signing in with the old key when the
    reload swaps, and may still reach the vendor after `settings reloaded`."""
    proxy = Reloading(lambda: make_settings(SESSION_SECRET=SECRET))
    async with (
        serving(proxy) as url,
        async_scanning_client(leak_scanner, base_url=url, timeout=30) as client,
    ):
        vendor.signin_delay = 1.0
        cold = asyncio.create_task(client.get("/widget", headers=cookie("cold@example.com")))
        await until(lambda: vendor.calls["signin"] == 1)  # at the vendor, with the old key

        def logged(text: str) -> bool:
            return any(r.getMessage().startswith(text) for r in caplog.records)

        with caplog.at_level(logging.INFO, logger="widget_proxy"):
            reload = asyncio.create_task(proxy.reload())
            await until(lambda: logged("settings reloaded"))
            await asyncio.sleep(0.3)
            assert not cold.done()
            assert not logged(CLOSED), "reported closed while its signin is at the vendor"

            assert (await cold).status_code == 200
            assert await reload is True
            assert logged(CLOSED)


@pytest.mark.anyio
async def test_the_start_is_announced_and_requests_in_flight_can_be_cancelled(
    make_settings: Callable[..., Settings], vendor: ReturningAIStandIn, leak_scanner: LeakScanner
) -> None:
    """What a server without uvicorn's drain asks of it (`serve --server granian`)."""
    proxy = Reloading(lambda: make_settings(SESSION_SECRET=SECRET))
    started: list[int] = []
    proxy.on_started(lambda: started.append(len(started)))
    async with (
        serving(proxy) as url,
        async_scanning_client(leak_scanner, base_url=url, timeout=30) as client,
    ):
        assert started == [0]
        vendor.signin_delay = 10
        pending = asyncio.create_task(client.get("/widget", headers=cookie(EMAIL)))
        await until(lambda: vendor.calls["signin"] == 1)
        cancelled = proxy.cancel_requests()
        response = await pending
        after = proxy.cancel_requests()

    assert cancelled == 1
    assert response.status_code == 500  # uvicorn's, for a request that ended unanswered
    assert after == 0
    assert started == [0]


@pytest.mark.anyio
async def test_concurrent_reloads_take_turns_and_close_every_old_app(
    make_settings: Callable[..., Settings], leak_scanner: LeakScanner
) -> None:
    closed: list[str] = []
    proxy = Reloading(lambda: make_settings(SESSION_SECRET=SECRET), recording(closed))
    async with (
        serving(proxy) as url,
        async_scanning_client(leak_scanner, base_url=url, timeout=30) as client,
    ):
        results = await asyncio.gather(*(proxy.reload() for _ in range(3)))
        assert results == [True, True, True]
        assert len(closed) == 3  # the first app and two of the three reloads' apps
        assert (await client.get("/widget", headers=cookie(EMAIL))).status_code == 200
    assert len(closed) == 4


@pytest.mark.anyio
async def test_request_lines_are_flushed_at_each_reload_and_at_the_end(
    make_settings: Callable[..., Settings], leak_scanner: LeakScanner
) -> None:
    """`serve`'s writer of request lines is flushed when SIGHUP reloads the settings,
    and when the server stops, once every generation is closed (their last lines in)."""
    flushed: list[str] = []
    closed: list[str] = []

    def flush() -> None:
        flushed.append(f"after {len(closed)} closed")

    proxy = Reloading(lambda: make_settings(SESSION_SECRET=SECRET), recording(closed), flush=flush)
    async with (
        serving(proxy) as url,
        async_scanning_client(leak_scanner, base_url=url, timeout=30) as client,
    ):
        assert (await client.get("/widget", headers=cookie(EMAIL))).status_code == 200
        assert flushed == []
        assert await proxy.reload() is True
        assert flushed == ["after 0 closed"]  # the reload's first step
    assert flushed == ["after 0 closed", "after 2 closed"]


def write_env(path: Path, values: dict[str, str]) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("edit", "named"),
    [
        ({"WIDGET_COLOR": "blue"}, "WIDGET_COLOR"),
        ({"WIDGET_API_KEY": "", "WIDGET_API_KEY_FILE": "/nonexistent/api_key"}, "WIDGET_API_KEY"),
    ],
    ids=["bad-value", "unreadable-secret-file"],
)
async def test_invalid_new_settings_are_refused_and_the_old_keep_serving(
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    upstream: str,
    leak_scanner: LeakScanner,
    caplog: pytest.LogCaptureFixture,
    edit: dict[str, str],
    named: str,
) -> None:
    leak_scanner.add(SECRET)
    env_file = tmp_path / ".env"
    values = {
        **vendor.proxy_env(upstream),
        **UNLIMITED,
        "SESSION_SECRET": SECRET,
    }
    write_env(env_file, values)
    proxy = Reloading(lambda: Settings.load(env_file=env_file))
    async with (
        serving(proxy) as url,
        async_scanning_client(leak_scanner, base_url=url, timeout=30) as client,
    ):
        old = proxy.current
        assert (await client.get("/widget", headers=cookie(EMAIL))).status_code == 200

        write_env(env_file, {**values, **edit})
        with caplog.at_level(logging.INFO, logger="widget_proxy"):
            assert await proxy.reload() is False

        assert proxy.current is old
        assert (await client.get("/widget", headers=cookie(EMAIL))).status_code == 200
    lines = [r for r in caplog.records if r.name == "widget_proxy" and r.levelno >= logging.ERROR]
    assert len(lines) == 1
    message = lines[0].getMessage()
    assert message.startswith("settings reload refused, keeping the running settings: ")
    assert named in message
    assert not any("settings reloaded" in r.getMessage() for r in caplog.records)


@pytest.mark.anyio
async def test_a_reload_keeps_the_metrics_and_redacts_the_new_secrets(
    make_settings: Callable[..., Settings],
) -> None:
    redaction = RedactionFilter(secrets=["the-first-secret"])
    handler = logging.NullHandler()
    handler.addFilter(redaction)
    logger = logging.getLogger("widget_proxy")
    logger.addHandler(handler)
    try:
        env: dict[str, str] = {}
        proxy = Reloading(lambda: make_settings(SESSION_SECRET=SECRET, **env))
        async with serving(proxy):
            old = proxy.current
            env["WIDGET_API_KEY"] = "wp-rotated-" + secrets.token_hex(16)
            assert await proxy.reload() is True
            assert proxy.current is not old
            assert proxy.current.state.metrics is old.state.metrics  # counters carry over
    finally:
        logger.removeHandler(handler)

    text = f"a {env['WIDGET_API_KEY']} b the-first-secret c"
    assert redaction.redact(text) == "a [redacted] b [redacted] c"


# --- as a real process ---------------------------------------------------------------


@dataclass
class KeyCheckingStandIn(ReturningAIStandIn):
    """The stand-in, noting which of the keys it has had each signin carried, and
    accepting a previous key beside `api_key` until it is revoked (a rotation's overlap)."""

    signins: list[str] = field(default_factory=list)  # "old", "new" or "unknown"
    known: dict[str, str] = field(default_factory=dict)
    previous: str | None = None

    def rotate(self, new_key: str) -> None:
        """A new key, and the current one still accepted until `revoke()`."""
        self.known[new_key] = "new"
        self.previous, self.api_key = self.api_key, new_key

    def revoke(self) -> None:
        self.previous = None

    async def _signin(self, request: Request) -> Response:
        sent = request.headers.get("returningai-api-key", "")
        self.signins.append(self.known.get(sent, "unknown"))
        if self.previous is not None and sent == self.previous:
            self.calls["signin"] += 1
            return JSONResponse({"token": self.issue(request.headers.get("email", ""))})
        return await super()._signin(request)


class Load:
    """Threads sending GET /widget back to back, each as its own user, until stopped."""

    def __init__(self, url: str, scanner: LeakScanner, users: int = 4) -> None:
        self.statuses: list[int] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(url, scanner, f"user{i}@example.com"))
            for i in range(users)
        ]

    def _run(self, url: str, scanner: LeakScanner, email: str) -> None:
        with scanning_client(scanner, base_url=url, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.get("/widget", headers=cookie(email))
                except Exception as exc:  # a dropped connection, a leak, anything
                    self.failures.append(type(exc).__name__)
                    continue
                self.statuses.append(response.status_code)

    def sent(self) -> int:
        return len(self.statuses) + len(self.failures)

    def wait_for(self, more: int) -> None:
        """Until `more` further requests are answered (so every user is served again)."""
        target = self.sent() + more
        wait_until(lambda: self.sent() >= target, timeout=30)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def messages(log: Path) -> list[str]:
    found = []
    for line in log.read_text().splitlines():
        try:
            found.append(json.loads(line)["message"])
        except (ValueError, KeyError):
            continue  # a line still being written, or not one of ours
    return found


def count(log: Path, text: str) -> int:
    return sum(text in message for message in messages(log))


def key_from_file(vendor_env: dict[str, str], key_file: Path) -> dict[str, str]:
    """A served proxy's settings, its vendor key read from `key_file` (SIGHUP reads it)."""
    return {
        **vendor_env,
        **UNLIMITED,
        "SESSION_SECRET": SECRET,
        "WIDGET_API_KEY": "",
        "WIDGET_API_KEY_FILE": str(key_file),
    }


@contextmanager
def stand_in(leak_scanner: LeakScanner) -> Iterator[tuple[KeyCheckingStandIn, str]]:
    vendor = KeyCheckingStandIn(
        api_key="wp-reload-key-" + secrets.token_hex(16),
        community_id="reload-community",
        signing_key=secrets.token_urlsafe(32),
    )
    vendor.known[vendor.api_key] = "old"
    leak_scanner.add(vendor.api_key)
    with BackgroundServer(vendor.app(), timeout_graceful_shutdown=1) as server:
        yield vendor, server.url


@pytest.mark.slow
@pytest.mark.parametrize(
    ("server", "workers"),
    [("uvicorn", 1), ("uvicorn", 2), ("granian", 2)],
    ids=["one-worker", "two-workers", "granian-two-workers"],
)
def test_sighup_under_load_drops_nothing(
    tmp_path: Path,
    leak_scanner: LeakScanner,
    server: str,
    workers: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    leak_scanner.add(SECRET)
    with stand_in(leak_scanner) as (vendor, upstream):
        key_file = tmp_path / "api_key"
        key_file.write_text(vendor.api_key + "\n")
        values = key_from_file(vendor.proxy_env(upstream), key_file)
        write_env(tmp_path / ".env", values)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = tmp_path / "stderr.log"
        args = ["serve", "--port", str(port), "--workers", str(workers), "--server", server]

        with running(args, tmp_path, url, leak_scanner) as process:
            wait_until(lambda: count(log, "Application startup complete") == workers, 60)

            def reload(*, expect: str = "settings reloaded") -> None:
                """SIGHUP; returns once every worker swapped and closed its old settings."""
                before, closed = count(log, expect), count(log, CLOSED)
                process.send_signal(signal.SIGHUP)
                if expect.startswith("settings reload refused"):
                    wait_until(lambda: count(log, expect) == before + 1, timeout=30)
                    return
                wait_until(lambda: count(log, expect) == before + workers, timeout=30)
                wait_until(lambda: count(log, CLOSED) == closed + workers, timeout=30)

            with Load(url, leak_scanner) as load:
                load.wait_for(40)
                for _ in range(3):  # the same settings: a fresh app each time, under load
                    reload()
                    load.wait_for(40)

                # A rotated key, the way docs/vendors/index.md rotates one: the vendor takes both
                # keys until every process has closed its old settings, then the old key
                # is revoked. Revoked any sooner, a user the running app holds no token
                # for is refused (502): a newcomer, or on a loaded machine a user whose
                # worker was off the CPU since its last swap.
                signins_before = len(vendor.signins)
                new_key = "wp-reload-key-" + secrets.token_hex(16)
                leak_scanner.add(new_key)
                vendor.rotate(new_key)
                key_file.write_text(new_key + "\n")
                with scanning_client(leak_scanner, base_url=url, timeout=30) as client:
                    newcomer = client.get("/widget", headers=cookie("newcomer@example.com"))
                    assert newcomer.status_code == 200, "signed in with the key the app has"
                reload()
                vendor.revoke()
                revoked_at = len(vendor.signins)
                load.wait_for(40)
                after_rotation = vendor.signins[signins_before:]
                after_revoking = vendor.signins[revoked_at:]

                # An invalid edit: refused, and the running settings keep serving.
                write_env(tmp_path / ".env", {**values, "WIDGET_COLOR": "blue"})
                reload(expect="settings reload refused, keeping the running settings")
                load.wait_for(40)

            assert process.poll() is None
            stderr = messages(log)

    sent, failed = load.sent(), len(load.failures) + sum(s != 200 for s in load.statuses)
    with capsys.disabled():
        print(f"\n{server}, {workers} worker(s): {sent} requests during 5 SIGHUPs, {failed} failed")
    assert load.failures == []
    assert set(load.statuses) == {200}
    assert "unknown" not in vendor.signins
    assert "new" in after_rotation, "the fresh app signed its users in again"
    assert set(after_revoking) <= {"new"}  # no app of the old key left to use it
    assert sum(m == "settings reloaded (changed: WIDGET_API_KEY)" for m in stderr) == workers
    refused = [m for m in stderr if m.startswith("settings reload refused")]
    assert len(refused) == 1
    assert "WIDGET_COLOR" in refused[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        # Read, a FIFO would block the reload for ever while it holds the reload lock, and
        # every later SIGHUP would wait behind it.
        (
            {"WIDGET_API_KEY_FILE": "{fifo}"},
            "WIDGET_API_KEY_FILE: {fifo} is not a regular file (a FIFO); name the file itself",
        ),
        # Once logged as "CACHE_URL: ':Zq7Left' is not host:port".
        (
            {"CACHE_URL": "redis+sentinel://:Zq7Left?Zq7Right@127.0.0.1:26379/m"},
            "CACHE_URL: an '@'",
        ),
    ],
    ids=["fifo-secret-file", "password-in-a-malformed-cache-url"],
)
def test_a_sighup_refused_says_why_and_a_later_one_works(
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    upstream: str,
    leak_scanner: LeakScanner,
    edit: dict[str, str],
    problem: str,
) -> None:
    """The refusal is logged at once, naming the setting and nothing secret, and the
    next SIGHUP with valid settings is served."""
    leak_scanner.add(SECRET, "Zq7Left", "Zq7Right")
    key_file = tmp_path / "api_key"
    key_file.write_text(vendor.api_key)
    values = key_from_file(vendor.proxy_env(upstream), key_file)
    write_env(tmp_path / ".env", values)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "stderr.log"
    with (
        fifo(tmp_path / "api_key_fifo") as pipe,
        running(["serve", "--port", str(port)], tmp_path, url, leak_scanner) as process,
    ):
        wait_until(lambda: count(log, "Application startup complete") == 1, 60)
        bad = {k: v.format(fifo=pipe) for k, v in edit.items()}
        write_env(tmp_path / ".env", {**values, **bad})
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: count(log, "settings reload refused") == 1, timeout=20)

        write_env(tmp_path / ".env", {**values, "WIDGET_COLOR": "dark"})
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: count(log, "settings reloaded (changed: WIDGET_COLOR)") == 1, 20)
        with scanning_client(leak_scanner, base_url=url, timeout=30) as client:
            assert client.get("/widget", headers=cookie(EMAIL)).status_code == 200
    refused = [m for m in messages(log) if m.startswith("settings reload refused")]
    assert len(refused) == 1
    assert refused[0].startswith(
        "settings reload refused, keeping the running settings: " + problem.format(fifo=pipe)
    )
