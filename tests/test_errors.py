"""The error tree drawn at the top of `errors.py` is the module's, and the error table
of docs/errors.md names every code a browser can be answered with."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from widget_proxy import errors
from widget_proxy.cache import Keys
from widget_proxy.errors import IncompleteSession, WidgetProxyError
from widget_proxy.providers.returningai.sdk.tokens import AccessKeyTokens
from widget_proxy.responses import error_response
from widget_proxy.secret import Secret
from widget_proxy.security.identity import Identity
from widget_proxy.upstream.client import HttpClient
from widget_proxy.upstream.keyring import KeyRing

ERRORS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "errors.md"
ERRORS = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, Exception) and cls.__module__ == errors.__name__
]
# An indented line of the tree: its class, then its status (or a family's range).
TREE_LINE = r"^ {4}[ │├└─]*(?P<name>[A-Z]\w+)\s+(?P<status>\d{3}|\dxx)?"
ANSWERED = [cls for cls in ERRORS if issubclass(cls, WidgetProxyError)]


def drawn() -> dict[str, str]:
    """Each class the docstring's tree draws, and the status column beside it."""
    return {
        m["name"]: m["status"] or "" for m in re.finditer(TREE_LINE, errors.__doc__ or "", re.M)
    }


def test_the_tree_draws_every_error_and_no_other() -> None:
    assert set(drawn()) == {cls.__name__ for cls in ERRORS}


@pytest.mark.parametrize("cls", ANSWERED, ids=lambda cls: cls.__name__)
def test_the_tree_shows_each_errors_status(cls: type[WidgetProxyError]) -> None:
    shown = drawn()[cls.__name__]
    has_children = any(other is not cls and issubclass(other, cls) for other in ANSWERED)

    if cls is WidgetProxyError:  # the root: its column is the header
        assert shown == ""
    elif has_children:  # a family: its range (4xx, 5xx)
        assert shown == f"{str(cls.status)[0]}xx"
    else:
        assert shown == str(cls.status)


@pytest.mark.parametrize(
    "cls",
    [c for c in ANSWERED if not any(o is not c and issubclass(o, c) for o in ANSWERED)],
    ids=lambda cls: cls.__name__,
)
def test_the_error_table_names_each_code(cls: type[WidgetProxyError]) -> None:
    lines = ERRORS_PAGE.read_text().splitlines()
    rows = [line for line in lines if line.endswith(f"`{cls.code}` |")]

    assert [row for row in rows if f"| {cls.status}" in row], f"no row for {cls.code}"


@pytest.mark.anyio
async def test_a_session_without_a_needed_value_is_an_incomplete_session() -> None:
    http = HttpClient()
    tokens = AccessKeyTokens(
        http,
        api_url="https://sdk.example.com",
        access_id="access-1",
        keys=KeyRing(Secret("k" * 32)),
        identifiers=(("data-email", "email"), ("data-name", "name")),
        hashes=Keys("s" * 32),
    )
    try:
        with pytest.raises(IncompleteSession) as raised:
            tokens.user_identifiers(Identity("ann@example.com"))  # no `name` in the session
    finally:
        await http.aclose()

    answer = error_response(
        raised.value, {"type": "http", "path": "/widget"}, accept="application/json"
    )
    assert answer.status_code == 403
    assert b'"error":"incomplete_session"' in answer.body
    assert b"name" in answer.body  # the detail says what is missing
