"""The tools of `widget-proxy check`'s steps: the checklist a merchant reads, and the
steps every vendor shares (connect, time a call, judge a JWT's exp, fetch a script).

`Steps` is the kit a vendor's own steps (`providers/*/check.py`) are written against
(`providers.checking.Steps`); the command (`check/__init__.py`) runs them. No secret
and no token is ever printed: at most a fingerprint.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from typing import TextIO, TypeVar
from urllib.parse import urlsplit

import httpx2

from ..cache.tokens import jwt_exp
from ..delivery.page import Color
from ..errors import StepFailed, UpstreamError, UpstreamRejectedKey
from ..providers.checking import utc
from ..secret import Secret
from ..upstream.client import HttpClient

T = TypeVar("T")


class Checklist:
    """The lines the merchant reads: one per step, then the verdict."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        # A terminal that can't show the check marks still gets a readable list.
        fancy = _can_encode(stream, "✔✘⚠…")
        self._ok, self._fail, self._warn = ("✔", "✘", "⚠") if fancy else ("ok", "FAIL", "warn")
        self._ellipsis = "…" if fancy else "..."
        self.warned: list[str] = []  # the steps that warned: the verdict counts them

    def say(self, text: str) -> None:
        # Flushed per line: a slow vendor should show which step it is stuck on.
        print(text, file=self._stream, flush=True)

    def ok(self, step: str, text: str) -> None:
        self.say(f"{self._ok} {step}: {text}")

    def warn(self, step: str, text: str) -> None:
        self.warned.append(step)
        self.say(f"{self._warn} {step}: {text}")

    def failed(self, step: str, text: str) -> None:
        self.say(f"{self._fail} {step}: {text}")

    def fingerprint(self, value: str) -> str:
        """Enough of a secret or token to recognise it, never enough to use it.

        Its last 4 characters and its length; a value under 16 characters, its length
        alone. (A key's first characters are often its type, `sk_`, and the next ones
        would be the secret's own.)
        """
        n = len(value)
        if n >= 16:
            return f"{self._ellipsis}{value[-4:]} ({n} chars)"
        return f"({n} chars)"


