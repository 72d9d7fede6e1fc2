"""The leak scan itself must be able to fail, or the suite-wide guarantee means nothing."""

from __future__ import annotations

import logging

import httpx2
import pytest

from tests.support import LeakScanner, Proxy
from tests.support.otlp import exporting, receiver


def test_scanner_finds_a_secret_in_a_log_trace() -> None:
    scanner = LeakScanner()
    scanner.add("sk-planted-secret")
    logger = logging.getLogger("widget_proxy.test_leaks")
    logger.addHandler(scanner)
    try:
        raise RuntimeError("boom with sk-planted-secret inside")
    except RuntimeError:
        logger.debug("failed", exc_info=True)
    finally:
        logger.removeHandler(scanner)

    with pytest.raises(AssertionError, match="a secret leaked into a log record"):
        scanner.check_logs_since(0)


def test_client_hook_fails_on_a_secret_in_a_response(proxy: Proxy) -> None:
    secret = proxy.settings.session_secret.reveal()
    response = httpx2.Response(
        200, text=f"oops {secret}", request=httpx2.Request("GET", f"{proxy.url}/x")
    )

    (scan,) = proxy.client.event_hooks["response"]
    with pytest.raises(AssertionError, match="a secret leaked into a response"):
        scan(response)


def test_the_scan_of_exported_spans_finds_a_secret_in_an_attribute() -> None:
    """What tests/ops/test_spans.py scans is every byte a receiver was sent."""
    scanner = LeakScanner()
    scanner.add("sk-planted-secret")
    with receiver() as (received, url), exporting(url) as (tracer, provider):
        with tracer.start_as_current_span("step", attributes={"note": "sk-planted-secret"}):
            pass
        provider.force_flush()
        received.wait_for(lambda spans: len(spans) == 1)
    (text,) = received.texts
    with pytest.raises(AssertionError, match="a secret leaked into an exported span"):
        scanner.check("an exported span", text)
