"""A warm view's answer, per user: the page with the user's token in it, and its headers,
kept next to the token it was rendered with.

The same user viewing the same page gets the same bytes until the token or the page
changes, so the answer is rendered once and looked up after. It is held under the
token's cache key (one per user; one for everybody where the token names no user),
with the token and the page it was made of, and served only while the token cache and
the page cache still hand out those very objects: a renewed token (a new signin, or a
token another process issued) or a refreshed page is another object, so the first
view after it renders anew and replaces the old answer. Nothing is served that
`page.render(token)` would not give now, so one user's answer can't reach another:
it is looked up under the visitor's own key and checked against the visitor's token.

Bounded by entries and bytes (`BoundedMemo`): the active users' answers. A page
heavier than `MAX_ENTRY_BYTES` is rendered on every view instead (a join).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ..delivery.page import Page
from ..memo import ENTRY_OVERHEAD, BoundedMemo
from ..responses import Prepared

MAX_ENTRIES: Final = 4096  # the active users, like the session memo
MAX_BYTES: Final = 8 * 1024 * 1024  # 4096 answers of a 2 KB page
MAX_ENTRY_BYTES: Final = 256 * 1024


@dataclass(frozen=True, slots=True, eq=False)
class View:
    token: str  # what it was rendered with: the token cache's own object
    page: Page  # and the page cache's
    length: bytes  # its content-length
    body: bytes


# The view and its length: the token and the page are the caches'.
_VIEW_BYTES: Final = 150


def _weigh(key: str, view: View) -> int:
    return sys.getsizeof(key) + sys.getsizeof(view.body) + _VIEW_BYTES + ENTRY_OVERHEAD


class Views:
    def __init__(
        self,
        headers: Sequence[tuple[bytes, bytes]],
        *,
        max_entries: int = MAX_ENTRIES,
        max_bytes: int = MAX_BYTES,
        max_entry_bytes: int = MAX_ENTRY_BYTES,
    ) -> None:
        """`headers`: every answer's headers but its content-length."""
        self._headers = tuple(headers)
        self.memo: BoundedMemo[str, View] = BoundedMemo(
            max_entries=max_entries,
            max_bytes=max_bytes,
            max_entry_bytes=max_entry_bytes,
            weigh=_weigh,
        )

    def answer(self, key: str, token: str, page: Page) -> Prepared:
        """`page` rendered with `token` (the token cached under `key`), with its headers."""
        view = self.memo.get(key)
        if view is None or view.token is not token or view.page is not page:
            view = self.view(key, token, page)
        # A header list of its own: whoever sends it may add to it in place.
        return Prepared(200, [*self._headers, (b"content-length", view.length)], view.body)

    def view(self, key: str, token: str, page: Page) -> View:
        """`page` rendered with `token`: kept from an earlier view, or rendered now."""
        found = self.memo.get(key)
        if found is not None and found.token is token and found.page is page:
            return found
        body = page.render(token)
        view = View(token, page, str(len(body)).encode(), body)
        self.memo.put(key, view)
        return view
