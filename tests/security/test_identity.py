"""Identity: Starlette's own session cookie, and emails fit for an upstream header."""

from __future__ import annotations

import json
import time
from base64 import b64encode
from collections.abc import Callable
from typing import Any

import itsdangerous
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request, cookie_parser
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.support import EMAIL, Clock, Proxy, wait_until
from widget_proxy.cache.counts import WindowCounters
from widget_proxy.cache.keys import Hasher, Keys
from widget_proxy.errors import InvalidEmail
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.security.identity import Identity, SessionReader, read_cookie, validate_email
from widget_proxy.security.ratelimit import RateLimits

SECRET = "a-shared-secret-of-more-than-32-characters"
SCOPE = {"type": "http", "client": ("203.0.113.9", 5555)}


def reader(**options: Any) -> SessionReader:
    return SessionReader(secret=SECRET, **options)


def merchant_login_cookie(session: dict[str, object], cookie: str = "session") -> str:
    """Log in through a real Starlette app's SessionMiddleware and return its cookie."""

    async def login(request: Request) -> PlainTextResponse:
        request.session.update(session)
        return PlainTextResponse("ok")

    merchant = Starlette(
        routes=[Route("/login", login, methods=["POST"])],
        middleware=[Middleware(SessionMiddleware, secret_key=SECRET, session_cookie=cookie)],
    )
    with TestClient(merchant) as client:
        response = client.post("/login")
    value = response.cookies[cookie]
    assert value
    return value


def test_reads_a_cookie_written_by_starlettes_session_middleware() -> None:
    value = merchant_login_cookie({"email": "ann@example.com", "cart": [1, 2]})

    identity = reader().identity(SCOPE, {"cookie": f"session={value}"})

    assert identity == Identity("ann@example.com")


# Cookie headers made of the characters that decide how one is read.
COOKIE_HEADERS = st.text(alphabet=' ;="\\session\t,x', max_size=40)


@given(COOKIE_HEADERS, st.sampled_from(["session", "s", "x", "session x", ""]))
def test_one_cookie_is_read_as_starlette_reads_them_all(header: str, name: str) -> None:
    assert read_cookie(header, name) == cookie_parser(header).get(name, "")


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"cookie", b"session=VALUE")],
        [(b"cookie", b"a=1; session=VALUE; b=2")],
        [(b"cookie", b'session="VALUE"')],
        [(b"cookie", b"session=junk; session=VALUE")],  # the last one of a name wins
        [(b"cookie", b"other=1"), (b"cookie", b"session=VALUE")],  # the first header only
        [(b"cookie", b"session=VALUE"), (b"cookie", b"session=junk")],
        [(b"Cookie", b"session=VALUE")],  # ASGI names are lower-case: not a cookie header
    ],
)
def test_the_raw_cookie_header_is_read_as_starlettes_headers_read_it(
    headers: list[tuple[bytes, bytes]],
) -> None:
    value = merchant_login_cookie({"email": "ann@example.com"})
    scope = {**SCOPE, "headers": [(k, v.replace(b"VALUE", value.encode())) for k, v in headers]}

    visitor = reader().visitor(scope)

    expected = reader().identity(scope, Headers(scope=scope))
    assert (visitor and visitor.identity) == expected


def test_custom_cookie_name_and_nested_email() -> None:
    value = merchant_login_cookie({"user": {"email": "bo@example.com"}}, cookie="shop")

    identity = reader(cookie="shop", email_key=("user", "email")).identity(
        SCOPE, {"cookie": f"other=1; shop={value}"}
    )

    assert identity == Identity("bo@example.com")


@pytest.mark.parametrize(
    "cookie",
    ["", "session=", "session=not-signed", "other=x", "session=e30=.AAAA.bad-signature"],
)
def test_missing_or_forged_cookies_are_anonymous(cookie: str) -> None:
    assert reader().identity(SCOPE, {"cookie": cookie}) is None


def test_a_session_whose_email_is_not_text_is_refused() -> None:
    value = merchant_login_cookie({"email": ["ann@example.com"]})

    with pytest.raises(InvalidEmail):
        reader().identity(SCOPE, {"cookie": f"session={value}"})


@pytest.mark.parametrize(
    "email",
    [
        "ann@example.com",
        "ann.o'neil+tag@sub.example.co.uk",
        "x@y",
        "a" * 64 + "@" + "b" * 185 + ".com",  # 254 characters, the RFC 5321 maximum
        "!#$%&'*+-/=?^_`{|}~@example.com",  # every atext character
        "first.middle.last@example.com",
        "ANN@EXAMPLE.COM",
        "ann@xn--bcher-kva.example",  # a punycode label: hyphens inside
        "ann@123.example.com",
        "ann@a-b-c.example",
    ],
)
def test_valid_emails(email: str) -> None:
    assert validate_email(email) == email


