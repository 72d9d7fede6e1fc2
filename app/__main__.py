"""The command line: `widget-proxy serve`, `demo`, `standin`, `check` and `forget`."""

from __future__ import annotations

import argparse
import logging
import logging.config
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from .config import WidgetsConfig
from .errors import SettingsError
from .forgetting import FORGET_FILE
from .multi.serving import CONFIG_VARIABLE, config_problems, serve_widgets
from .ops.logs import log_config
from .ops.tracing import problems as tracing_problems
from .options import read_environ, strays
from .providers import DEFAULT_PROVIDER, PROVIDERS
from .security.bounded import BoundedHttpTools, head_bound
from .serve import ignore_sighup_until_serving, serve_app, serve_problems, uvicorn_trust
from .servers import BackgroundServer, bind
from .settings import Settings, all_options
from .workers import ReloadingWorkers

log = logging.getLogger("widget_proxy")

GRANIAN_MISSING = (
    "widget-proxy: --server granian needs granian: pip install 'widget-proxy[granian]'"
)


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
    serve.add_argument(
        "--server",
        choices=("uvicorn", "granian"),
        default="uvicorn",
        help="the HTTP server (uvicorn); granian needs the extra: widget-proxy[granian]",
    )
    serve.add_argument(
        "--root-path", default="", help="the path prefix a reverse proxy serves this under"
    )
    serve.add_argument("--config", help=CONFIG_HELP)
    serve.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="let uvicorn rewrite client address and scheme from X-Forwarded-* (off: the"
        " app's TRUSTED_PROXIES decides, which also guards IDENTITY_SOURCE=header)",
    )
    serve.add_argument(
        "--forwarded-allow-ips",
        type=_trust_list,
        default="127.0.0.1",
        help="with --proxy-headers: the peers uvicorn believes (127.0.0.1), CIDRs read"
        " as TRUSTED_PROXIES is",
    )

    demo = commands.add_parser(
        "demo",
        help="run a self-contained demo: a stand-in vendor, a login page, the proxy",
        description=DEMO_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    demo.add_argument(
        "--provider",
        choices=list(PROVIDERS),
        help=f"which vendor to play (TOKEN_PROVIDER if set, else {DEFAULT_PROVIDER})",
    )
    demo.add_argument(
        "--config", help="a config file's widgets on one shop page, each vendor a stand-in"
    )

    standin = commands.add_parser(
        "standin",
        help="run one vendor's stand-in alone; print the settings that use it (a .env)",
        description="Serve a vendor's stand-in until SIGTERM or Ctrl+C. First print on stdout"
        " the settings a proxy needs to use it, as .env lines ending with an empty line"
        " (keys and SESSION_SECRET new on every run): widget-proxy standin --provider"
        " hissuno > .env & then widget-proxy check --email a@example.com.",
    )
    standin.add_argument(
        "--provider", choices=list(PROVIDERS), required=True, help="which vendor to play"
    )
    standin.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    standin.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")

    check = commands.add_parser(
        "check", help="check the settings and the vendor before going live (a real signin)"
    )
    check.add_argument("--email", help="a test user's email for the real signin and page fetch")
    check.add_argument("--config", help=CONFIG_HELP)
    check.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 1) on a warning too: a step that could not prove what it checks",
    )
    check.add_argument(
        "--origin",
        help="the origin of your pages that show the widget (https://shop.example.com),"
        " sent as Origin to a vendor API that judges it",
    )

    forget = commands.add_parser(
        "forget",
        help="drop a user's cached tokens and pages in every process (docs/revocation.md)",
        description="Every process stops serving the user's cached token and pages within"
        " a second; their next view signs in again. With Redis (CACHE_URL) it is written"
        " there; with memory:// each running server at --url is told.",
    )
    whom = forget.add_mutually_exclusive_group(required=True)
    whom.add_argument("--email", action="append", help="the user's email (repeatable)")
    whom.add_argument("--all", action="store_true", help="every user")
    forget.add_argument(
        "--url",
        action="append",
        default=[],
        help="with memory://: a running server to tell (repeatable; http://127.0.0.1:8000)",
    )
    forget.add_argument("--config", help=CONFIG_HELP + " (forgotten in every widget)")

    try:
        args = parser.parse_args(argv)
        if args.command == "serve":
            return run_serve(args)
        if args.command == "check":
            from .check import run_check

            if (path := config_file(args)) is not None:
                from .check.widgets import run_check_config

                return run_check_config(path, args.email, strict=args.strict)
            return run_check(args.email, strict=args.strict, origin=args.origin)
        if args.command == "forget":
            from .forget import run_forget

            return run_forget(
                args.email or [], everybody=args.all, urls=args.url, config=config_file(args)
            )
        if args.command == "standin":
            from .demo.standin import run_standin

            return run_standin(args.provider, args.host, args.port)
        if args.config:
            from .demo.widgets import run_demo_widgets

            return run_demo_widgets(args.port, Path(args.config), logging_for)
        return run_demo(args.port, args.provider)
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C after its graceful shutdown
        return 0
    except BrokenPipeError:  # `widget-proxy check | head -1`: the reader left
        return _reader_left()


