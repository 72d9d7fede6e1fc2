"""The services of one run: the stand-in vendor (one process for every scenario), and
factories for the proxy and the two comparison apps, all configured alike.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench import apps, upstream
from bench.http import fetch
from bench.processes import (
    Server,
    ServerFailed,
    clean_environ,
    serving,
    uvicorn_defaults,
    widget_proxy_serve,
)
from widget_proxy.security.bounded import BoundedHttpTools
from widget_proxy.settings import all_options

COMMUNITY: Final = "bench-community"
WIDGET_TYPE: Final = "store"
WIDGET_ID: Final = "bench-store"
UNLIMITED: Final = "100000000"  # rate limits are on by default and would 429 a benchmark
# The HTTP protocol `widget-proxy serve` runs: httptools with a bound on the request head.
SERVE_HTTP: Final = f"{BoundedHttpTools.__module__}:{BoundedHttpTools.__qualname__}"


@dataclass(frozen=True, slots=True)
class Secrets:
    api_key: str
    session_secret: str
    signing_key: str

    @classmethod
    def fresh(cls) -> Secrets:
        # Made up for this run and never printed: the output is safe to publish.
        return cls(
            api_key="bench-key-" + secrets.token_hex(16),
            session_secret=secrets.token_urlsafe(32),
            signing_key=secrets.token_urlsafe(32),
        )


class Stack:
    def __init__(
        self, workdir: Path, keys: Secrets, vendor: Server, server: str = "uvicorn"
    ) -> None:
        self.workdir = workdir
        self.keys = keys
        self.vendor = vendor
        self.server = server  # the proxy's, the limit's and the naive recipe's
        self.vendor_url = f"http://127.0.0.1:{vendor.port}"

    async def calls(self) -> Counter[str]:
        """What the stand-in has answered so far, by kind: signin, page, api, …"""
        reply = await fetch(self.vendor.port, "/__calls")
        if reply.status != 200:
            raise ServerFailed(f"the stand-in's counts answered {reply.status}")
        return Counter({str(k): int(v) for k, v in json.loads(reply.body).items()})

    async def configure(self, signin_delay: float, page_delay: float, token_ttl: int) -> None:
        path = (
            f"/__config?signin_delay={signin_delay}&page_delay={page_delay}&token_ttl={token_ttl}"
        )
        reply = await fetch(self.vendor.port, path, method="POST")
        if reply.status != 200:
            raise ServerFailed(f"the stand-in refused its configuration ({reply.status})")

    def proxy_env(self, **settings: str) -> dict[str, str]:
        return {
            **clean_environ(),
            "WIDGET_BASE_URL": self.vendor_url,
            "WIDGET_API_KEY": self.keys.api_key,
            "WIDGET_COMMUNITY_ID": COMMUNITY,
            "WIDGET_TYPE": WIDGET_TYPE,
            "WIDGET_ID": WIDGET_ID,
            "SESSION_SECRET": self.keys.session_secret,
            "RATE_LIMIT_PER_MINUTE": UNLIMITED,
            "RATE_LIMIT_IP_PER_MINUTE": UNLIMITED,
            **settings,
        }

    @asynccontextmanager
    async def proxy(
        self, workers: int = 1, http: str = SERVE_HTTP, **settings: str
    ) -> AsyncIterator[Server]:
        """The proxy, served by the HTTP protocol `widget-proxy serve` uses (`http`:
        another of uvicorn's, for a comparison)."""
        env = self.proxy_env(**settings)
        async with serving(
            "proxy", "widget_proxy:create_app", env, self.workdir, workers, http, self.server
        ) as server:
            yield server

    @asynccontextmanager
    async def served(self, **settings: str) -> AsyncIterator[Server]:
        """The proxy as `widget-proxy serve` runs it, at its defaults but `settings`."""
        env = self.proxy_env(**settings)
        async with serving("served", "", env, self.workdir, command=widget_proxy_serve) as server:
            yield server

    @asynccontextmanager
    async def served_widgets(self, **settings: str) -> AsyncIterator[Server]:
        """`widget-proxy serve --config`: this proxy's widget at /rewards, a Hissuno chat
        (a key made up for the run; its page is signed here) at /support."""
        env = self.proxy_env(**settings)
        vendors = {o.name: o.vendor for o in all_options()}
        rewards = {k: env.pop(k) for k in list(env) if vendors.get(k) == "returningai"}
        shared = {k: env.pop(k) for k in list(env) if k in vendors}  # the core settings
        config = self.workdir / "widgets.toml"
        config.write_text(widgets_toml(shared, {
            "rewards": {"mount": "/rewards", "TOKEN_PROVIDER": "returningai", **rewards},
            "support": {
                "mount": "/support", "TOKEN_PROVIDER": "hissuno",
                "HISSUNO_SECRET_KEY": "sk_live_" + secrets.token_urlsafe(24)[:32],
                "HISSUNO_PROJECT_ID": "bench-chat",
                "HISSUNO_SCRIPT_URL": f"{self.vendor_url}/hissuno.js",
            },
        }))  # fmt: skip

        def command(port: int) -> list[str]:
            return [*widget_proxy_serve(port), "--config", str(config)]

        async with serving("widgets", "", env, self.workdir, command=command) as server:
            yield server

    @asynccontextmanager
    async def limit(
        self, body: bytes, headers: list[tuple[str, str]], *, as_served: bool = False
    ) -> AsyncIterator[Server]:
        """The bare route; `as_served`: under uvicorn's defaults (its access log on)."""
        (self.workdir / "limit-body.html").write_bytes(body)
        (self.workdir / "limit-headers.json").write_text(json.dumps(headers))
        env = {
            **clean_environ(),
            apps.LIMIT_BODY: str(self.workdir / "limit-body.html"),
            apps.LIMIT_HEADERS: str(self.workdir / "limit-headers.json"),
        }
        target = "bench.apps:limit_app"
        command = uvicorn_defaults(target) if as_served else None
        async with serving(
            "limit", target, env, self.workdir, server=self.server, command=command
        ) as server:
            yield server

    @asynccontextmanager
    async def naive(self) -> AsyncIterator[Server]:
        env = {
            **clean_environ(),
            apps.NAIVE_BASE_URL: self.vendor_url,
            apps.NAIVE_API_KEY: self.keys.api_key,
            apps.NAIVE_COMMUNITY: COMMUNITY,
            apps.NAIVE_WIDGET: f"{WIDGET_TYPE}/{WIDGET_ID}",
            apps.NAIVE_SESSION_SECRET: self.keys.session_secret,
        }
        async with serving(
            "naive", "bench.apps:naive_app", env, self.workdir, server=self.server
        ) as server:
            yield server


def widgets_toml(shared: Mapping[str, str], widgets: Mapping[str, Mapping[str, str]]) -> str:
    """A config file (TOML's basic strings read JSON's escapes)."""
    lines = [f"{key} = {json.dumps(value)}" for key, value in shared.items()]
    for name, table in widgets.items():
        lines += [f"[widgets.{name}]", *(f"{k} = {json.dumps(v)}" for k, v in table.items())]
    return "\n".join(lines) + "\n"


@asynccontextmanager
async def running_stack(
    workdir: Path, keys: Secrets, server: str = "uvicorn"
) -> AsyncIterator[Stack]:
    env: Mapping[str, str] = {
        **clean_environ(),
        upstream.API_KEY: keys.api_key,
        upstream.COMMUNITY: COMMUNITY,
        upstream.SIGNING_KEY: keys.signing_key,
    }
    async with serving("stand-in", "bench.upstream:create_app", env, workdir) as vendor:
        yield Stack(workdir, keys, vendor, server)
