"""The Returning.AI Access Key Embed's settings group: defaults, refusals, identifiers."""

from __future__ import annotations

import pytest

from tests.support.vendors import SDK, problems
from widget_proxy.settings import Settings


def test_sdk_defaults() -> None:
    vendor = Settings.from_env(SDK).vendor

    assert vendor.api_url == "https://api-v2.returning.ai"
    assert vendor.user_identifiers == (("data-email", "email"),)
    assert vendor.element == "rai-store-widget"
    assert vendor.sdk_url.startswith("https://unpkg.com/@returningai/widget-sdk@")


IDS = "RETURNINGAI_USER_IDENTIFIERS"


SDK_REFUSALS = [
    ("email=email", IDS, "RETURNINGAI_USER_IDENTIFIERS: 'email'"),
    ("data-email", IDS, "RETURNINGAI_USER_IDENTIFIERS: 'data-email'"),
    ("data-a=email,data-a=user_id", IDS, "RETURNINGAI_USER_IDENTIFIERS: data-a is named twice"),
    (" , ", IDS, "RETURNINGAI_USER_IDENTIFIERS: must name"),
    ("data-customer-id=customer_id", IDS, "SESSION_METADATA_KEYS: must list customer_id"),
    ("", "RETURNINGAI_COMMUNITY_ID", "RETURNINGAI_COMMUNITY_ID: required for a store widget"),
    ("custom", "RETURNINGAI_WIDGET_TYPE", "RETURNINGAI_WIDGET_ID: required for a custom widget"),
    ("channel", "RETURNINGAI_WIDGET_TYPE", "RETURNINGAI_CHANNEL_ID: required for a channel"),
    ("md5-abc", "RETURNINGAI_SDK_INTEGRITY", "RETURNINGAI_SDK_INTEGRITY: must be sha256-"),
    ("http://api.example.com", "RETURNINGAI_API_URL", "RETURNINGAI_API_URL: http://api.example"),
    ("600px;color:red", "RETURNINGAI_WIDGET_HEIGHT", "RETURNINGAI_WIDGET_HEIGHT: must be a CSS"),
]


@pytest.mark.parametrize(("value", "name", "expected"), SDK_REFUSALS)
def test_sdk_refusals(value: str, name: str, expected: str) -> None:
    found = problems({**SDK, name: value})

    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_identifiers_from_the_session() -> None:
    env = {**SDK, "RETURNINGAI_USER_IDENTIFIERS": "data-email=email, data-customer-id=customer_id"}

    settings = Settings.from_env({**env, "SESSION_METADATA_KEYS": "account.customer_id"})
    header = problems(
        {**env, "SESSION_METADATA_KEYS": "customer_id", "IDENTITY_SOURCE": "header",
         "IDENTITY_PROXIES": "10.0.0.0/8"}
    )  # fmt: skip

    assert settings.vendor.user_identifiers == (
        ("data-email", "email"),
        ("data-customer-id", "customer_id"),
    )
    assert header == [
        "IDENTITY_SOURCE: header gives only the email, but the vendor's token needs"
        " customer_id from the session"
    ]
