"""Hostile input, proven with generated cases (hypothesis)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h11
import httpx2
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support import EMAIL, LeakScanner, Proxy, scanning_client
from tests.support.processes import serve
from tests.support.wire import exchange, flood
from widget_proxy.delivery.inject import js_string, split_page
from widget_proxy.errors import InvalidEmail
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.security.identity import validate_email

PAGE = (
    "<html><head></head><body>"
    '<script>window.__WIDGET_INIT__ = { token: "" };</script></body></html>'
)
LITERAL = re.compile(r'token: ("(?:[^"\\]|\\.)*")')
UNSAFE = ("<", ">", "&", "\u2028", "\u2029")
seen: set[str] = set()  # emails already signed in by the proxy of the property below


@given(st.text())
@example("</script><script>window.__pwned=1</script>\"'")
@example("<!--<script>")
@example("\u2028\u2029\\\"'`${x}")
def test_any_token_is_recovered_exactly_and_inertly(token: str) -> None:
    html = split_page(PAGE).render(token).decode("utf-8")

    match = LITERAL.search(html)
    assert match is not None
    literal = match.group(1)
    assert json.loads(literal) == token  # a JSON string is a JavaScript string literal
    assert not any(ch in literal for ch in UNSAFE)
    assert html.count("</script>") == 1  # nothing closed the script early
    assert literal == js_string(token)


emails = st.one_of(
    st.emails(),
    st.text(max_size=80),
    st.builds(lambda a, b: f"{a}@{b}", st.text(max_size=70), st.text(max_size=70)),
)


@given(emails)
@example("ann@example.com\r\nX-Evil: 1")
@example("ann@example.com\x00")
def test_an_email_passes_only_as_a_valid_header_value(value: str) -> None:
    try:
        email = validate_email(value)
    except InvalidEmail:
        return
    assert email == value
    assert httpx2.Headers({"email": email})["email"] == email
    h11.Request(method="POST", target="/", headers=[("host", "x"), ("email", email)])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=emails)
@example(value="ann@example.com\r\nX-Evil: 1")
@example(value="ok.user@example.com")
def test_through_the_proxy_an_email_is_served_or_refused_before_upstream(
    proxy: Proxy, vendor: ReturningAIStandIn, value: str
) -> None:
    before = vendor.calls["signin"]
    try:
        expected = validate_email(value)
    except InvalidEmail:
        expected = None

    response = proxy.client.get(
        "/widget", headers={**proxy.cookie({"email": value}), "accept": "application/json"}
    )

    if not value:
        assert response.status_code == 401  # an empty email is no email: anonymous
    elif expected is None:
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_email"
        assert vendor.calls["signin"] == before  # nothing went upstream
    else:
        assert response.status_code == 200
        assert vendor.calls["signin"] == before + (0 if expected in seen else 1)
        seen.add(expected)


@pytest.mark.slow
def test_oversized_request_headers_are_a_431_and_memory_stays_flat(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    block = 32 * 1024 * 1024  # a header block no HTTP library would send

    def rss(pid: int) -> int:
        status = Path(f"/proc/{pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]

    with (
        serve(tmp_path, vendor, upstream, leak_scanner) as proxy,
        scanning_client(leak_scanner, base_url=proxy.url, timeout=60) as client,
    ):
        cookie = proxy.cookie(EMAIL)["cookie"]
        assert client.get("/widget", headers={"cookie": cookie}).status_code == 200
        before = rss(proxy.process.pid)
        head = b"GET /widget HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n"
        head += f"Cookie: {cookie}; junk=".encode()
        for _ in range(5):
            refused = flood(proxy.url, head, block)
            # Refused and closed while the client was still sending: the server stopped
            # reading after its bound, it never took the block in.
            assert refused.answer.startswith(b"HTTP/1.1 431 "), refused.answer[:100]
            assert b'"error":"headers_too_large"' in refused.answer
            assert refused.sent < block / 2, refused.sent
            # The server kept serving meanwhile: a warm view on another connection.
            assert client.get("/widget", headers={"cookie": cookie}).status_code == 200
        # Within the bound, the app's own limit answers (MAX_HEADER_BYTES): 431 as JSON.
        padded = client.get(
            "/widget",
            headers={"cookie": cookie, "x-pad": "p" * 33_000, "accept": "application/json"},
        )
        assert padded.status_code == 431
        assert padded.json()["error"] == "headers_too_large"
        after = rss(proxy.process.pid)

    assert after - before < 50 * 1024 * 1024  # none of it was kept
    lines = [json.loads(line) for line in proxy.log.read_text().splitlines() if line]
    refusals = [line for line in lines if line.get("status") == 431]
    assert len(refusals) == 6  # one line each, the protocol's and the app's


@pytest.mark.slow
def test_a_long_request_target_is_a_414_and_its_log_line_is_short(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    with (
        serve(tmp_path, vendor, upstream, leak_scanner) as proxy,
        scanning_client(leak_scanner, base_url=proxy.url, timeout=60) as client,
    ):
        # Past the whole head's bound: the server refuses it before the line ends.
        huge = exchange(proxy.url, b"GET /" + b"a" * 60_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        # Past MAX_REQUEST_TARGET_BYTES (8 KiB) but within the bound: the app refuses it.
        long = client.get("/widget?q=" + "q" * 9_000, headers={"accept": "application/json"})
        missing = client.get("/" + "n" * 8_000)  # within the limit: a 404, logged short

    assert huge.startswith(b"HTTP/1.1 414 ")
    assert long.status_code == 414
    assert long.json()["error"] == "request_target_too_long"
    assert missing.status_code == 404
    lines = proxy.log.read_text().splitlines()
    assert max(len(line) for line in lines) < 4_000, max(len(line) for line in lines)
    records = [json.loads(line) for line in lines if line]
    assert [r["status"] for r in records if r.get("status") == 414] == [414, 414]
    (missed,) = [r for r in records if r.get("status") == 404 and len(r["path"]) > 1]
    assert missed["path"].endswith("…[7001 more]")  # 1,000 of its 8,001 characters


def test_a_slash_after_widget_is_not_a_redirect_to_the_callers_host(proxy: Proxy) -> None:
    response = proxy.client.get(
        "/widget/", headers={**proxy.cookie({"email": EMAIL}), "host": "evil.example"}
    )

    assert response.status_code == 404
    assert "location" not in response.headers
