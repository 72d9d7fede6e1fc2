"""Memos a client can fill: bounded by entries and by bytes, whatever the keys are."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import OrderedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from widget_proxy.cache.keys import Hasher
from widget_proxy.memo import ENTRY_OVERHEAD, BoundedMemo, entry_size, estimate_size
from widget_proxy.security.identity import Identity


def by_length(key: str, value: str) -> int:
    return len(key) + len(value)


def test_at_most_max_entries_least_recently_used_out_first() -> None:
    memo: BoundedMemo[str, str] = BoundedMemo(max_entries=3, max_bytes=10_000, weigh=by_length)
    for key in "abc":
        memo.put(key, key.upper())
    assert memo.get("a") == "A"  # now the most recently used

    memo.put("d", "D")

    assert memo.keys() == ["c", "a", "d"]
    assert memo.get("b") is None  # the least recently used went first
    assert len(memo) == 3


def test_at_most_max_bytes_of_keys_and_values() -> None:
    memo: BoundedMemo[str, str] = BoundedMemo(max_entries=1000, max_bytes=100, weigh=by_length)
    for i in range(10):
        memo.put(f"key{i:02d}", "v" * 25)  # 30 bytes each: three fit
        assert memo.nbytes <= 100

    assert memo.keys() == ["key07", "key08", "key09"]
    assert memo.nbytes == 90


def test_an_entry_over_the_entry_limit_is_not_kept_and_evicts_nothing() -> None:
    memo: BoundedMemo[str, str] = BoundedMemo(
        max_entries=10, max_bytes=1000, max_entry_bytes=100, weigh=by_length
    )
    memo.put("small", "x")
    memo.put("big", "x" * 50)

    memo.put("big", "x" * 500)  # replaces the old value with nothing: it is not kept
    memo.put("huge", "x" * 5000)

    assert memo.keys() == ["small"]
    assert memo.get("big") is None
    assert memo.nbytes == len("small") + 1


def test_without_an_entry_limit_one_entry_may_use_every_byte_but_no_more() -> None:
    memo: BoundedMemo[str, str] = BoundedMemo(max_entries=10, max_bytes=100, weigh=by_length)
    memo.put("a", "x")

    memo.put("b", "x" * 98)  # 99 bytes: fits alone, so the older entry goes
    memo.put("c", "x" * 100)  # 101 bytes: never fits

    assert memo.keys() == ["b"]
    assert memo.nbytes == 99


def test_replacing_pop_and_clear_keep_the_byte_count() -> None:
    memo: BoundedMemo[str, str] = BoundedMemo(max_entries=10, max_bytes=1000, weigh=by_length)
    memo.put("a", "x" * 10)
    memo.put("a", "x" * 20)
    memo.put("b", "y")

    assert memo.nbytes == 21 + 2
    assert memo.pop("a") == "x" * 20
    assert memo.pop("a") is None
    assert memo.nbytes == 2
    memo.clear()
    assert (len(memo), memo.nbytes) == (0, 0)


def test_get_or_compute_computes_once() -> None:
    memo: BoundedMemo[str, str] = BoundedMemo(max_entries=10, max_bytes=1000)
    calls: list[str] = []

    def compute(key: str) -> str:
        calls.append(key)
        return key * 2

    assert [memo.get_or_compute("ab", compute) for _ in range(3)] == ["abab"] * 3
    assert calls == ["ab"]


def test_bounds_must_leave_room() -> None:
    with pytest.raises(ValueError, match="at least one"):
        BoundedMemo(max_entries=0, max_bytes=10)
    with pytest.raises(ValueError, match="at least one"):
        BoundedMemo(max_entries=10, max_bytes=0)


def test_the_default_estimate_counts_keys_values_and_what_they_hold() -> None:
    identity = Identity("ann@example.com", metadata=(("tier", "gold" * 100),))

    assert estimate_size("x" * 10_000) >= 10_000
    assert estimate_size(identity) >= 400 + len("ann@example.com")  # its strings, nested
    assert estimate_size((identity, 1.5)) > estimate_size(identity)
    assert estimate_size({"k": ["v" * 1000]}) >= 1000
    assert entry_size("k" * 1000, "v" * 1000) >= 2000 + ENTRY_OVERHEAD


@given(
    st.lists(
        st.tuples(st.sampled_from(["get", "put", "pop"]), st.integers(0, 7), st.integers(0, 60))
    )
)
def test_behaves_as_a_model_lru_and_never_exceeds_its_bounds(
    operations: list[tuple[str, int, int]],
) -> None:
    memo: BoundedMemo[str, str] = BoundedMemo(
        max_entries=4, max_bytes=100, max_entry_bytes=50, weigh=by_length
    )
    model: OrderedDict[str, str] = OrderedDict()
    for operation, number, size in operations:
        key, value = f"k{number}", "v" * size
        if operation == "get":
            assert memo.get(key) == model.get(key)
            if key in model:
                model.move_to_end(key)
        elif operation == "pop":
            assert memo.pop(key) == model.pop(key, None)
        else:
            memo.put(key, value)
            model.pop(key, None)
            if by_length(key, value) <= 50:
                model[key] = value
            while len(model) > 4 or sum(by_length(k, v) for k, v in model.items()) > 100:
                model.popitem(last=False)
        assert memo.keys() == list(model)
        assert memo.nbytes == sum(by_length(k, v) for k, v in model.items()) <= 100


def test_threads_sharing_a_memo_keep_its_bounds() -> None:
    memo: BoundedMemo[str, str] = BoundedMemo(max_entries=50, max_bytes=2000, weigh=by_length)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(3000):
                key = f"k{(i * 7 + offset) % 200}"
                memo.get_or_compute(key, lambda k: k * (1 + len(k) % 5))
                if i % 13 == 0:
                    memo.pop(key)
        except BaseException as exc:  # reported below, from the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(memo) <= 50
    held = memo.keys()
    assert memo.nbytes == sum(by_length(k, memo.get(k) or "") for k in held) <= 2000


# --- the memos that use it ---------------------------------------------------------


def test_the_hasher_is_a_stable_hmac_and_holds_nothing() -> None:
    hasher = Hasher("s" * 32, b"purpose")
    key = hmac.new(b"s" * 32, b"purpose", "sha256").digest()
    huge = ["x" * 1_000_000 + str(i) for i in range(20)]  # 20 MB of values a client chose

    digests = [hasher(value) for value in huge]

    assert digests[3] == hmac.new(key, huge[3].encode(), hashlib.sha256).hexdigest()[:32]
    assert hasher(huge[3]) == digests[3]
    assert Hasher("s" * 32, b"other purpose")(huge[3]) != digests[3]
    assert vars(hasher) == {"_key": key}  # nothing of what it hashed is kept
