"""Request lines as the configured handler writes them, without `logging`'s per-record work.

`widget-proxy serve` owns its process and its log configuration: one stream handler on
`widget_proxy`, our formatter (text or JSON) and redaction filter. There, a request's
line is formatted once, here, from the fields the view already holds, and appended to
a `BatchWriter`; no `LogRecord`, no filter or handler call, no lock per line. It is
byte for byte what `requestlog.through_logging` makes that handler write (the same
message, time stamp, escaping and redaction: tests/ops/test_fastlines.py holds it to
that, for every kind of field): a line with anything to redact, escape or cut is
rare, and goes through the handler's own filter and formatter into the same batch.

`FastLines.serving` finds that handler; anything else (a merchant's configuration, a
handler of its own on the way) gets None, and the lines go through `logging`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

from .batches import BatchWriter
from .logs import MAX_FIELD_CHARS, TEXT_FORMAT, JsonFormatter, RedactionFilter, TextFormatter
from .requestlog import MESSAGE, log, record_parts

_MILLIS: Final = tuple(f"{n:03d}" for n in range(1000))  # a line's milliseconds, as %03d


class FastLines:
    """A `requestlog.LineSink` writing what `handler` would, in batches (`writer`).

    (Its hot path is written out inline, every step a few hundred instructions that
    a helper's call would double: BENCHMARKS.md has the count.)
    """

    def __init__(
        self,
        handler: logging.StreamHandler[Any],
        writer: BatchWriter,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        formatter = handler.formatter
        assert isinstance(formatter, TextFormatter | JsonFormatter)
        (redaction,) = handler.filters
        assert isinstance(redaction, RedactionFilter)
        self._handler = handler
        self._stamps = formatter.stamp
        self._redaction = redaction
        self._writer = writer
        self._clock = clock
        self._json = isinstance(formatter, JsonFormatter)
        self._end = handler.terminator
        self._name = log.name

    @classmethod
    def serving(
        cls, *, on_drop: Callable[[int], None] | None = None
    ) -> tuple[FastLines, BatchWriter] | None:
        """Fast lines for the handler `log_config` gave the request lines' logger, and
        their writer; None if the lines would go anywhere else, or be filtered."""
        handler = _only_handler(log)
        if handler is None:
            return None
        writer = BatchWriter(handler.stream, lock=handler.lock, on_drop=on_drop)
        return cls(handler, writer), writer

    def __call__(
        self,
        level: int,
        method: str,
        path: str,
        status: int,
        seconds: float,
        request_id: str,
        cache: str,
        client_ip: str,
        error: str,
    ) -> None:
        ms = seconds * 1000
        message = (
            f"{method} {path} {status} {ms:.1f}ms request_id={request_id} cache={cache}"
            f" client={client_ip}{' error=' + error if error else ''}"
        )  # requestlog.MESSAGE (`status`, an int, as %d writes it)
        created = self._clock()
        # Every field is in the message, whole: a short message that redaction and
        # escaping would leave as it is (`RedactionFilter.clean`, written out)
        # is a line no filter would change, and no cut either.
        redaction = self._redaction
        plain = (
            len(message) <= MAX_FIELD_CHARS
            and "eyJ" not in message
            and message.isprintable()
            and (redaction.log_emails or "@" not in message)
            and not (self._json and ('"' in message or "\\" in message))  # JSON escapes
        )
        if plain:
            for secret in redaction.secrets:
                if secret in message:
                    plain = False
                    break
        if not plain:
            self._by_handler(created, level, method, path, status, seconds,
                             request_id, cache, client_ip, error)  # fmt: skip
            return
        second = int(created)
        msecs = _MILLIS[int((created - second) * 1000)]  # as `LogRecord` has it, as %03d
        last = self._stamps.last  # the formatter's stamp of this second, if it made it
        stamp = last[1] if last[0] == second else self._stamps(created)
        if self._json:
            # round(ms, 2) as JSON writes it (its repr): the same two decimals, trailing
            # zeros cut but one; the same digits below 1e9 ms, where a double holds
            # every hundredth apart (tests/ops/test_fastlines.py).
            duration = f"{ms:.2f}".rstrip("0") if ms < 1e9 else repr(round(ms, 2))
            if duration[-1] == ".":
                duration += "0"
            level_name = "info" if level == logging.INFO else "warning"
            extra = f', "error": "{error}"' if error else ""
            line = (
                f'{{"time": "{stamp}.{msecs}Z", "level": "{level_name}",'
                f' "logger": "{self._name}", "message": "{message}", "method": "{method}",'
                f' "path": "{path}", "status": {status}, "duration_ms": {duration},'
                f' "request_id": "{request_id}", "cache": "{cache}",'
                f' "client_ip": "{client_ip}"{extra}}}{self._end}'
            )
        else:
            level_name = "INFO   " if level == logging.INFO else "WARNING"  # %-7s
            line = f"{stamp},{msecs} {level_name} {self._name}: {message}{self._end}"
        writer = self._writer  # BatchWriter.append, inline
        if len(writer.buffer) < writer.max_lines:
            writer.buffer.append(line)
        else:
            writer.drop(1)

    def _by_handler(
        self,
        created: float,
        level: int,
        method: str,
        path: str,
        status: int,
        seconds: float,
        request_id: str,
        cache: str,
        client_ip: str,
        error: str,
    ) -> None:
        """The record `through_logging` would make, through the handler's own filter and
        formatter, into the batch."""
        args, fields = record_parts(
            method, path, status, seconds, request_id, cache, client_ip, error
        )
        record = log.makeRecord(self._name, level, "", 0, MESSAGE, args, None, extra=fields)
        record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0
        if self._handler.filter(record):
            self._writer.append(self._handler.format(record) + self._end)


def _only_handler(logger: logging.Logger) -> logging.StreamHandler[Any] | None:
    """The one handler a record of `logger` reaches, if it is `log_config`'s: a stream
    handler of every level, with our formatter and only our redaction filter, and no
    filter on the way to it."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        found += current.handlers
        if not current.propagate:
            break
        current = current.parent
    if len(found) != 1:
        return None
    (handler,) = found
    if not isinstance(handler, logging.StreamHandler) or handler.level != logging.NOTSET:
        return None
    formatter = handler.formatter
    exact = type(formatter) is JsonFormatter or (
        type(formatter) is TextFormatter and formatter._fmt == TEXT_FORMAT
    )
    filters = handler.filters
    if not exact or len(filters) != 1 or type(filters[0]) is not RedactionFilter:
        return None
    return handler
