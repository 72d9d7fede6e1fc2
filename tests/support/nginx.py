"""A real nginx in front of a server of the tests, serving a documented `location` block."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from tests.support import unavailable, wait_until
from tests.support.processes import answers, free_port

NGINX: Final = Path("/usr/sbin/nginx")


@contextmanager
def nginx(
    tmp_path: Path, block: str, backend: str, ready: str = "/rewards/healthz"
) -> Iterator[str]:
    """nginx on a free loopback port serving `block` (a documented sample, its
    `127.0.0.1:8000` replaced by `backend`); its base URL once `ready` answers."""
    if not NGINX.exists():
        unavailable("nginx is not installed (apt-get install nginx)")
    port = free_port()
    (tmp_path / "nginx.conf").write_text(
        f"daemon off; user root; pid {tmp_path}/nginx.pid;"
        f" error_log {tmp_path}/nginx-error.log;\n"
        "events {}\n"
        "http {\n  access_log off;\n"
        + "".join(f"  {kind}_temp_path {tmp_path}/{kind};\n"
                  for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        + f"  server {{\n    listen 127.0.0.1:{port};\n"
        + block.replace("127.0.0.1:8000", backend)
        + "  }\n}\n"
    )  # fmt: skip
    process = subprocess.Popen(
        [str(NGINX), "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{base}{ready}"), timeout=15)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
