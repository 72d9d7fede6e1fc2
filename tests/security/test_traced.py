"""Admission's spans: its steps as children, each user told apart by a pseudonym that
names nobody, a refusal recorded by its code."""

from __future__ import annotations

from collections.abc import Callable

from tests.support import EMAIL, Proxy
from tests.support.otlp import named, traced
from widget_proxy.cache import Keys
from widget_proxy.security.identity import ANONYMOUS, Identity, Visitor
from widget_proxy.security.traced import USER, Pseudonyms


def pseudonyms(secret: str) -> Pseudonyms:
    return Pseudonyms(Keys(secret).hasher(b"widget-proxy trace pseudonym"))


def visitor(email: str, key: str) -> Visitor:
    return Visitor(Identity(email), "rate:" + key, "tok:" + key)


def test_a_pseudonym_tells_users_apart_and_names_nobody() -> None:
    name = pseudonyms("s" * 32)
    ann, bob = visitor(EMAIL, "k-ann"), visitor("bob@example.com", "k-bob")
    assert name(ann) == pseudonyms("s" * 32)(ann)  # every process of a deployment
    assert name(ann) != name(bob)
    assert name(ann) != pseudonyms("t" * 32)(ann)  # another secret, another name
    assert len(name(ann)) == 16
    assert "ann" not in name(ann)
    assert name(Visitor(ANONYMOUS, "rate:-", "tok:-")) == "anonymous"


def test_admission_and_its_refusal_as_spans(make_proxy: Callable[..., Proxy]) -> None:
    with traced(make_proxy, RATE_LIMIT_PER_MINUTE="1") as run:
        assert run.proxy.get("/widget", EMAIL).status_code == 200
        assert run.proxy.get("/widget", EMAIL).status_code == 429
        assert run.proxy.get("/widget", "bob@example.com").status_code == 200
        spans = run.spans(3)
    first, refused, other = named(spans, "admission")
    assert first.attributes[USER] != other.attributes[USER]
    assert USER not in refused.attributes  # refused before it was told who
    (limit,) = (s for s in named(spans, "user limit") if s.parent_id == refused.span_id)
    assert limit.attributes["error.type"] == "rate_limited"
    assert limit.status == 2  # error
    (server,) = (s for s in spans if s.span_id == refused.parent_id)
    assert server.attributes["http.response.status_code"] == 429
    assert server.status == 0  # a client's error is not the server's (semantic conventions)
