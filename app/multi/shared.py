"""The parts the widgets of one process share (`sharing.Shared`), made once and closed
once, after every widget's own shutdown:

- one upstream client for each vendor and client settings: its connection pool per
  origin and its circuit breaker per origin serve every widget of that vendor;
- one Redis connection pool for each CACHE_URL: each widget keeps its own memory in
  front of it (its CACHE_MAX_ENTRIES) and its own keys (`cache.Keys`' scope), so that
  caches and rate counts stay apart though the connections are one.

An upstream client shared by several widgets counts its calls (and its breaker) under
a `widget` label naming them all, comma-separated (`rewards,more`): one series for
one pool, not one widget's name on the others' calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx2

from ..application import http_client
from ..cache import MemoryStore, RedisStore, Store, TieredStore
from ..ops.metrics import Metrics
from ..settings import Settings
from ..upstream.client import HttpClient

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer


class SharedParts:
    """Every shared part of one generation of the process's widgets."""

    def __init__(
        self,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        tracer: Tracer | None = None,
        metrics: Metrics | None = None,
        widgets: Iterable[tuple[str, Settings]] = (),
    ) -> None:
        """`metrics`: the process's registry (`widgets=True`) and `widgets` every widget
        by name: a client two of them share is labelled with both names."""
        self._transport = transport  # replaces the network (tests and bench.inprocess)
        self._tracer = tracer
        self._metrics = metrics
        self._users: dict[tuple[object, ...], list[str]] = {}
        for name, settings in widgets:
            self._users.setdefault(client_key(settings), []).append(name)
        self._clients: dict[tuple[object, ...], HttpClient] = {}
        self._redis: dict[tuple[str, ...], RedisStore] = {}

    def of(self, widget: str) -> WidgetShare:
        """What the widget `widget` is handed (`create_app(shared=…)`)."""
        return WidgetShare(self, widget)

    def http(self, settings: Settings, metrics: Metrics) -> HttpClient:
        key = client_key(settings)
        if key not in self._clients:
            users = self._users.get(key, [])
            if len(users) > 1 and self._metrics is not None:
                metrics = self._metrics.for_widget(",".join(users))
            self._clients[key] = http_client(
                settings, metrics=metrics, transport=self._transport, tracer=self._tracer
            )
        return self._clients[key]

    def store(self, settings: Settings, metrics: Metrics, clock: Callable[[], float]) -> Store:
        where = settings.cache_url
        local = MemoryStore(settings.cache_max_entries, clock=clock)
        if where.kind == "memory":
            return local
        key = (where.shown, *where.secrets)  # the same server with other credentials: apart
        redis = self._redis.get(key)
        if redis is None:
            redis = self._redis[key] = RedisStore(
                where, secret=settings.session_secret.reveal(), clock=clock
            )
        return TieredStore(local, redis, where=where.shown, metrics=metrics)

    @property
    def clients(self) -> int:
        return len(self._clients)

    @property
    def pools(self) -> int:
        return len(self._redis)

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        for redis in self._redis.values():
            await redis.aclose()


def client_key(settings: Settings) -> tuple[object, ...]:
    """What makes two widgets' upstream clients one: the vendor and how it is called."""
    return (
        settings.token_provider,
        settings.upstream_connect_timeout,
        settings.upstream_read_timeout,
        settings.upstream_pool_timeout,
        settings.upstream_max_connections,
        settings.upstream_max_bytes,
        settings.upstream_retries,
        settings.upstream_deadline,
        settings.breaker_failures,
        settings.breaker_cooldown,
    )


@dataclass(frozen=True, slots=True)
class WidgetShare:
    """One widget's view of the shared parts: its name scopes its keys."""

    parts: SharedParts
    scope: str

    def http(self, settings: Settings, metrics: Metrics) -> HttpClient:
        return self.parts.http(settings, metrics)

    def store(self, settings: Settings, metrics: Metrics, clock: Callable[[], float]) -> Store:
        return self.parts.store(settings, metrics, clock)
