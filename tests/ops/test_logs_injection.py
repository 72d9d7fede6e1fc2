"""Log injection: what a request sends can't forge a log line or reach a terminal raw."""

from __future__ import annotations

import io
import itertools
import json
import logging
import re
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.support import LeakScanner, scanning_client, wait_until
from tests.support.processes import serve
from widget_proxy.ops.logs import CONTROL, RedactionFilter, escape_controls, log_config
from widget_proxy.providers.returningai import ReturningAIStandIn

MARK: Final = "FORGED"
# A newline and a whole fake record after it; an ANSI "clear screen"; DEL; C1 NEL;
# the Unicode line and paragraph separators; CR; a vertical tab.
HOSTILE: Final = (
    f"/widget%0a2030-01-01%2000:00:00,000%20INFO%20%20%20%20widget_proxy:%20GET%20/admin%20200"
    f"%1b[2J%1b[31m{MARK}%7f%c2%85%e2%80%a8%e2%80%a9%0d%0b%e2%80%ae%e2%80%8b%ef%bb%bf-end"
)
DECODED: Final = (
    f"/widget\n2030-01-01 00:00:00,000 INFO    widget_proxy: GET /admin 200"
    f"\x1b[2J\x1b[31m{MARK}\x7f\x85\u2028\u2029\r\x0b\u202e\u200b\ufeff-end"
)
ESCAPED: Final = (
    f"/widget\\x0a2030-01-01 00:00:00,000 INFO    widget_proxy: GET /admin 200"
    f"\\x1b[2J\\x1b[31m{MARK}\\x7f\\x85\\u2028\\u2029\\x0d\\x0b\\u202e\\u200b\\ufeff-end"
)
# Anything a terminal or a line-splitting reader acts on, but the line feeds that end
# records, and the bidi and invisible format characters that change what a reader sees.
RAW_CONTROL: Final = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u200b\u202a-\u202e\u2066-\u2069\ufeff]"
)


def physical_lines(log: Path) -> list[str]:
    """The log as a reader splitting on line feeds sees it (bytes, not universal newlines)."""
    return log.read_bytes().decode("utf-8").split("\n")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_hostile_path_is_one_inert_log_line(
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    upstream: str,
    leak_scanner: LeakScanner,
    fmt: str,
) -> None:
    with (
        serve(tmp_path, vendor, upstream, leak_scanner, LOG_FORMAT=fmt) as proxy,
        scanning_client(leak_scanner, base_url=proxy.url) as client,
    ):
        response = client.get(HOSTILE)
        assert response.status_code == 404
        wait_until(lambda: MARK in proxy.log.read_text())
        lines = physical_lines(proxy.log)
        text = proxy.log.read_bytes().decode("utf-8")

    marked = [line for line in lines if any(part in line for part in ("/widget", "/admin", MARK))]
    assert len(marked) == 1  # one request, one line: nothing forged after it
    assert not any(line.startswith("2030-") for line in lines)
    assert not RAW_CONTROL.search(text)  # no escape code, CR, NEL or U+2028 anywhere
    assert text.splitlines() == text.rstrip("\n").split("\n")  # no other line breaks
    if fmt == "json":
        assert json.loads(marked[0])["path"] == ESCAPED
    else:
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO ", marked[0])
        assert f"GET {ESCAPED} 404" in marked[0]


@pytest.fixture
def configured() -> Iterator[dict[str, io.StringIO]]:
    """The real log configuration in each format, each writing to a string."""
    streams: dict[str, io.StringIO] = {}
    loggers: list[logging.Logger] = []
    for fmt in ("text", "json"):
        config = log_config(fmt=fmt)
        filters = config["filters"]["redact"]
        handler = logging.StreamHandler(streams.setdefault(fmt, io.StringIO()))
        handler.addFilter(filters["()"](**{k: v for k, v in filters.items() if k != "()"}))
        handler.setFormatter(config["formatters"]["main"]["()"]())
        logger = logging.getLogger(f"widget_proxy.injection_test.{fmt}")
        logger.addHandler(handler)
        logger.propagate = False
        loggers.append(logger)
    yield streams
    for logger in loggers:
        logger.handlers.clear()
        logger.propagate = True


def emit(**extra: Any) -> None:
    for fmt in ("text", "json"):
        logger = logging.getLogger(f"widget_proxy.injection_test.{fmt}")
        try:
            raise ValueError(f"bad input {DECODED}")
        except ValueError:
            logger.exception("request %s failed", DECODED, extra=extra)


