"""The command line: `widget-proxy serve` and `widget-proxy demo`."""

from __future__ import annotations

import argparse
import logging
import logging.config
import sys
from collections.abc import Sequence

import uvicorn

from app.logs import log_config
from app.servers import BackgroundServer, bind
from app.settings import PROVIDERS, Settings, SettingsError

log = logging.getLogger("widget_proxy")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="widget-proxy",
        description="Serve third-party widgets to signed-in users; the API key stays here.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the proxy from the environment and .env")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (1)")

    demo = commands.add_parser("demo", help="run a self-contained demo, no configuration")
    demo.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    demo.add_argument(
        "--provider",
        choices=PROVIDERS,
        default="returningai",
        help="which vendor to play (returningai)",
    )

    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return run_serve(args.host, args.port, args.workers)
        return run_demo(args.port, args.provider)
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C after its graceful shutdown
        return 0


def run_serve(host: str, port: int, workers: int) -> int:
    try:
        settings = Settings.load()  # fail here, once, before any worker starts
    except SettingsError as exc:
        print(f"widget-proxy: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        "app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=log_config(),
        # Forwarded headers are judged by TRUSTED_PROXIES in the app, so uvicorn must
        # leave the peer address as it is.
        proxy_headers=False,
        # On SIGTERM: stop accepting, let requests in flight finish, then exit.
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    return 0


def run_demo(port: int, provider: str) -> int:
    from app.demo import demo_app, demo_settings, stand_in

    logging.config.dictConfig(log_config())
    vendor = stand_in(provider)
    with BackgroundServer(vendor.app()) as upstream:
        settings = demo_settings(vendor, upstream.url)
        try:
            sock = bind("127.0.0.1", port)
        except OSError as exc:
            print(f"widget-proxy: cannot listen on 127.0.0.1:{port}: {exc}", file=sys.stderr)
            return 1
        log.info("demo %s stand-in at %s", provider, upstream.url)
        log.info("demo ready: open http://127.0.0.1:%d and sign in with any email", port)
        config = uvicorn.Config(
            demo_app(settings, upstream.url), log_config=log_config(), proxy_headers=False
        )
        uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
