"""Logging: text or JSON lines, and a redaction filter on every handler.

The filter removes every configured secret (API keys, the session secret, the Redis
password) and anything shaped like a JWT from every record, exception traces
included, and masks emails (`a***@example.com`) unless `LOG_EMAILS=true`. The
configuration is a dict handed to uvicorn, so every worker process gets the same; a
settings reload adds its new secrets to every filter (`add_redaction`).

The filter also escapes control characters in every string a format can show, so
that text from a request (a path with `%0a` or `%1b` in it) can neither start a
forged line nor send terminal escape codes: C0, DEL and C1 become `\\xNN`, U+2028
and U+2029 `\\u2028`/`\\u2029`, and Unicode's invisible format characters (the bidi
overrides that reorder a line, U+200B, the BOM) `\\uNNNN`. One record is one line, in
text and in JSON, except a trace: its own line breaks stay, and the text format
indents every line after a record's first, so that nothing in a trace can pass for a
record of its own.

And it bounds every record: a message, each field and a trace are cut (`cut`) past a
fixed length, after redaction (a cut never leaves part of a secret), so a client's
60 KB path is a short line, not 120 KB of log per request.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

DEFAULT_LOG_LEVEL: Final = "INFO"
TEXT_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
JWT: Final = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
# An email's local part is matched from its first character only (the look-behind): else
# each character of a long run without an "@" starts a scan of the rest, quadratic.
EMAIL: Final = re.compile(
    r"(?<![A-Za-z0-9._%+'-])([A-Za-z0-9._%+'-])[A-Za-z0-9._%+'-]*(@[A-Za-z0-9.-]+\.[A-Za-z]{2,})"
)
# Fields a request line (requestlog) or an upstream call's (upstream/client) carries
# beside its message: the JSON format shows them, in this order.
FIELDS: Final = (
    "method", "path", "status", "duration_ms", "request_id", "cache", "client_ip", "error",
    "vendor", "operation", "url_path", "ms", "attempt",
)  # fmt: skip
# Unicode's format characters (category Cf): invisible, yet they change what a reader
# sees. The bidi controls (U+202A-U+202E, U+2066-U+2069) reorder the rest of a line (a
# path that reads as another), U+200B and the BOM (U+FEFF) hide inside a word. The
# ranges of Unicode 14 to 16 (tests/ops/test_logs_injection.py checks them against
# this Python's Unicode database).
_FORMAT: Final = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f"
)
# Control characters: C0, DEL, C1 (NEL, U+0085, among them), the Unicode line and
# paragraph separators, which some readers (and str.splitlines) take for line breaks,
# the format characters, and lone surrogates (which no UTF-8 stream can even write).
_OTHER: Final = f"\x7f-\x9f\u2028\u2029{_FORMAT}\ud800-\udfff"
CONTROL: Final = re.compile(f"[\x00-\x1f{_OTHER}]")
TRACE_CONTROL: Final = re.compile(f"[\x00-\x09\x0b-\x1f{_OTHER}]")  # not \n
CONTINUATION: Final = "\n    "  # how the text format starts a record's further lines
# The loggers `log_config` gives the handler (and its redaction filter), besides the root.
LOGGERS: Final = ("widget_proxy", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx2")
# The HTTP library's loggers: one "HTTP Request: …" line per request at INFO.
HTTP_LIBRARY: Final = ("httpx2", "httpx")
# The longest a record's parts may be, in characters (before escaping): a field (a path,
# an address), a message (which may hold a few fields), a trace.
MAX_FIELD_CHARS: Final = 1024
MAX_MESSAGE_CHARS: Final = 4096
MAX_TRACE_CHARS: Final = 64 * 1024


def cut(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """`text`, or its start and how many characters more there were, in at most `limit`
    characters: cut again, it stays as it is."""
    if len(text) <= limit:
        return text
    kept = limit - 24  # room for the mark, "…[N more]", for any N below 10**20
    return f"{text[:kept]}…[{len(text) - kept} more]"


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def escape_controls(text: str) -> str:
    """`text` with every control character written as an escape: one line, inert."""
    return CONTROL.sub(_escaped, text)


def escape_trace(text: str) -> str:
    """A trace's control characters escaped, but for its own line breaks."""
    return TRACE_CONTROL.sub(_escaped, text)


class RedactionFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str] = (), log_emails: bool = False) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is removed whole.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self.log_emails = log_emails

    def add(self, secrets: Iterable[str]) -> None:
        """Redact these too (a settings reload's new secrets); the old ones stay redacted."""
        # One assignment: a record filtered meanwhile in another thread sees either list.
        self.secrets = sorted({*self.secrets, *(s for s in secrets if s)}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        text = JWT.sub("[jwt]", text)
        if not self.log_emails:
            text = EMAIL.sub(r"\1***\2", text)
        return text

    def clean(self, text: str) -> bool:
        """True if neither `redact` nor `escape_controls` would change `text`.

        A JWT always holds "eyJ" (a JSON header in base64url) and an email an "@";
        `isprintable` is false for every character `CONTROL` matches (and for a few
        more, which only send the text the long way)."""
        if "eyJ" in text or not text.isprintable():
            return False
        if not self.log_emails and "@" in text:
            return False
        for secret in self.secrets:  # noqa: SIM110 (a loop is cheaper than any() here)
            if secret in text:
                return False
        return True

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        fields = record.__dict__
        # Most records (every request line) hold nothing to redact or escape: one look
        # at all their text together says so, and the record goes on as it is.
        if not (record.exc_info or record.exc_text or record.stack_info):
            shown = [v for k, v in fields.items() if isinstance(v, str) and k != "msg"]
            text = " ".join((message, *shown))
            if len(text) <= MAX_FIELD_CHARS and self.clean(text):  # (short: nothing to cut)
                record.msg, record.args = message, None
                return True
        record.msg = escape_controls(cut(self.redact(message), MAX_MESSAGE_CHARS))
        record.args = None
        if record.exc_info:
            trace = logging.Formatter().formatException(record.exc_info)
            record.exc_text = escape_trace(cut(self.redact(trace), MAX_TRACE_CHARS))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = escape_trace(cut(self.redact(record.exc_text), MAX_TRACE_CHARS))
        if record.stack_info:
            record.stack_info = escape_trace(cut(self.redact(record.stack_info), MAX_TRACE_CHARS))
        for name in FIELDS:
            value = fields.get(name)
            if isinstance(value, str):
                fields[name] = self.redact(value)
        # Every string a format may show (the fields, logger name, extra fields, …).
        for name, value in list(fields.items()):
            if isinstance(value, str) and name not in _ESCAPED:
                value = cut(value)
                fields[name] = escape_controls(value) if CONTROL.search(value) else value
        return True


_ESCAPED: Final = frozenset({"msg", "exc_text", "stack_info"})  # escaped above, their own way


class Stamps:
    """`time.strftime` of a record's second, remembered for the rest of that second:
    a busy proxy writes hundreds of lines a second, all with the same stamp."""

    def __init__(self, fmt: str, convert: Callable[[float | None], time.struct_time]) -> None:
        self._fmt = fmt
        self._convert = convert
        self.last: tuple[int, str] = (-1, "")  # the second and its stamp

    def __call__(self, created: float) -> str:
        second = int(created)
        last = self.last
        if last[0] != second:  # one tuple, swapped whole: a reader sees a matching pair
            last = self.last = (second, time.strftime(self._fmt, self._convert(second)))
        return last[1]


class TextFormatter(logging.Formatter):
    """`TEXT_FORMAT` lines; a trace's lines are indented under the record they belong to."""

    def __init__(self, fmt: str = TEXT_FORMAT) -> None:
        super().__init__(fmt)
        self.stamp = Stamps(self.default_time_format, self.converter)  # a record's second

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return f"{self.stamp(record.created)},{int(record.msecs):03d}"  # logging's own form

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", CONTINUATION)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the request fields."""

    def __init__(self) -> None:
        super().__init__()
        self.stamp = Stamps("%Y-%m-%dT%H:%M:%S", time.gmtime)  # a record's second, in UTC

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": f"{self.stamp(record.created)}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if name in record.__dict__:
                line[name] = record.__dict__[name]
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["trace"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


def log_config(
    level: str = DEFAULT_LOG_LEVEL,
    fmt: str = "text",
    secrets: Iterable[str] = (),
    log_emails: bool = False,
) -> dict[str, Any]:
    """The logging configuration `serve` and `demo` hand to uvicorn (each worker's)."""
    formatter = {"()": JsonFormatter if fmt == "json" else TextFormatter}
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "main",
        "filters": ["redact"],
        "stream": "ext://sys.stderr",
    }
    loggers: dict[str, dict[str, Any]] = {
        name: {"handlers": ["stderr"], "level": level, "propagate": False} for name in LOGGERS
    }
    for name in HTTP_LIBRARY:  # its "HTTP Request:" line repeats the upstream call's own
        loggers.setdefault(name, {})["level"] = library_level(level)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "redact": {
                "()": RedactionFilter,
                "secrets": [*_REDACTED, *secrets],
                "log_emails": log_emails,
            }
        },
        "formatters": {"main": formatter},
        "handlers": {"stderr": handler},
        "loggers": loggers,
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }


