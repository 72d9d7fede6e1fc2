"""A warm view's answer per user: rendered once per token and page, never stale, never
another user's, in bounded memory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx2
from starlette.types import Message, Receive, Scope, Send

from tests.support import (
    EMAIL,
    Clock,
    LeakScanner,
    Proxy,
    async_scanning_client,
    session_cookie,
    token_in,
)
from widget_proxy import create_app
from widget_proxy.cache.views import MAX_ENTRIES, Views
from widget_proxy.delivery.inject import js_string
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.settings import Settings

HEADERS = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store")]


@dataclass(eq=False)
class Counted:
    """A page that counts how often it is rendered."""

    html: bytes = b"<p>{token}</p>"
    renders: list[str] = field(default_factory=list)

    def render(self, token: str) -> bytes:
        self.renders.append(token)
        return self.html.replace(b"{token}", token.encode())


def fresh(text: str) -> str:
    """An equal string that is another object (as a token read anew would be)."""
    return "".join(list(text))


def test_an_answer_is_rendered_once_per_token_and_page() -> None:
    views, page, token = Views(HEADERS), Counted(), fresh("token-a")

    first = views.view("tok:ann", token, page)
    again = views.view("tok:ann", token, page)

    assert again is first
    assert page.renders == ["token-a"]
    assert first.body == b"<p>token-a</p>"
    answer = views.answer("tok:ann", token, page)
    assert (answer.status_code, answer.body) == (200, first.body)
    assert answer.raw_headers == [*HEADERS, (b"content-length", b"14")]
    assert views.answer("tok:ann", token, page).raw_headers is not answer.raw_headers
    assert page.renders == ["token-a"]


def test_a_renewed_token_is_rendered_anew() -> None:
    views, page = Views(HEADERS), Counted()
    views.view("tok:ann", fresh("token-a"), page)

    renewed = views.view("tok:ann", fresh("token-b"), page)
    # Another object with the same text: whatever it is, the answer is made from it.
    equal = views.view("tok:ann", fresh("token-b"), page)

    assert renewed.body == equal.body == b"<p>token-b</p>"
    assert page.renders == ["token-a", "token-b", "token-b"]


def test_a_refreshed_page_is_rendered_anew() -> None:
    views, token = Views(HEADERS), fresh("token-a")
    views.view("tok:ann", token, Counted(b"<p>old {token}</p>"))

    refreshed = views.view("tok:ann", token, Counted(b"<p>new {token}</p>"))

    assert refreshed.body == b"<p>new token-a</p>"
    assert refreshed.length == str(len(refreshed.body)).encode()


def test_each_user_gets_their_own_answer() -> None:
    views, page = Views(HEADERS), Counted()
    ann, bob = fresh("token-ann"), fresh("token-bob")

    for _ in range(3):
        assert views.view("tok:ann", ann, page).body == b"<p>token-ann</p>"
        assert views.view("tok:bob", bob, page).body == b"<p>token-bob</p>"
    # Under another user's key, a token is still what the answer is made of.
    assert views.view("tok:ann", bob, page).body == b"<p>token-bob</p>"


def test_the_answers_are_bounded_by_entries_and_bytes() -> None:
    views, page = Views(HEADERS), Counted(b"x" * 1000 + b"{token}")

    for n in range(MAX_ENTRIES + 500):
        views.view(f"tok:{n}", f"token-{n}", page)

    assert len(views.memo) == MAX_ENTRIES
    assert views.memo.nbytes <= views.memo.max_bytes
    assert "tok:0" not in views.memo  # the least recently used went first

    small = Views(HEADERS, max_bytes=100_000)
    for n in range(1000):
        small.view(f"tok:{n}", f"token-{n}", page)
    assert small.memo.nbytes <= 100_000
    assert len(small.memo) < 100


def test_a_page_too_heavy_to_keep_is_rendered_each_time() -> None:
    views = Views(HEADERS, max_entry_bytes=10_000)
    page, token = Counted(b"x" * 20_000 + b"{token}"), fresh("token-a")

    first, again = views.view("tok:ann", token, page), views.view("tok:ann", token, page)

    assert first.body == again.body
    assert len(page.renders) == 2
    assert len(views.memo) == 0


# --- through the proxy -----------------------------------------------------------------


def test_a_renewed_token_is_never_served_in_the_old_answer(
    make_proxy: Callable[..., Proxy], vendor: ReturningAIStandIn
) -> None:
    clock = Clock(time.time())  # the proxy's caches read it; it moves only by hand
    proxy = make_proxy(clock=clock)
    first = proxy.get("/widget", EMAIL)
    assert proxy.get("/widget", EMAIL).text == first.text  # the kept answer
    vendor.token_ttl = 400  # so the next token differs from the first

    clock.now += 300 - 60 + 1  # past the first token's exp minus the refresh margin
    renewed = proxy.get("/widget", EMAIL)
    again = proxy.get("/widget", EMAIL)

    old, new = token_in(first.text), token_in(renewed.text)
    assert new != old
    assert vendor.calls["signin"] == 2
    assert renewed.text == first.text.replace(js_string(old), js_string(new))
    assert again.text == renewed.text
    assert int(renewed.headers["content-length"]) == len(renewed.content)


def test_each_answer_has_a_header_list_of_its_own(
    make_settings: Callable[..., Settings], leak_scanner: LeakScanner
) -> None:
    """A middleware around the proxy may add to the headers it is sent, in place; the
    next view's answer must not carry what it added to an earlier one."""
    settings = make_settings()
    app = create_app(settings)
    value = session_cookie(settings.session_secret.reveal(), {"email": EMAIL})
    cookie = {"cookie": f"{settings.session_cookie}={value}"}

    async def stamping(scope: Scope, receive: Receive, send: Send) -> None:
        async def stamp(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"].append((b"x-stamp", b"1"))
            await send(message)

        await app(scope, receive, stamp)

    async def views() -> list[httpx2.Response]:
        transport = httpx2.ASGITransport(app=stamping)
        async with (
            app.router.lifespan_context(app),
            async_scanning_client(leak_scanner, transport=transport, base_url="http://p") as client,
        ):
            return [await client.get("/widget", headers=cookie) for _ in range(3)]

    responses = asyncio.run(views())

    assert [r.status_code for r in responses] == [200] * 3
    assert [r.headers.get_list("x-stamp") for r in responses] == [["1"]] * 3
    assert len({token_in(r.text) for r in responses}) == 1
