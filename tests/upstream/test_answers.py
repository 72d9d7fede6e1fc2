"""What an upstream answer means: its status, charset, redirect target and Retry-After."""

from __future__ import annotations

import codecs
import email.utils
import encodings
import encodings.aliases
import pkgutil
import time

import httpx2
import pytest

from widget_proxy.errors import (
    UpstreamBadResponse,
    UpstreamBadStatus,
    UpstreamBusy,
    UpstreamError,
    UpstreamRejectedKey,
)
from widget_proxy.upstream.answers import (
    _web_codec,
    check_status,
    decode,
    origin_of,
    retry_after,
    same_origin_target,
    too_large,
)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", "120"),
        (" 7 ", "7"),
        ("999999999", "999999999"),  # nine digits: the longest taken as given
        ("9999999999", None),  # ten: nonsense
        ("-5", None),
        ("soon", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", "0"),  # a date in the past: come back now
    ],
)
def test_retry_after_is_read_as_delay_seconds_or_a_date(
    value: str | None, seconds: str | None
) -> None:

    assert retry_after(value) == seconds


def test_retry_after_as_a_date_in_the_future() -> None:

    when = email.utils.formatdate(time.time() + 90, usegmt=True)

    assert retry_after(when) in {"89", "90", "91"}


def answer(status: int, url: str = "https://w.example/a/b", **headers: str) -> httpx2.Response:
    return httpx2.Response(status, headers=headers, request=httpx2.Request("GET", url))


# (status, Retry-After, what the browser gets, the log line's detail); 401 means the key.
STATUSES = [
    (200, None, None, ""),
    (204, None, None, ""),
    (299, None, None, ""),
    (300, None, UpstreamBadStatus, "page answered 300"),
    (401, None, UpstreamRejectedKey, "the upstream rejected the API key (401)"),
    (403, None, UpstreamBadStatus, "page answered 403"),  # not a key status here
    (429, None, UpstreamBusy, "page answered 429"),
    (429, "7", UpstreamBusy, "page answered 429"),
    (503, None, UpstreamBusy, "page answered 503"),
    (500, None, UpstreamBadStatus, "page answered 500"),
    (502, None, UpstreamBadStatus, "page answered 502"),
]


@pytest.mark.parametrize(("status", "wait", "error", "detail"), STATUSES)
def test_what_a_status_means(
    status: int, wait: str | None, error: type[UpstreamError] | None, detail: str
) -> None:
    headers = {} if wait is None else {"retry-after": wait}

    if error is None:
        check_status("page", answer(status, **headers), frozenset({401}))
        return
    with pytest.raises(error) as caught:
        check_status("page", answer(status, **headers), frozenset({401}))
    assert caught.value.detail == detail
    assert caught.value.retry_after == wait


@pytest.mark.parametrize(
    ("location", "target"),
    [
        ("/c", "https://w.example/c"),
        ("c?x=1", "https://w.example/a/c?x=1"),
        ("HTTPS://W.Example/d", "https://W.Example/d"),  # the same origin in other case
        ("", "https://w.example/a/b"),
        (None, "https://w.example/a/b"),  # no Location at all: the same page again
    ],
)
def test_a_redirect_within_the_origin_is_followed(location: str | None, target: str) -> None:
    response = answer(302) if location is None else answer(302, location=location)

    assert same_origin_target("page", "https://w.example/a/b?q=1", response) == target


@pytest.mark.parametrize(
    ("location", "detail"),
    [
        ("https://evil.example/x", "page redirected to another host (evil.example); not followed"),
        ("http://w.example/x", "page redirected to another host (w.example); not followed"),
        ("//w.example:8443/x", "page redirected to another host (w.example); not followed"),
        ("https://:8443/x", "page redirected to another host (?); not followed"),
        (f"https://{'a' * 120}.example/",
         f"page redirected to another host ({'a' * 100}); not followed"),
        ("https://[::1/x", "page redirected to a malformed location"),
    ],
)  # fmt: skip
def test_a_redirect_elsewhere_is_refused(location: str, detail: str) -> None:
    with pytest.raises(UpstreamBadStatus) as caught:
        same_origin_target("page", "https://w.example/a/b", answer(302, location=location))

    assert caught.value.detail == detail


def test_origin_of_is_scheme_and_authority_in_lower_case() -> None:
    assert origin_of("HTTPS://User@W.Example:8443/Path?q") == "https://user@w.example:8443"


# (body, declared charset, the text served): only encodings the web uses are honoured.
CHARSETS = [
    ("café".encode(), None, "café"),
    ("café".encode(), " UTF-8 ", "café"),
    ("café".encode("latin-1"), "ISO-8859-1", "café"),
    ("café".encode("latin-1"), "latin1", "café"),
    ("Жук".encode("iso8859-5"), "iso-8859-5", "Жук"),
    ("“q”".encode("cp1252"), "windows-1252", "“q”"),
    ("Жук".encode("koi8-r"), "koi8-r", "Жук"),
    ("日本".encode("shift_jis"), "Shift_JIS", "日本"),
    ("日本".encode("euc_jp"), "EUC-JP", "日本"),
    ("한".encode("euc_kr"), "euc-kr", "한"),
    ("中".encode("gb18030"), "gb18030", "中"),
    ("ab".encode("utf-16"), "utf-16", "ab"),
    (b"caf\xe9", "utf-8", "caf\ufffd"),  # a byte that isn't UTF-8 is replaced
    (b"\x82\xa0\xff", "shift_jis", "\u3042\ufffd"),  # and one that isn't Shift JIS
    (b"uryyb", "rot13", "uryyb"),  # a Python codec, not a web encoding: UTF-8
    (b"xn--caf-dma", "idna", "xn--caf-dma"),
    ("café".encode(), "undefined", "café"),
    ("café".encode(), "cp037", "café"),  # EBCDIC is no web encoding
    ("café".encode(), "utf\x008", "café"),  # a NUL: codecs.lookup says ValueError
]


@pytest.mark.parametrize(("body", "charset", "text"), CHARSETS)
def test_a_body_is_read_in_its_web_encoding_or_as_utf_8(
    body: bytes, charset: str | None, text: str
) -> None:
    assert decode(body, charset) == text


def test_too_large_names_the_limit() -> None:
    error = too_large("page", 1024)

    assert isinstance(error, UpstreamBadResponse)
    assert error.detail == "page body is larger than 1024 bytes"


def _honoured_codecs() -> list[str]:
    """Every codec `decode` honours: each name Python knows that is a web encoding."""
    known = set(encodings.aliases.aliases) | {
        m.name for m in pkgutil.iter_modules(encodings.__path__)
    }
    return sorted(
        {codecs.lookup(name).name for name in known if _web_codec(name) != "utf-8"} | {"utf-8"}
    )


HOSTILE = [
    bytes(range(256)),
    b"\xff\xfe\xfd",
    b"\x1b$B\x1b(",  # an unfinished ISO-2022 escape
    b"\xd8\x00",  # a lone UTF-16 surrogate
    b"\x81",  # the first byte of a double-byte character, and nothing after it
    bytes((i * 37 + 11) % 256 for i in range(4096)),
]


def test_every_honoured_codec_is_text_and_never_raises_on_any_body() -> None:
    honoured = _honoured_codecs()

    assert {"utf-8", "shift_jis", "iso2022_jp", "utf-16", "cp1252", "iso8859-5"} <= set(honoured)
    assert not {"rot13", "idna", "base64_codec", "undefined", "cp037"} & set(honoured)
    for codec in honoured:
        for body in HOSTILE:
            assert isinstance(decode(body, codec), str), codec
