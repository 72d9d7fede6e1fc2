"""A widget's mount path, alone and against the others'."""

from __future__ import annotations

import pytest

from widget_proxy.config.mounts import mount_path, overlaps


@pytest.mark.parametrize("good", ["/rewards", "/shop/support", "/a-b_c~d.e", "/x/y/z"])
def test_good_mounts(good: str) -> None:
    assert mount_path(good) == good


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        ("rewards", "is not a mount path"),
        ("/rewards/", "no trailing slash"),
        ("/", "is not a mount path"),
        ("/a//b", "is not a mount path"),
        ("/..", "is not a mount path"),
        ("/./x", "is not a mount path"),
        ("/sp ace", "is not a mount path"),
        ("/%2e", "is not a mount path"),
        ("/healthz", "the process's own path"),
        ("/metrics", "the process's own path"),
        (7, "must be a path"),
        (None, "must be a path"),
    ],
)
def test_bad_mounts_say_why(bad: object, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        mount_path(bad)


def test_every_collision_and_nesting_is_named() -> None:
    found = overlaps({"a": "/shop", "b": "/shop", "c": "/shop/chat", "d": "/shopping"})
    assert found == [
        "widgets.b: mount: /shop is widgets.a's mount too",
        "widgets.c: mount: /shop/chat is inside /shop (widgets.a); mounts must not nest",
        "widgets.c: mount: /shop/chat is inside /shop (widgets.b); mounts must not nest",
    ]  # /shopping is beside /shop, not inside it
