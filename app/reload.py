"""Settings reloaded on SIGHUP: the whole app swapped for one built from the new settings.

`widget-proxy serve` runs a `Reloading` app. It holds one *generation*: a `Settings`,
the app `create_app` built from it, and the requests that app is answering.
On SIGHUP it reads the settings again (`.env` and the `*_FILE` secret files; the
process environment itself can't change), builds and starts a new generation, and
swaps it in with one assignment. A request keeps the generation it started with, so
requests in flight finish with the old settings while new ones get the new; the old
generation is closed (its upstream client and cache store) once its last request is
done, or after its `SHUTDOWN_TIMEOUT`, and `CLOSED` is logged: from then on nothing
in the process uses the old settings (an old vendor key may be revoked). Settings
that don't validate are refused with their problems, and the running ones stay.

With several workers, `workers.ReloadingWorkers` passes SIGHUP on to each worker, which
swaps in-process as above; `serve.serve_app` is what each process runs. Under granian
(`serve --server granian`), whose drain is not uvicorn's, a worker learns when the app
has started (`on_started`) and cancels the requests in flight once SHUTDOWN_TIMEOUT has
passed (`cancel_requests`); the lifespan's shutdown waits for them, under any server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import traceback
from collections.abc import Callable
from typing import Any, Final, Generic, Protocol, TypeVar

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from .application import create_app
from .errors import SettingsError
from .ops.logs import add_redaction
from .ops.metrics import Metrics
from .settings import Option, Settings, all_options

log = logging.getLogger("widget_proxy")

REFUSED: Final = "settings reload refused, keeping the running settings: %s"
# Logged by each process once no request uses the previous settings: from then on
# its old vendor key is unused (a rotation may revoke it once every process says so).
CLOSED: Final = "previous settings closed: no request uses them any more"
# Logging is configured once, at start; these settings take effect at the next restart.
RESTART_ONLY: Final = ("LOG_FORMAT", "LOG_LEVEL", "LOG_EMAILS")


class Configured(Protocol):
    """What a generation is built from: `Settings`, or a config file's widgets."""

    @property
    def secrets(self) -> tuple[str, ...]: ...

    @property
    def shutdown_timeout(self) -> int: ...


S = TypeVar("S", bound=Configured)


class Generation(Generic[S]):
    """One settings object, the app built from it, and the requests it is answering."""

    def __init__(self, number: int, settings: S, app: Starlette) -> None:
        self.number = number
        self.settings = settings
        self.app = app
        self.state: dict[str, Any] = {}  # what the app's lifespan yielded, if anything
        self.requests: set[object] = set()  # each request's task (what `cancel` ends)
        self._idle: asyncio.Event | None = None  # set when the last request leaves
        self._stop = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        return len(self.requests)

    def enter(self) -> object:
        """Count the request the current task answers; the token `leave` takes."""
        request = asyncio.current_task() or object()
        self.requests.add(request)
        return request

    def leave(self, request: object) -> None:
        requests = self.requests
        requests.discard(request)
        if not requests and self._idle is not None:  # someone waits for it
            self._idle.set()

    def cancel(self) -> int:
        """Cancel every request in flight; how many."""
        tasks = [r for r in self.requests if isinstance(r, asyncio.Task)]
        for task in tasks:
            task.cancel()
        return len(tasks)

    async def idle(self) -> None:
        """Wait until no request is in flight."""
        while self.requests:
            if self._idle is None or self._idle.is_set():  # shared by every waiter
                self._idle = asyncio.Event()
            await self._idle.wait()

    async def start(self) -> None:
        """Run the app's lifespan up to its startup, in a task of its own (so that it
        ends in the task it began in, whoever stops it); raise if the startup fails."""
        started = asyncio.get_running_loop().create_future()
        self._runner = asyncio.create_task(self._run(started))
        await started

    async def stop(self) -> None:
        """End the app's lifespan (idempotent); raise what its shutdown raised."""
        self._stop.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner

    async def _run(self, started: asyncio.Future[None]) -> None:
        try:
            async with self.app.router.lifespan_context(self.app) as state:
                self.state = dict(state or {})
                if not started.done():
                    started.set_result(None)
                await self._stop.wait()
        except Exception as exc:
            if started.done():
                raise  # from the shutdown: for `stop` to report
            started.set_exception(exc)
        except BaseException:
            started.cancel()
            raise