@pytest.mark.parametrize(
    "email",
    [
        "",
        "plain",
        "a@b@c",
        "@example.com",
        "ann@",
        "ann@.example.com",
        "ann@example..com",
        "ann@example.com.",
        "ann @example.com",
        "ann@example.com\r\nx-injected: 1",
        "ann@example.com\n",
        "ann\t@example.com",
        "ann\x00@example.com",
        "ann\x7f@example.com",
        "änn@example.com",
        "a" * 65 + "@example.com",
        "a" * 64 + "@" + "b" * 186 + ".com",  # 255 characters
        42,
        None,
        # Characters a vendor may read as list, parameter, comment or quote syntax.
        "ann,bob@example.com",
        "ann@example.com,bob@example.com",
        "ann;x=1@example.com",
        "ann@example.com;x=1",
        "<ann@example.com>",
        "Ann <ann@example.com>",
        '"ann"@example.com',
        '"a@b"@example.com',
        "ann(comment)@example.com",
        "ann@example.com(comment)",
        "ann\\@example.com",
        "ann@exa\\mple.com",
        "ann[1]@example.com",
        "ann:x@example.com",
        # Dots only between atoms.
        ".ann@example.com",
        "ann.@example.com",
        "an..n@example.com",
        ".@example.com",
        # Domains of letter-digit-hyphen labels only.
        "ann@[127.0.0.1]",
        "ann@exa_mple.com",
        "ann@-example.com",
        "ann@example-.com",
        "ann@example.-com",
        "ann@exa!mple.com",
        "ann@example.com:443",
        "ann@.",
    ],
)
def test_invalid_emails(email: object) -> None:
    with pytest.raises(InvalidEmail):
        validate_email(email)


@pytest.mark.slow
def test_a_remembered_session_still_ages_out() -> None:
    max_age = 2
    sessions = reader(max_age=max_age)
    value = merchant_login_cookie({"email": "a@b.c"})
    signed = int(time.time())  # the cookie's timestamp is at most this (whole seconds)

    assert sessions.identity(SCOPE, {"cookie": f"session={value}"}) == Identity("a@b.c")
    assert sessions.identity(SCOPE, {"cookie": f"session={value}"}) == Identity("a@b.c")
    # Older than max_age now, remembered or not (ages are counted in whole seconds).
    wait_until(lambda: time.time() >= signed + max_age + 1, timeout=max_age + 5)

    assert sessions.identity(SCOPE, {"cookie": f"session={value}"}) is None


def test_only_verified_cookies_are_remembered() -> None:
    sessions = reader()
    forged = "session=" + merchant_login_cookie({"email": "a@b.c"})[:-3] + "xyz"

    for _ in range(3):
        assert sessions.identity(SCOPE, {"cookie": forged}) is None


def signed(data: bytes, secret: str = SECRET) -> str:
    """A session cookie value, validly signed, holding `data` however it is made."""
    return itsdangerous.TimestampSigner(secret).sign(b64encode(data)).decode()


def nested(depth: int) -> bytes:
    """A session object with an email and a list nested `depth` deep."""
    return b'{"email": "ann@example.com", "x": ' + b"[" * depth + b"]" * depth + b"}"


def test_a_signed_session_nested_too_deep_to_decode_is_anonymous() -> None:
    sessions = reader()
    cookie = {"cookie": f"session={signed(nested(100_000))}"}

    assert sessions.session(cookie) is None
    assert sessions.identity(SCOPE, cookie) is None


def test_the_memo_is_keyed_by_the_session_cookie_not_the_whole_header() -> None:
    clock = Clock(time.time())
    sessions = reader(clock=clock)
    value = merchant_login_cookie({"email": "a@b.c"})

    for i in range(3):  # 3 x 16 MB of other cookies, each different
        junk = f"junk{i}=" + str(i) * (16 * 1024 * 1024)
        headers = {"cookie": f"{junk}; session={value}; more{junk}"}
        assert sessions.identity(SCOPE, headers) == Identity("a@b.c")

    assert sessions.memo.keys() == [value]
    assert sessions.memo.nbytes < 4096  # a cookie and an identity, not megabytes
    assert sessions.identity(SCOPE, {"cookie": f"session={value}"}) == Identity("a@b.c")
    assert len(sessions.memo) == 1  # the same session, however it was sent


