"""The one place a Redis client is made, from a CACHE_URL read by `urls.topology`:
one server, the master a Sentinel names, or a Cluster; and what each looks like now
(`describe`, for /readyz and `check`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.backoff import ConstantBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

from .urls import TLS_OPTIONS, Topology, topology

# A cache that answers slower than this is treated as down: a page view must not
# wait on it longer than on a miss.
TIMEOUT: Final = 1.0
MAX_CONNECTIONS: Final = 64
RETRY_PAUSE: Final = 0.05  # before the one retry of a Sentinel's connection (below)

T = TypeVar("T")
Client = aioredis.Redis | RedisCluster


def redis_client(where: Topology | str, *, timeout: float = TIMEOUT) -> Client:
    """The asyncio client for a CACHE_URL, read (`topology`; a string is read here):
    it owns its pools (and sentinels), so `aclose()` closes everything it opened.
    (`timeout`: the proxy's is TIMEOUT; a test of what a topology does, not of how
    fast, may give a loaded machine more.)"""
    if isinstance(where, str):
        where = topology(where)
    timeouts: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    auth: dict[str, Any] = {"username": where.username, "password": where.password}
    if where.kind == "memory":
        raise ValueError("memory:// has no Redis client")
    if where.kind == "single":
        server: dict[str, Any]
        if where.socket:
            server = {"connection_class": UnixDomainSocketConnection, "path": where.socket}
        else:
            host, port = where.nodes[0]
            connection = SSLConnection if where.tls else Connection
            server = {"connection_class": connection, "host": host, "port": port}
        # A blocking pool queues a burst instead of failing it: redis-py's default
        # pool raises as soon as its connections are all in use.
        pool = aioredis.BlockingConnectionPool(
            max_connections=MAX_CONNECTIONS,
            timeout=timeout,
            db=where.db,
            **server,
            **auth,
            **{**timeouts, **dict(where.options)},
        )
        return aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes it
    tls: dict[str, Any] = {}
    if where.tls:
        tls = {"ssl": True, **{k: v for k, v in where.options if k in TLS_OPTIONS}}
    if where.kind == "sentinel":
        # redis-py's default for a client it makes is 10 retries with a backoff up to
        # 1 s: through three sentinels that refuse, 11-13 s before a call fails. Here
        # each connection, to a sentinel or to the master, is tried once more after a
        # refusal or a reset (a restarted node, or a master just demoted by a planned
        # failover), never after a timeout: a failing call fails about as fast as one
        # to a single server (one TIMEOUT per node that doesn't answer).
        sentinel = Sentinel(
            list(where.nodes),
            sentinel_kwargs={
                **timeouts,
                "retry": OnceMore(),
                **tls,
                "username": where.option("sentinel_username"),
                "password": where.option("sentinel_password"),
            },
            **timeouts,
        )
        client: SentinelRedis = sentinel.master_for(
            where.service,
            redis_class=SentinelRedis,
            connection_pool_class=BlockingSentinelPool,
            db=where.db,
            max_connections=MAX_CONNECTIONS,
            timeout=timeout,
            retry=OnceMore(),
            **auth,
            **tls,
        )
        client.manager = sentinel
        return client
    return QueuedCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in where.nodes],
        max_connections=MAX_CONNECTIONS,
        **timeouts,
        **auth,
        **tls,
    )


class OnceMore(Retry):
    """One more try after a connection error (refused, reset), after `RETRY_PAUSE`.

    Not after a timeout (the call has waited TIMEOUT already), and not when no sentinel
    named a master: each was asked in turn, and asking them all again at once would
    double the wait for the same answer (the store tries again after its pause)."""

    def __init__(self) -> None:
        super().__init__(ConstantBackoff(RETRY_PAUSE), 1, (RedisConnectionError,))

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        def retryable(error: Exception) -> bool:
            if isinstance(error, MasterNotFoundError):
                return False
            return is_retryable is None or is_retryable(error)

        return await super().call_with_retry(do, fail, retryable, with_failure_count)


class BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """The master's pool, queueing a burst as the single-server pool does."""


class SentinelRedis(aioredis.Redis):
    """The master's client; closing it closes the sentinels' connections too."""

    manager: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.manager is not None:
            await self.manager.aclose()


class QueuedCluster(RedisCluster):
    """A cluster client that queues a burst (redis-py's cluster pools raise
    MaxConnectionsError as soon as a node's connections are all in use), and that
    knows the nodes before it sends anything."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queue = asyncio.Semaphore(int(kwargs.get("max_connections", MAX_CONNECTIONS)))

    async def learn(self) -> None:
        """Learn the nodes, unless known (the census may ask before any command)."""
        if self._initialize:
            try:
                await self.initialize()
            except RedisClusterException as exc:
                # No node answered (down, or refused: a plain client on TLS, a wrong CA).
                # Not a RedisError in redis-py, so the callers' outage handling would miss
                # it and a page would fail: say it as the connection error it is.
                raise RedisConnectionError(str(exc)) from exc

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        # redis-py 8 resolves a command's routing before it learns the nodes: the first
        # commands of a fresh client, sent together, race each other's connections and
        # are retried, and a retried script is run twice. Learn the nodes first, once.
        await self.learn()
        async with self._queue:
            try:
                return await super().execute_command(*args, **kwargs)
            except RedisClusterException as exc:  # no node serves the slot: as above
                raise RedisConnectionError(str(exc)) from exc
            except (RuntimeError, AttributeError) as exc:
                # On CLUSTERDOWN redis-py closes every connection of every node, those
                # other commands are using included: theirs then fail on the closed
                # transport (uvloop's RuntimeError, or a writer already gone). A page
                # would fail on it; it is the connection error it is.
                raise RedisConnectionError("connection closed by a reset of the client") from exc


async def census(client: Client) -> dict[str, int]:
    """How many data nodes of each role the deployment has now, for the metrics.

    A Sentinel's are what the sentinels say, asked now (network calls, never on a page
    view): one master while they name one that is up (none while it is down and not yet
    replaced, or no sentinel answers), and the replicas they don't hold for down. A
    Cluster's are the client's map of its nodes; one server is one master."""
    if isinstance(client, RedisCluster):
        if isinstance(client, QueuedCluster):
            await client.learn()  # asked before any command was: learn the nodes now
        return {"master": len(client.get_primaries()), "replica": len(client.get_replicas())}
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        manager = pool.sentinel_manager
        try:
            await manager.discover_master(pool.service_name)
            master = 1
        except MasterNotFoundError:
            master = 0
        replicas = await manager.discover_slaves(pool.service_name)
        return {"master": master, "replica": len(replicas)}
    return {"master": 1}


def describe(client: Client) -> dict[str, object]:
    """The topology, for readiness: which kind, and where the master is or how many nodes."""
    if isinstance(client, RedisCluster):
        return {"topology": "cluster", "nodes": len(client.get_nodes())}
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        address = pool.master_address
        master = f"{address[0]}:{address[1]}" if address else None
        return {"topology": "sentinel", "service": pool.service_name, "master": master}
    return {"topology": "single"}