CONFIG_HELP = (
    "a TOML file of several widgets, each at its mount path (docs/config-file.md);"
    f" default: ${CONFIG_VARIABLE} if set, else one widget from the environment"
)


def config_file(args: argparse.Namespace) -> str | None:
    """The config file `--config` or WIDGET_PROXY_CONFIG names; None: one widget."""
    return args.config or os.environ.get(CONFIG_VARIABLE, "").strip() or None


DEMO_HELP = """\
Run a demo on http://127.0.0.1:PORT: a stand-in vendor, a login page that takes any
email, and the proxy. It prints on stdout where the stand-in runs and the settings
that point `widget-proxy check` or `serve` at it.

It reads the same settings as `serve` (the environment over .env: token lifetimes,
margins, limits, cache, logging...) on top of its own defaults (a new SESSION_SECRET
if none is set). The stand-in's settings (TOKEN_PROVIDER, the vendor's keys, URLs, ids
and script hashes) and how its login writes the session always win: the demo never
calls a real vendor. Example:
HISSUNO_TOKEN_TTL=90 TOKEN_REFRESH_MARGIN=30 widget-proxy demo --provider hissuno
"""


def _reader_left() -> int:
    """Exit quietly when stdout's reader is gone, as a shell's tools do: status 128 +
    SIGPIPE, and nothing more written (stdout now points at /dev/null, so the
    interpreter's last flush of what was buffered doesn't fail too)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def _trust_list(raw: str) -> list[str]:
    try:
        return uvicorn_trust(raw)
    except ValueError as exc:  # argparse names the flag and says why
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_serve(args: argparse.Namespace) -> int:
    path = config_file(args)
    try:
        # Fail here, once, before any worker starts; and warn here, once, for them all.
        if path is None:
            settings = Settings.load(warn=warn)
            problems = serve_problems(settings, proxy_headers=args.proxy_headers)
        else:
            widgets = WidgetsConfig.load(Path(path))
            settings = widgets.process
            problems = config_problems(widgets, proxy_headers=args.proxy_headers)
    except SettingsError as exc:
        print(f"widget-proxy: {exc}", file=sys.stderr)
        return 2
    if problems := problems + tracing_problems(os.environ):
        print("\n".join(f"widget-proxy: {problem}" for problem in problems), file=sys.stderr)
        return 2
    if args.server == "granian":
        return run_granian(args, settings, config=path)
    metrics_dir = prepare_multiprocess_metrics() if args.workers > 1 else None
    factory: Callable[[], object] = (
        partial(serve_app, proxy_headers=args.proxy_headers, metrics_dir=metrics_dir)
        if path is None
        else partial(
            serve_widgets, config=path, proxy_headers=args.proxy_headers, metrics_dir=metrics_dir
        )
    )
    config = uvicorn.Config(
        # `Reloading`: SIGHUP swaps the settings in-process. Each worker (spawned) gets
        # this factory pickled, with serve's flags: it checks its reloads the same way.
        factory,
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        root_path=args.root_path,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        log_config=logging_for(settings, "json"),
        access_log=False,  # the app logs one line per request itself
        # httptools, refusing a head past the app's own limits before reading it all
        # (uvicorn's h11 bound is the setting it reads; read at start, not on SIGHUP).
        http=BoundedHttpTools,
        h11_max_incomplete_event_size=head_bound(
            settings.max_header_bytes, settings.max_request_target_bytes
        ),
        # On SIGTERM: stop accepting, let requests in flight finish, then exit.
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    if config.workers == 1:
        ignore_sighup_until_serving()
        server = uvicorn.Server(config)
        server.run()
        return 0 if server.started else STARTUP_FAILURE
    # What uvicorn.run does for workers, but with a supervisor that passes SIGHUP on to
    # the workers (to swap their settings) instead of restarting them.
    if path is None:
        supervisor = ReloadingWorkers(
            config,
            [config.bind_socket()],
            check=lambda new: serve_problems(new, proxy_headers=args.proxy_headers),
        )
    else:
        supervisor = ReloadingWorkers(
            config,
            [config.bind_socket()],
            check=lambda new: config_problems(new, proxy_headers=args.proxy_headers),
            load=lambda: WidgetsConfig.load(Path(path)),
        )
    supervisor.run()
    return 0


def warn(line: str) -> None:
    """A variable that looks like a setting but is none (`options.strays`), said once."""
    print(f"widget-proxy: warning: {line}", file=sys.stderr)


def run_granian(args: argparse.Namespace, settings: Settings, *, config: str | None) -> int:
    try:
        from .granian_server import serve_granian
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "granian":
            raise
        print(GRANIAN_MISSING, file=sys.stderr)
        return 2
    return serve_granian(
        host=args.host,
        port=args.port,
        workers=args.workers,
        root_path=args.root_path,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        log_config=logging_for(settings, "json"),
        log_level=settings.log_level,
        max_head=head_bound(settings.max_header_bytes, settings.max_request_target_bytes),
        shutdown_timeout=settings.shutdown_timeout,
        metrics_dir=prepare_multiprocess_metrics() if args.workers > 1 else None,
        config=config,
    )


def logging_for(settings: Settings, default_format: str) -> dict[str, Any]:
    return log_config(
        level=settings.log_level,
        fmt=settings.log_format or default_format,
        secrets=settings.secrets,
        log_emails=settings.log_emails,
    )


def prepare_multiprocess_metrics() -> str:
    """An empty directory where each worker's metrics live (the operator's
    `PROMETHEUS_MULTIPROC_DIR`, or a new one); set before workers start, since
    prometheus-client reads it from the environment as each worker imports it."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        for stale in [*path.glob("*.db"), path / FORGET_FILE]:  # an earlier run's: not ours
            stale.unlink(missing_ok=True)
    else:
        folder = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
            prefix="widget-proxy-metrics-"
        )
    return folder


