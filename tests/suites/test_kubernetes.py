"""deploy/kubernetes/ against the Kubernetes API and against the app (docs/deploying.md).

Each built-in resource is validated strictly (an unknown field is an error, as
`kubectl apply --validate=strict` makes it) by kubernetes-validate, against the oldest
Kubernetes these manifests claim and the newest it knows; the ServiceMonitor, a custom
resource it has no schema for, against the fields of the Prometheus Operator's CRD that
it uses. Then what the manifests assume of the app is checked against the app itself:
the probes' routes, the settings' names, the secret files, the drain's arithmetic.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import jsonschema
import kubernetes_validate
import pytest
from starlette.routing import Route

from tests.support import Proxy, fresh_secret
from tests.support.deploy import (
    DOCKERFILE,
    KUBERNETES,
    SHUTDOWN_MARGIN,
    default,
    documents,
    manifests,
    settings_names,
)
from widget_proxy import create_app
from widget_proxy.errors import SettingsError
from widget_proxy.options import strays
from widget_proxy.settings import Settings, all_options

# The oldest Kubernetes claimed (docs/deploying.md), and the newest kubernetes-validate
# knows. Pinned: a new release of the validator changes nothing here by itself.
KUBERNETES_VERSIONS: Final = ("1.29.0", "1.37.0")
# Kinds kubernetes-validate has no schema for, and how each is checked instead.
CUSTOM: Final = {"ServiceMonitor"}
EXAMPLES: Final = {"ingress.example.yaml", "secret.example.yaml"}  # not applied by -k
DURATION: Final = "^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
# The fields of monitoring.coreos.com/v1 ServiceMonitor used here, typed as the
# Prometheus Operator's CRD types them; anything else is refused, as strict mode would.
SERVICE_MONITOR: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        }
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": DURATION},
                        },
                    },
                },
            },
        },
    },
}

RESOURCES = manifests()
DEPLOYMENT = RESOURCES["Deployment/widget-proxy"]
POD = DEPLOYMENT["spec"]["template"]["spec"]
POD_LABELS = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
CONTAINER = POD["containers"][0]
CONFIG = RESOURCES["ConfigMap/widget-proxy"]["data"]
SECRET = RESOURCES["Secret/widget-proxy"]
PUBLIC = RESOURCES["Service/widget-proxy"]
METRICS = RESOURCES["Service/widget-proxy-metrics"]
MONITOR = RESOURCES["ServiceMonitor/widget-proxy"]


def validate(resource: dict[str, Any], version: str) -> None:
    if resource["kind"] in CUSTOM:
        jsonschema.Draft202012Validator(SERVICE_MONITOR).validate(resource)
    else:
        kubernetes_validate.validate(resource, version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", sorted(RESOURCES))
def test_every_resource_is_valid_for_kubernetes(name: str, version: str) -> None:
    validate(RESOURCES[name], version)


@pytest.mark.parametrize(
    ("name", "spoil"),
    [
        ("Deployment/widget-proxy", lambda r: r["spec"]["template"]["spec"]["containers"][0]
         .update(readinesProbe={"httpGet": {"path": "/readyz", "port": "http"}})),
        ("Service/widget-proxy", lambda r: r["spec"]["ports"][0].update(port="80")),
        ("ServiceMonitor/widget-proxy", lambda r: r["spec"]["endpoints"][0]
         .update(scheme="tcp")),
        ("ServiceMonitor/widget-proxy", lambda r: r["spec"].update(endpoint=[])),
    ],
    ids=["misspelt field", "wrong type", "custom: bad value", "custom: unknown field"],
)  # fmt: skip
def test_a_spoilt_resource_is_refused(name: str, spoil: Callable[[dict[str, Any]], None]) -> None:
    spoilt = copy.deepcopy(RESOURCES[name])
    spoil(spoilt)

    with pytest.raises(jsonschema.ValidationError):
        validate(spoilt, KUBERNETES_VERSIONS[0])


def test_the_kustomization_applies_every_resource_but_the_examples() -> None:
    (kustomization,) = documents(KUBERNETES / "kustomization.yaml")
    files = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}

    assert set(kustomization["resources"]) == files - EXAMPLES
    assert len(kustomization["resources"]) == len(set(kustomization["resources"]))


def test_the_environment_is_made_of_real_settings() -> None:
    env = {item["name"]: item.get("value", "") for item in CONTAINER["env"]}
    names = set(CONFIG) | set(env)

    assert names <= settings_names()
    assert strays.warnings({name: "x" for name in names}, all_options()) == []
    secret = {o.name for o in all_options() if o.secret}
    assert not secret & set(CONFIG), "a secret setting belongs in the Secret, as a file"
    assert {name.removesuffix("_FILE") for name in env if name.endswith("_FILE")} <= secret


def test_each_secret_file_is_a_key_of_the_mounted_secret() -> None:
    (mount,) = [m for m in CONTAINER["volumeMounts"] if m["name"] == "secrets"]
    (volume,) = [v for v in POD["volumes"] if v["name"] == "secrets"]
    files = {i["name"]: Path(i["value"]) for i in CONTAINER["env"] if i["name"].endswith("_FILE")}

    assert mount["readOnly"] is True
    assert volume["secret"]["secretName"] == SECRET["metadata"]["name"]
    assert {path.parent for path in files.values()} == {Path(mount["mountPath"])}
    assert {path.name for path in files.values()} == set(SECRET["stringData"])
    # A template only: nothing in it may look like a real secret.
    assert set(SECRET["stringData"].values()) == {""}


def test_the_settings_start_a_proxy_once_the_blanks_are_filled(tmp_path: Path) -> None:
    blanks = {name for name, value in CONFIG.items() if value == ""}
    files = {i["name"]: Path(i["value"]).name for i in CONTAINER["env"] if "value" in i}
    values = {
        "session_secret": fresh_secret(),
        "widget_api_key": fresh_secret("wp-key-"),
        "cache_url": "redis://redis.example.internal:6379/0",
    }
    for name, value in values.items():
        (tmp_path / name).write_text(value + "\n")  # as `kubectl create secret` leaves it
    env = {**CONFIG, **{name: str(tmp_path / file) for name, file in files.items()}}

    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env)
    settings = Settings.from_env({**env, **{name: "filled-in" for name in blanks}})

    assert blanks == {"WIDGET_COMMUNITY_ID", "WIDGET_ID"}
    assert all(name in str(refused.value) for name in blanks)
    assert settings.session_secret.reveal() == values["session_secret"]
    assert settings.shutdown_timeout == int(CONFIG["SHUTDOWN_TIMEOUT"])


def test_the_probes_and_the_scrape_reach_the_apps_routes(
    make_proxy: Callable[..., Proxy],
) -> None:
    # The ConfigMap's own METRICS_ALLOW: the tests' loopback client is outside it.
    proxy = make_proxy(METRICS_ALLOW=CONFIG["METRICS_ALLOW"])
    probes = [CONTAINER[p]["httpGet"] for p in ("startupProbe", "livenessProbe", "readinessProbe")]
    (scrape,) = MONITOR["spec"]["endpoints"]

    assert [p["path"] for p in probes] == ["/healthz", "/healthz", "/readyz"]
    assert {p["port"] for p in probes} == {port["name"] for port in CONTAINER["ports"]}
    for probe in probes:
        assert proxy.client.get(probe["path"]).status_code == 200
    assert proxy.client.get(scrape["path"]).status_code == 403  # a route, and guarded


def test_the_grace_period_covers_the_prestop_the_drain_and_the_shutdown() -> None:
    command = CONTAINER["lifecycle"]["preStop"]["exec"]["command"]
    drain = int(CONFIG.get("SHUTDOWN_TIMEOUT", default("SHUTDOWN_TIMEOUT")))

    assert command[0] == "sleep"
    assert POD["terminationGracePeriodSeconds"] >= int(command[1]) + drain + SHUTDOWN_MARGIN


def test_the_pod_runs_as_the_images_user_on_a_read_only_root() -> None:
    user = re.search(r"(?m)^USER (\d+):(\d+)$", DOCKERFILE.read_text())
    context, security = POD["securityContext"], CONTAINER["securityContext"]
    (tmp,) = [m for m in CONTAINER["volumeMounts"] if m["mountPath"] == "/tmp"]  # noqa: S108
    (scratch,) = [v for v in POD["volumes"] if v["name"] == tmp["name"]]

    assert user is not None
    assert (context["runAsUser"], context["runAsGroup"]) == tuple(map(int, user.groups()))
    assert context["runAsNonRoot"] is True
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert "emptyDir" in scratch
    assert POD["automountServiceAccountToken"] is False
    assert set(CONTAINER["resources"]) == {"requests", "limits"}


def test_serve_takes_the_containers_arguments() -> None:
    args = CONTAINER["args"]
    (port,) = CONTAINER["ports"]
    usage = subprocess.run(
        [sys.executable, "-m", "widget_proxy", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert args[0] == "serve"
    assert {a for a in args if a.startswith("--")} <= set(re.findall(r"--[\w-]+", usage))
    assert int(args[args.index("--port") + 1]) == port["containerPort"]
    assert args[args.index("--host") + 1] == "0.0.0.0"  # noqa: S104 (a pod's own address)


def test_the_metrics_stay_off_the_public_service() -> None:
    labels = METRICS["metadata"]["labels"]
    selector = MONITOR["spec"]["selector"]["matchLabels"]
    (scrape,) = MONITOR["spec"]["endpoints"]

    # The ServiceMonitor selects the headless metrics Service and not the public one.
    assert selector.items() <= labels.items()
    assert not selector.items() <= PUBLIC["metadata"]["labels"].items()
    assert METRICS["spec"]["clusterIP"] == "None"
    assert scrape["port"] in {p["name"] for p in METRICS["spec"]["ports"]}
    assert [p["name"] for p in PUBLIC["spec"]["ports"]] == ["http"]
    for service in (PUBLIC, METRICS):
        assert service["spec"]["selector"].items() <= POD_LABELS.items()


def test_the_ingress_routes_the_widgets_and_nothing_else(
    make_settings: Callable[..., Settings],
) -> None:
    ingress = RESOURCES["Ingress/widget-proxy"]
    (rule,) = ingress["spec"]["rules"]
    (route,) = rule["http"]["paths"]
    paths = {r.path for r in create_app(make_settings()).routes if isinstance(r, Route)}
    operators = {"/healthz", "/readyz", "/metrics", "/admin/forget"}

    assert (route["path"], route["pathType"]) == ("/widget", "Prefix")
    assert route["backend"]["service"]["name"] == PUBLIC["metadata"]["name"]
    # Prefix matches whole segments: /widget, /widget/token, /widget/{type}/{id}.
    assert operators <= paths
    assert all(p == "/widget" or p.startswith("/widget/") for p in paths - operators)


def test_the_pod_disruption_budget_and_the_autoscaler_fit_together() -> None:
    budget = RESOURCES["PodDisruptionBudget/widget-proxy"]["spec"]
    scaler = RESOURCES["HorizontalPodAutoscaler/widget-proxy"]["spec"]

    assert budget["selector"]["matchLabels"].items() <= POD_LABELS.items()
    assert scaler["scaleTargetRef"]["name"] == DEPLOYMENT["metadata"]["name"]
    assert scaler["minReplicas"] > budget["maxUnavailable"]  # a drain never empties it
    assert "replicas" not in DEPLOYMENT["spec"]  # the autoscaler owns the count
