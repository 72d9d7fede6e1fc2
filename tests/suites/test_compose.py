"""deploy/compose.yaml and its nginx.conf: a cluster on one machine (docs/deploying.md).

No `docker compose` runs here (no daemon, no compose plugin, no registry for the redis
and nginx images), so the file is checked for what compose would need and what the
proxy reads: its services, its build, real settings, secrets as files, a stop grace
that covers the drain. Its nginx.conf is the docs' block with two upstreams: `nginx -t`
passes it, and it runs for real in front of two `widget-proxy serve` processes sharing
a Redis, as the compose file's proxies do.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import pytest
from dotenv import dotenv_values

from tests.support import EMAIL, LeakScanner, scanning_client
from tests.support.deploy import (
    COMPOSE,
    DEPLOY,
    DOCKERFILE,
    NGINX_CONF,
    SHUTDOWN_MARGIN,
    default,
    documents,
    seconds,
    settings_names,
)
from tests.support.docs import block
from tests.support.nginx import config, installed, serving
from tests.support.processes import free_port, serve
from tests.support.redis import private_redis
from widget_proxy.providers.returningai import ReturningAIStandIn

(FILE,) = documents(COMPOSE)
SERVICES: Final[dict[str, Any]] = FILE["services"]
PROXIES: Final = ("proxy-1", "proxy-2")
NGINX_ADDRESS: Final = SERVICES["nginx"]["networks"]["cluster"]["ipv4_address"]


def test_the_cluster_is_two_proxies_a_redis_and_nginx() -> None:
    assert set(SERVICES) == {"redis", *PROXIES, "nginx"}
    assert SERVICES["proxy-1"] == SERVICES["proxy-2"]  # one definition, two replicas
    assert set(SERVICES["nginx"]["depends_on"]) == set(PROXIES)
    for proxy in PROXIES:
        assert SERVICES[proxy]["depends_on"]["redis"]["condition"] == "service_healthy"
    # Only nginx is published, and on loopback.
    assert [s for s, spec in SERVICES.items() if "ports" in spec] == ["nginx"]
    assert all(p.startswith("127.0.0.1:") for p in SERVICES["nginx"]["ports"])


@pytest.mark.parametrize("proxy", PROXIES)
def test_each_proxy_is_built_from_the_dockerfile_and_hardened(proxy: str) -> None:
    spec = SERVICES[proxy]

    assert (COMPOSE.parent / spec["build"]["context"] / spec["build"]["dockerfile"]).resolve() == (
        DOCKERFILE
    )
    assert spec["command"][0] == "serve"
    assert spec["read_only"] is True
    assert spec["tmpfs"] == ["/tmp"]  # noqa: S108 (the one writable place, as in the pod)
    assert spec["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in spec["security_opt"]
    assert seconds(spec["stop_grace_period"]) >= (
        int(spec["environment"].get("SHUTDOWN_TIMEOUT", default("SHUTDOWN_TIMEOUT")))
        + SHUTDOWN_MARGIN
    )


def test_the_proxies_read_real_settings_and_secret_files() -> None:
    spec = SERVICES["proxy-1"]
    example = dotenv_values(DEPLOY / "proxy.env.example")
    files = {k: v for k, v in spec["environment"].items() if k.endswith("_FILE")}

    assert spec["env_file"] == "proxy.env"  # filled in from the example, not committed
    assert set(spec["environment"]) | set(example) <= settings_names()
    assert {Path(path).parent for path in files.values()} == {Path("/run/secrets")}
    assert {Path(path).name for path in files.values()} == set(spec["secrets"])
    assert set(spec["secrets"]) == set(FILE["secrets"])
    assert all(s["file"].startswith("secrets/") for s in FILE["secrets"].values())
    ignored = (DEPLOY.parent / ".gitignore").read_text().splitlines()
    assert {"deploy/proxy.env", "deploy/secrets/"} <= set(ignored)


def test_the_proxies_share_the_redis_and_trust_only_nginx() -> None:
    env = SERVICES["proxy-1"]["environment"]
    (subnet,) = FILE["networks"]["cluster"]["ipam"]["config"]

    assert urlsplit(env["CACHE_URL"]).hostname == "redis"
    assert ipaddress.ip_network(env["TRUSTED_PROXIES"]) == ipaddress.ip_network(
        f"{NGINX_ADDRESS}/32"
    )
    assert ipaddress.ip_address(NGINX_ADDRESS) in ipaddress.ip_network(subnet["subnet"])
    assert "/rewards" in SERVICES["proxy-1"]["command"]  # nginx serves them under it


def nginx_locations() -> str:
    """The `location` blocks of deploy/nginx.conf's server, as the docs indent them."""
    server = NGINX_CONF.read_text().split("server {", 1)[1]
    body = server[: server.rindex("}")]
    locations = body[body.index("    # Operators'") :]
    return textwrap.dedent(locations)


