"""`widget-proxy forget --email E` (or `--all`): a user's cached tokens and pages
dropped in every process of the deployment (docs/revocation.md).

With Redis (CACHE_URL), written there: every process sharing it learns at once (pub/sub)
or at its next sync, running or not. With `memory://` each process holds its own, so the
running server is told: a signed POST to its `/admin/forget` (`admin.py`) at each
`--url`, which reaches every worker of that `serve`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import httpx2

from .admin import HEADER, PATH, admin_key, sign
from .cache import Keys
from .cache.forgets import RedisForgets
from .cache.revocation import PURPOSE, Revocations
from .cache.topology import redis_client
from .errors import InvalidEmail, SettingsError
from .security.identity import validate_email
from .settings import Settings

DEFAULT_URL: Final = "http://127.0.0.1:8000"
TIMEOUT: Final = 10.0


def run_forget(
    emails: Sequence[str], *, everybody: bool, urls: Sequence[str], config: str | None = None
) -> int:
    """`config`: a config file (`serve --config`): forgotten in each of its widgets."""
    try:
        widgets = _widgets(config)
        checked = [validate_email(e) for e in emails]
    except SettingsError as exc:
        print(f"widget-proxy: {exc}", file=sys.stderr)
        return 2
    except InvalidEmail as exc:
        print(f"widget-proxy: --email: {exc}", file=sys.stderr)
        return 2
    who = "every user" if everybody else f"{len(checked)} user(s)"
    places = []
    try:
        for scope, mount, settings in widgets:
            if settings.cache_url.kind == "memory":
                for url in urls or [DEFAULT_URL]:
                    told(url.rstrip("/") + mount, settings, checked, everybody)
                places.append(", ".join(u.rstrip("/") + mount for u in urls or [DEFAULT_URL]))
            else:
                asyncio.run(through_redis(settings, checked, everybody, scope=scope))
                places.append("every process sharing CACHE_URL")
        where = "; ".join(dict.fromkeys(places))
    except (OSError, httpx2.HTTPError, ForgetRefused) as exc:
        print(f"widget-proxy: nothing forgotten: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # Redis's errors, named without their arguments (a URL)
        print(f"widget-proxy: nothing forgotten: {type(exc).__name__}", file=sys.stderr)
        return 1
    print(f"forgotten: {who}, by {where} within a second")
    return 0


def _widgets(config: str | None) -> list[tuple[str, str, Settings]]:
    """Each widget's key scope, mount and settings: the environment's one widget, or
    every widget of the config file."""
    if config is None:
        return [("", "", Settings.load())]
    from .config import WidgetsConfig

    loaded = WidgetsConfig.load(Path(config))
    return [(w.name, w.mount, w.settings) for w in loaded.widgets]


class ForgetRefused(Exception):
    """The server refused the forget (its answer says why)."""


async def through_redis(
    settings: Settings, emails: list[str], everybody: bool, *, scope: str = ""
) -> None:
    client = redis_client(settings.cache_url)
    try:
        keep = 2 * settings.token_max_ttl + 60  # as `create_app` keeps them
        log = RedisForgets(client, keep=keep)
        hasher = Keys(settings.session_secret.reveal(), scope=scope).hasher(PURPOSE)
        await Revocations(hasher, forget_log=log, keep=keep).forget(emails, everybody=everybody)
    finally:
        await client.aclose()


def told(url: str, settings: Settings, emails: list[str], everybody: bool) -> None:
    """POST the forget to the server at `url`, signed."""
    body = json.dumps({"emails": emails, "all": everybody, "at": time.time()}).encode()
    key = admin_key(settings.session_secret.reveal())
    answer = httpx2.post(
        url.rstrip("/") + PATH,
        content=body,
        headers={HEADER: sign(key, body), "content-type": "application/json"},
        timeout=TIMEOUT,
    )
    if answer.status_code != 200:
        raise ForgetRefused(f"{url} answered {answer.status_code}: {answer.text[:300]}")
