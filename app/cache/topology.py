"""Which Redis a CACHE_URL names, and the one place its client is made.

    redis://[user:password@]host:port/db, rediss://…, unix://…   one server
    redis+sentinel://[user:password@]host:port[,host:port…]/service[/db]
    rediss+sentinel://…                                          the master a Sentinel names
    redis+cluster://[user:password@]host:port[,host:port…]
    rediss+cluster://…                                           a Redis Cluster

The credentials are the data nodes' (master, replicas, cluster nodes). Sentinels that
want their own say so with `?sentinel_username=…&sentinel_password=…`. TLS options
(`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs`) apply to every
connection, sentinels included, for the `rediss+` schemes. One server takes them too
(with `rediss://`), and redis-py's `db`, `username`, `password`, `client_name`,
`socket_timeout`, `socket_connect_timeout`, `health_check_interval` and `protocol`.

`topology()` reads the URL once, at start-up (`Settings`), into a checked `Topology`
that `redis_client` builds from: every problem is a ValueError there, never at the
first connection, and no message holds a password or an option's value.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from difflib import get_close_matches
from typing import Any, Final, Literal, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.backoff import ConstantBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

from ..secret import Secret

# A cache that answers slower than this is treated as down: a page view must not
# wait on it longer than on a miss.
TIMEOUT: Final = 1.0
MAX_CONNECTIONS: Final = 64
RETRY_PAUSE: Final = 0.05  # before the one retry of a Sentinel's connection (below)

SENTINEL_SCHEMES: Final = {"redis+sentinel": False, "rediss+sentinel": True}  # → TLS
CLUSTER_SCHEMES: Final = {"redis+cluster": False, "rediss+cluster": True}
SINGLE_SCHEMES: Final = {"redis": False, "rediss": True, "unix": False}
DEFAULT_PORTS: Final = {"single": 6379, "sentinel": 26379, "cluster": 6379}
TLS_OPTIONS: Final = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
SENTINEL_OPTIONS: Final = ("sentinel_username", "sentinel_password")
# The query options of one server, as redis-py reads them (the credentials and `db`
# go to their own fields).
SINGLE_OPTIONS: Final = (
    "db", "username", "password", "client_name", "socket_timeout", "socket_connect_timeout",
    "health_check_interval", "protocol",
)  # fmt: skip
EXAMPLES: Final = {
    "single": "redis://127.0.0.1:6379/0",
    "sentinel": "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster/0",
    "cluster": "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
}

Kind = Literal["memory", "single", "sentinel", "cluster"]
T = TypeVar("T")
Client = aioredis.Redis | RedisCluster


@dataclass(frozen=True)
class Topology:
    """A CACHE_URL, read and checked once: what kind of deployment, where, and with
    which credentials and options (typed), all that `redis_client` needs. The password
    and the options (a sentinel's password among them) never show in its repr."""

    kind: Kind
    nodes: tuple[tuple[str, int], ...] = ()  # one server, the sentinels, or cluster nodes
    service: str = ""  # the Sentinel's name for the master
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    options: tuple[tuple[str, object], ...] = field(default=(), repr=False)
    socket: str = ""  # unix://: the socket's path
    url: Secret = field(default=Secret(""), repr=False, compare=False)  # as written

    def option(self, name: str) -> Any:
        return dict(self.options).get(name)

    @property
    def secrets(self) -> list[str]:
        """Every credential the URL carries, as written and as sent (for redaction)."""
        return url_secrets(self.url.reveal())

    @property
    def shown(self) -> str:
        """The URL without its credentials, for anything shown."""
        return redacted_url(self.url.reveal())


def topology(url: str) -> Topology:
    """Read a CACHE_URL (see the module's docstring); ValueError with a reason a
    merchant can act on, which never holds a password nor any option's value."""
    value = url.strip()
    if value == "memory://":
        return Topology("memory", url=Secret(value))
    scheme, sep, rest = value.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in {**SINGLE_SCHEMES, **SENTINEL_SCHEMES, **CLUSTER_SCHEMES}:
        raise ValueError(
            "must be memory:// or a redis://, rediss://, unix://, redis+sentinel://,"
            " rediss+sentinel://, redis+cluster:// or rediss+cluster:// URL"
        )
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(f"a {scheme} URL must not hold spaces or control characters")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in rest[len(authority) :]:
        # A password with an unencoded /, ? or # ends the host part early: the rest of
        # the password would be read as a host, a path or an option, and shown as one.
        raise ValueError(
            "an '@' after the host: percent-encode a '/', '?', '#' or '@' in the user name"
            " or password (%2F, %3F, %23, %40), and an '@' in a path or an option (%40)"
        )
    if "#" in value:
        raise ValueError(f"a {scheme} URL must not carry a fragment (a '#' in it is %23)")
    parts = urlsplit(value)
    userinfo, _, hosts = authority.rpartition("@")
    user, _, password = userinfo.partition(":")
    if scheme in SINGLE_SCHEMES:
        kind: Kind = "single"
        tls = SINGLE_SCHEMES[scheme]
    elif scheme in SENTINEL_SCHEMES:
        kind, tls = "sentinel", SENTINEL_SCHEMES[scheme]
    else:
        kind, tls = "cluster", CLUSTER_SCHEMES[scheme]
    options = _options(scheme, kind, tls, parts.query)
    found = Topology(
        kind,
        tls=tls,
        username=unquote(user) or options.pop("username", None),
        password=unquote(password) or options.pop("password", None),
        url=Secret(value),
    )
    options.pop("username", None), options.pop("password", None)
    path = [unquote(p) for p in parts.path.split("/")[1:]]
    if path and path[-1] == "":
        path.pop()  # a trailing slash
    if scheme == "unix":
        if hosts:
            raise ValueError("a unix URL names a socket's path, no host: unix:///run/redis.sock")
        if not path:
            raise ValueError("a unix URL needs the socket's path: unix:///run/redis.sock")
        return replace(
            found,
            socket="/" + "/".join(path),
            db=options.pop("db", 0),
            options=tuple(options.items()),
        )
    nodes = tuple(_node(h, kind) for h in hosts.split(",") if h.strip())
    if not nodes:
        needs = "a host" if kind == "single" else "at least one host:port"
        raise ValueError(f"a {scheme} URL needs {needs}, e.g. {EXAMPLES[kind]}")
    if kind == "single":
        if len(nodes) > 1:
            raise ValueError(
                f"a {scheme} URL names one server; for several, redis+sentinel:// or"
                " redis+cluster://"
            )
        if len(path) > 1 or (path and not path[0].isdigit()):
            raise ValueError(f"after the host only a database number may follow: {EXAMPLES[kind]}")
        db = options.pop("db", int(path[0]) if path else 0)
        return replace(found, nodes=nodes, db=db, options=tuple(options.items()))
    service, db = "", 0
    if kind == "sentinel":
        if not path or not path[0]:
            raise ValueError(
                f"a {scheme} URL needs the master's service name, e.g. {EXAMPLES[kind]}"
            )
        service, rest_ = path[0], path[1:]
        if len(rest_) > 1 or (rest_ and not rest_[0].isdigit()):
            raise ValueError(
                f"after the service name only a database number may follow: {EXAMPLES[kind]}"
            )
        db = int(rest_[0]) if rest_ else 0
    elif path not in ([], ["0"]):
        raise ValueError(f"a Redis Cluster has database 0 only: no path, e.g. {EXAMPLES[kind]}")
    return replace(found, nodes=nodes, service=service, db=db, options=tuple(options.items()))


def _options(scheme: str, kind: Kind, tls: bool, query: str) -> dict[str, Any]:
    """The query's options, each known for this kind of URL and typed; the messages
    name an option (only one this module knows, or close to one) but never a value."""
    allowed = {
        "single": SINGLE_OPTIONS,
        "sentinel": SENTINEL_OPTIONS,
        "cluster": (),
    }[kind] + TLS_OPTIONS
    known = (*SINGLE_OPTIONS, *SENTINEL_OPTIONS, *TLS_OPTIONS)
    found: dict[str, Any] = {}
    for name, raw in parse_qsl(query, keep_blank_values=True):
        if name not in allowed:
            # Its name is shown only when it is, or is close to, one this module knows:
            # any other may be a piece of a password that lost its percent-encoding.
            close = get_close_matches(name.lower(), known, 1, 0.75)
            said = f"unknown option {name}" if close else "an unknown option"
            hint = f" (did you mean {close[0]}?)" if close and close[0] != name else ""
            raise ValueError(f"{said} in a {scheme} URL{hint} (known: {', '.join(allowed)})")
        if name in TLS_OPTIONS and not tls:
            raise ValueError(f"{name} is for TLS: write rediss{scheme.removeprefix('redis')}://")
        if name in found:
            raise ValueError(f"{name} is given twice in the {scheme} URL")
        found[name] = _typed(name, raw)
    return found


def _typed(name: str, raw: str) -> object:
    if name in ("db", "health_check_interval"):
        if not raw.isdigit():
            raise ValueError(f"{name} must be a whole number (0 or more)")
        return int(raw)
    if name in ("socket_timeout", "socket_connect_timeout"):
        try:
            number = float(raw)
        except ValueError:
            number = math.nan
        if not number > 0 or math.isinf(number):
            raise ValueError(f"{name} must be a number of seconds greater than 0")
        return number
    if name == "protocol":
        if raw not in ("2", "3"):
            raise ValueError("protocol must be 2 or 3")
        return int(raw)
    if name == "ssl_cert_reqs":
        if raw not in ("none", "optional", "required"):
            raise ValueError("ssl_cert_reqs must be none, optional or required")
        return raw
    if not raw and name not in ("password", "sentinel_password"):
        raise ValueError(f"{name} must not be empty")
    return raw


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


def url_secrets(url: str) -> list[str]:
    """Every credential a Redis URL can carry: the userinfo password (as written and
    percent-decoded, as it is sent), `?password=`, `?sentinel_password=` and any other
    `…password=` query parameter. The same for every scheme: a Sentinel's or a
    Cluster's list of hosts is in the netloc, after the userinfo."""
    parts = urlsplit(url)
    found = [parts.password] if parts.password else []
    found += [v for k, v in parse_qsl(parts.query) if "password" in k.lower() and v]
    return list(dict.fromkeys([*found, *(unquote(v) for v in found)]))


def redacted_url(url: str) -> str:
    """The URL without its credentials, for anything shown: log lines, checks, errors."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        host = netloc.rpartition("@")[2]
        netloc = (f"{parts.username}:***@" if parts.username else ":***@") + host
    query = urlencode(
        [(k, "***" if "password" in k.lower() else v) for k, v in parse_qsl(parts.query)],
        safe="*/",
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


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
