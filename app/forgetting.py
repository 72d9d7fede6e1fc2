"""`forget(app, email)`: a user's cached token and pages dropped in every process.

`create_app` makes one `Revocations` per app (`cache/revocation.py` says how the
processes learn of a forget) and wires here what a forget drops in this process: the
session memo entries of that user (so the next view derives their new token key), the
answers rendered for them (`cache/views`), and their token held here and in Redis under
the old key. With `--all` (`everybody`): every memo entry and answer, every token held
here, and the anonymous visitor's keys (the epoch is in every key).

A token every visitor shares (`Provider.anonymous == "shared"`) names nobody: forgetting
one user drops nothing of it; forgetting everybody has it issued again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from starlette.applications import Starlette

from .cache import Keys, MemoryStore, Store, TieredStore
from .cache.forgets import RedisForgets
from .cache.redis import RedisStore
from .cache.revocation import PURPOSE, FileForgets, ForgetLog, Revocations
from .cache.views import Views
from .memo import BoundedMemo
from .security.admission import Admission
from .security.identity import ANONYMOUS, Derive, IdentitySource, Visitor

log = logging.getLogger("widget_proxy")

FORGET_FILE = "forget.log"  # in the folder `serve`'s workers share (their metrics')
FILE_POLL = 0.25  # seconds between two looks at that file (a `stat`)


def revocations(
    store: Store,
    keys: Keys,
    *,
    interval: float,
    keep: float,
    shared_dir: str | None = None,
    clock: Callable[[], float],
) -> Revocations:
    """The app's revocations: logged in Redis when the store has it; else, with several
    workers (`shared_dir`: the folder they share), in a file there; else this process only."""
    forget_log: ForgetLog | None = None
    shared = store.shared if isinstance(store, TieredStore) else None
    if isinstance(shared, RedisStore):  # pushed by pub/sub: the sync's pace is a fallback
        forget_log = RedisForgets(shared.client, prefix=shared.prefix, keep=keep)
    elif shared_dir is not None:  # nothing pushes a file: looked at often, a `stat`
        forget_log = FileForgets(os.path.join(shared_dir, FORGET_FILE))
        interval = min(interval, FILE_POLL)
    return Revocations(
        keys.hasher(PURPOSE), forget_log=forget_log, interval=interval, keep=keep, clock=clock
    )


def token_keys(
    revocations: Revocations, key: Callable[[Any], str], *, shared: bool
) -> Callable[[Any], str]:
    """A visitor's token key: the cache's, with their version (`Revocations.suffix`).
    Made once per session: the first one starts reading the log, if the lifespan did not."""

    def token_key(identity: Any) -> str:
        revocations.started()
        # A token every visitor shares names nobody: only `--all` changes its key.
        return key(identity) + revocations.suffix(None if shared else identity.email or None)

    return token_key


class Forgetting:
    """What a forget drops in this process (`Revocations.on_purge`)."""

    def __init__(
        self,
        revocations: Revocations,
        *,
        identities: IdentitySource,
        views: Views,
        store: Store,
        admission: Admission,
        derive: Derive,
        shared_token: bool,
    ) -> None:
        self._revocations = revocations
        self._memo: BoundedMemo[Any, Any] | None = getattr(identities, "memo", None)
        self._views = views
        self._store = store
        self._admission = admission
        self._derive = derive
        self._shared_token = shared_token
        self._deletes: set[asyncio.Task[None]] = set()
        revocations.on_purge(self.purge)

    def purge(self, users: frozenset[str] | None) -> None:
        local = self._store.local if isinstance(self._store, TieredStore) else self._store
        if users is None:
            if self._memo is not None:
                self._memo.clear()
            self._views.memo.clear()
            assert isinstance(local, MemoryStore)
            local.drop("tok:")
            self._admission.renew_anonymous(self._derive(ANONYMOUS))
            return
        if self._memo is None:
            return
        names: dict[str, bool] = {}

        def theirs(_: object, value: Visitor | tuple[Visitor, float]) -> bool:
            email = (value[0] if isinstance(value, tuple) else value).identity.email
            if email not in names:
                names[email] = bool(email) and self._revocations.user(email) in users
            return names[email]

        dropped = self._memo.discard(theirs)
        if self._shared_token:
            return  # their token and answer are everybody's
        old = {(v[0] if isinstance(v, tuple) else v).token_key for v in dropped}
        for key in old:
            self._views.memo.pop(key)
            self._delete(key)

    def _delete(self, key: str) -> None:
        """Here at once; in Redis too, in the background (never read again anyway)."""
        task = asyncio.get_running_loop().create_task(self._store.delete(key))
        self._deletes.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._deletes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("forget: deleting an old token failed", exc_info=task.exception())


async def forget(app: Any, emails: str | Iterable[str] = (), *, everybody: bool = False) -> int:
    """Forget `emails` (or `everybody`) in every process of the deployment: each one
    stops serving their cached token and pages (within a second, docs/revocation.md),
    and their next view signs in again, once. `app` is what `create_app` returned (or
    `serve`'s app, or several widgets' from `create_widgets_app` or `mount_widgets`:
    forgotten in each). Returns how many users (-1: everybody); raises if the shared
    store could not be written (then nothing was forgotten anywhere but in this process)."""
    target: Starlette = getattr(app, "current", app)  # serve's `Reloading`: its settings now
    mounted = getattr(target, "mounts", None)  # `multi.WidgetsApp`: every widget's
    apps = [widget for _, widget in mounted] if mounted is not None else [target]
    who = [emails] if isinstance(emails, str) else list(emails)
    counts = []
    for widget in apps:
        found: Revocations = widget.state.revocations
        counts.append(await found.forget(who, everybody=everybody))
    return min(counts, default=0) if everybody else max(counts, default=0)