def run_demo(port: int, provider: str | None) -> int:
    from .demo import demo_app, demo_env
    from .demo.standin import exit_zero_on_sigterm, print_env, standin_env

    user = read_environ()
    for line in strays.warnings(user, all_options()):
        warn(line)
    name = provider or user.get("TOKEN_PROVIDER", "").strip() or DEFAULT_PROVIDER
    if name not in PROVIDERS:
        choices = ", ".join(PROVIDERS)
        print(f"widget-proxy: TOKEN_PROVIDER: {name!r} is not one of {choices}", file=sys.stderr)
        return 2
    vendor = PROVIDERS[name].stand_in()
    with BackgroundServer(vendor.app()) as upstream:
        env, replaced = demo_env(name, vendor, upstream.url, user)
        try:
            settings = Settings.from_env(env)
        except SettingsError as exc:
            print(f"widget-proxy: {exc}", file=sys.stderr)
            return 2
        logging.config.dictConfig(logging_for(settings, "text"))
        try:
            sock = bind("127.0.0.1", port)
        except OSError as exc:
            print(f"widget-proxy: cannot listen on 127.0.0.1:{port}: {exc}", file=sys.stderr)
            return 1
        if replaced:
            log.info("demo: the stand-in's settings replace %s", ", ".join(replaced))
        where = f"the demo's {name} stand-in, at {upstream.url}"
        print_env(sys.stdout, standin_env(vendor, upstream.url), where)
        log.info("demo %s stand-in at %s", name, upstream.url)
        log.info("demo ready: open http://127.0.0.1:%d and sign in with any email", port)
        exit_zero_on_sigterm()
        config = uvicorn.Config(
            demo_app(settings, upstream.url),
            log_config=logging_for(settings, "text"),
            proxy_headers=False,
            access_log=False,
        )
        uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
