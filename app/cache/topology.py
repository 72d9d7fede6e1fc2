"""Which Redis a CACHE_URL names, and the one place its client is made.

    redis://[user:password@]host:port/db, rediss://…, unix://…   one server
    redis+sentinel://[user:password@]host:port[,host:port…]/service[/db]
    rediss+sentinel://…                                          the master a Sentinel names
    redis+cluster://[user:password@]host:port[,host:port…]
    rediss+cluster://…                                           a Redis Cluster

The credentials are the data nodes' (master, replicas, cluster nodes). Sentinels that
want their own say so with `?sentinel_username=…&sentinel_password=…`. TLS options
(`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs`) apply to every
connection, sentinels included, for the `rediss+` schemes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.backoff import ConstantBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

# A cache that answers slower than this is treated as down: a page view must not
# wait on it longer than on a miss.
TIMEOUT: Final = 1.0
MAX_CONNECTIONS: Final = 64
RETRY_PAUSE: Final = 0.05  # before the one retry of a Sentinel's connection (below)

SENTINEL_SCHEMES: Final = {"redis+sentinel": False, "rediss+sentinel": True}  # → TLS
CLUSTER_SCHEMES: Final = {"redis+cluster": False, "rediss+cluster": True}
SINGLE_SCHEMES: Final = ("redis", "rediss", "unix")
DEFAULT_PORTS: Final = {"sentinel": 26379, "cluster": 6379}
TLS_OPTIONS: Final = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
SENTINEL_OPTIONS: Final = ("sentinel_username", "sentinel_password")

Kind = Literal["single", "sentinel", "cluster"]
T = TypeVar("T")
Client = aioredis.Redis | RedisCluster


@dataclass(frozen=True)
class Topology:
    """A CACHE_URL, read: what kind of deployment, where, and with which credentials."""

    kind: Kind
    nodes: tuple[tuple[str, int], ...] = ()  # sentinels, or the cluster's startup nodes
    service: str = ""  # the Sentinel's name for the master
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    options: tuple[tuple[str, str], ...] = ()  # the query's TLS and sentinel options

    def option(self, name: str) -> str | None:
        return dict(self.options).get(name)


def topology(url: str) -> Topology:
    """Read a CACHE_URL; ValueError with a reason a merchant can act on."""
    scheme = urlsplit(url).scheme
    if scheme in SINGLE_SCHEMES:
        return Topology("single")
    if scheme in SENTINEL_SCHEMES:
        kind: Kind = "sentinel"
        tls = SENTINEL_SCHEMES[scheme]
    elif scheme in CLUSTER_SCHEMES:
        kind, tls = "cluster", CLUSTER_SCHEMES[scheme]
    else:
        raise ValueError(
            "must be memory:// or a redis://, rediss://, unix://, redis+sentinel://,"
            " rediss+sentinel://, redis+cluster:// or rediss+cluster:// URL"
        )
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    nodes = tuple(_node(h, kind) for h in hosts.split(",") if h.strip())
    example = (
        "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster/0"
        if kind == "sentinel"
        else "redis+cluster://127.0.0.1:7000,127.0.0.1:7001"
    )
    if not nodes:
        raise ValueError(f"a {scheme} URL needs at least one host:port, e.g. {example}")
    service, db = "", 0
    path = [unquote(p) for p in parts.path.split("/")[1:]]
    if path and path[-1] == "":
        path.pop()  # a trailing slash
    if kind == "sentinel":
        if not path or not path[0]:
            raise ValueError(f"a {scheme} URL needs the master's service name, e.g. {example}")
        service, rest = path[0], path[1:]
        if len(rest) > 1 or (rest and not rest[0].isdigit()):
            raise ValueError(f"after the service name only a database number may follow: {example}")
        db = int(rest[0]) if rest else 0
    elif path not in ([], ["0"]):
        raise ValueError(f"a Redis Cluster has database 0 only: no path, e.g. {example}")
    allowed = TLS_OPTIONS + (SENTINEL_OPTIONS if kind == "sentinel" else ())
    options = tuple(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted({k for k, _ in options} - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option {', '.join(unknown)} in a {scheme} URL (known: {', '.join(allowed)})"
        )
    if parts.fragment:
        raise ValueError(f"a {scheme} URL must not carry a fragment")
    return Topology(
        kind,
        nodes,
        service,
        db,
        unquote(user) or None,
        unquote(password) or None,
        tls,
        options,
    )


def _node(raw: str, kind: Kind) -> tuple[str, int]:
    raw = raw.strip()
    if raw.startswith("["):  # [::1]:port
        host, _, rest = raw[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = raw.rpartition(":") if ":" in raw else (raw, "", "")
    if not host:
        raise ValueError(f"{raw!r} is not host:port")
    if not port:
        return host, DEFAULT_PORTS[kind]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{raw!r} has a bad port: {port!r} (1-65535)")
    return host, int(port)


def redis_client(url: str, *, timeout: float = TIMEOUT) -> Client:
    """The asyncio client for a CACHE_URL: it owns its pools (and sentinels), so
    `aclose()` closes everything it opened. (`timeout`: the proxy's is TIMEOUT; a
    test of what a topology does, not of how fast, may give a loaded machine more.)"""
    where = topology(url)
    timeouts: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if where.kind == "single":
        # A blocking pool queues a burst instead of failing it: redis-py's default
        # pool raises as soon as its connections are all in use.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=MAX_CONNECTIONS, timeout=timeout, **timeouts
        )
        return aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes it
    tls: dict[str, Any] = {}
    if where.tls:
        tls = {"ssl": True, **{k: v for k, v in where.options if k in TLS_OPTIONS}}
    auth = {"username": where.username, "password": where.password}
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
