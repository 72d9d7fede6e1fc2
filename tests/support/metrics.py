"""Prometheus text read back, and requests sent all at once to be counted."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx2
from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text → {(sample name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """The value of sample `name` with exactly `labels` in `found` (0 when absent)."""
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def at_once(client: httpx2.Client, path: str, cookies: list[dict[str, str]]) -> list[int]:
    """GET `path` once per cookie, all at the same time; the statuses."""
    with ThreadPoolExecutor(len(cookies)) as pool:
        replies = pool.map(lambda headers: client.get(path, headers=headers), cookies)
        return [response.status_code for response in replies]
