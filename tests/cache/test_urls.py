"""CACHE_URL's Sentinel and Cluster forms (`cache/topology.py`): accepted, or refused with
a reason. (That the password never shows: tests/cache/test_cache.py.)"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.support import VALID, fresh_secret
from tests.support.processes import refused_by, serve_refused
from widget_proxy.cache.urls import Topology, topology
from widget_proxy.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/mymaster/2",
            Topology("sentinel", (("10.0.0.1", 26379), ("10.0.0.2", 26380)), "mymaster", 2),
        ),
        (
            "rediss+sentinel://app:{pw}%40ss@s1,[::1]:26380/cache?ssl_ca_certs=/ca.pem",
            Topology(
                "sentinel",
                (("s1", 26379), ("::1", 26380)),
                "cache",
                0,
                "app",
                "{pw}@ss",
                True,
                (("ssl_ca_certs", "/ca.pem"),),
            ),
        ),
        (
            "redis+cluster://:{pw}@n1:7000,n2:7001,n3:7002",
            Topology("cluster", (("n1", 7000), ("n2", 7001), ("n3", 7002)), password="{pw}"),
        ),
        ("rediss+cluster://n1:7000/", Topology("cluster", (("n1", 7000),), tls=True)),
        (
            "rediss+cluster://:{pw}@n1:7000,n2:7001?ssl_ca_certs=/etc/redis/ca.crt&ssl_cert_reqs=required",
            Topology(
                "cluster",
                (("n1", 7000), ("n2", 7001)),
                password="{pw}",
                tls=True,
                options=(("ssl_ca_certs", "/etc/redis/ca.crt"), ("ssl_cert_reqs", "required")),
            ),
        ),
        (
            "rediss+sentinel://s1:26379/m/0?ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem",
            Topology(
                "sentinel",
                (("s1", 26379),),
                "m",
                tls=True,
                options=(
                    ("ssl_ca_certs", "/ca.pem"),
                    ("ssl_certfile", "/c.pem"),
                    ("ssl_keyfile", "/k.pem"),
                ),
            ),
        ),
        ("redis://127.0.0.1:6379/0", Topology("single", (("127.0.0.1", 6379),))),
        ("REDIS://h/3", Topology("single", (("h", 6379),), db=3)),
        (
            "rediss://app:{pw}%3Fw@h:6380?db=2&ssl_cert_reqs=required&socket_timeout=0.5",
            Topology(
                "single",
                (("h", 6380),),
                db=2,
                username="app",
                password="{pw}?w",
                tls=True,
                options=(("ssl_cert_reqs", "required"), ("socket_timeout", 0.5)),
            ),
        ),
        (
            "redis://h:1?password={pw}&username=u",
            Topology("single", (("h", 1),), username="u", password="{pw}"),
        ),
        (
            "unix://:{pw}@/run/redis/redis.sock?db=1",
            Topology("single", db=1, password="{pw}", socket="/run/redis/redis.sock"),
        ),
    ],
)
def test_the_forms_are_read(url: str, expected: Topology) -> None:
    # A password made for the run: the settings refuse a published one (`{pw}` in the forms).
    password = fresh_secret()
    url = url.format(pw=password)
    if expected.password is not None:
        expected = replace(expected, password=expected.password.format(pw=password))

    assert topology(url) == expected
    assert Settings.from_env({**VALID, "CACHE_URL": url}).cache_url == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel:///mymaster", "at least one host:port"),
        ("redis+cluster://", "at least one host:port"),
        ("redis+sentinel://h:26379", "service name"),
        ("redis+sentinel://h:26379/", "service name"),
        ("redis+sentinel://h:port/m", "bad port"),
        ("redis+cluster://h:7000,h:70000", "bad port"),
        ("redis+cluster://h:7000,:7001", "not host:port"),
        ("redis+sentinel://h:1/m/x", "database number"),
        ("redis+cluster://h:7000/1", "database 0 only"),
        ("redis+cluster://h:7000?sentinel_password=x", "unknown option"),
        ("rediss+cluster://h:7000?ssl_ca_cert=/ca.pem", "unknown option ssl_ca_cert"),
        ("redis+memcached://h:1", "redis+sentinel://"),
        ("redis://h:abc/0", "bad port"),
        ("redis://h/x", "database number"),
        ("redis://h1:1,h2:2", "names one server"),
        ("redis://h?db=abc", "db must be a whole number"),
        ("redis://h?socket_timeout=abc", "socket_timeout must be a number"),
        ("redis://h?socket_timeout=-1", "socket_timeout must be a number"),
        ("redis://h?protocol=4", "protocol must be 2 or 3"),
        ("redis://h?ssl_ca_certs=/ca.pem", "for TLS: write rediss://"),
        ("redis+cluster://h:7000?ssl_ca_certs=/ca.pem", "for TLS: write rediss+cluster://"),
        ("redis://h?retry_on_error=x", "an unknown option"),
        ("redis://h?db=1&db=2", "given twice"),
        ("redis://h/0#x", "fragment"),
        ("unix://h/run/redis.sock", "no host"),
        ("unix://", "socket's path"),
        ("redis://h:1 /0", "spaces"),
    ],
)
def test_malformed_forms_name_cache_url(url: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**VALID, "CACHE_URL": url})

    mine = [p for p in caught.value.problems if p.startswith("CACHE_URL:")]
    assert len(mine) == 1
    assert message in mine[0]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        # Unencoded, the password's / ? # end the host part: the rest would be read as a
        # host (and shown as one in "… is not host:port"), a path or an option.
        ("redis+sentinel://:Zq7Left?Zq7Right@s1:26379/m", "an '@' after the host"),
        ("redis+cluster://app:Zq7Left#Zq7Right@n1:7000", "an '@' after the host"),
        ("rediss+sentinel://:Zq7Left/Zq7Right@s1/m", "an '@' after the host"),
        ("redis://admin:Zq7Left/Zq7Right@h:6379/0", "an '@' after the host"),
        ("redis://:Zq7Left?Zq7Right/7f#3k@h:6379/0", "an '@' after the host"),
        ("unix://:Zq7Left/Zq7Right@/run/redis.sock", "an '@' after the host"),
        # An option's name is shown only when it is close to a known one; no value ever.
        (
            "redis://h:6379?PASSWORD=Zq7LeftZq7Right",
            "unknown option PASSWORD in a redis URL (did you mean password?)",
        ),
        ("redis://h:6379?Zq7LeftZq7Right", "an unknown option in a redis URL (known:"),
        ("redis://h:6379?socket_timeout=Zq7LeftZq7Right", "socket_timeout must be a number"),
        ("redis://h:6379?db=Zq7LeftZq7Right", "db must be a whole number"),
        (
            "rediss://h?ssl_cert_reqs=Zq7LeftZq7Right",
            "ssl_cert_reqs must be none, optional or required",
        ),
        ("redis+sentinel://s1/m?sentinel_password=Zq7Left#Zq7Right", "fragment"),
    ],
)
def test_a_malformed_url_is_named_and_its_password_never_shown(url: str, message: str) -> None:
    """Refused at start-up, one problem naming CACHE_URL, with not a piece of the
    password in it (the same text reaches stderr, `check` and the SIGHUP refusal)."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**VALID, "CACHE_URL": url})

    mine = [p for p in caught.value.problems if p.startswith("CACHE_URL:")]
    assert len(mine) == 1
    assert message in mine[0]
    assert not any(piece in str(caught.value) for piece in ("Zq7Left", "Zq7Right"))


