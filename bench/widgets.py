"""Two widgets in one app, as `serve --config` builds them, for the benchmarks: the
measured Returning.AI widget mounted at /rewards, a Hissuno chat beside it at /support.

The rewards widget's warm view must cost what the single-widget app's does (issue 26):
the mount's dispatch is one prefix match, nothing more on the page's path.
"""

from __future__ import annotations

from typing import Final

import httpx2

from widget_proxy.config import WidgetsConfig
from widget_proxy.demo import demo_settings
from widget_proxy.multi import WidgetsApp, create_widgets_app
from widget_proxy.ops.requestlog import LineSink
from widget_proxy.providers import PROVIDERS
from widget_proxy.settings import Settings

MOUNT: Final = "/rewards"  # the measured widget's; its page is at MOUNT + "/widget"


def two_widgets(
    rewards: Settings, lines: LineSink, transport: httpx2.AsyncBaseTransport
) -> WidgetsApp:
    """`rewards` at MOUNT and a Hissuno chat (its own stand-in's settings, the same
    session secret and limits) at /support, sharing one process's parts."""
    support = demo_settings(
        PROVIDERS["hissuno"].stand_in(),
        "http://127.0.0.1:9",
        SESSION_SECRET=rewards.session_secret.reveal(),
        LOGIN_URL="",
        RATE_LIMIT_PER_MINUTE=str(rewards.rate_limit_per_minute),
        RATE_LIMIT_IP_PER_MINUTE=str(rewards.rate_limit_ip_per_minute),
    )
    config = WidgetsConfig.mounted({MOUNT: rewards, "/support": support})
    return create_widgets_app(config, request_log=lines, transport=transport)
