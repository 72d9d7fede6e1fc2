"""What a process knows was forgotten, merged from its log, and the file workers share."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support import Clock
from widget_proxy.cache import Keys
from widget_proxy.cache.revocation import (
    PURPOSE,
    FileForgets,
    Forgotten,
    Revocations,
    as_versions,
    parse_lines,
)

HASHER = Keys("revocation-test-secret").hasher(PURPOSE)


def revocations(**kw: object) -> tuple[Revocations, list[frozenset[str] | None]]:
    found = Revocations(HASHER, **kw)  # type: ignore[arg-type]
    purged: list[frozenset[str] | None] = []
    found.on_purge(purged.append)
    return found, purged


def test_nobody_forgotten_leaves_every_key_as_it_was() -> None:
    found, purged = revocations()
    assert found.suffix("a@example.com") == found.suffix(None) == ""
    assert purged == []


def test_a_forgotten_user_gets_a_new_suffix_and_is_purged_alone() -> None:
    found, purged = revocations()
    asyncio.run(found.forget(["A@Example.com"]))
    assert found.suffix("a@example.com").startswith("~")  # the same user, case folded
    assert found.suffix("b@example.com") == found.suffix(None) == ""
    assert purged == [frozenset({found.user("a@example.com")})]
    first = found.suffix("a@example.com")
    asyncio.run(found.forget(["a@example.com"]))
    assert found.suffix("a@example.com") not in ("", first)  # each forget its own version


def test_everybody_forgotten_changes_every_key_and_purges_all() -> None:
    found, purged = revocations()
    asyncio.run(found.forget(everybody=True))
    assert found.suffix(None).startswith("@")
    assert found.suffix("b@example.com") == found.suffix(None)
    assert purged == [None]


def test_the_same_version_again_changes_nothing() -> None:
    clock = Clock(1_000_000.0)
    found, purged = revocations(clock=clock)
    seen = Forgotten(users={"u": ("v1", clock.now)})
    found.apply(seen)
    found.apply(seen)
    found.apply(Forgotten())  # the log no longer names the user: kept (until `keep`)
    assert purged == [frozenset({"u"})]


def test_a_version_older_than_keep_is_dropped_and_its_user_purged() -> None:
    clock = Clock(1_000_000.0)
    found, purged = revocations(keep=100.0, clock=clock)
    found.apply(Forgotten(users={"u": ("v1", clock.now)}))
    clock.now += 101
    found.apply(Forgotten())
    assert purged == [frozenset({"u"}), frozenset({"u"})]
    found.apply(Forgotten(users={"u": ("v1", clock.now - 101)}))  # still named, too old
    assert len(purged) == 3


def test_a_failing_purge_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    found = Revocations(HASHER)
    purged: list[object] = []

    def broken(users: object) -> None:
        raise RuntimeError("broken")

    found.on_purge(broken)
    found.on_purge(purged.append)
    with caplog.at_level(logging.ERROR, logger="widget_proxy.cache"):
        asyncio.run(found.forget(["a@example.com"]))
    assert len(purged) == 1
    assert "a purge failed" in caplog.text


def test_workers_sharing_a_file_learn_each_others_forgets(tmp_path: Path) -> None:
    path = str(tmp_path / "forget.log")
    one, _ = revocations(forget_log=FileForgets(path))
    two, purged = revocations(forget_log=FileForgets(path))

    async def run() -> None:
        await two.sync()
        await one.forget(["a@example.com"])
        await two.sync()
        await two.sync()  # nothing new: nothing purged again
        await one.forget(everybody=True)
        await two.sync()

    asyncio.run(run())
    assert purged == [frozenset({two.user("a@example.com")}), None]
    assert two.suffix("a@example.com") == one.suffix("a@example.com")
    assert "example.com" not in (tmp_path / "forget.log").read_text()  # hashes only


def test_log_lines_are_read_leniently() -> None:
    found = parse_lines(["v1 10.0 u1", "garbled", "v2 notatime u2", "v3 12.0 *", "v4 13.0 u3"])
    assert found.epoch == ("v3", 12.0)
    assert found.users == {"u3": ("v4", 13.0)}  # everybody's keys changed after u1's
    assert as_versions({"u": "v 1.5", "bad": "v x"}) == {"u": ("v", 1.5)}


def test_without_a_start_the_first_session_starts_reading_the_log(tmp_path: Path) -> None:
    path = str(tmp_path / "forget.log")
    one, _ = revocations(forget_log=FileForgets(path))
    two, purged = revocations(forget_log=FileForgets(path), interval=0.01)

    async def run() -> None:
        two.started()  # what a session's first key does (`forgetting.token_keys`)
        await one.forget(["a@example.com"])
        for _ in range(100):
            if purged:
                break
            await asyncio.sleep(0.01)
        await two.aclose()

    asyncio.run(run())
    assert purged == [frozenset({two.user("a@example.com")})]


class Unwritable(FileForgets):
    async def write(self, users: list[str] | None, version: str, at: float) -> None:
        raise OSError("the log can't be written")


def test_a_log_that_cant_be_written_fails_the_forget_once_applied_here(tmp_path: Path) -> None:
    found, purged = revocations(forget_log=Unwritable(str(tmp_path / "forget.log")))
    with pytest.raises(OSError, match="can't be written"):
        asyncio.run(found.forget(["a@example.com"]))
    assert purged == [frozenset({found.user("a@example.com")})]


class LosesACancel(FileForgets):
    """A subscription whose close swallows the cancel that lands in it, as redis-py's
    pub/sub does (its shielded teardown): the reader then subscribes again."""

    lost = 0

    async def wakeups(self) -> AsyncIterator[None]:
        yield
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if self.lost:
                raise
            self.lost += 1  # (not raised again: the first one only)


def test_closing_ends_a_reader_that_lost_its_cancel(tmp_path: Path) -> None:
    forget_log = LosesACancel(str(tmp_path / "forget.log"))
    found, _ = revocations(forget_log=forget_log, interval=0.01)

    async def run() -> None:
        await found.start()
        await asyncio.sleep(0.05)  # the reader subscribed
        closing = asyncio.ensure_future(found.aclose())
        done, _ = await asyncio.wait({closing}, timeout=5)  # (it hung: tests/multi)
        assert done, "aclose() waits for a reader that lost its cancel"

    asyncio.run(run())
    assert forget_log.lost == 1
