"""The log formatters and the redaction filter: time stamps remembered per second and
always the record's own; no secret, token or whole email on any handler. The logging
configurations: `serve`'s (`log_config`), and a mounting app's one call
(`configure_logging`)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI

from tests.support import LeakScanner, Proxy, scanning_client
from widget_proxy import configure_logging, create_app
from widget_proxy.ops.logs import (
    MAX_FIELD_CHARS,
    MAX_MESSAGE_CHARS,
    TEXT_FORMAT,
    JsonFormatter,
    RedactionFilter,
    TextFormatter,
    log_config,
)
from widget_proxy.servers import BackgroundServer
from widget_proxy.settings import Settings

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


SECRET_KEY = "live-api-key-0123456789"


JWT_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJlLWJ5dGVz"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_redaction_on_every_handler(fmt: str, tmp_path: Path) -> None:
    config = log_config(fmt=fmt, secrets=[SECRET_KEY, "session-secret-abc"])
    out = tmp_path / "log.txt"
    handler = logging.FileHandler(out)
    handler.addFilter(config["filters"]["redact"]["()"](**{
        k: v for k, v in config["filters"]["redact"].items() if k != "()"
    }))  # fmt: skip
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(message)s"))
    logger = logging.getLogger("widget_proxy.redaction_test")
    logger.addHandler(handler)
    try:
        logger.warning("key %s secret %s token %s for %s", SECRET_KEY, "session-secret-abc",
                       JWT_TOKEN, "ann.smith@example.com")  # fmt: skip
        try:
            raise RuntimeError(f"upstream refused {SECRET_KEY} with {JWT_TOKEN}")
        except RuntimeError:
            logger.exception("with a trace")
    finally:
        logger.removeHandler(handler)
        handler.close()

    text = out.read_text()
    for leaked in (SECRET_KEY, "session-secret-abc", JWT_TOKEN, "ann.smith@example.com"):
        assert leaked not in text
    assert "a***@example.com" in text
    assert "[redacted]" in text
    assert "[jwt]" in text
    assert "RuntimeError" in text  # the trace is kept, only cleaned


def test_log_emails_keeps_them_whole() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "for %s", ("ann@example.com",), None)

    RedactionFilter(log_emails=True).filter(record)

    assert record.getMessage() == "for ann@example.com"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_every_part_of_a_record_is_cut_after_redaction(fmt: str, tmp_path: Path) -> None:
    # A 60 KB path as a field and in the message, with a secret straddling the cut.
    path = "/" + "p" * (MAX_FIELD_CHARS - 5) + SECRET_KEY + "x" * 60_000
    out = tmp_path / "log.txt"
    handler = logging.FileHandler(out)
    handler.addFilter(RedactionFilter([SECRET_KEY]))
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger = logging.getLogger("widget_proxy.cut_test")
    logger.addHandler(handler)
    try:
        logger.warning("GET %s %s", path, path, extra={"path": path, "client_ip": path})
    finally:
        logger.removeHandler(handler)
        handler.close()

    line = out.read_text()
    assert len(line) < MAX_MESSAGE_CHARS + 3 * MAX_FIELD_CHARS + 400
    assert SECRET_KEY[:5] not in line  # no part of the secret either side of the cut
    assert "more]" in line  # and it says that it was cut


@pytest.mark.usefixtures("proxy_logging")
@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("configured_first", [True, False], ids=["before", "after"])
def test_configure_logging_shows_a_mounted_proxys_lines(
    make_settings: Callable[..., Settings],
    leak_scanner: LeakScanner,
    capsys: pytest.CaptureFixture[str],
    fmt: str,
    configured_first: bool,
) -> None:
    """A merchant's FastAPI app mounting the proxy, and the one call: the request lines
    (INFO) on stderr, redacted (the proxy's secrets, whether the call came before or
    after `create_app`; emails); the HTTP library's own line silenced."""
    if configured_first:
        configure_logging(format=fmt)
    settings = make_settings()
    proxy = create_app(settings)
    configure_logging("INFO", fmt)  # again (or for the first time): one handler still

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with proxy.router.lifespan_context(proxy):
            yield

    merchant = FastAPI(lifespan=lifespan)
    merchant.mount("/rewards", proxy)
    secret = settings.session_secret.reveal()
    with (
        BackgroundServer(merchant, timeout_graceful_shutdown=1) as server,
        scanning_client(leak_scanner, base_url=server.url) as client,
    ):
        cookie = Proxy(settings, server.url, leak_scanner).cookie({"email": "ann@example.com"})
        assert client.get("/rewards/widget", headers=cookie).status_code == 200
        assert client.get(f"/rewards/x/ann.smith@example.com/{secret}").status_code == 404

    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "widget_proxy.request" in line]
    assert len(lines) == 2, err
    assert "GET /rewards/widget 200" in lines[0]
    assert "/rewards/x/a***@example.com/[redacted] 404" in lines[1]
    assert secret not in err
    assert "ann.smith@" not in err
    assert "widget_proxy.upstream" in err  # the signin and page fetch of the cold view
    assert "HTTP Request:" not in err
    assert len(logging.getLogger("widget_proxy").handlers) == 1
    if fmt == "json":
        assert json.loads(lines[0])["logger"] == "widget_proxy.request"


@pytest.mark.usefixtures("proxy_logging")
def test_configure_logging_at_debug_lets_the_http_librarys_line_through() -> None:
    configure_logging("DEBUG")
    assert logging.getLogger("httpx2").isEnabledFor(logging.DEBUG)
    configure_logging("INFO")
    assert not logging.getLogger("httpx2").isEnabledFor(logging.INFO)
    assert logging.getLogger("widget_proxy.request").isEnabledFor(logging.INFO)
    with pytest.raises(ValueError, match="format must be"):
        configure_logging(format="yaml")


@pytest.mark.parametrize(
    ("level", "library"),
    [("DEBUG", "DEBUG"), ("INFO", "WARNING"), ("WARNING", "WARNING"), ("ERROR", "ERROR")],
)
def test_log_config_silences_the_http_library_unless_debugging(level: str, library: str) -> None:
    config = log_config(level=level)
    assert config["loggers"]["httpx2"]["level"] == logging.getLevelName(library)
    assert config["loggers"]["widget_proxy"]["level"] == level
