"""The deployment files as the tests read them: the Dockerfile, deploy/kubernetes/ and
deploy/compose.yaml (docs/deploying.md)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any, Final

import yaml

from widget_proxy.settings import all_options

ROOT: Final = Path(__file__).resolve().parents[2]
DOCKERFILE: Final = ROOT / "Dockerfile"
DEPLOY: Final = ROOT / "deploy"
KUBERNETES: Final = DEPLOY / "kubernetes"
COMPOSE: Final = DEPLOY / "compose.yaml"
NGINX_CONF: Final = DEPLOY / "nginx.conf"
# The app's own shutdown after the drain: the last sync of the rate counts to Redis (1 s
# timeouts, one more try after a refusal), then closing its connections.
SHUTDOWN_MARGIN: Final = 5


def documents(path: Path) -> list[dict[str, Any]]:
    """Every YAML document of `path` (none empty)."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifests() -> dict[str, dict[str, Any]]:
    """Each resource of deploy/kubernetes/ (examples included) by `kind/name`."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for doc in documents(path):
            if doc["kind"] != "Kustomization":
                found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def settings_names() -> set[str]:
    """What the proxy reads: every setting, and each secret setting's `_FILE` form."""
    options = all_options()
    return {o.name for o in options} | {o.file_name for o in options if o.secret}


def default(name: str) -> str:
    """A setting's default as the proxy declares it."""
    value = next(o.default for o in all_options() if o.name == name)
    assert value is not None, f"{name} has no default"
    return value


def seconds(duration: str) -> int:
    """`20s`, `1m30s` (compose's durations, whole seconds) as seconds."""
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert duration, "an empty duration"
    assert parts is not None, f"not a duration: {duration!r}"
    minutes, secs = (int(part or 0) for part in parts.groups())
    return 60 * minutes + secs


def locked_versions(lock: str) -> dict[str, str]:
    """What `requirements/{lock}` pins, read by requirements/lock.py itself."""
    spec = importlib.util.spec_from_file_location("lock", ROOT / "requirements" / "lock.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pins: dict[str, str] = module.locked_versions(ROOT / "requirements" / lock)
    return pins