class Steps:
    """What a vendor's check steps are given: the checklist, the proxy's own client,
    and the core settings the shared steps judge by."""

    def __init__(
        self,
        out: Checklist,
        http: HttpClient,
        *,
        connect_timeout: float,
        margin: float,
        max_ttl: float,
        default_ttl: float,
        color: Color = "light",
        origin: str | None = None,
    ) -> None:
        self.out = out
        self.color = color  # WIDGET_COLOR: the page a first view would fetch
        self.origin = origin  # check --origin: the widget page's origin, for vendor APIs
        self.http = http
        self.status = LastStatus(http)
        self._connect_timeout = connect_timeout
        self.margin = margin  # TOKEN_REFRESH_MARGIN
        self._max_ttl = max_ttl
        self._default_ttl = default_ttl

    async def timed(self, step: str, call: Awaitable[T], rejected: str = "") -> tuple[T, int]:
        return await _timed(step, call, rejected)

    async def connect(self, url: str) -> None:
        await _connect(self._connect_timeout, url, self.out)

    async def each_key(
        self,
        step: str,
        keys: Sequence[tuple[str, Secret | None]],
        attempt: Callable[[Secret], Awaitable[T]],
        describe: Callable[[T, int], str],
        rejected: str = "",
    ) -> T:
        """`attempt` under each key that is set (a rotation's next key too), one line each.

        The first accepted answer is returned. During a rotation one key may already be
        refused (the vendor retired the old one, or hasn't activated the new one): the
        old one refused is a warning while the new one works; the new one refused fails,
        as the rotation would once the old key is retired.
        """
        present = [(name, key) for name, key in keys if key is not None]
        if len(present) == 1:
            result, ms = await _timed(step, attempt(present[0][1]), rejected)
            self.out.ok(step, describe(result, ms))
            return result
        results: list[T] = []
        for index, (name, key) in enumerate(present):
            label = step if index == 0 else f"{step} ({name})"
            try:
                result, ms = await _timed(label, attempt(key), rejected=f"check {name}")
            except StepFailed as failed:
                if failed.hint != f"check {name}" or index > 0:
                    raise  # not a refused key, or the new key refused
                self.out.warn(
                    label,
                    f"{name}: {failed.reason}; only {present[1][0]} can be in use:"
                    f" make it {name} and remove the old key",
                )
                continue
            results.append(result)
            self.out.ok(label, f"{name}: {describe(result, ms)}")
        return results[0]

    def token_exp(self, token: str) -> None:
        """The token's lifetime as the token cache will judge it."""
        step = "token exp"
        exp = jwt_exp(token)
        if exp is None:
            self.out.warn(
                step,
                "none readable (not a JWT with a numeric exp); the proxy keeps it"
                f" TOKEN_DEFAULT_TTL ({self._default_ttl:g} s)",
            )
            return
        left = exp - time.time()
        if left <= 0:
            raise StepFailed(
                step,
                f"the new token is already expired (exp {utc(exp)}, {-left:.0f} s ago)",
                "is this server's clock right?",
            )
        when = f"{utc(exp)}, in {left:.0f} s"
        margin = self.margin
        if left <= margin:
            self.out.warn(
                step,
                f"{when}: less than TOKEN_REFRESH_MARGIN ({margin:g} s), so it is never"
                " cached and every page view signs in again",
            )
            return
        cached = min(left - margin, self._max_ttl)
        self.out.ok(step, f"{when}; cached for {cached:.0f} s")

    async def script(self, url: str, step: str = "script") -> None:
        """The vendor's loader script, fetched as a browser will need it."""
        await self.connect(url)
        reply, ms = await _timed(
            step, self.http.call("script", "GET", url, headers={"accept": "*/*"})
        )
        kind = reply.headers.get("content-type", "")
        text = f"{reply.status} in {ms} ms, {len(reply.text.encode())} bytes, {kind or 'no type'}"
        if "javascript" in kind.lower() or "ecmascript" in kind.lower():
            self.out.ok(step, text)
        else:
            self.out.warn(step, f"{text}: not served as JavaScript, browsers may refuse to run it")

    async def proven(
        self,
        step: str,
        url: str,
        call: Callable[[], Awaitable[object]],
        *,
        key: str,
        accepted: str,
        refused: str,
        hint: str,
    ) -> None:
        """Ask the vendor (the widget's own API at `url`) to judge what was signed here
        with the setting `key`: ✔ `accepted` on a 2xx answer; a 401 fails the check
        (`refused`, `hint`); anything else (no connection, another status) is a warning
        that `key` is unverified, since nothing proved it either way.

        The widget calls that API from the browser, not from this server: a server that
        can't reach it may still serve working widgets, hence a warning, not a failure.
        """
        unverified = f"{key} is unverified"
        try:
            await self.connect(url)
        except StepFailed as exc:
            self.out.warn(step, f"{exc.reason}: {unverified}")
            return
        self.status.status = None
        try:
            _, ms = await _timed(step, call())
        except StepFailed as exc:
            status = self.status.status
            if status == 401:
                raise StepFailed(step, f"{refused} ({status})", hint) from None
            self.out.warn(step, f"{exc.reason}: {unverified}{_advice(status, url, self.origin)}")
            return
        self.out.ok(step, f"{self.status.text} in {ms} ms: {accepted}")


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

    The detail is safe to print: `errors` keeps bodies, keys and tokens out of it.
    """
    started = time.perf_counter()
    try:
        result = await call
    except UpstreamError as exc:
        hint = rejected if isinstance(exc, UpstreamRejectedKey) else ""
        raise StepFailed(step, exc.detail, hint) from None
    return result, round((time.perf_counter() - started) * 1000)


async def _connect(connect_timeout: float, url: str, out: Checklist) -> None:
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
            address, ms = await _dial(step, proxy_host, proxy_port, None, connect_timeout)
        except StepFailed as exc:
            exc.reason += f" (the proxy from {parts.scheme.upper()}_PROXY)"
            raise
        out.ok(step, f"via proxy {_address(proxy_host, proxy_port)} ({address}) in {ms} ms")
        return
    tls = httpx2.create_ssl_context() if parts.scheme == "https" else None
    address, ms = await _dial(step, host, port, tls, connect_timeout)
    out.ok(step, f"{address}{', TLS verified' if tls else ''} in {ms} ms")


async def _dial(
    step: str, host: str, port: int, tls: ssl.SSLContext | None, connect_timeout: float
) -> tuple[str, int]:
    """The first of the host's addresses that accepts a connection, and the time taken."""
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise StepFailed(step, f"cannot resolve {host} ({exc.strerror})") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    problems = []
    for address in addresses:
        where = _address(address, port)
        try:
            async with asyncio.timeout(connect_timeout):
                _, writer = await asyncio.open_connection(
                    address, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            problems.append(f"no connection to {where} within {connect_timeout:g} s")
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


def _advice(status: int | None, url: str, origin: str | None) -> str:
    if status == 403 and origin is None:
        return (
            " (a vendor that judges the page's Origin refuses a call without one:"
            " run check with --origin and your widget page's origin)"
        )
    if status == 403:
        return f" (is {origin} among the origins the vendor allows?)"
    if status == 404:
        return f" (is {url} the widget's API?)"
    return ""


def _env_proxy(scheme: str, host: str) -> str | None:
    """The proxy the environment sets for this URL, as the HTTP client will use it."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _can_encode(stream: TextIO, text: str) -> bool:
    try:
        text.encode(stream.encoding or "ascii")
    except (LookupError, UnicodeEncodeError):
        return False
    return True
