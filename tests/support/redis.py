"""Finding a real Redis for the tests, or starting a private one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
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

    def __init__(self, tls: Path | None = None) -> None:
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
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, *self.listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
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
        server.kill()