class Reloading(Generic[S]):
    """The proxy as `serve` runs it: one generation at a time, swapped by `reload()`.

    `load` reads the settings (`Settings.load`); `build` turns them into an app
    (`create_app`, sharing one `Metrics` so that counters carry over); `check` may refuse
    settings that load fine (what `serve`'s own flags rule out). `handle_sighup` makes
    SIGHUP call `reload()`, when the lifespan runs in a process's main thread.
    `on_started` and `cancel_requests` are for a server's drain (granian_worker). `flush`
    writes what the request lines' writer holds (`serve`'s `BatchWriter`): at each
    reload, and at the end of the lifespan, once every generation is closed. `changes`
    names what differs between two loads (a config file's: `multi.serving`).
    """

    def __init__(
        self,
        load: Callable[[], S],
        build: Callable[[S], Starlette] | None = None,
        *,
        check: Callable[[S], list[str]] | None = None,
        handle_sighup: bool = False,
        flush: Callable[[], None] | None = None,
        changes: Callable[[S, S], list[str]] | None = None,
    ) -> None:
        if build is None:
            metrics = Metrics()

            def build(settings: Any) -> Starlette:  # Settings, as `load` gives without one
                return create_app(settings, metrics=metrics)

        self._load = load
        # What a reload's line names as changed (`changed_options`, for `Settings`).
        self._changes: Callable[[Any, Any], list[str]] = changes or changed_options
        self._build = build
        self._check = check or (lambda settings: [])
        self._handle_sighup = handle_sighup
        self._flush = flush
        settings = load()
        if problems := self._check(settings):
            raise SettingsError(problems)
        self._current = Generation(1, settings, build(settings))
        self._live: list[Generation[S]] = []  # every generation whose lifespan was started
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[bool]] = set()
        self._previous_handler: Any = None
        self._sighup_installed = False
        self._on_started: list[Callable[[], None]] = []

    @property
    def current(self) -> Starlette:
        """The app new requests go to."""
        return self._current.app

    @property
    def settings(self) -> S:
        """The settings new requests are served with."""
        return self._current.settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        generation = self._current  # this request's, to its end, whatever reloads meanwhile
        request = generation.enter()
        try:
            if generation.state:
                scope = {**scope, "state": {**scope.get("state", {}), **generation.state}}
            await generation.app(scope, receive, send)
        finally:
            generation.leave(request)

    def on_started(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the app has started (its SIGHUP handled), in the
        lifespan's task, before the server is told so."""
        self._on_started.append(callback)

    def cancel_requests(self) -> int:
        """Cancel every request in flight, whatever its settings; how many."""
        return sum(generation.cancel() for generation in {self._current, *self._live})

    async def reload(self) -> bool:
        """Read the settings again and swap them in; False (and the running settings
        kept) if they are invalid or the new app can't start. Returns once the previous
        generation is closed."""
        await self._flushed()  # what was answered before the reload, written now
        async with self._lock:
            try:
                settings = await asyncio.to_thread(self._load)
                problems = self._check(settings)
            except Exception as exc:
                problems = unreadable(exc)
            if problems:
                log.error(REFUSED, "; ".join(problems))
                return False
            add_redaction(settings.secrets)  # before anything built from them may log
            old = self._current
            generation = await self._started(old.number + 1, settings)
            if generation is None:
                return False
            self._current = generation  # the swap: one assignment, between two awaits
            changed = self._changes(old.settings, settings)
            log.info(
                "settings reloaded (changed: %s)%s",
                ", ".join(changed) or "nothing",
                restart_note(changed),
            )
        await self._retire(old)
        return True

    async def _started(self, number: int, settings: S) -> Generation[S] | None:
        try:
            generation = Generation(number, settings, self._build(settings))
        except Exception as exc:
            log.error(REFUSED, f"the new app could not be built ({type(exc).__name__})")
            return None
        self._live.append(generation)
        try:
            await generation.start()
        except Exception as exc:
            log.error(REFUSED, f"the new app did not start ({type(exc).__name__})")
            await self._stopped(generation)
            return None
        return generation

    async def _retire(self, old: Generation[S]) -> None:
        timeout = old.settings.shutdown_timeout
        try:
            async with asyncio.timeout(timeout):
                await old.idle()
        except TimeoutError:
            log.warning(
                "settings reload: %d requests with the previous settings still running"
                " after SHUTDOWN_TIMEOUT (%ss); closing them",
                old.in_flight,
                timeout,
            )
        await self._stopped(old)
        # Until here a request of the old settings may still sign in with the old key:
        # a vendor key is revoked safely only once every process has logged this.
        log.info(CLOSED)

    async def _stopped(self, generation: Generation[S]) -> bool:
        try:
            await generation.stop()
        except Exception:
            log.exception("closing the app of settings generation %d failed", generation.number)
            return False
        finally:
            if generation in self._live:
                self._live.remove(generation)
        return True

    # --- the ASGI lifespan, and SIGHUP -----------------------------------------------

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._startup()
                except BaseException:
                    failure = traceback.format_exc()
                    await send({"type": "lifespan.startup.failed", "message": failure})
                    raise
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if await self._shutdown():
                    await send({"type": "lifespan.shutdown.complete"})
                else:
                    failure = "closing an app failed (logged)"
                    await send({"type": "lifespan.shutdown.failed", "message": failure})
                return

    async def _startup(self) -> None:
        generation = self._current
        self._live.append(generation)
        try:
            await generation.start()
        except BaseException:
            self._live.remove(generation)
            raise
        if self._handle_sighup and threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.getsignal(signal.SIGHUP)
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
            self._sighup_installed = True
        for callback in self._on_started:
            callback()

    async def _shutdown(self) -> bool:
        # A server may end its drain with requests still running (granian: one whose
        # client has gone): the apps close under none of them, for SHUTDOWN_TIMEOUT at
        # most (under uvicorn, the requests it has just cancelled end at once).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._current.settings.shutdown_timeout):
                for generation in {self._current, *self._live}:
                    await generation.idle()
        if self._sighup_installed:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            if self._previous_handler is not None:
                signal.signal(signal.SIGHUP, self._previous_handler)
            self._sighup_installed = False
        for task in list(self._tasks):  # a reload under way: its generations are live
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        results = [await self._stopped(generation) for generation in list(self._live)]
        await self._flushed()
        return all(results)

    async def _flushed(self) -> None:
        if self._flush is not None:  # in a thread: a stalled stream must not stall the loop
            await asyncio.to_thread(self._flush)

    def _on_sighup(self) -> None:
        log.info("SIGHUP received: reloading the settings")
        task = asyncio.get_running_loop().create_task(self.reload())
        self._tasks.add(task)
        task.add_done_callback(self._reloaded)

    def _reloaded(self, task: asyncio.Task[bool]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("settings reload failed", exc_info=exc)


def unreadable(exc: Exception) -> list[str]:
    """The problems to report for settings that failed to load (no values in them)."""
    if isinstance(exc, SettingsError):
        return exc.problems
    return [f"the settings could not be read ({type(exc).__name__})"]


def changed_options(old: Settings, new: Settings) -> list[str]:
    """The variables whose values differ (secrets compared too; only names shown)."""
    missing = object()

    def value(settings: Settings, opt: Option) -> object:
        if not opt.vendor:
            return getattr(settings, opt.field, missing)
        if settings.token_provider != opt.vendor:
            return missing
        return getattr(settings.vendor, opt.field, missing)

    return [opt.name for opt in all_options() if value(old, opt) != value(new, opt)]


def restart_note(changed: list[str]) -> str:
    later = [name for name in changed if name in RESTART_ONLY]
    return f"; {', '.join(later)} take effect at the next restart" if later else ""
