"""What an app shares with the other widgets of its process (`serve --config`): the
upstream client and the cache's connections are the process's, not each app's.

`create_app(shared=…)` asks for them here instead of making its own, files its keys
under `scope` (its widget's name: `cache.Keys`) and leaves them open at its shutdown:
whoever made them closes them (`multi.shared.SharedParts`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .cache.store import Store
from .ops.metrics import Metrics
from .settings import Settings
from .upstream.client import HttpClient


class Shared(Protocol):
    @property
    def scope(self) -> str:
        """The widget's name: its cache and counter keys are its own."""

    def http(self, settings: Settings, metrics: Metrics) -> HttpClient:
        """The upstream client for these settings (one per vendor and client settings)."""

    def store(self, settings: Settings, metrics: Metrics, clock: Callable[[], float]) -> Store:
        """The cache for these settings (its Redis connections one per CACHE_URL)."""
