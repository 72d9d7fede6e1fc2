"""`widget-proxy check`: prove the settings and the vendor work before going live.

A merchant runs it once on the server that will serve the widgets, with a test
user's email. It validates the settings exactly as start-up does, then does for
real what the first page view would do (connect, sign in or sign a token, fetch
the page or the loader script) through the proxy's own client, so timeouts,
retries and redirects behave as in production. Each step prints one checklist
line; the first failure stops the check and names the reason in plain words.

Exit codes: 0 every check passed, 1 a check failed, 2 the settings or the command
line are unusable (nothing was tried), 130 interrupted.

No secret and no token is ever printed: at most a fingerprint (`fingerprint`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import sys
import time
import urllib.request
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TextIO, TypeVar
from urllib.parse import urlsplit

import httpx2
import jwt

from app.errors import InvalidEmail, UpstreamError, UpstreamRejectedKey
from app.http import HttpClient
from app.identity import Identity, validate_email
from app.providers.base import jwt_exp
from app.providers.hissuno import HissunoProvider
from app.providers.neuroon import NeuroonProvider
from app.settings import Secret, Settings, SettingsError
from app.upstream import Upstream
from app.widgets import Widget

T = TypeVar("T")

# Providers that cannot be checked without a test user, and what the user is for.
EMAIL_NEEDED_BY: Final = {
    "returningai": "the signin and page steps sign this test user in at the vendor",
    "hissuno": "the token step signs a user JWT for this test user",
}


class StepFailed(Exception):
    """A step failed; the check stops here."""

    def __init__(self, step: str, reason: str, hint: str = "") -> None:
        super().__init__(reason)
        self.step = step
        self.reason = reason
        self.hint = hint


class Checklist:
    """The lines the merchant reads: one per step, then the verdict."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        # A terminal that can't show the check marks still gets a readable list.
        fancy = _can_encode(stream, "✔✘⚠…")
        self._ok, self._fail, self._warn = ("✔", "✘", "⚠") if fancy else ("ok", "FAIL", "warn")
        self._ellipsis = "…" if fancy else "..."

    def say(self, text: str) -> None:
        # Flushed per line: a slow vendor should show which step it is stuck on.
        print(text, file=self._stream, flush=True)

    def ok(self, step: str, text: str) -> None:
        self.say(f"{self._ok} {step}: {text}")

    def warn(self, step: str, text: str) -> None:
        self.say(f"{self._warn} {step}: {text}")

    def failed(self, step: str, text: str) -> None:
        self.say(f"{self._fail} {step}: {text}")

    def fingerprint(self, value: str) -> str:
        """Enough of a secret or token to recognise it, never enough to use it.

        At most the first 6 and last 4 characters, and only when they are under a
        third of the value; a short value shows its length alone.
        """
        n = len(value)
        if n >= 32:
            return f"{value[:6]}{self._ellipsis}{value[-4:]} ({n} chars)"
        if n >= 16:
            return f"{self._ellipsis}{value[-4:]} ({n} chars)"
        return f"({n} chars)"


def run_check(email: str | None) -> int:
    """Run every check for the configured provider; the process exit code."""
    out = Checklist(sys.stdout)
    try:
        settings = Settings.load()
    except SettingsError as exc:
        out.failed("settings", str(exc))
        out.say(f"Check failed: {_count(len(exc.problems), 'setting')} invalid; nothing was tried")
        return 2
    provider = settings.token_provider
    name, key = _provider_key(settings)
    source = "the environment and .env" if Path(".env").is_file() else "the environment (no .env)"
    out.ok(
        "settings",
        f"valid, from {source} (TOKEN_PROVIDER={provider}, {name} {out.fingerprint(key.reveal())})",
    )

    if email is None and provider in EMAIL_NEEDED_BY:
        out.failed(
            "email",
            f"missing: with TOKEN_PROVIDER={provider} {EMAIL_NEEDED_BY[provider]};"
            " run widget-proxy check --email test-user@your-domain",
        )
        out.say(f"Check failed: --email is required with TOKEN_PROVIDER={provider}")
        return 2
    if email is not None:
        try:
            validate_email(email)
        except InvalidEmail as exc:
            reason = exc.detail.replace("the session email", "--email")
            out.failed("email", reason)
            out.say(f"Check failed: {reason}")
            return 2

    try:
        with _quiet_logs():
            asyncio.run(_check(settings, email, out))
    except StepFailed as exc:
        out.failed(exc.step, f"{exc.reason}{f'; {exc.hint}' if exc.hint else ''}")
        out.say(f"Check failed: {exc.reason}")
        return 1
    except KeyboardInterrupt:
        # `widget-proxy` exits 0 on Ctrl+C (right for `serve`); an unfinished check
        # must not look like a passed one.
        out.say("Check failed: interrupted")
        return 130
    out.say("All checks passed.")
    return 0