def library_level(level: str | int) -> int:
    """The HTTP library's level: its own line of each request only when debugging."""
    number = level if isinstance(level, int) else logging.getLevelNamesMapping()[level.upper()]
    return number if number <= logging.DEBUG else max(number, logging.WARNING)


class _Ours(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `configure_logging` installs (so that a second call replaces it)."""


def configure_logging(
    level: str | int = DEFAULT_LOG_LEVEL, format: str = "text", *, log_emails: bool = False
) -> None:
    """Log the proxy's records to stderr, for an app that mounts it: one call.

    Installs one handler (text or JSON lines, the redaction filter: every secret of
    the proxies created in this process, JWTs, emails unless `log_emails`) on the
    `widget_proxy` logger, not the root, at `level`; request lines (`widget_proxy.request`)
    and upstream calls (`widget_proxy.upstream`) are INFO. The HTTP library's own line
    of each request is silenced unless `level` is DEBUG. Calling it again replaces what
    an earlier call installed. Configure `logging.getLogger("widget_proxy")` yourself
    instead to send the lines anywhere else (docs/logging.md).
    """
    if format not in ("text", "json"):
        raise ValueError(f"format must be 'text' or 'json', not {format!r}")
    handler = _Ours(sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    handler.addFilter(RedactionFilter(_REDACTED, log_emails=log_emails))
    logger = logging.getLogger("widget_proxy")
    for old in [h for h in logger.handlers if isinstance(h, _Ours)]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # once here, not again through the root's handlers
    for name in HTTP_LIBRARY:
        logging.getLogger(name).setLevel(library_level(level))


# Every secret `add_redaction` was told of in this process (the proxies' settings):
# a filter made later (`configure_logging` after `create_app`) redacts them too.
_REDACTED: Final[set[str]] = set()


def add_redaction(secrets: Iterable[str]) -> None:
    """Make every redaction filter of the configured loggers redact `secrets` too
    (a new app's, a settings reload's, before anything built from them may log)."""
    secrets = [s for s in secrets if s]
    _REDACTED.update(secrets)
    found: dict[int, RedactionFilter] = {}
    for name in ("", *LOGGERS):
        logger = logging.getLogger(name or None)
        candidates = [*logger.filters, *(f for h in logger.handlers for f in h.filters)]
        found.update({id(f): f for f in candidates if isinstance(f, RedactionFilter)})
    for redaction in found.values():
        redaction.add(secrets)
