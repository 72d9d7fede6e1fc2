"""`widget-proxy check`: prove the settings and the vendor work before going live.

A merchant runs it once on the server that will serve the widgets, with a test
user's email. It validates the settings exactly as start-up does, then does for
real what the first page view would do (connect, sign in or sign a token, fetch
the page or the loader script) through the proxy's own client, so timeouts,
retries and redirects behave as in production. Each step prints one checklist
line; the first failure stops the check and names the reason in plain words. The
steps are the vendor's (`providers/*/check.py`), given the kit in `check.checklist`.

A step that could not prove what it checks (the vendor unreachable from here, a key
nobody could judge, a step skipped) prints a ⚠ line: then the verdict is "passed with N
warning(s)", never "All checks passed", and `--strict` makes it a failure.

Exit codes: 0 every check passed (with warnings, unless --strict), 1 a check failed (or
warned, with --strict), 2 the settings or the command line are unusable (nothing was
tried), 130 interrupted.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..application import http_client
from ..cache.redis import RedisStore
from ..errors import InvalidEmail, SettingsError, StepFailed
from ..providers import PROVIDERS, Provider
from ..security.identity import validate_email
from ..settings import Settings
from .checklist import Checklist, Steps


def run_check(email: str | None, *, strict: bool = False, origin: str | None = None) -> int:
    """Run every check for the configured provider; the process exit code."""
    out = Checklist(sys.stdout)
    try:
        settings = Settings.load(
            warn=lambda line: print(f"widget-proxy: warning: {line}", file=sys.stderr)
        )
    except SettingsError as exc:
        out.failed("settings", str(exc))
        out.say(f"Check failed: {_count(len(exc.problems), 'setting')} invalid; nothing was tried")
        return 2
    source = "the environment and .env" if Path(".env").is_file() else "the environment (no .env)"
    code = check_widget(settings, out, email, origin=origin, source=source)
    return code if code else _verdict(out, strict=strict)


def check_widget(
    settings: Settings, out: Checklist, email: str | None, *, origin: str | None, source: str
) -> int:
    """Every step for one widget's valid settings: 0 if none failed (the verdict is the
    caller's), else the exit code (`serve --config` checks each widget in turn)."""
    name = settings.token_provider
    provider: Provider[Any] = PROVIDERS[name]
    key_name, key = settings.vendor.key
    out.ok(
        "settings",
        f"valid, from {source} (TOKEN_PROVIDER={name}, {key_name} {out.fingerprint(key.reveal())})",
    )

    if email is None and provider.check_email is not None:
        out.failed(
            "email",
            f"missing: with TOKEN_PROVIDER={name} {provider.check_email};"
            " run widget-proxy check --email test-user@your-domain",
        )
        out.say(f"Check failed: --email is required with TOKEN_PROVIDER={name}")
        return 2
    if email is not None:
        try:
            validate_email(email)
        except InvalidEmail as exc:
            reason = exc.detail.replace("the session email", "--email")
            out.failed("email", reason)
            out.say(f"Check failed: {reason}")
            return 2
    if origin is not None:
        origin = origin.rstrip("/")
        if (problem := _not_an_origin(origin)) is not None:
            out.failed("origin", problem)
            out.say(f"Check failed: --origin {problem}")
            return 2

    try:
        with _quiet_logs():
            asyncio.run(_check(settings, provider, email, out, origin))
    except StepFailed as exc:
        out.failed(exc.step, f"{exc.reason}{f'; {exc.hint}' if exc.hint else ''}")
        out.say(f"Check failed: {exc.reason}")
        return 1
    except KeyboardInterrupt:
        # `widget-proxy` exits 0 on Ctrl+C (right for `serve`); an unfinished check
        # must not look like a passed one.
        out.say("Check failed: interrupted")
        return 130
    return 0


def verdict(out: Checklist, *, strict: bool) -> int:
    return _verdict(out, strict=strict)


def _verdict(out: Checklist, *, strict: bool) -> int:
    """The last line once no step failed: a warning is not a pass, only not a failure."""
    if not out.warned:
        out.say("All checks passed.")
        return 0
    warnings = f"{_count(len(out.warned), 'warning')} ({', '.join(out.warned)})"
    if strict:
        out.say(f"Check failed: {warnings} under --strict")
        return 1
    out.say(f"Checks passed with {warnings}; --strict makes warnings fail.")
    return 0


def _not_an_origin(origin: str) -> str | None:
    """Why `origin` is not what a browser sends as `Origin` (None: it is)."""
    wrong = f"{origin!r} is not an origin: scheme://host[:port], e.g. https://shop.example.com"
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError:
        return wrong
    extra = parts.path or parts.query or parts.fragment or parts.username or parts.password
    if parts.scheme not in ("http", "https") or not parts.hostname or extra:
        return wrong
    return None


async def _check(
    settings: Settings,
    provider: Provider[Any],
    email: str | None,
    out: Checklist,
    origin: str | None = None,
) -> None:
    http = http_client(settings)
    steps = Steps(
        out,
        http,
        connect_timeout=settings.upstream_connect_timeout,
        margin=settings.token_refresh_margin,
        max_ttl=settings.token_max_ttl,
        default_ttl=settings.token_default_ttl,
        color=settings.widget_color,
        origin=origin,
    )
    try:
        await _cache(settings, out)
        await provider.check(settings.vendor, steps, email)
    finally:
        await http.aclose()


async def _cache(settings: Settings, out: Checklist) -> None:
    """The shared cache, if any: that it answers, and the topology it found."""
    cache = settings.cache_url
    if cache.kind == "memory":
        out.ok("cache", "memory:// (each process its own; use Redis with several)")
        return
    store = RedisStore(cache, secret=settings.session_secret.reveal())
    try:
        try:
            await store.ping()
        except Exception as exc:
            raise StepFailed(
                "cache", f"{cache.shown} does not answer ({type(exc).__name__})"
            ) from None
        found = store.topology()
        where = ", ".join(f"{k} {v}" for k, v in found.items() if k != "topology")
        out.ok("cache", f"{found['topology']} Redis answers{f' ({where})' if where else ''}")
    finally:
        await store.aclose()


@contextmanager
def _quiet_logs() -> Iterator[None]:
    # Every failure is already a checklist line; the client's warning would only
    # repeat it on stderr.
    logger = logging.getLogger("widget_proxy")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
