"""Single flight: one call per key, every waiter served, nothing stuck."""

from __future__ import annotations

import asyncio

import pytest

from widget_proxy.cache.flight import SingleFlight, fill
from widget_proxy.cache.memory import MemoryStore
from widget_proxy.errors import UpstreamTimeout

pytestmark = pytest.mark.anyio


async def test_concurrent_callers_share_one_call() -> None:
    flight = SingleFlight()
    calls = 0
    gate = asyncio.Event()

    async def work() -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        return "result"

    waiters = [asyncio.ensure_future(flight.run("k", work)) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()

    assert await asyncio.gather(*waiters) == ["result"] * 50
    assert calls == 1
    assert flight.coalesced == 49
    assert not flight.running("k")


async def test_every_waiter_gets_the_error_and_the_key_is_released() -> None:
    flight = SingleFlight()
    attempts = 0

    async def failing() -> str:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        raise UpstreamTimeout("signin timed out")

    results = await asyncio.gather(
        *(flight.run("k", failing) for _ in range(10)), return_exceptions=True
    )

    assert all(isinstance(r, UpstreamTimeout) for r in results)
    assert attempts == 1

    async def healed() -> str:
        return "ok"

    assert await flight.run("k", healed) == "ok"  # the next request retries


async def test_cancelling_the_leader_does_not_cancel_the_call() -> None:
    flight = SingleFlight()
    gate = asyncio.Event()

    async def work() -> str:
        await gate.wait()
        return "shared"

    leader = asyncio.ensure_future(flight.run("k", work))
    await asyncio.sleep(0)
    follower = asyncio.ensure_future(flight.run("k", work))
    await asyncio.sleep(0)

    leader.cancel()  # the browser that started it went away
    await asyncio.sleep(0)
    gate.set()

    assert await follower == "shared"
    assert leader.cancelled()
    assert not flight.running("k")


async def test_a_call_everyone_left_still_finishes_and_frees_its_key() -> None:
    flight = SingleFlight()
    finished = asyncio.Event()

    async def work() -> str:
        await asyncio.sleep(0.01)
        finished.set()
        raise UpstreamTimeout("nobody is listening")

    lone = asyncio.ensure_future(flight.run("k", work))
    await asyncio.sleep(0)
    lone.cancel()
    await asyncio.wait_for(finished.wait(), 1)
    await asyncio.sleep(0)

    assert not flight.running("k")  # and no "exception never retrieved" warning


async def test_fill_waits_for_the_lock_holder_then_reads_its_result() -> None:
    store = MemoryStore(10)
    held = await store.acquire("k", lease=10)
    assert held is not None
    produced = 0
    result: list[str] = []

    async def read() -> str | None:
        return result[0] if result else None

    async def produce() -> str:
        nonlocal produced
        produced += 1
        return "mine"

    waiter = asyncio.ensure_future(fill(store, "k", read, produce, lease=10))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    result.append("theirs")  # the other process wrote it
    await store.release("k", held)

    assert await waiter == "theirs"
    assert produced == 0


async def test_fill_takes_over_when_the_holder_fails() -> None:
    store = MemoryStore(10)
    held = await store.acquire("k", lease=10)
    assert held is not None

    async def read() -> str | None:
        return None

    async def produce() -> str:
        return "mine"

    waiter = asyncio.ensure_future(fill(store, "k", read, produce, lease=10))
    await asyncio.sleep(0.05)
    await store.release("k", held)  # the holder's signin failed: nothing was written

    assert await asyncio.wait_for(waiter, 1) == "mine"
    assert await store.acquire("k", lease=1) is not None  # and the lock was released
