"""Config files (`serve --config`) for tests: a Returning.AI store under /rewards and a
Hissuno chat under /support, each played by its stand-in on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import UNLIMITED, fresh_secret
from widget_proxy.demo.standin import standin_env
from widget_proxy.providers import PROVIDERS
from widget_proxy.servers import BackgroundServer


def toml(shared: Mapping[str, str], widgets: Mapping[str, Mapping[str, str]]) -> str:
    """A config file's text (TOML's basic strings read JSON's escapes)."""
    lines = [f"{key} = {json.dumps(value)}" for key, value in shared.items()]
    for name, table in widgets.items():
        lines += ["", f"[widgets.{name}]"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


@dataclass
class TwoVendors:
    """The two stand-ins' settings, as a config file's tables."""

    secret: str
    shared: dict[str, str]
    widgets: dict[str, dict[str, str]]
    stand_ins: dict[str, Any] = field(default_factory=dict)  # by widget (their `calls`)

    def write(self, path: Path) -> Path:
        path.write_text(toml(self.shared, self.widgets))
        return path


@contextmanager
def two_vendors() -> Iterator[TwoVendors]:
    """A Returning.AI stand-in and a Hissuno stand-in, serving until the block ends."""
    rewards = PROVIDERS["returningai"].stand_in()
    support = PROVIDERS["hissuno"].stand_in()
    with BackgroundServer(rewards.app()) as r, BackgroundServer(support.app()) as s:
        secret = fresh_secret("multi-")
        shared = {"SESSION_SECRET": secret, "UPSTREAM_ALLOW_HTTP": "true", **UNLIMITED}
        widgets = {}
        for name, mount, vendor, url in (
            ("rewards", "/rewards", rewards, r.url),
            ("support", "/support", support, s.url),
        ):
            env = standin_env(vendor, url)
            for key in ("SESSION_SECRET", "UPSTREAM_ALLOW_HTTP"):
                env.pop(key, None)
            widgets[name] = {"mount": mount, **env}
        yield TwoVendors(secret, shared, widgets, {"rewards": rewards, "support": support})
