"""Finding a real Redis for the tests, or starting a private one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

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


def _client(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=2)


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

    def master_port(self) -> int | None:
        """The port the sentinels name as the master now (None while they disagree)."""
        seen = set()
        for port in self.sentinel_ports:
            try:
                with _client(port) as client:
                    host_port = client.execute_command(
                        "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service
                    )
            except redis.RedisError:
                continue
            if host_port:
                seen.add(int(host_port[1]))
        return seen.pop() if len(seen) == 1 else None


@contextmanager
def private_sentinel(service: str = "wp-master") -> Iterator[PrivateSentinel]:
    """One master, one replica (`--replicaof`), three sentinels with a quorum of 2.

    Yields once the sentinels know the replica and each other, so that killing the
    master is followed by a failover (down after 1 s; typically promoted in 2-5 s)."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wp-sentinel-")))
        master = stack.enter_context(_started(PrivateRedis()))
        replica = stack.enter_context(
            _started(PrivateRedis(extra=("--replicaof", "127.0.0.1", str(master.port))))
        )
        ports = []
        processes = []
        for n in range(3):
            with bind() as sock:
                port = sock.getsockname()[1]
            config = folder / f"sentinel-{n}.conf"  # a file each: sentinels rewrite theirs
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
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
        found = PrivateSentinel(
            f"redis+sentinel://{hosts}/{service}/0", service, master, replica, processes, ports
        )
        wait_until(lambda: _sentinels_ready(found), timeout=30)
        yield found


def _sentinels_ready(found: PrivateSentinel) -> bool:
    for port in found.sentinel_ports:
        try:
            with _client(port) as client:
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


@contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    cli = shutil.which("redis-cli")
    if cli is None:
        unavailable("redis-cli is not installed (apt-get install redis-tools)")
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wp-cluster-")))
        nodes = []
        for _ in range(3):
            node = PrivateRedis()
            node.extra = ("--cluster-enabled", "yes",
                          "--cluster-config-file", str(folder / f"nodes-{node.port}.conf"),
                          "--cluster-node-timeout", "2000", "--dir", str(folder))  # fmt: skip
            nodes.append(stack.enter_context(_started(node)))
        subprocess.run(
            [str(cli), "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        wait_until(lambda: all(_cluster_ok(n.port) for n in nodes), timeout=30)
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in nodes)
        yield PrivateCluster(f"redis+cluster://{hosts}", nodes)


def _cluster_ok(port: int) -> bool:
    try:
        with _client(port) as client:
            info = client.execute_command("CLUSTER", "INFO")
    except redis.RedisError:
        return False
    return "cluster_state:ok" in _text(info)
