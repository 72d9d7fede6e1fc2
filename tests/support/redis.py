"""Finding a real Redis for the tests, or starting a private one."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import redis

from tests.support import unavailable, wait_until
from widget_proxy.servers import bind

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> str:
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1) as client:
            client.ping()
    except redis.RedisError as exc:
        unavailable(f"no Redis answers at {REDIS_URL} ({type(exc).__name__}); set REDIS_URL")
    return REDIS_URL


def forget(url: str, prefix: str) -> None:
    with redis.Redis.from_url(url) as client:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)


class PrivateRedis:
    """A redis-server of our own on a free loopback port, so a test can kill it."""

    def __init__(self, tls: Path | None = None, extra: tuple[str, ...] = ()) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed (apt-get install redis-server)")
        self.binary = str(binary)
        with bind() as sock:
            self.port = sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.listen = ["--port", str(self.port)]
        if tls is not None:  # TLS only, with a certificate made for 127.0.0.1
            cert, key = self_signed(tls)
            self.url = f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={cert}"
            self.listen = ["--port", "0", "--tls-port", str(self.port),
                           "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                           "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]  # fmt: skip
        self.extra = extra  # more redis-server arguments: --replicaof, --cluster-enabled ...
        self.process: subprocess.Popen[bytes] | None = None
        self.folder: str | None = None

    def start(self) -> None:
        options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *self.extra]
        # Its own folder, as the working directory: a replica's full sync (and anything
        # else it writes) lands there, never in the checkout.
        self.folder = self.folder or tempfile.mkdtemp(prefix="wp-redis-")
        self.process = subprocess.Popen(
            [self.binary, *self.listen, *options, "--dir", self.folder],
            cwd=self.folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, timeout=10)

    def answers(self) -> bool:
        try:
            with redis.Redis.from_url(self.url, socket_connect_timeout=0.2) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def remove(self) -> None:
        """Stopped for good: its folder goes too."""
        self.kill()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, made with openssl."""
    cert, key = folder / "redis.crt", folder / "redis.key"
    openssl = shutil.which("openssl")
    if openssl is None:
        unavailable("openssl is not installed (apt-get install openssl)")
    subprocess.run(
        [str(openssl), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@contextmanager
def private_redis(tls: Path | None = None) -> Iterator[PrivateRedis]:
    """A redis-server of its own; with `tls`, a folder for its certificate, TLS only."""
    server = PrivateRedis(tls)
    server.start()
    try:
        yield server
    finally:
        server.remove()


def _client(port: int, ca: Path | None = None) -> redis.Redis:
    """A client of one node or sentinel; over TLS, trusting `ca`, when given one."""
    if ca is None:
        return redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=2)
    return redis.Redis(  # the address the certificate names, not localhost
        "127.0.0.1", port, socket_connect_timeout=0.5, socket_timeout=2, ssl=True,
        ssl_ca_certs=str(ca),
    )  # fmt: skip


def _tls_only(server: PrivateRedis, cert: Path, key: Path) -> PrivateRedis:
    """`server` listening with TLS only, as PrivateRedis(tls) does, but with a certificate
    shared by every node: one CA file then trusts them all, clients and nodes alike."""
    server.url = f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={quote(str(cert))}"
    server.listen = ["--port", "0", "--tls-port", str(server.port),
                     "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                     "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]  # fmt: skip
    return server


def _tls_query(cert: Path | None) -> str:
    return "" if cert is None else f"?ssl_ca_certs={quote(str(cert))}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it lingers: by PID, this process's own child."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)


@contextmanager
def _started(server: PrivateRedis) -> Iterator[PrivateRedis]:
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            _stop(server.process)
            server.process = None
        server.remove()


@dataclass
class PrivateSentinel:
    """A master, its replica and three sentinels watching them, all on loopback."""

    url: str  # redis+sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/NAME/0
    service: str
    master: PrivateRedis
    replica: PrivateRedis
    sentinels: list[subprocess.Popen[bytes]] = field(default_factory=list)
    sentinel_ports: list[int] = field(default_factory=list)
    ca: Path | None = None  # over TLS: the certificate every node and sentinel presents

    def master_port(self) -> int | None:
        """The port the sentinels name as the master now (None while they disagree)."""
        seen = set()
        for port in self.sentinel_ports:
            try:
                with _client(port, self.ca) as client:
                    host_port = client.execute_command(
                        "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service
                    )
            except redis.RedisError:
                continue
            if host_port:
                seen.add(int(host_port[1]))
        return seen.pop() if len(seen) == 1 else None


