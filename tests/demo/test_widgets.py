"""`widget-proxy demo --config FILE`: the file's widgets, each vendor its stand-in, on
one shop page; a real vendor's key in the file never reaches the demo."""

from __future__ import annotations

from pathlib import Path

from tests.support import fresh_secret
from tests.support.configs import toml
from tests.support.vendors import HISSUNO_KEY
from widget_proxy.demo.widgets import demo_widgets

FILE = {
    "rewards": {"mount": "/rewards", "TOKEN_PROVIDER": "returningai", "WIDGET_ID": "mine"},
    "support": {
        "mount": "/support",
        "TOKEN_PROVIDER": "hissuno",
        "HISSUNO_SECRET_KEY": HISSUNO_KEY,  # the real one: replaced by the stand-in's
        "HISSUNO_TOKEN_TTL": "90",
    },
}


def test_each_widget_is_played_by_its_stand_in(tmp_path: Path) -> None:
    path = tmp_path / "widgets.toml"
    path.write_text(toml({"RATE_LIMIT_PER_MINUTE": "50"}, FILE))
    with demo_widgets(path, {}) as config:
        rewards, support = config.widgets
        assert (rewards.mount, support.mount) == ("/rewards", "/support")
        assert rewards.settings.vendor.base_url.startswith("http://127.0.0.1:")
        assert support.settings.vendor.secret_key.reveal() != HISSUNO_KEY
        assert support.settings.vendor.token_ttl == 90  # the file's own settings stay
        assert support.settings.rate_limit_per_minute == 50
        # One shop session for every widget.
        assert rewards.settings.session_secret == support.settings.session_secret
        assert rewards.settings.login_url == "/login"


def test_the_users_session_secret_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "widgets.toml"
    secret = fresh_secret()
    path.write_text(toml({}, FILE))
    with demo_widgets(path, {"SESSION_SECRET": secret}) as config:
        assert {w.settings.session_secret.reveal() for w in config.widgets} == {secret}
