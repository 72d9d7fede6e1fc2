"""`widget-proxy demo --config FILE`: the file's widgets on one shop page, each vendor
played by its own stand-in (never a real vendor: the demo's login lets anyone in).

Each widget's table is what `demo_env` makes of it (its stand-in's settings and the
demo's login win; its mount and the rest are kept); the file's top level and the
environment apply as under `serve --config`. The shop page frames every widget.
"""

from __future__ import annotations

import logging
import logging.config
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from ..config import WidgetsConfig
from ..config.tables import Tables, read_tables
from ..errors import SettingsError
from ..multi import create_widgets_app
from ..options import read_environ
from ..providers import DEFAULT_PROVIDER, PROVIDERS
from ..servers import BackgroundServer, bind
from ..settings import Settings
from . import LOGIN, demo_env
from .site import site_routes
from .standin import exit_zero_on_sigterm

log = logging.getLogger("widget_proxy")


@contextmanager
def demo_widgets(path: Path, user: Mapping[str, str]) -> Iterator[WidgetsConfig]:
    """The file's widgets, each vendor's stand-in serving until the block ends."""
    tables = read_tables(path)
    if tables.problems:
        raise SettingsError(tables.problems)
    shared = {**tables.shared, **LOGIN}
    if not any(k in {**shared, **user} for k in ("SESSION_SECRET", "SESSION_SECRET_FILE")):
        shared["SESSION_SECRET"] = secrets.token_urlsafe(32)  # the shop's and every widget's
    with ExitStack() as stack:
        widgets = {}
        for name, table in tables.widgets.items():
            provider = table.get("TOKEN_PROVIDER") or shared.get("TOKEN_PROVIDER")
            provider = provider or DEFAULT_PROVIDER
            if provider not in PROVIDERS:
                choices = ", ".join(PROVIDERS)
                raise SettingsError([f"widgets.{name}: TOKEN_PROVIDER: not one of {choices}"])
            vendor = PROVIDERS[provider].stand_in()
            upstream = stack.enter_context(BackgroundServer(vendor.app()))
            own = {k: v for k, v in table.items() if k != "mount"}
            env, _ = demo_env(provider, vendor, upstream.url, own)
            if "SESSION_SECRET" not in own:
                del env["SESSION_SECRET"]  # demo_env's made-up one: the shop's is shared
            widgets[name] = {"mount": table.get("mount", ""), **env}
        yield WidgetsConfig.from_tables(Tables(shared, widgets), user, source=path)


def demo_widgets_app(config: WidgetsConfig) -> Starlette:
    """The shop, framing every widget, with the widgets mounted beside its pages."""
    together = create_widgets_app(config)
    shown = [(w.name, w.settings.token_provider, w.mount) for w in config.widgets]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with together.router.lifespan_context(together):
            yield

    routes = site_routes(config.process, "each widget's own stand-in", widgets=shown)
    return Starlette(routes=[*routes, Mount("", app=together)], lifespan=lifespan)


def run_demo_widgets(
    port: int, path: Path, logging_for: Callable[[Settings, str], dict[str, Any]]
) -> int:
    """`widget-proxy demo --config FILE` until SIGTERM; `logging_for`: the command
    line's logging configuration of a settings object."""
    try:
        with demo_widgets(path, read_environ()) as widgets:
            settings = widgets.process
            logging.config.dictConfig(logging_for(settings, "text"))
            sock = bind("127.0.0.1", port)
            shown = ", ".join(f"{w.name} ({w.settings.token_provider}) at {w.mount}"
                              for w in widgets.widgets)  # fmt: skip
            log.info("demo ready: open http://127.0.0.1:%d and sign in; %s", port, shown)
            exit_zero_on_sigterm()
            config = uvicorn.Config(
                demo_widgets_app(widgets),
                log_config=logging_for(settings, "text"),
                proxy_headers=False,
                access_log=False,
            )
            uvicorn.Server(config).run(sockets=[sock])
    except SettingsError as exc:
        print(f"widget-proxy: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"widget-proxy: cannot listen on 127.0.0.1:{port}: {exc}", file=sys.stderr)
        return 1
    return 0
