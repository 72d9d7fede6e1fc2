"""Fixtures of the cache tests: a clock each test moves by hand."""

from __future__ import annotations

import pytest

from tests.support import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()
