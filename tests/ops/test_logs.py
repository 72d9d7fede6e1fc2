"""The formatters' time stamps: remembered per second, always the record's own."""

from __future__ import annotations

import json
import logging
import time

import pytest

from widget_proxy.ops.logs import TEXT_FORMAT, JsonFormatter, TextFormatter

# Within one second, across a second, back in time (a clock set back), far apart.
CREATED = [1_700_000_000.0, 1_700_000_000.999, 1_700_000_001.0005, 1_699_999_999.5, 1.25]


def record(created: float) -> logging.LogRecord:
    made = logging.LogRecord("widget_proxy", logging.INFO, __file__, 1, "a line", None, None)
    made.created, made.msecs = created, (created - int(created)) * 1000
    return made


def test_text_lines_are_what_logging_writes() -> None:
    ours, stdlib = TextFormatter(), logging.Formatter(TEXT_FORMAT)
    for created in CREATED:
        assert ours.format(record(created)) == stdlib.format(record(created))


def test_json_lines_carry_the_records_utc_time() -> None:
    formatter = JsonFormatter()
    for created in CREATED:
        stamp = json.loads(formatter.format(record(created)))["time"]
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        assert stamp == f"{seconds}.{int((created - int(created)) * 1000):03d}Z"


@pytest.mark.parametrize("datefmt", ["%H:%M"])
def test_a_date_format_asked_for_is_used(datefmt: str) -> None:
    made = record(CREATED[0])
    expected = logging.Formatter().formatTime(made, datefmt)
    assert TextFormatter().formatTime(made, datefmt) == expected
