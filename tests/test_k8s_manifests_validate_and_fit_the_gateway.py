"""deploy/k8s/ is a deployment Kubernetes accepts and that keeps the gateway's promises: every manifest validates
against the pinned Kubernetes version's schemas with no unknown field (kubernetes-validate bundles the schemas:
offline), and the Deployment, Service, HPA, PDB, ConfigMap and Secret fit together and fit the gateway (probes on
/healthz, non-root with a read-only root, a grace period that covers the drain)."""

from __future__ import annotations

import copy

import pytest
from dockerfile_parse import DockerfileParser

from dragoman.serving import HARD_STOP_MARGIN
from tests.deploy_files import K8S, ROOT, TEAM_CONFIG, configmap_text, k8s_documents, team_config

import kubernetes_validate  # noqa: E402 - the test extra

KUBERNETES_VERSION = "1.33.0"  # the oldest release still supported upstream when this was written; bump on purpose
KINDS = {"Deployment", "Service", "ConfigMap", "Secret", "HorizontalPodAutoscaler", "PodDisruptionBudget"}


@pytest.fixture(scope="module")
def docs() -> dict[str, dict]:
    return k8s_documents()


def test_every_kind_the_issue_asks_for_is_there(docs: dict[str, dict]) -> None:
    assert set(docs) == KINDS
    assert docs["HorizontalPodAutoscaler"]["apiVersion"] == "autoscaling/v2"
    assert docs["PodDisruptionBudget"]["apiVersion"] == "policy/v1"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_manifest_validates_strictly_against_the_pinned_schemas(docs: dict[str, dict], kind: str) -> None:
    assert kubernetes_validate.validate(docs[kind], KUBERNETES_VERSION, strict=True)


def test_strict_validation_refuses_an_unknown_field(docs: dict[str, dict]) -> None:
    # Without this, a validator that accepted anything would pass the test above.
    broken = copy.deepcopy(docs["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = []  # a typo of readinessProbe
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessProbes"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def _pod(docs: dict[str, dict]) -> dict:
    return docs["Deployment"]["spec"]["template"]


def _container(docs: dict[str, dict]) -> dict:
    (container,) = _pod(docs)["spec"]["containers"]
    return container


def test_two_replicas_at_least_and_the_autoscaler_keeps_them(docs: dict[str, dict]) -> None:
    assert docs["Deployment"]["spec"]["replicas"] >= 2
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": docs["Deployment"]["metadata"]["name"]}
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    assert _container(docs)["resources"]["requests"]["cpu"]  # utilization is relative to the request


def test_service_and_disruption_budget_select_the_gateway_pods(docs: dict[str, dict]) -> None:
    labels = _pod(docs)["metadata"]["labels"]
    assert docs["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["Service"]["spec"]["selector"].items() <= labels.items()
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["PodDisruptionBudget"]["spec"]["minAvailable"] >= 1
    port_names = {p["name"] for p in _container(docs)["ports"]}
    assert all(p["targetPort"] in port_names for p in docs["Service"]["spec"]["ports"])


def test_probes_ask_the_gateways_health_endpoint(docs: dict[str, dict]) -> None:
    container = _container(docs)
    (port,) = container["ports"]
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz"
        assert get["port"] in (port["name"], port["containerPort"])
    args = container["args"]
    assert args[:1] == ["serve"] and args[args.index("--host") + 1] == "0.0.0.0"
    assert int(args[args.index("--port") + 1]) == port["containerPort"]


def test_runs_as_the_images_non_root_user_on_a_read_only_root(docs: dict[str, dict]) -> None:
    pod, container = _pod(docs)["spec"], _container(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    dockerfile = DockerfileParser(str(ROOT / "Dockerfile"))
    image_uid = _image_user(dockerfile)
    assert pod["securityContext"]["runAsUser"] == image_uid != 0
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # What the gateway writes goes to emptyDirs: /tmp (metrics of several workers) and /data (XDG_DATA_HOME).
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in ("/tmp", "/data"):
        assert "emptyDir" in volumes[mounts[path]], path


def _image_user(dockerfile: DockerfileParser) -> int:
    users = [i["value"] for i in dockerfile.structure if i["instruction"] == "USER"]
    return int(users[-1].split(":")[0])


def test_grace_period_covers_prestop_and_the_gateways_drain(docs: dict[str, dict]) -> None:
    pod, container = _pod(docs)["spec"], _container(docs)
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # The config the pods read is the ConfigMap's: its shutdown_timeout is the drain, HARD_STOP_MARGIN the end.
    drain = team_config().server.shutdown_timeout
    assert pod["terminationGracePeriodSeconds"] >= float(pre_stop[1]) + drain + HARD_STOP_MARGIN


def test_configmap_carries_the_team_config_where_the_container_reads_it(docs: dict[str, dict]) -> None:
    data = docs["ConfigMap"]["data"]
    assert data == {"dragoman.yaml": TEAM_CONFIG.read_text()}  # one file, kept the same as deploy/dragoman.yaml
    assert (K8S / "configmap.yaml").read_text() == configmap_text()  # else: python -m tests.deploy_files
    pod, container = _pod(docs)["spec"], _container(docs)
    args = container["args"]
    config_path = args[args.index("--config") + 1]
    (mount,) = [m for m in container["volumeMounts"] if config_path.startswith(m["mountPath"] + "/")]
    assert "subPath" not in mount  # a subPath mount never sees ConfigMap updates: hot reload would not happen
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    assert config_path.rsplit("/", 1)[1] in data


def test_secret_is_a_marked_example_the_pods_read(docs: dict[str, dict]) -> None:
    secret = docs["Secret"]
    assert (K8S / "secret.example.yaml").read_text().startswith("# EXAMPLE ONLY")
    assert "data" not in secret  # placeholders in readable stringData, nothing base64-hidden
    assert secret["stringData"] and all("REPLACE_ME" in value for value in secret["stringData"].values())
    refs = [e["secretRef"]["name"] for e in _container(docs)["envFrom"]]
    assert refs == [secret["metadata"]["name"]]
    # Every secret the team config needs from the environment is in it, and the shared signing key.
    for name in ("OPENAI_PROD", "DRAGOMAN_API_KEYS", "DRAGOMAN_ADMIN_KEYS", "DRAGOMAN_AUDIT_STORE",
                 "DRAGOMAN_SIGNING_KEY"):
        assert name in secret["stringData"], name
    assert secret["stringData"]["DRAGOMAN_AUDIT_STORE"].startswith("postgresql://")



def test_deployment_comment_says_where_each_service_url_is_read(docs: dict[str, dict]) -> None:
    """The Deployment's opening comment said both URLs came from the Secret; Redis's is in the config only."""
    head = (K8S / "deployment.yaml").read_text().split("apiVersion:", 1)[0]
    assert "PostgreSQL's URL comes from the Secret (DRAGOMAN_AUDIT_STORE)" in head
    assert "Redis's from the ConfigMap's" in head and "(governance.limits.redis_url)" in head
    assert "DRAGOMAN_AUDIT_STORE" in docs["Secret"]["stringData"]
    assert not [name for name in docs["Secret"]["stringData"] if "REDIS" in name]
    assert team_config().governance.limits.redis_url == "redis://redis:6379/0"
