"""What an upstream answer means: its status, its charset, where it redirects, when to
come back. Pure functions of one response; the client (`client.py`) decides what to do.
"""

from __future__ import annotations

import codecs
import time
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import urljoin, urlsplit

import httpx2

from ..errors import UpstreamBadResponse, UpstreamBadStatus, UpstreamBusy, UpstreamRejectedKey

RETRYABLE_STATUS: Final = frozenset({502, 503, 504})
# Python's names of the encodings the WHATWG Encoding Standard gives web pages (plus
# the ISO-8859 and Windows code page families, matched by prefix).
WEB_ENCODINGS: Final = frozenset({
    "utf-8", "utf-16", "utf-16-le", "utf-16-be", "ascii", "latin-1", "koi8-r", "koi8-u",
    "mac-roman", "mac-cyrillic", "cp866", "cp874", "shift_jis", "cp932", "euc_jp",
    "iso2022_jp", "gb2312", "gbk", "gb18030", "big5", "big5hkscs", "euc_kr", "cp949",
})  # fmt: skip


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin_target(kind: str, url: str, response: httpx2.Response) -> str:
    try:
        target = urljoin(str(response.url), response.headers.get("location", ""))
        elsewhere = origin_of(target) != origin_of(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise UpstreamBadStatus(f"{kind} redirected to a malformed location") from None
    if elsewhere:
        host = (urlsplit(target).hostname or "?")[:100]
        raise UpstreamBadStatus(f"{kind} redirected to another host ({host}); not followed")
    return target


def check_status(kind: str, response: httpx2.Response, key_statuses: frozenset[int]) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if status in key_statuses:
        raise UpstreamRejectedKey(f"the upstream rejected the API key ({status})")
    if status in (429, 503):
        wait = retry_after(response.headers.get("retry-after"))
        # A 503 is retried like 502/504; a 429 only when it says when to come back.
        raise UpstreamBusy(
            f"{kind} answered {status}",
            retry_after=wait,
            retryable=status == 503 or wait is not None,
            unhealthy=status == 503,
        )
    raise UpstreamBadStatus(
        f"{kind} answered {status}",
        retryable=status in RETRYABLE_STATUS,
        unhealthy=status >= 500,
    )


def too_large(kind: str, limit: int) -> UpstreamBadResponse:
    return UpstreamBadResponse(f"{kind} body is larger than {limit} bytes")


def decode(body: bytes, charset: str | None) -> str:
    """The body as text in its declared charset, if that is one the web uses; else UTF-8.

    A vendor can declare anything: `charset=undefined`, `idna`, `rot13` name Python
    codecs that raise or aren't text at all. Only real web encodings are honoured.
    """
    # Every codec `_web_codec` names is a text codec, and decoding with "replace" never
    # raises (tests/upstream/test_answers.py tries each on hostile bytes).
    return body.decode(_web_codec(charset) if charset else "utf-8", errors="replace")


def _web_codec(charset: str) -> str:
    try:
        name = codecs.lookup(charset.strip()).name
    except (LookupError, ValueError):  # a charset Python does not know (or with a NUL)
        return "utf-8"
    return name if name in WEB_ENCODINGS or name.startswith(("iso8859-", "cp12")) else "utf-8"


def retry_after(value: str | None) -> str | None:
    """Delay-seconds as the upstream sent it, or an HTTP-date turned into seconds."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit() and len(value) <= 9:
        return value
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return str(max(0, round(when.timestamp() - time.time())))