def test_the_nginx_conf_is_the_documented_block_with_two_upstreams() -> None:
    upstream = re.search(r"upstream (\w+) \{(.*?)\}", NGINX_CONF.read_text(), re.DOTALL)

    assert upstream is not None
    assert re.findall(r"server ([\w-]+):8000;", upstream.group(2)) == list(PROXIES)
    documented = block("nginx-serve").replace("127.0.0.1:8000", upstream.group(1))
    assert nginx_locations() == documented


def local_conf(backends: list[str], port: int) -> str:
    """deploy/nginx.conf with this machine's addresses for the compose network's names."""
    text = NGINX_CONF.read_text().replace("listen 8080;", f"listen 127.0.0.1:{port};")
    for proxy, backend in zip(PROXIES, backends, strict=True):
        text = text.replace(f"server {proxy}:8000;", f"server {backend};")
    return text


def test_nginx_accepts_the_conf(tmp_path: Path) -> None:
    conf = config(tmp_path, local_conf([f"127.0.0.1:{free_port()}"] * 2, free_port()))

    result = subprocess.run(
        [str(installed()), "-t", "-c", str(conf), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 0, result.stderr


def views_logged(log: Path) -> int:
    """The widget views a proxy's request lines count (its path with the prefix)."""
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return sum(str(line.get("path", "")).endswith("/widget") for line in lines)


@pytest.mark.slow
def test_the_cluster_serves_through_nginx_with_one_signin(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    env = {"TRUSTED_PROXIES": "127.0.0.1/32", "RATE_LIMIT_SYNC_INTERVAL": "1"}
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    args = ("--root-path", "/rewards")
    port = free_port()
    with (
        private_redis() as redis,
        serve(tmp_path / "one", vendor, upstream, leak_scanner, *args,
              CACHE_URL=redis.url, **env) as one,
        serve(tmp_path / "two", vendor, upstream, leak_scanner, *args,
              CACHE_URL=redis.url, **env) as two,
    ):  # fmt: skip
        backends = [p.url.removeprefix("http://") for p in (one, two)]
        conf = local_conf(backends, port)
        with (
            serving(tmp_path, conf, f"http://127.0.0.1:{port}", "/rewards/healthz") as base,
            scanning_client(leak_scanner, base_url=base, timeout=30) as client,
        ):
            views = [client.get("/rewards/widget", headers=one.cookie(EMAIL)) for _ in range(6)]
            operators = [client.get(f"/rewards/{p}") for p in ("metrics", "readyz")]
    # (Read once the proxies stopped: `serve` writes its request lines in batches, up to
    # 0.1 s after their answers, and all of them by the end of its shutdown.)
    served = [views_logged(p.log) for p in (one, two)]

    assert [view.status_code for view in views] == [200] * 6
    assert all(count > 0 for count in served), served  # both proxies took views
    assert vendor.calls["signin"] == 1  # one signin, shared through Redis
    assert [r.status_code for r in operators] == [404, 404]