@contextmanager
def private_sentinel(
    service: str = "wp-master", tls: Path | None = None
) -> Iterator[PrivateSentinel]:
    """One master, one replica (`--replicaof`), three sentinels with a quorum of 2.

    Yields once the sentinels know the replica and each other, so that killing the
    master is followed by a failover (down after 1 s; typically promoted in 2-5 s).
    With `tls`, a folder for one certificate: every node and sentinel listens with TLS
    only, replicates and talks to the others over it, and the URL is rediss+sentinel://
    trusting that certificate (`?ssl_ca_certs=`)."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    certs = self_signed(tls) if tls is not None else None
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wp-sentinel-")))
        master = stack.enter_context(_started(_maybe_tls(PrivateRedis(), certs)))
        replicaof: tuple[str, ...] = ("--replicaof", "127.0.0.1", str(master.port))
        if certs is not None:
            replicaof += ("--tls-replication", "yes")
        replica = stack.enter_context(_started(_maybe_tls(PrivateRedis(extra=replicaof), certs)))
        ports = []
        processes = []
        for n in range(3):
            with bind() as sock:
                port = sock.getsockname()[1]
            config = folder / f"sentinel-{n}.conf"  # a file each: sentinels rewrite theirs
            listen = f"port {port}\n"
            if certs is not None:  # TLS only, to the nodes and the other sentinels too
                cert, key = certs
                listen = (
                    f"port 0\ntls-port {port}\ntls-cert-file {cert}\ntls-key-file {key}\n"
                    f"tls-ca-cert-file {cert}\ntls-auth-clients no\ntls-replication yes\n"
                )
            config.write_text(
                f"{listen}bind 127.0.0.1\ndir {folder}\n"
                f"sentinel monitor {service} 127.0.0.1 {master.port} 2\n"
                f"sentinel down-after-milliseconds {service} 1000\n"
                f"sentinel failover-timeout {service} 3000\n"
            )
            process = subprocess.Popen(
                [str(binary), str(config), "--sentinel"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            stack.callback(_stop, process)
            ports.append(port)
            processes.append(process)
        hosts = ",".join(f"127.0.0.1:{p}" for p in ports)
        scheme = "redis+sentinel" if certs is None else "rediss+sentinel"
        ca = None if certs is None else certs[0]
        found = PrivateSentinel(
            f"{scheme}://{hosts}/{service}/0{_tls_query(ca)}",
            service,
            master,
            replica,
            processes,
            ports,
            ca,
        )
        wait_until(lambda: _sentinels_ready(found), timeout=30)
        yield found


def _maybe_tls(server: PrivateRedis, certs: tuple[Path, Path] | None) -> PrivateRedis:
    return server if certs is None else _tls_only(server, *certs)


def _sentinels_ready(found: PrivateSentinel) -> bool:
    for port in found.sentinel_ports:
        try:
            with _client(port, found.ca) as client:
                info = client.execute_command("SENTINEL", "MASTER", found.service)
        except redis.RedisError:
            return False
        state = dict(zip(info[::2], info[1::2], strict=True)) if isinstance(info, list) else info
        state = {_text(k): _text(v) for k, v in state.items()}
        if state.get("num-slaves") != "1" or state.get("num-other-sentinels") != "2":
            return False
    return True


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class PrivateCluster:
    """Three masters on loopback, the 16384 slots split between them, no replicas."""

    url: str  # redis+cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3
    nodes: list[PrivateRedis]
    ca: Path | None = None  # over TLS: the certificate every node presents


@contextmanager
def private_cluster(tls: Path | None = None) -> Iterator[PrivateCluster]:
    """Three masters sharing the slots. With `tls`, a folder for one certificate: the
    nodes listen, and talk on the cluster bus, with TLS only, and the URL is
    rediss+cluster:// trusting that certificate (`?ssl_ca_certs=`)."""
    cli = shutil.which("redis-cli")
    if cli is None:
        unavailable("redis-cli is not installed (apt-get install redis-tools)")
    certs = self_signed(tls) if tls is not None else None
    ca = None if certs is None else certs[0]
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wp-cluster-")))
        nodes = []
        for _ in range(3):
            node = _maybe_tls(PrivateRedis(), certs)
            with bind() as sock:  # the bus's port: port + 10000 may be past 65535
                bus = sock.getsockname()[1]
            node.extra = ("--cluster-enabled", "yes",
                          "--cluster-config-file", str(folder / f"nodes-{node.port}.conf"),
                          "--cluster-port", str(bus),
                          "--cluster-node-timeout", "2000", "--dir", str(folder))  # fmt: skip
            if certs is not None:
                node.extra += ("--tls-cluster", "yes", "--tls-replication", "yes")
            nodes.append(stack.enter_context(_started(node)))
        over_tls = () if ca is None else ("--tls", "--cacert", str(ca))
        subprocess.run(
            [str(cli), *over_tls, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        wait_until(lambda: all(_cluster_ok(n.port, ca) for n in nodes), timeout=30)
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in nodes)
        scheme = "redis+cluster" if ca is None else "rediss+cluster"
        yield PrivateCluster(f"{scheme}://{hosts}{_tls_query(ca)}", nodes, ca)


def _cluster_ok(port: int, ca: Path | None = None) -> bool:
    try:
        with _client(port, ca) as client:
            info = client.execute_command("CLUSTER", "INFO")
    except redis.RedisError:
        return False
    return "cluster_state:ok" in _text(info)


def restart_node(cluster: PrivateCluster, node: PrivateRedis) -> None:
    """SIGKILL `node`; once the other nodes hold the cluster for down (its slots are
    lost), start it again: on its port, in its folder, with its arguments, so it comes
    back with its config file, its node id and its slots (not its data: nothing is
    saved). Returns once every node says the cluster is whole again."""
    others = [n for n in cluster.nodes if n is not node]
    node.kill()
    wait_until(lambda: all(cluster_state(n) == "fail" for n in others), timeout=60)
    node.start()
    wait_until(lambda: all(cluster_state(n) == "ok" for n in cluster.nodes), timeout=60)


def cluster_state(node: PrivateRedis) -> str | None:
    """`ok` or `fail` as `node` sees the cluster (plain TCP); None if it doesn't answer."""
    try:
        with _client(node.port) as client:
            info = _text(client.execute_command("CLUSTER", "INFO"))
    except redis.RedisError:
        return None
    states = [line for line in info.splitlines() if line.startswith("cluster_state:")]
    return states[0].partition(":")[2].strip() if states else None


@dataclass
class BrokenNodes:
    """Loopback listeners that stand where sentinels (or nodes) should: each accepts a
    connection and closes it at once (`closing`: a reset, as a node restarting gives)
    or never says a word (`silent`: a hung node), and counts the connections it got."""

    ports: list[int]
    connections: list[int]

    def url(self, scheme: str = "redis+sentinel", path: str = "/wp-master/0") -> str:
        return f"{scheme}://{','.join(f'127.0.0.1:{p}' for p in self.ports)}{path}"


@asynccontextmanager
async def broken_nodes(
    behaviour: Literal["closing", "silent"], n: int = 3
) -> AsyncIterator[BrokenNodes]:
    """`n` listeners of `behaviour` in this event loop (asyncio), until the block ends."""
    found = BrokenNodes([], [0] * n)
    servers: list[asyncio.Server] = []
    held: set[asyncio.StreamWriter] = set()

    def handler(at: int) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            found.connections[at] += 1
            if behaviour == "silent":
                held.add(writer)
                await reader.read()  # until the client gives up and closes
            writer.close()

        return handle

    try:
        for at in range(n):
            server = await asyncio.start_server(handler(at), "127.0.0.1", 0)
            servers.append(server)
            found.ports.append(server.sockets[0].getsockname()[1])
        yield found
    finally:
        for writer in held:
            writer.close()
        for server in servers:
            server.close()
            await server.wait_closed()


def script_calls(nodes: list[PrivateRedis]) -> int:
    """EVALSHA and EVAL calls that ran, summed over `nodes` (INFO commandstats, plain
    TCP): a script call that NOSCRIPT refused is not counted."""
    total = 0
    for node in nodes:
        with _client(node.port) as client:
            stats = client.info("commandstats")
        for name in ("cmdstat_evalsha", "cmdstat_eval"):
            entry = stats.get(name, {})
            total += int(entry.get("calls", 0)) - int(entry.get("failed_calls", 0))
    return total
