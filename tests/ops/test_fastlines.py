"""`FastLines` writes byte for byte what `logging` writes for the same request line: the
configured handler (our text or JSON formatter, our redaction filter) given the record
`requestlog.through_logging` makes, at the same instant. A table of the cases that
matter, then any mix of fields."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any, Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from widget_proxy.ops.batches import BatchWriter
from widget_proxy.ops.fastlines import FastLines
from widget_proxy.ops.logs import JsonFormatter, RedactionFilter, TextFormatter
from widget_proxy.ops.requestlog import log, through_logging

SECRET: Final = "s3cr3t-value-0123456789"
JWT: Final = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"
CREATED: Final = 1_700_000_000.123456


class At(logging.Filter):
    """Gives the reference record the instant the fast line was given."""

    def __init__(self, created: float) -> None:
        super().__init__()
        self.created = created

    def filter(self, record: logging.LogRecord) -> bool:
        record.created = self.created
        record.msecs = int((self.created - int(self.created)) * 1000) + 0.0
        return True


def handler(fmt: str, stream: io.StringIO, log_emails: bool) -> logging.StreamHandler[Any]:
    made = logging.StreamHandler(stream)
    made.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    made.addFilter(RedactionFilter([SECRET], log_emails=log_emails))
    return made


@pytest.fixture(autouse=True)
def reference_logger() -> Iterator[None]:
    """The request lines' logger, alone, for the reference record."""
    saved = (log.handlers[:], log.propagate, log.level)
    log.handlers.clear()
    log.propagate, log.level = False, logging.DEBUG
    yield
    log.handlers[:], log.propagate, log.level = saved


def both(fmt: str, log_emails: bool, created: float, *fields: Any) -> tuple[str, str]:
    """What logging writes for the line `fields`, and what `FastLines` writes."""
    expected, got = io.StringIO(), io.StringIO()
    reference = handler(fmt, expected, log_emails)
    reference.filters.insert(0, At(created))
    log.handlers[:] = [reference]
    through_logging(*fields)
    fast = handler(fmt, got, log_emails)
    writer = BatchWriter(got, interval=3600)
    try:
        FastLines(fast, writer, clock=lambda: created)(*fields)
    finally:
        writer.close()
    return expected.getvalue(), got.getvalue()


def line(
    path: str = "/widget",
    *,
    status: int = 200,
    seconds: float = 0.000123,
    method: str = "GET",
    request_id: str = "abcd1234f0000001",
    cache: str = "hit",
    client: str = "127.0.0.1",
    error: str = "",
) -> tuple[Any, ...]:
    level = logging.WARNING if status >= 500 else logging.INFO
    return (level, method, path, status, seconds, request_id, cache, client, error)


CASES = {
    "warm view": line(),
    "cold view": line(cache="miss", seconds=0.0523),
    "5xx with its error": line(status=502, error="upstream_unavailable: signin failed"),
    "4xx with its error": line(status=429, cache="-", error="rate_limited: user"),
    "unicode path": line("/widget/ünïcödé"),
    "quotes and backslash": line('/w"i\\dget'),
    "hostile path": line("/widget\n2030-01-01 INFO forged\x1b[2J\u202e\u2028-end"),
    "an email": line("/widget/ann.smith@example.com"),
    "a secret": line(f"/widget/{SECRET}"),
    "a secret across fields": line("/widget/s3cr3t-value-0123", request_id="456789"),
    "a jwt": line(f"/widget/{JWT}"),
    "a jwt for an id": line(request_id=JWT),
    "a long path": line("/" + "p" * 5_000),
    "a path just short enough": line("/" + "p" * 900),
    "a long error": line(status=500, error="x" * 5_000),
    "no time at all": line(seconds=0.0),
    "half a hundredth": line(seconds=0.000005),
    "a day": line(seconds=86_400.0),
    "past 1e9 ms": line(seconds=3e6),
    "an absurd duration": line(seconds=1e13),  # repr's exponent form
    "another method": line(method="PATCH", client="2001:db8::1"),
}


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("log_emails", [False, True])
@pytest.mark.parametrize("fields", CASES.values(), ids=CASES.keys())
def test_the_same_bytes_as_logging(fmt: str, log_emails: bool, fields: tuple[Any, ...]) -> None:
    expected, got = both(fmt, log_emails, CREATED, *fields)

    assert got == expected
    assert got.endswith("\n")
    assert got.count("\n") == 1 + expected.count("\n    ")


def test_what_the_table_shows() -> None:
    """The reference is the line as it always was (a few of the table's, by eye)."""
    text, _ = both("text", False, CREATED, *line())
    assert text.endswith(
        " INFO    widget_proxy.request: GET /widget 200 0.1ms request_id=abcd1234f0000001"
        " cache=hit client=127.0.0.1\n"
    )
    json_line, _ = both("json", False, CREATED, *CASES["an email"])
    assert '"path": "/widget/a***@example.com"' in json_line
    assert '"duration_ms": 0.12' in json_line
    hidden, _ = both("text", False, CREATED, *CASES["a secret"])
    assert SECRET not in hidden
    assert "[redacted]" in hidden


texts = st.one_of(
    st.text(max_size=40),
    st.lists(
        st.sampled_from(["/widget", SECRET, SECRET[:9], "eyJ", JWT, "a@b.co", "@", '"', "\\",
                         "\n", "\x1b", "\u2028", "\u202e", "é", " ", "0123456789"]),
        max_size=5,
    ).map("".join),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    fmt=st.sampled_from(["text", "json"]),
    log_emails=st.booleans(),
    created=st.floats(0, 4e9, allow_nan=False),
    method=texts,
    path=texts,
    status=st.integers(100, 599),
    seconds=st.one_of(
        st.floats(0, 1e7, allow_nan=False),
        st.floats(0, 1e20, allow_nan=False),
        st.sampled_from([0.0, 5e-6, 1e-5, 0.000125, 0.0011115]),
    ),
    request_id=texts,
    cache=texts,
    client=texts,
    error=texts,
)
def test_any_line_is_the_same_bytes_as_logging(
    fmt: str,
    log_emails: bool,
    created: float,
    method: str,
    path: str,
    status: int,
    seconds: float,
    request_id: str,
    cache: str,
    client: str,
    error: str,
) -> None:
    level = logging.WARNING if status >= 500 else logging.INFO
    fields = (level, method, path, status, seconds, request_id, cache, client, error)

    expected, got = both(fmt, log_emails, created, *fields)

    assert got == expected


def test_a_handler_of_its_own_on_the_way_means_logging() -> None:
    """`serving` takes the fast way only where `log_config` set it up: one handler, our
    formatter, our filter alone; anything else and the lines go through `logging`."""
    parent = logging.getLogger("widget_proxy")
    saved = (parent.handlers[:], parent.propagate)
    ours = handler("json", io.StringIO(), False)
    try:
        parent.handlers[:], parent.propagate = [ours], False
        log.handlers.clear()  # (pytest's own, on a logger that doesn't propagate)
        log.propagate = True
        found = FastLines.serving()
        assert found is not None
        found[1].close()
        log.addHandler(logging.NullHandler())  # a merchant's own, say
        assert FastLines.serving() is None
        log.handlers.clear()
        ours.setFormatter(logging.Formatter())
        assert FastLines.serving() is None
    finally:
        parent.handlers[:], parent.propagate = saved
