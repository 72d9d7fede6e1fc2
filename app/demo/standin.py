"""`widget-proxy standin`: one vendor's stand-in alone, and the settings that use it.

The stand-in is the provider's own (`providers/*/standin.py`), the one the demo and the
tests play the vendor with, on a port of its own. Before it serves, the command prints
on stdout the settings a proxy needs to use it, as a `.env` (a comment naming it, one
`KEY=VALUE` line each, then an empty line), flushed, so that

    widget-proxy standin --provider hissuno > .env &
    widget-proxy check --email a@example.com

works, and a pipe reading up to the empty line has every setting. The socket listens
before the lines are printed: a proxy started on them at once is queued, not refused.
Its keys and the `SESSION_SECRET` are new on every run (`secrets`), never a value
anyone has seen before. It serves until SIGTERM or Ctrl+C, then exits 0.
"""

from __future__ import annotations

import logging
import logging.config
import secrets
import signal
import socket
import sys
from collections.abc import Mapping
from types import FrameType
from typing import TextIO

import uvicorn

from ..ops.logs import log_config
from ..options.parsers import plain_http
from ..providers import PROVIDERS, StandIn
from ..servers import bind
from ..settings import Settings

log = logging.getLogger("widget_proxy")

BACKLOG = 128
# The characters a .env value may hold unquoted, in every reader of the format.
_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.,:/@+=%")


def standin_env(vendor: StandIn, url: str) -> dict[str, str]:
    """What a proxy needs to use `vendor` served at `url`: its settings, and a session
    secret of its own (so `check` and `serve` start on these alone)."""
    env = dict(vendor.proxy_env(url))
    if plain_http(url):  # a stand-in speaks plain http; on loopback that needs no consent
        env["UPSTREAM_ALLOW_HTTP"] = "true"
    env["SESSION_SECRET"] = secrets.token_urlsafe(48)
    return env


def dotenv(env: Mapping[str, str], comment: str) -> str:
    """`env` as a `.env` file: the comment, one line per setting, an empty line."""
    lines = [f"# {comment}"]
    for name, value in env.items():
        if set(value) <= _PLAIN:
            lines.append(f"{name}={value}")
        else:  # single quotes: read literally, no ${…} expansion
            quoted = value.replace("\\", "\\\\").replace("'", "\\'")
            lines.append(f"{name}='{quoted}'")
    return "\n".join(lines) + "\n\n"


def print_env(out: TextIO, env: Mapping[str, str], comment: str) -> None:
    out.write(dotenv(env, comment))
    out.flush()  # before serving: whoever reads a pipe or a file has them now


def url_of(sock: socket.socket) -> str:
    """The URL a client on this machine reaches a listening socket at (an address that
    listens everywhere is reached on loopback)."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", ""):  # noqa: S104 (read, not bound)
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def exit_zero_on_sigterm() -> None:
    """SIGTERM ends the process with status 0, as Ctrl+C does.

    uvicorn catches SIGTERM, shuts down gracefully, then raises it again for the handler
    it found: this one, instead of the default that would kill the process (-15).
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)


def run_standin(provider: str, host: str = "127.0.0.1", port: int = 0) -> int:
    """Serve `provider`'s stand-in at host:port (0: a free port); the exit code."""
    vendor = PROVIDERS[provider].stand_in()
    try:
        sock = bind(host, port)
        sock.listen(BACKLOG)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        print(f"widget-proxy: cannot listen on {host}:{port}: {reason}", file=sys.stderr)
        return 1
    with sock:
        url = url_of(sock)
        env = standin_env(vendor, url)
        # Read as `check` and `serve` will: a setting that would be refused fails here.
        settings = Settings.from_env(env)
        logging.config.dictConfig(log_config(secrets=settings.secrets))
        print_env(sys.stdout, env, f"widget-proxy standin --provider {provider}, at {url}")
        log.info("%s stand-in at %s: serving until SIGTERM or Ctrl+C", provider, url)
        exit_zero_on_sigterm()
        config = uvicorn.Config(
            vendor.app(), log_config=None, access_log=False, proxy_headers=False
        )
        uvicorn.Server(config).run(sockets=[sock])
    return 0