def test_the_session_memo_is_bounded_by_bytes_too() -> None:
    sessions = reader()
    cart = "x" * 3000  # sessions near a browser's 4 KB cookie limit
    values = [
        signed(json.dumps({"email": f"u{i}@b.c", "cart": cart}).encode()) for i in range(5000)
    ]

    for value in values:
        assert sessions.identity(SCOPE, {"cookie": f"session={value}"}) is not None

    assert sessions.memo.nbytes <= SessionReader.MEMO_BYTES
    assert len(sessions.memo) < SessionReader.MEMO_SIZE  # the bytes ran out first
    assert values[-1] in sessions.memo


# --- against a real proxy ------------------------------------------------------------


@pytest.fixture
def readers(monkeypatch: pytest.MonkeyPatch) -> list[SessionReader]:
    """Every SessionReader made while the test runs (the proxies' own, in-process)."""
    made: list[SessionReader] = []
    init = SessionReader.__init__

    def recording(self: SessionReader, **options: Any) -> None:
        init(self, **options)
        made.append(self)

    monkeypatch.setattr(SessionReader, "__init__", recording)
    return made


def test_a_proxy_remembers_a_session_not_the_junk_sent_beside_it(
    make_proxy: Callable[..., Proxy], readers: list[SessionReader], vendor: ReturningAIStandIn
) -> None:
    proxy = make_proxy()
    [sessions] = readers
    session = proxy.cookie({"email": EMAIL})["cookie"]
    value = session.partition("=")[2]

    for i in range(5):  # junk well within any header limit, different each time
        junk = f"junk{i}=" + str(i) * 3000
        response = proxy.client.get("/widget", headers={"cookie": f"{junk}; {session}"})
        assert response.status_code == 200

    assert sessions.memo.keys() == [value]
    assert sessions.memo.nbytes < 3000  # none of the junk is held
    assert vendor.calls["signin"] == 1