def test_a_read_url_shows_no_password() -> None:
    """The value the settings hold: no password in its repr, all of them in its secrets."""
    where = topology("rediss+sentinel://app:Zq7Left%3FZq7Right@s1/m?sentinel_password=Zq7Right-2")

    assert "Zq7Right" not in repr(where)
    assert where.password == "Zq7Left?Zq7Right"
    assert {"Zq7Left%3FZq7Right", "Zq7Left?Zq7Right", "Zq7Right-2"} <= set(where.secrets)
    assert where.shown == "rediss+sentinel://app:***@s1/m?sentinel_password=***"


@pytest.mark.slow
@pytest.mark.parametrize(
    "url",
    [
        "redis://admin:Zq7Left/Zq7Right@127.0.0.1:6379/0",  # once a crash, trace and password
        "redis://127.0.0.1:6379/0?PASSWORD=Zq7LeftZq7Right",  # once a TypeError on every call
        "redis://127.0.0.1:6379/0?socket_timeout=Zq7LeftZq7Right",  # once a crash at build
        "redis+sentinel://:Zq7Left?Zq7Right@127.0.0.1:26379/m",  # once the password on stderr
    ],
)
def test_serve_refuses_a_malformed_url_at_start_with_no_password(tmp_path: Path, url: str) -> None:
    result = serve_refused(tmp_path, {**VALID, "CACHE_URL": url})

    assert result.returncode == 2
    assert "  - CACHE_URL: " in result.stderr
    assert "Traceback" not in result.stderr
    assert not any(piece in result.stderr for piece in ("Zq7Left", "Zq7Right"))