def test_every_string_field_is_escaped_in_both_formats(
    configured: dict[str, io.StringIO],
) -> None:
    emit(path=DECODED, error=DECODED)

    record = json.loads(configured["json"].getvalue())
    text = configured["text"].getvalue()
    assert record["message"] == f"request {ESCAPED} failed"
    assert record["path"] == ESCAPED
    assert record["error"] == ESCAPED
    # A trace keeps its line breaks (json.dumps escapes them); nothing else is raw.
    assert "ValueError: bad input /widget\n" + ESCAPED.partition("\\x0a")[2] in record["trace"]
    assert configured["json"].getvalue().count("\n") == 1
    for output in (text, configured["json"].getvalue()):
        assert not RAW_CONTROL.search(output)


def test_a_trace_keeps_its_lines_but_none_passes_for_a_record(
    configured: dict[str, io.StringIO],
) -> None:
    emit()

    first, *rest = configured["text"].getvalue().rstrip("\n").split("\n")
    assert f"request {ESCAPED} failed" in first
    assert rest  # the trace, on lines of its own
    assert all(line.startswith(" ") for line in rest)  # indented under its record
    assert any("Traceback (most recent call last):" in line for line in rest)


def test_escape_controls() -> None:
    assert escape_controls("plain text, ünïcödé, \\x41 and all") == (
        "plain text, ünïcödé, \\x41 and all"
    )
    assert escape_controls("a\x00b\tc\x1fd\x7fe\x80f\x9fg\u2028h\u2029i") == (
        "a\\x00b\\x09c\\x1fd\\x7fe\\x80f\\x9fg\\u2028h\\u2029i"
    )
    # Bidi overrides and isolates, a zero-width space, the BOM, a tag character.
    assert escape_controls("a\u202eb\u2066c\u200bd\ufeffe\U000e0041f") == (
        "a\\u202eb\\u2066c\\u200bd\\ufeffe\\U000e0041f"
    )


def test_every_invisible_or_line_breaking_character_is_escaped_and_never_quick() -> None:
    """Every character of Unicode's control, format, surrogate and line and paragraph
    separator categories (this Python's database) is escaped; and no character the
    escape matches is printable, so the filter's quick path (`isprintable`) never lets
    one through unescaped."""
    matched = {c for c in map(chr, range(0x110000)) if CONTROL.fullmatch(c)}
    must = {
        c for c in map(chr, range(0x110000))
        if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")
    }  # fmt: skip
    assert must <= matched
    assert not any(c.isprintable() for c in matched)


# Pieces a record's text is made of, the dangerous ones included: parts of a secret,
# a JWT's start, an email, control characters, the separators, plain text.
SECRET: Final = "s3cr3t-value-0123456789"
JWT: Final = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"
PIECES: Final = [SECRET, SECRET[:8], SECRET[8:], JWT, "eyJhbGciOi", "eyJ", ".eyJzdWIi.", "x.yz",
                 "a@example.com", "@", "\n", "\x1b[2J", "\x85", "\u2028", "\u00a0", " ", "GET",
                 "/widget", "127.0.0.1", "é", "\t", "\u202e", "\u200b", "\ufeff",
                 "\u2067"]  # fmt: skip
texts = st.lists(st.sampled_from(PIECES), max_size=6).map("".join)


def filtered(log_emails: bool, message: str, path: str, client: str, extra: str) -> None:
    """Whichever way the filter takes a record (most have nothing to redact or escape
    and pass on as they are), what it carries is its text redacted, then escaped."""
    redaction = RedactionFilter(secrets=[SECRET], log_emails=log_emails)
    record = logging.LogRecord("widget_proxy", logging.INFO, __file__, 1, "%s", (message,), None)
    record.__dict__.update(path=path, client_ip=client, status=200, custom=extra)

    assert redaction.filter(record)

    assert record.getMessage() == escape_controls(redaction.redact(message))
    assert record.path == escape_controls(redaction.redact(path))
    assert record.client_ip == escape_controls(redaction.redact(client))
    assert record.custom == escape_controls(extra)  # shown by no format, escaped all the same
    assert record.status == 200


PLAIN: Final = ("GET /widget 200", "/widget", "127.0.0.1", "plain")  # message, path, ...


def each_piece_alone_in_each_field(test: Callable[..., None]) -> Callable[..., None]:
    """Every piece, alone in one field of an otherwise plain record, with and without
    LOG_EMAILS (25 x 4 x 2 cases): the records the filter's quick path must not wave
    through. As explicit examples they run every time, before the generated ones."""
    for piece, where, log_emails in itertools.product(PIECES, range(4), (False, True)):
        fields = list(PLAIN)
        fields[where] = f"x {piece} y"
        message, path, client, extra = fields
        test = example(message, path, client, extra, log_emails)(test)
    return test


@each_piece_alone_in_each_field
@given(message=texts, path=texts, client=texts, extra=texts, log_emails=st.booleans())
def test_any_mix_of_pieces(
    message: str, path: str, client: str, extra: str, log_emails: bool
) -> None:
    filtered(log_emails, message, path, client, extra)