async def _check(settings: Settings, email: str | None, out: Checklist) -> None:
    http = HttpClient(settings)
    try:
        match settings.token_provider, email:
            case "neuroon", _:
                await _check_neuroon(settings, http, email, out)
            case "hissuno", str():
                await _check_hissuno(settings, http, email, out)
            case "returningai", str():
                await _check_returningai(settings, http, email, out)
            case _:  # run_check asked for the email already
                raise StepFailed("email", "missing")
    finally:
        await http.aclose()


# --- the providers ------------------------------------------------------------------


async def _check_returningai(
    settings: Settings, http: HttpClient, email: str, out: Checklist
) -> None:
    await _connect(settings, settings.widget_base_url, out)
    upstream = Upstream(settings, http)
    status = LastStatus(http)

    token, ms = await _timed(
        "signin", upstream.signin(email), rejected="check WIDGET_API_KEY and WIDGET_COMMUNITY_ID"
    )
    out.ok("signin", f"{status.text} in {ms} ms, token {out.fingerprint(token)}")
    _check_exp(settings, token, out)

    widgets = dict.fromkeys((settings.default_widget, *settings.widgets))
    for widget in widgets:
        await _check_page(settings, upstream, widget, status, out)


async def _check_page(
    settings: Settings, upstream: Upstream, widget: Widget, status: LastStatus, out: Checklist
) -> None:
    step = f"page {widget.type}/{widget.id}"
    # A missing or repeated placeholder raises here, with the reason as its detail.
    fetch, ms = await _timed(step, upstream.page(widget, settings.widget_color))
    if fetch.page is None:
        raise StepFailed(step, "the page answered 304 Not Modified to a plain request")
    size = len(fetch.page.head) + len(fetch.page.tail)
    out.ok(step, f"{status.text} in {ms} ms, one token placeholder, {size} bytes")


def _check_exp(settings: Settings, token: str, out: Checklist) -> None:
    """The token's lifetime as the token cache will judge it."""
    step = "token exp"
    exp = jwt_exp(token)
    if exp is None:
        out.warn(
            step,
            "none readable (not a JWT with a numeric exp); the proxy keeps it"
            f" TOKEN_DEFAULT_TTL ({settings.token_default_ttl:g} s)",
        )
        return
    left = exp - time.time()
    if left <= 0:
        raise StepFailed(
            step,
            f"the new token is already expired (exp {_utc(exp)}, {-left:.0f} s ago)",
            "is this server's clock right?",
        )
    when = f"{_utc(exp)}, in {left:.0f} s"
    margin = settings.token_refresh_margin
    if left <= margin:
        out.warn(
            step,
            f"{when}: less than TOKEN_REFRESH_MARGIN ({margin:g} s), so it is never"
            " cached and every page view signs in again",
        )
        return
    cached = min(left - margin, settings.token_max_ttl)
    out.ok(step, f"{when}; cached for {cached:.0f} s")


async def _check_neuroon(
    settings: Settings, http: HttpClient, email: str | None, out: Checklist
) -> None:
    provider = NeuroonProvider(settings, http)
    identity = Identity(email or "")  # one token for the whole shop: nobody in it
    match settings.neuroon_token_mode:
        case "remote":
            await _connect(settings, settings.neuroon_api_url, out)
            status = LastStatus(http)
            entry, ms = await _timed(
                "token issue", provider.issue(identity), rejected="check NEUROON_API_KEY"
            )
            text = f"{status.text} in {ms} ms, token {out.fingerprint(entry.token)}"
            out.ok("token issue", text)
        case "local":
            entry, _ = await _timed("token", provider.issue(identity))
            out.ok(
                "token",
                f"signed locally for shop {settings.neuroon_shop_id} at {_utc(entry.issued_at)},"
                f" re-issued after {settings.neuroon_rotate_after:g} s,"
                f" token {out.fingerprint(entry.token)}",
            )
    await _check_script(settings, http, settings.neuroon_script_url, out)


async def _check_hissuno(settings: Settings, http: HttpClient, email: str, out: Checklist) -> None:
    entry, _ = await _timed("token", HissunoProvider(settings).issue(Identity(email)))
    try:
        # What Hissuno will do with it; a failure here means the secret can't sign.
        claims = jwt.decode(entry.token, settings.hissuno_secret_key.reveal(), algorithms=["HS256"])
    except jwt.InvalidTokenError as exc:
        raise StepFailed(
            "token", f"the signed token does not verify ({type(exc).__name__})"
        ) from None
    lifetime = int(claims["exp"]) - int(claims["iat"])
    text = (
        f"HS256, signed and verified locally, claims {', '.join(claims)},"
        f" lives {lifetime} s, token {out.fingerprint(entry.token)}"
    )
    if lifetime <= settings.token_refresh_margin:
        out.warn(
            "token",
            f"{text}: not longer than TOKEN_REFRESH_MARGIN"
            f" ({settings.token_refresh_margin:g} s), so it is never cached",
        )
    else:
        out.ok("token", text)
    await _check_script(settings, http, settings.hissuno_script_url, out)


