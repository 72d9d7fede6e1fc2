"""`widget-proxy check` as a merchant runs it: a real process against real stand-ins.

One table, one test body. Each case writes a `.env`, points it at the stand-in vendor
(healthy, faulty, stopped, or another provider's stand-in), runs the command and
asserts its exit code, its checklist lines, that it really went to the vendor, and
that neither a secret, a full token nor an upstream body reaches its output.
"""

from __future__ import annotations

import re
import secrets
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from tests.support import Fault, FaultyUpstream, Hang, LeakScanner, Respond, fresh_secret
from tests.support.processes import run_check
from widget_proxy.demo import stand_in
from widget_proxy.providers.hissuno import HissunoStandIn
from widget_proxy.providers.neuroon import NeuroonStandIn
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.providers.returningai.sdk import ReturningAISdkStandIn
from widget_proxy.servers import BackgroundServer
from widget_proxy.settings import Settings, SettingsError

EMAIL = "ann@example.com"
SESSION = {"SESSION_SECRET": fresh_secret("check-")}
LEAK = "UPSTREAM-BODY-must-not-leak"
HTML = (("content-type", "text/html; charset=utf-8"),)
# No full token (JWT, Neuroon shop token) is a run this long of token characters.
TOKEN_LIKE = re.compile(r"[A-Za-z0-9_\-.=]{40,}")
MS = r"\d+ ms"

Target = Literal["vendor", "faulty", "stopped", "returningai-sdk", "neuroon", "hissuno"]


@dataclass(frozen=True)
class Case:
    target: Target  # what the .env points at
    exit: int
    lines: tuple[str, ...]  # regexes, each must match a whole line of stdout
    email: str | None = EMAIL
    env: dict[str, str] = field(default_factory=dict)  # over the target's settings
    fault: tuple[str, Fault] | None = None  # ("signin" | "page", fault) on `faulty`
    token_ttl: int | None = None  # the stand-in vendor's token lifetime
    calls: dict[str, int] | None = None  # the target stand-in's call counts afterwards
    args: tuple[str, ...] = ()  # more of the command line (--strict, --origin)


# The calls counted on each provider's stand-in (any kind not named in a case is 0).
COUNTED = {
    "returningai": ("signin", "page"),
    "neuroon": ("token_issue", "search"),
    "returningai-sdk": ("token", "token_refused"),
    "hissuno": ("chat", "close"),
}


SETTINGS_OK = r"✔ settings: valid, from the environment and \.env \(TOKEN_PROVIDER={}, .*\)"
CONNECT_OK = rf"✔ connect 127\.0\.0\.1:\d+: 127\.0\.0\.1 in {MS}"
SIGNIN_OK = rf"✔ signin: 200 in {MS}, token …\S{{4}} \(\d+ chars\)"
PAGE_OK = rf"✔ page store/demo-store: 200 in {MS}, one token placeholder, \d+ bytes"
SCRIPT_OK = rf"✔ script: 200 in {MS}, \d+ bytes, text/javascript.*"
HISSUNO_OK = (
    rf"✔ api: 200 in {MS}: Hissuno accepted the token for project demo-project at"
    r" http://127\.0\.0\.1:\d+/api/integrations/widget/chat"
)
HISSUNO_TOKEN = (
    r"✔ token: HS256, signed and verified locally, claims userId, iat, exp,"
    r" lives 86400 s, token …\S{4} \(\d+ chars\)"
)
HISSUNO_NO_API = (
    r"⚠ api: HISSUNO_API_URL is empty, so the widget posts to /api/integrations/widget/chat"
    r" .*; HISSUNO_SECRET_KEY is unverified: there is no Hissuno to ask"
)
FAST = {  # a hung upstream is given up on quickly, without retries
    "UPSTREAM_READ_TIMEOUT": "0.3",
    "UPSTREAM_DEADLINE": "1",
    "UPSTREAM_RETRIES": "0",
}

EVERY_PAGE_OK = (  # the default widget, then the others in WIDGETS
    PAGE_OK,
    rf"✔ page channel/demo-channel: 200 in {MS}, one token placeholder, \d+ bytes",
    rf"✔ page milestone/demo-milestones: 200 in {MS}, one token placeholder, \d+ bytes",
)