# Each scheme's good URL, as (scheme, hosts, path): the mistakes below are made in it.
GOOD = [
    ("redis", "h:6379", "/0"),
    ("rediss", "h:6379", "/0"),
    ("redis+sentinel", "s1:26379,s2:26380", "/mymaster/0"),
    ("rediss+sentinel", "s1:26379,s2:26380", "/mymaster/0"),
    ("redis+cluster", "n1:7000,n2:7001", ""),
    ("rediss+cluster", "n1:7000,n2:7001", ""),
]
# A mistake in the first host: (it, instead of the host:port, what the problem says).
HOST_MISTAKES = [
    ("h:99999", "h has a bad port"),
    ("h:0", "h has a bad port"),
    ("h:abc", "h has a bad port"),
    ("h:-1", "h has a bad port"),
    ("h:\uff16\uff13\uff17\uff19", "h has a bad port"),  # full-width digits
    ("h:63\u00b2", "h has a bad port"),  # a superscript two: a digit to str.isdigit
    ("h:", "h has a bad port"),
    (":6379", "has no host"),
    ("h\u00e9:6379", "not a host name or address"),
    ("h%41:6379", "not a host name or address"),
    ("::1:6379", "IPv6 address is written in [ ]"),
    ("[::1:6379", "not around an IPv6 address"),
    ("[zz]:6379", "not around an IPv6 address"),
    ("[::1]x:6379", "must be an IPv6 address"),
]
# A mistake after the hosts, for the schemes it applies to: (kinds, suffix, message).
TAIL_MISTAKES = [
    (("redis", "rediss"), "/notadb", "database number (0 or more)"),
    (("redis", "rediss"), "/-1", "database number (0 or more)"),
    (("redis", "rediss"), "/\u00b2", "database number (0 or more)"),
    (("redis", "rediss"), "/0/1", "database number (0 or more)"),
    (("redis+sentinel", "rediss+sentinel"), "/mymaster/notadb", "database number (0 or more)"),
    (("redis+sentinel", "rediss+sentinel"), "", "service name"),
    (("redis+cluster", "rediss+cluster"), "/1", "database 0 only"),
    (("redis", "rediss"), "/0?db=\u00b2", "db must be a whole number"),
    (("redis", "rediss"), "/0?db=notadb", "db must be a whole number"),
    (("redis", "rediss"), "/0?socket_timeout=soon", "socket_timeout must be a number"),
    (("redis", "rediss"), "/0?health_check_interval=\u00b2", "must be a whole number"),
    (("redis", "rediss"), "/0?protocol=4", "protocol must be 2 or 3"),
    (("rediss", "rediss+sentinel", "rediss+cluster"), "?ssl_cert_reqs=maybe", "ssl_cert_reqs must"),
    (("redis", "redis+sentinel", "redis+cluster"), "?ssl_ca_certs=/ca.pem", "is for TLS"),
    ([kind for kind, _, _ in GOOD], "?nosuch=1", "an unknown option"),
    (("redis", "rediss"), "/0?db=1&db=2", "given twice"),
    (("redis+sentinel", "rediss+sentinel"), "?sentinel_username=a&sentinel_username=b", "twice"),
    (("rediss+cluster",), "?ssl_cert_reqs=none&ssl_cert_reqs=none", "given twice"),
]


def _mistakes() -> list[tuple[str, str]]:
    """(a URL with one mistake, what its problem says), for every scheme; the URL's
    password is `{pw}`, filled in by the test."""
    rows = []
    for scheme, hosts, path in GOOD:
        rest = hosts.split(",", 1)[1:]
        for host, message in HOST_MISTAKES:
            rows.append((f"{scheme}://:{{pw}}@{','.join([host, *rest])}{path}", message))
        for kinds, tail, message in TAIL_MISTAKES:
            if scheme in kinds:
                where = tail if tail.startswith("/") or not tail else path + tail
                rows.append((f"{scheme}://:{{pw}}@{hosts}{where}", message))
    unix = "unix://:{pw}@/run/redis.sock"
    rows += [
        (unix + "?db=notadb", "db must be a whole number"),
        (unix + "?db=\u00b2", "db must be a whole number"),
        (unix + "?nosuch=1", "an unknown option"),
        (unix + "?socket_timeout=0", "socket_timeout must be a number"),
        ("unix://h:{pw}@host/run/redis.sock", "no host"),
        ("memory://h", "memory:// takes no host"),
        ("memory://?{pw}=1", "memory:// takes no host"),
    ]
    return rows


@pytest.mark.parametrize(("form", "message"), _mistakes())
def test_every_mistake_in_every_scheme_is_one_line_naming_cache_url(
    form: str, message: str
) -> None:
    """Port, database, host, option: one problem naming CACHE_URL and what is wrong,
    never the password (nor a piece of the URL that might be one)."""
    password = fresh_secret()
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**VALID, "CACHE_URL": form.format(pw=password)})

    assert len(caught.value.problems) == 1
    problem = caught.value.problems[0]
    assert problem.startswith("CACHE_URL: ")
    assert message in problem
    assert password not in problem
    assert "\n" not in problem


@pytest.mark.parametrize("command", ["serve", "check"])
@pytest.mark.parametrize(
    ("form", "message"),
    [
        ("redis://:{pw}@127.0.0.1:99999/0", "127.0.0.1 has a bad port"),
        ("redis://:{pw}@127.0.0.1:\uff16\uff13\uff17\uff19/0", "127.0.0.1 has a bad port"),
        ("redis://:{pw}@127.0.0.1:6379/notadb", "database number (0 or more)"),
    ],
)
def test_serve_and_check_say_a_cache_url_mistake_in_one_line(
    tmp_path: Path, command: str, form: str, message: str
) -> None:
    password = fresh_secret()
    env = {**VALID, "CACHE_URL": form.format(pw=password)}
    result, said = refused_by(command, tmp_path, env)

    assert result.returncode == 2, said
    assert any("CACHE_URL: " in line and message in line for line in said.splitlines()), said
    assert "Traceback" not in said
    assert password not in said