async def _check_script(settings: Settings, http: HttpClient, url: str, out: Checklist) -> None:
    """The vendor's loader script, fetched as a browser will need it."""
    await _connect(settings, url, out)
    reply, ms = await _timed("script", http.call("script", "GET", url, headers={"accept": "*/*"}))
    kind = reply.headers.get("content-type", "")
    text = f"{reply.status} in {ms} ms, {len(reply.text.encode())} bytes, {kind or 'no type'}"
    if "javascript" in kind.lower() or "ecmascript" in kind.lower():
        out.ok("script", text)
    else:
        out.warn("script", f"{text}: not served as JavaScript, browsers may refuse to run it")


# --- the steps' tools ---------------------------------------------------------------


class LastStatus:
    """The HTTP status of the client's latest answer.

    `Upstream` returns only what it parsed from a reply; a response hook on the same
    client is the one place the status still shows, without changing how the
    client connects (a transport of our own would, e.g. it would drop env proxies).
    """

    def __init__(self, http: HttpClient) -> None:
        self.status: int | None = None
        http.on_response(self._seen)

    async def _seen(self, response: httpx2.Response) -> None:
        self.status = response.status_code

    @property
    def text(self) -> str:
        return str(self.status) if self.status is not None else "answered"


async def _timed(step: str, call: Awaitable[T], rejected: str = "") -> tuple[T, int]:
    """Await `call`; its result and milliseconds, or StepFailed with the error's detail.

    The detail is safe to print: `app.errors` keeps bodies, keys and tokens out of it.
    """
    started = time.perf_counter()
    try:
        result = await call
    except UpstreamError as exc:
        hint = rejected if isinstance(exc, UpstreamRejectedKey) else ""
        raise StepFailed(step, exc.detail, hint) from None
    return result, round((time.perf_counter() - started) * 1000)


async def _connect(settings: Settings, url: str, out: Checklist) -> None:
    """Resolve the URL's host and open a TCP connection (and TLS for https) to it.

    Told apart from the HTTP steps so that a wrong host, a firewall or an untrusted
    certificate is named as such rather than as a failed signin.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    step = f"connect {_address(host, port)}"
    proxy = _env_proxy(parts.scheme, host)
    if proxy is not None:
        # The client goes through this proxy (it honours HTTP(S)_PROXY), so probe
        # the proxy; the vendor is resolved and reached by the proxy.
        via = urlsplit(proxy)
        proxy_host, proxy_port = via.hostname or "", via.port or 80
        # Only host and port: a proxy URL may carry credentials.
        try:
            address, ms = await _dial(step, proxy_host, proxy_port, None, settings)
        except StepFailed as exc:
            exc.reason += f" (the proxy from {parts.scheme.upper()}_PROXY)"
            raise
        out.ok(step, f"via proxy {_address(proxy_host, proxy_port)} ({address}) in {ms} ms")
        return
    tls = httpx2.create_ssl_context() if parts.scheme == "https" else None
    address, ms = await _dial(step, host, port, tls, settings)
    out.ok(step, f"{address}{', TLS verified' if tls else ''} in {ms} ms")


async def _dial(
    step: str, host: str, port: int, tls: ssl.SSLContext | None, settings: Settings
) -> tuple[str, int]:
    """The first of the host's addresses that accepts a connection, and the time taken."""
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise StepFailed(step, f"cannot resolve {host} ({exc.strerror})") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    timeout = settings.upstream_connect_timeout
    problems = []
    for address in addresses:
        where = _address(address, port)
        try:
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(
                    address, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            problems.append(f"no connection to {where} within {timeout:g} s")
        except ConnectionRefusedError:
            problems.append(f"connection refused by {where}")
        except ssl.SSLCertVerificationError as exc:
            problems.append(f"the TLS certificate of {host} is not trusted ({exc.verify_message})")
        except ssl.SSLError as exc:
            problems.append(f"the TLS handshake with {where} failed ({exc.reason or exc})")
        except OSError as exc:
            problems.append(f"cannot connect to {where} ({exc.strerror or type(exc).__name__})")
        else:
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()
            return address, round((time.perf_counter() - started) * 1000)
    raise StepFailed(step, "; ".join(problems) or f"{host} has no address")


def _env_proxy(scheme: str, host: str) -> str | None:
    """The proxy the environment sets for this URL, as the HTTP client will use it."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy


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


def _provider_key(settings: Settings) -> tuple[str, Secret]:
    """The provider's own secret and its option name, shown by fingerprint only."""
    match settings.token_provider:
        case "neuroon":
            return "NEUROON_API_KEY", settings.neuroon_api_key
        case "hissuno":
            return "HISSUNO_SECRET_KEY", settings.hissuno_secret_key
        case "returningai":
            return "WIDGET_API_KEY", settings.widget_api_key


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _utc(timestamp: float) -> str:
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{timestamp:g} (not a date)"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _can_encode(stream: TextIO, text: str) -> bool:
    try:
        text.encode(stream.encoding or "ascii")
    except (LookupError, UnicodeEncodeError):
        return False
    return True