CASES = [
    pytest.param(
        Case(
            "vendor",
            0,
            (
                SETTINGS_OK.format("returningai"),
                CONNECT_OK,
                SIGNIN_OK,
                r"✔ token exp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, in \d+ s; cached for \d+ s",
                *EVERY_PAGE_OK,
                r"All checks passed\.",
            ),
            calls={"signin": 1, "page": 3},
        ),
        id="returningai-ok",
    ),
    pytest.param(
        Case(
            "vendor",
            2,
            (
                r"✘ settings: invalid configuration:",
                r"  - WIDGET_BASE_URL: must be an http\(s\) URL.*",
                r"  - WIDGET_API_KEY: required with TOKEN_PROVIDER=returningai .*",
                r"  - SESSION_SECRET: must be at least 32 characters.*",
                r"  - UPSTREAM_DEADLINE: must be greater than 0",
                r"Check failed: 4 settings invalid; nothing was tried",
            ),
            env={
                "WIDGET_BASE_URL": "ftp://widgets.example",
                "WIDGET_API_KEY": "",
                "SESSION_SECRET": "short-" + secrets.token_hex(4),
                "UPSTREAM_DEADLINE": "-1",
            },
            calls={},
        ),
        id="settings-invalid",
    ),
    pytest.param(
        Case(
            "vendor",
            2,
            (
                SETTINGS_OK.format("returningai"),
                r"✘ email: missing: with TOKEN_PROVIDER=returningai the signin and page steps .*",
                r"Check failed: --email is required with TOKEN_PROVIDER=returningai",
            ),
            email=None,
            calls={},
        ),
        id="no-email",
    ),
    pytest.param(
        Case(
            "stopped",
            1,
            (
                r"✘ connect 127\.0\.0\.1:(\d+): connection refused by 127\.0\.0\.1:\1",
                r"Check failed: connection refused by 127\.0\.0\.1:\d+",
            ),
            calls={},
        ),
        id="connection-refused",
    ),
    pytest.param(
        Case(
            "vendor",
            1,
            (
                CONNECT_OK,
                r"✘ signin: the upstream rejected the API key \(401\); check WIDGET_API_KEY.*",
                r"Check failed: the upstream rejected the API key \(401\)",
            ),
            env={"WIDGET_API_KEY": "wp-wrong-key-" + secrets.token_hex(16)},
            calls={"signin": 1},  # refused by the vendor itself, and never retried
        ),
        id="api-key-rejected",
    ),
    pytest.param(
        Case(
            "faulty",
            1,
            (r"✘ signin: signin answered 500", r"Check failed: signin answered 500"),
            fault=("signin", Respond(500, LEAK.encode())),
        ),
        id="signin-500",
    ),
    pytest.param(
        Case(
            "faulty",
            1,
            (
                r"✘ signin: signin answered with a body that is not JSON",
                r"Check failed: signin answered with a body that is not JSON",
            ),
            fault=("signin", Respond(200, f"<html>{LEAK}</html>".encode(), HTML)),
        ),
        id="signin-not-json",
    ),
    pytest.param(
        Case(
            "faulty",
            1,
            (
                SIGNIN_OK,
                r"✘ page store/demo-store: the widget page has no empty token .*"
                r"\(placeholder missing\)",
                r"Check failed: the widget page has no empty token .*",
            ),
            fault=("page", Respond(200, f"<html><body>{LEAK}</body></html>".encode(), HTML)),
            calls={"signin": 1},
        ),
        id="page-without-placeholder",
    ),
    pytest.param(
        Case(
            "faulty",
            1,
            (
                SIGNIN_OK,
                r"✘ page store/demo-store: page timed out",
                r"Check failed: page timed out",
            ),
            env=FAST,
            fault=("page", Hang()),
        ),
        id="page-timeout",
    ),
    pytest.param(
        Case(
            "vendor",
            1,
            (
                SIGNIN_OK,
                r"✘ token exp: the new token is already expired \(exp .* UTC, 1\d s ago\);.*",
                r"Check failed: the new token is already expired .*",
            ),
            token_ttl=-10,
            calls={"signin": 1},  # stopped there: no page fetched
        ),
        id="token-expired",
    ),
    pytest.param(
        Case(
            "vendor",
            0,
            (
                SETTINGS_OK.format("returningai"),
                CONNECT_OK,
                SIGNIN_OK,
                r"⚠ token exp: .* UTC, in \d+ s: less than TOKEN_REFRESH_MARGIN \(60 s\), so it"
                r" is never cached and every page view signs in again",
                *EVERY_PAGE_OK,
                # Passed, not failed, but never "All checks passed" with a warning.
                r"Checks passed with 1 warning \(token exp\); --strict makes warnings fail\.",
            ),
            token_ttl=30,  # shorter than the default margin: say "lower the margin"
            calls={"signin": 1, "page": 3},
        ),
        id="token-shorter-than-the-margin",
    ),
    pytest.param(
        Case(
            "returningai-sdk",
            0,
            (
                SETTINGS_OK.format("returningai-sdk"),
                CONNECT_OK,
                rf"✔ token issue: 200 in {MS} for data-email, expiresIn 900 s,"
                r" token …\S{4} \(\d+ chars\)",
                r"✔ token exp: .* UTC, in \d+ s; cached for \d+ s",
                rf"✔ script \(SDK loader\): 200 in {MS}, \d+ bytes, text/javascript.*",
                rf"✔ script \(widget bundle\): 200 in {MS}, \d+ bytes, text/javascript.*",
                r"All checks passed\.",
            ),
            calls={"token": 1},
        ),
        id="returningai-sdk-ok",
    ),
    pytest.param(
        Case(
            "returningai-sdk",
            1,
            (
                CONNECT_OK,
                r"✘ token issue: the upstream rejected the API key \(401\);"
                r" check RETURNINGAI_ACCESS_ID and RETURNINGAI_ACCESS_KEY",
                r"Check failed: the upstream rejected the API key \(401\)",
            ),
            env={"RETURNINGAI_ACCESS_KEY": "not-the-key-" + secrets.token_hex(8)},
            calls={"token": 1, "token_refused": 1},
        ),
        id="returningai-sdk-key-rejected",
    ),
    pytest.param(
        Case(
            "returningai-sdk",
            0,
            (
                r"⚠ token issue: RETURNINGAI_ACCESS_KEY: the upstream rejected the API key"
                r" \(401\); only RETURNINGAI_ACCESS_KEY_NEXT can be in use: make it"
                r" RETURNINGAI_ACCESS_KEY and remove the old key",
                rf"✔ token issue \(RETURNINGAI_ACCESS_KEY_NEXT\): RETURNINGAI_ACCESS_KEY_NEXT:"
                rf" 200 in {MS} for data-email, expiresIn 900 s, token …\S{{4}} \(\d+ chars\)",
                r"Checks passed with 1 warning \(token issue\); --strict makes warnings fail\.",
            ),
            env={"RETURNINGAI_ACCESS_KEY_NEXT": "next-key-" + secrets.token_hex(8)},
            calls={"token": 2, "token_refused": 1},
        ),
        id="returningai-sdk-rotated",
    ),
    pytest.param(
        Case(
            "neuroon",
            0,
            (
                SETTINGS_OK.format("neuroon"),
                r"✔ token: signed locally for shop demo-shop at .* UTC, re-issued after 82800 s,"
                r" token …\S{4} \(\d+ chars\)",
                CONNECT_OK,
                rf"✔ api: 200 in {MS}: Neuroon's widget API accepted the shop token of demo-shop",
                SCRIPT_OK,
                r"All checks passed\.",
            ),
            email=None,  # one token per shop: no test user needed
            env={"NEUROON_TOKEN_MODE": "local"},
            calls={"search": 1},  # signed here, then judged by the widget's API
        ),
        id="neuroon-local-ok",
    ),
    pytest.param(
        Case(
            "neuroon",
            1,
            (
                r"✘ api: Neuroon refused the shop token signed with NEUROON_API_KEY \(401\);"
                r" check NEUROON_API_KEY and NEUROON_SHOP_ID",
                r"Check failed: Neuroon refused the shop token signed with NEUROON_API_KEY \(401\)",
            ),
            email=None,
            env={"NEUROON_TOKEN_MODE": "local", "NEUROON_API_KEY": "sk_" + secrets.token_hex(16)},
            calls={"search": 1},
        ),
        id="neuroon-local-key-refused",  # once "All checks passed": the token signed here only
    ),
    pytest.param(
        Case(
            "neuroon",
            0,
            (
                CONNECT_OK,
                rf"✔ token issue: 200 in {MS}, opaque token …\S{{4}} \(\d+ chars\)",
                SCRIPT_OK,
                r"All checks passed\.",
            ),
            email=None,
            env={},  # remote is the default
            calls={"token_issue": 1},
        ),
        id="neuroon-remote-ok",
    ),
    pytest.param(
        Case(
            "neuroon",
            1,
            (
                CONNECT_OK,
                r"✘ token issue: the upstream rejected the API key \(401\);"
                r" check NEUROON_API_KEY.*",
                r"Check failed: the upstream rejected the API key \(401\)",
            ),
            email=None,
            env={"NEUROON_TOKEN_MODE": "remote", "NEUROON_API_KEY": "sk_" + secrets.token_hex(16)},
            calls={"token_issue": 1},  # refused by the stand-in itself, and never retried
        ),
        id="neuroon-remote-key-rejected",
    ),
    pytest.param(
        Case(
            "hissuno",
            0,
            (
                SETTINGS_OK.format("hissuno"),
                HISSUNO_TOKEN,
                CONNECT_OK,
                SCRIPT_OK,
                HISSUNO_OK,
                r"All checks passed\.",
            ),
            calls={"close": 1},  # Hissuno judged the token; no chat was started
        ),
        id="hissuno-ok",
    ),
    pytest.param(
        Case(
            "hissuno",
            1,
            (
                HISSUNO_TOKEN,  # it signs, and verifies under the key it signed with
                r"✘ api: Hissuno refused the token signed with HISSUNO_SECRET_KEY \(401\);"
                r" check HISSUNO_SECRET_KEY and HISSUNO_PROJECT_ID",
                r"Check failed: Hissuno refused the token signed with HISSUNO_SECRET_KEY \(401\)",
            ),
            env={"HISSUNO_SECRET_KEY": "sk_live_" + secrets.token_urlsafe(24)},
            calls={"close": 1},
        ),
        id="hissuno-key-refused",  # once "All checks passed", then "401 Invalid token"
    ),
    pytest.param(
        Case(
            "hissuno",
            0,
            (
                HISSUNO_TOKEN,
                HISSUNO_NO_API,
                r"Checks passed with 1 warning \(api\); --strict makes warnings fail\.",
            ),
            env={"HISSUNO_API_URL": ""},
            calls={},
        ),
        id="hissuno-key-unverified",
    ),
    pytest.param(
        Case(
            "hissuno",
            1,
            (HISSUNO_NO_API, r"Check failed: 1 warning \(api\) under --strict"),
            env={"HISSUNO_API_URL": ""},
            calls={},
            args=("--strict",),
        ),
        id="hissuno-key-unverified-strict",
    ),
    pytest.param(
        Case(
            "hissuno",
            2,
            (
                r"✘ origin: 'https://shop\.example/widget' is not an origin: scheme://host\[:port\].*",
                r"Check failed: --origin 'https://shop\.example/widget' is not an origin: .*",
            ),
            calls={},
            args=("--origin", "https://shop.example/widget"),
        ),
        id="origin-invalid",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_check(
    case: Case,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    upstream: str,
    leak_scanner: LeakScanner,
) -> None:
    with ExitStack() as stack:
        target, calls = _target(case, request, vendor, upstream, stack)
        settings = {**target, **SESSION, **case.env}
        leak_scanner.add(*_secrets(settings))  # also when the settings are refused
        with suppress(SettingsError):
            leak_scanner.add(*Settings.from_env(settings).secrets)
        if case.token_ttl is not None:
            vendor.token_ttl = case.token_ttl  # the `upstream` fixture puts it back
        calls.clear()

        result = run_check(tmp_path, settings, case.email, *case.args)

    out = result.stdout
    # Scanned first: the assertions below print the output when they fail.
    for name, text in (("stdout", out), ("stderr", result.stderr)):
        leak_scanner.check(f"the check's {name}", text)
        assert not TOKEN_LIKE.search(text), f"a token (or other long secret) in {name}"
        assert LEAK not in text, f"an upstream body in {name}"
    assert result.returncode == case.exit, out + result.stderr
    for pattern in case.lines:
        assert re.search(rf"^{pattern}$", out, re.MULTILINE), f"no line {pattern!r} in\n{out}"
    final = out.splitlines()[-1]
    warned = len(re.findall("^⚠", out, re.MULTILINE))
    if case.exit != 0:
        assert final.startswith("Check failed: "), out
    elif warned:  # a step that proved nothing is never reported as a pass
        assert final.startswith(f"Checks passed with {warned} warning"), out
        assert "All checks passed" not in out
    else:
        assert final == "All checks passed.", out
    if case.calls is not None:
        kinds = COUNTED[settings.get("TOKEN_PROVIDER", "returningai")]
        assert set(case.calls) <= set(kinds), "the case counts a call its stand-in has not"
        counted = {kind: calls[kind] for kind in kinds}
        assert counted == {**dict.fromkeys(kinds, 0), **case.calls}


def _target(
    case: Case,
    request: pytest.FixtureRequest,
    vendor: ReturningAIStandIn,
    upstream: str,
    stack: ExitStack,
) -> tuple[dict[str, str], Counter[str]]:
    """The settings that point the proxy at the case's stand-in, started as needed, and
    that stand-in's call counts."""
    if case.target == "vendor":
        return vendor.proxy_env(upstream), vendor.calls
    if case.target in ("returningai-sdk", "neuroon", "hissuno"):
        other = stand_in(case.target)
        server = stack.enter_context(BackgroundServer(other.app(), timeout_graceful_shutdown=1))
        assert isinstance(other, ReturningAISdkStandIn | NeuroonStandIn | HissunoStandIn)
        env = other.proxy_env(server.url)
        if isinstance(other, ReturningAISdkStandIn) and "RETURNINGAI_ACCESS_KEY_NEXT" in case.env:
            # A rotation the vendor already completed: only the next key is accepted.
            other.access_key = case.env["RETURNINGAI_ACCESS_KEY_NEXT"]
        return env, other.calls
    faulty: FaultyUpstream = request.getfixturevalue("faulty")
    if case.target == "stopped":
        faulty.stop()  # nothing listens on its port any more
    elif case.fault is not None:
        kind, fault = case.fault
        faulty.faults.active[kind] = fault
    return vendor.proxy_env(faulty.url), vendor.calls


def _secrets(settings: dict[str, str]) -> Iterator[str]:
    for name in (
        "WIDGET_API_KEY",
        "RETURNINGAI_ACCESS_KEY",
        "RETURNINGAI_ACCESS_KEY_NEXT",
        "NEUROON_API_KEY",
        "HISSUNO_SECRET_KEY",
        "SESSION_SECRET",
    ):
        if settings.get(name):
            yield settings[name]


@pytest.mark.slow
@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://:Zq7Left?Zq7Right@127.0.0.1:7000",  # once "':Zq7Left' is not host:port"
        "redis://admin:Zq7Left/Zq7Right@127.0.0.1:6379/0",  # once a crash with the password
    ],
)
def test_a_malformed_cache_url_fails_the_check_without_its_password(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner, url: str
) -> None:
    leak_scanner.add("Zq7Left", "Zq7Right")
    settings = {**vendor.proxy_env(upstream), **SESSION, "CACHE_URL": url}

    result = run_check(tmp_path, settings, None)

    for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        leak_scanner.check(f"the check's {name}", text)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "CACHE_URL: " in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
