"""A real nginx in front of a server of the tests, serving a documented `location` block
(or a whole `http` context, as deploy/nginx.conf is)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from tests.support import unavailable, wait_until
from tests.support.processes import answers, free_port

NGINX: Final = Path("/usr/sbin/nginx")


def installed() -> Path:
    if not NGINX.exists():
        unavailable("nginx is not installed (apt-get install nginx)")
    return NGINX


def config(tmp_path: Path, http: str) -> Path:
    """An nginx.conf in `tmp_path` whose http context holds `http`; nginx writes nowhere
    else, and runs in the foreground."""
    path = tmp_path / "nginx.conf"
    path.write_text(
        f"daemon off; user root; pid {tmp_path}/nginx.pid;"
        f" error_log {tmp_path}/nginx-error.log;\n"
        "events {}\n"
        "http {\n  access_log off;\n"
        + "".join(f"  {kind}_temp_path {tmp_path}/{kind};\n"
                  for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        + http
        + "}\n"
    )  # fmt: skip
    return path


@contextmanager
def serving(tmp_path: Path, http: str, base: str, ready: str) -> Iterator[str]:
    """nginx serving `http` (listening where `base` says); `base` once `ready` answers."""
    conf = config(tmp_path, http)
    process = subprocess.Popen(
        [str(installed()), "-c", str(conf), "-p", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: answers(f"{base}{ready}"), timeout=15)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def nginx(
    tmp_path: Path, block: str, backend: str, ready: str = "/rewards/healthz"
) -> Iterator[str]:
    """nginx on a free loopback port serving `block` (a documented sample, its
    `127.0.0.1:8000` replaced by `backend`); its base URL once `ready` answers."""
    installed()
    port = free_port()
    server = (
        f"  server {{\n    listen 127.0.0.1:{port};\n"
        + block.replace("127.0.0.1:8000", backend)
        + "  }\n"
    )
    with serving(tmp_path, server, f"http://127.0.0.1:{port}", ready) as base:
        yield base
