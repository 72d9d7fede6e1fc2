"""Running ASGI apps under uvicorn: in the foreground, or on loopback in a thread."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from starlette.types import ASGIApp


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket; port 0 picks a free ephemeral port."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class BackgroundServer:
    """A uvicorn server in a daemon thread, stopped on exit.

    Used by the demo for its stand-in vendor and by the tests for every real server.
    """

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0, **config: Any):
        self._socket = bind(host, port)
        config.setdefault("log_config", None)
        config.setdefault("access_log", False)
        config.setdefault("proxy_headers", False)  # TRUSTED_PROXIES decides, not uvicorn
        self.server = uvicorn.Server(uvicorn.Config(app, **config))
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        host, port = self._socket.getsockname()[:2]
        self.url = f"http://{host}:{port}"

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server at {self.url} did not start")
            time.sleep(0.01)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)
        self._socket.close()