def test_a_session_is_one_memo_entry_with_every_key_made_from_it(
    make_proxy: Callable[..., Proxy], readers: list[SessionReader], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = make_proxy()
    [sessions] = readers
    hashed: list[str] = []
    digest = Hasher.__call__

    def recording(self: Hasher, value: str) -> str:
        hashed.append(value)
        return digest(self, value)

    monkeypatch.setattr(Hasher, "__call__", recording)
    # One cookie per user, as a browser holds it: signed anew, a cookie made in another
    # second is another session (its timestamp differs), with keys of its own to make.
    cookies = [proxy.cookie({"email": email}) for email in (EMAIL, "other@example.com")]
    for cookie in cookies:
        assert proxy.get("/widget", headers=cookie).status_code == 200
    made = list(hashed)
    hashed.clear()
    for _ in range(3):
        for cookie in cookies:
            assert proxy.get("/widget", headers=cookie).status_code == 200

    # The first view of a session made its rate-limit key and its token's key; the
    # later ones looked them up, with the session itself, in one memo entry each.
    assert made.count(EMAIL) == 2
    assert EMAIL not in hashed
    assert "other@example.com" not in hashed
    held = sessions.memo.keys()  # least recently used first
    visitors = [found[0] for key in held if (found := sessions.memo.get(key)) is not None]
    assert [v.identity.email for v in visitors] == [EMAIL, "other@example.com"]
    keys = Keys(proxy.settings.session_secret.reveal())
    limits = RateLimits(WindowCounters(), keys=keys)
    assert [v.rate_key for v in visitors] == [limits.user_key(v.identity.email) for v in visitors]
    assert len({v.token_key for v in visitors}) == 2
    assert all(v.token_key.startswith("tok:") for v in visitors)


def test_a_proxy_treats_a_session_nested_too_deep_as_anonymous(
    proxy: Proxy, vendor: ReturningAIStandIn
) -> None:
    # 1,500 deep is a 4 KB cookie (what a browser keeps), already past the decoder.
    value = signed(nested(1500), proxy.settings.session_secret.reveal())
    cookie = {"cookie": f"{proxy.settings.session_cookie}={value}"}

    response = proxy.client.get("/widget", headers={**cookie, "accept": "application/json"})
    after = proxy.get("/widget", EMAIL)  # the same connection still serves

    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert after.status_code == 200
    assert vendor.calls["signin"] == 1


@pytest.mark.parametrize(
    "email",
    ["ann,bob@example.com", "ann;x@example.com", "<ann>@example.com", '"ann"@example.com',
     "ann(x)@example.com", "ann\\@example.com", "ann@exa_mple.com"],
)  # fmt: skip
def test_a_proxy_sends_no_ambiguous_email_upstream(
    proxy: Proxy, vendor: ReturningAIStandIn, email: str
) -> None:
    response = proxy.get("/widget", email, headers={"accept": "application/json"})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_email"
    assert vendor.calls == {}  # nothing went upstream


def test_the_session_is_read_back_as_the_app_wrote_it() -> None:
    from tests.support import session_cookie

    secret = "s" * 32
    cookie = session_cookie(secret, {"email": EMAIL, "user": {"id": 7}})
    session_reader = SessionReader(secret=secret)

    found = session_reader.session({"cookie": f"session={cookie}"})

    assert found is not None
    data, signed_at = found
    assert data == {"email": EMAIL, "user": {"id": 7}}
    assert abs(signed_at - time.time()) < 60
    assert session_reader.session({"cookie": f"other={cookie}"}) is None


def test_the_identity_header_is_oauth2_proxys_unless_configured() -> None:
    from widget_proxy.security.forwarded import TrustedProxies, parse_networks
    from widget_proxy.security.identity import HeaderIdentity

    proxies = TrustedProxies(parse_networks("127.0.0.1"))
    scope = {
        "type": "http",
        "client": ("127.0.0.1", 50000),
        "headers": [(b"x-auth-request-email", EMAIL.encode()), (b"x-user", b"b@example.com")],
    }

    assert HeaderIdentity(proxies=proxies).identity(scope, {}) == Identity(EMAIL)
    custom = HeaderIdentity(proxies=proxies, header="X-User")
    assert custom.identity(scope, {}) == Identity("b@example.com")


def test_a_visitor_by_header_is_made_once_per_email_within_a_bound() -> None:
    from widget_proxy.security.forwarded import TrustedProxies, parse_networks
    from widget_proxy.security.identity import HeaderIdentity, Visitor

    made: list[Identity] = []

    def derive(identity: Identity) -> Visitor:
        made.append(identity)
        return Visitor(identity, f"user:{identity.email}", f"tok:{identity.email}")

    source = HeaderIdentity(proxies=TrustedProxies(parse_networks("127.0.0.1")), derive=derive)

    def scope(email: str) -> dict[str, Any]:
        headers = [(b"x-auth-request-email", email.encode())]
        return {"type": "http", "client": ("127.0.0.1", 1), "headers": headers}

    first = source.visitor(scope(EMAIL))
    assert source.visitor(scope(EMAIL)) is first
    assert first is not None
    assert first.token_key == f"tok:{EMAIL}"
    assert made == [Identity(EMAIL)]
    for n in range(HeaderIdentity.MEMO_SIZE + 10):
        source.visitor(scope(f"user{n}@example.com"))
    assert len(source.memo) == HeaderIdentity.MEMO_SIZE
    assert source.memo.nbytes <= HeaderIdentity.MEMO_BYTES


# What the browser is told (a 400's message carries the reason) for each unusable email.
REASONS = [
    (7, "the session email is not a string"),
    ("", "the session email is 0 characters long (1-254)"),
    ("a@" + "b" * 253, "the session email is 255 characters long (1-254)"),
    ("ann @example.com", "the session email has whitespace, control or non-ASCII characters"),
    ("ann@exämple.com", "the session email has whitespace, control or non-ASCII characters"),
    ("ann.example.com", "the session email must have exactly one '@'"),
    ("a@b@example.com", "the session email must have exactly one '@'"),
    ("@example.com", "the session email's local part must be 1-64 characters"),
    ("a" * 65 + "@example.com", "the session email's local part must be 1-64 characters"),
    ("a..b@example.com", "the session email's local part must be letters, digits,"
     " !#$%&'*+-/=?^_`{|}~ and single dots between them"),
    ("ann@-example.com", "the session email's domain is malformed"),
]  # fmt: skip


@pytest.mark.parametrize(("email", "reason"), REASONS)
def test_an_unusable_email_is_refused_with_its_reason(email: object, reason: str) -> None:
    with pytest.raises(InvalidEmail) as caught:
        validate_email(email)

    assert caught.value.detail == reason
    assert caught.value.message == f"{InvalidEmail.public} ({reason})"


def test_an_identity_without_a_user_id_is_known_by_its_email() -> None:
    assert Identity("ann@example.com").user_id == "ann@example.com"
    assert Identity("ann@example.com", user_id="u-7").user_id == "u-7"


@pytest.mark.parametrize(
    ("headers", "outcome"),
    [
        ([], None),  # none sent: anonymous
        ([(b"x-auth-request-email", b"")], None),
        ([(b"x-auth-request-email", EMAIL.encode())], EMAIL),
        ([(b"x-auth-request-email", EMAIL.encode())] * 2, "x-auth-request-email was sent 2 times"),
        ([(b"x-auth-request-email", EMAIL.encode())] * 3, "x-auth-request-email was sent 3 times"),
    ],
)
def test_the_identity_header_is_read_once_or_refused(
    headers: list[tuple[bytes, bytes]], outcome: str | None
) -> None:
    from widget_proxy.errors import BadRequest
    from widget_proxy.security.forwarded import TrustedProxies, parse_networks
    from widget_proxy.security.identity import HeaderIdentity

    source = HeaderIdentity(proxies=TrustedProxies(parse_networks("127.0.0.1")))
    scope = {"type": "http", "client": ("127.0.0.1", 50000), "headers": headers}

    if outcome is None or "@" in outcome:
        expected = None if outcome is None else Identity(outcome)
        assert source.identity(scope, {}) == expected
        return
    with pytest.raises(BadRequest) as caught:
        source.identity(scope, {})
    assert caught.value.detail == outcome


@pytest.mark.parametrize(
    "alias", [b"x_auth_request_email", b"x-auth-request_email", b"x_auth-request-email"]
)
def test_an_underscore_alias_of_the_identity_header_is_never_identity(alias: bytes) -> None:
    """oauth2-proxy's CVE-2025-64484: it cleared `X-Auth-Request-Email` but passed on a
    client's `X_Auth_Request_Email`, which servers that fold `_` into `-` then read."""
    from widget_proxy.security.forwarded import TrustedProxies, parse_networks
    from widget_proxy.security.identity import HeaderIdentity

    source = HeaderIdentity(proxies=TrustedProxies(parse_networks("127.0.0.1")))
    alone = [(alias, b"victim@example.com")]
    beside = [(b"x-auth-request-email", EMAIL.encode()), *alone]

    assert source.identity({"client": ("127.0.0.1", 1), "headers": alone}, {}) is None
    assert source.identity({"client": ("127.0.0.1", 1), "headers": beside}, {}) == Identity(EMAIL)


def session_of(data: object) -> str:
    """A session cookie holding `data` as JSON, as Starlette's SessionMiddleware signs it."""
    return signed(json.dumps(data).encode())


@pytest.mark.parametrize(
    ("session", "user_id", "metadata"),
    [
        ({"email": EMAIL, "user": {"id": 7}, "plan": "gold"}, "7", (("plan", "gold"),)),
        ({"email": EMAIL, "user": {"id": "u-1"}}, "u-1", ()),
        ({"email": EMAIL, "user": {"id": True}}, EMAIL, ()),  # not a bool: the email
        ({"email": EMAIL, "user": {"id": [7]}}, EMAIL, ()),
        ({"email": EMAIL, "user": "identity"}, EMAIL, ()),  # not an object to look in
        ({"email": EMAIL, "plan": 3}, EMAIL, ()),  # a claim that isn't text is left out
    ],
)
def test_the_user_id_and_claims_are_read_from_their_paths(
    session: dict[str, object], user_id: str, metadata: tuple[tuple[str, str], ...]
) -> None:
    sessions = reader(user_id_key=("user", "id"), metadata_keys=(("plan",),))

    identity = sessions.identity(SCOPE, {"cookie": f"session={session_of(session)}"})

    assert identity == Identity(EMAIL, user_id=user_id, metadata=metadata)


def test_without_a_user_id_path_the_email_is_the_user_id() -> None:
    cookie = session_of({"email": EMAIL, "user": {"id": 7}})

    assert reader().identity(SCOPE, {"cookie": f"session={cookie}"}) == Identity(EMAIL)


@pytest.mark.parametrize("headers", [{}, {"cookie": "other=1"}, {"cookie": "session="}])
def test_no_session_cookie_is_anonymous(headers: dict[str, str]) -> None:
    assert reader().identity(SCOPE, headers) is None
    assert reader().session(headers) is None


@pytest.mark.parametrize("data", [{"email": ""}, {"email": None}, {"name": "ann"}])
def test_a_session_without_an_email_is_anonymous(data: dict[str, object]) -> None:
    assert reader().identity(SCOPE, {"cookie": f"session={session_of(data)}"}) is None


def test_a_signed_session_that_is_not_an_object_is_no_session() -> None:
    headers = {"cookie": f"session={session_of(['email', EMAIL])}"}

    assert reader().session(headers) is None
    assert reader().identity(SCOPE, headers) is None
