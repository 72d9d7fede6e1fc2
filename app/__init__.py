"""widget-proxy: serve third-party widgets to signed-in users; the API key stays here."""

from __future__ import annotations

__version__ = "0.1.0"

from app.application import create_app

__all__ = ["__version__", "create_app"]
