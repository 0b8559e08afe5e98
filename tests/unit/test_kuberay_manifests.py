"""A tenant's KubeRay manifests: valid for the operator, fenced, capped, and secret-free.

The schemas under ``kuberay/`` are KubeRay v1.7.0's CRD ``openAPIV3Schema`` (RayCluster,
RayJob, RayService), kept in the repository so that this runs offline and in a bare clone.
"""

from __future__ import annotations

import base64
import functools
import importlib.metadata
import ipaddress
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from cluster.kuberay import (
    GPU,
    RAY_VERSION,
    SERVICE_ACCOUNT_DIR,
    KubeRaySettings,
    dashboard_address,
    render_tenant_cluster,
    render_token_secret,
    tenant_namespace,
)
from cluster.tenant import ClusterShape

SCHEMAS = Path(__file__).parent / "kuberay"
TENANT = "ten_01m8nwcbfkatxbjpbv38xq3v0f"
OTHER_TENANT = "ten_01m8nwcbfkatxbjpbv38xq3v0g"
SETTINGS = KubeRaySettings(
    api_server_cidrs=("10.96.0.1/32",),
    control_plane_pod_labels={"app.kubernetes.io/name": "atrium-control-plane"},
)
NS_LABEL = "kubernetes.io/metadata.name"


def shape(**changes: Any) -> ClusterShape:
    return replace(ClusterShape(TENANT, cpus=8, memory_mb=16384), **changes)


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def ray_cluster(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (cluster,) = by_kind(objects, "RayCluster")
    return cluster


def pod_templates(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    spec = cluster["spec"]
    return [spec["headGroupSpec"]["template"], *(g["template"] for g in spec["workerGroupSpecs"])]


def groups(cluster: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}


# --- the CRD schema ----------------------------------------------------------------


def _closed(schema: Any) -> Any:
    """The schema with every object closed to unknown fields.

    Kubernetes drops fields a structural schema does not name (or, under strict field
    validation, refuses them); either way a misspelt ``readOnlyRootFilesystem`` would
    not do what it says, so the test refuses them. No object in these schemas keeps
    unknown fields (``x-kubernetes-preserve-unknown-fields``)."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "properties" in schema:
        out["properties"] = {k: _closed(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema:
            assert not schema.get("x-kubernetes-preserve-unknown-fields")
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            out[key] = _closed(schema[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in schema:
            out[key] = [_closed(s) for s in schema[key]]
    return out


@functools.cache
def validator() -> jsonschema.Draft202012Validator:
    schema = _closed(json.loads((SCHEMAS / "RayCluster-v1.schema.json").read_text()))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(cluster: dict[str, Any]) -> list[str]:
    found = validator().iter_errors(cluster)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found]


@pytest.mark.parametrize(
    "the_shape",
    [shape(), shape(gpus=2), shape(cpus=1, memory_mb=2048, idle_minutes=5)],
    ids=["cpu", "gpu", "smallest"],
)
@pytest.mark.parametrize("runtime_class", [None, "gvisor"])
def test_the_ray_cluster_is_valid_for_kuberay(
    the_shape: ClusterShape, runtime_class: str | None
) -> None:
    settings = replace(SETTINGS, runtime_class_name=runtime_class)
    cluster = ray_cluster(render_tenant_cluster(the_shape, settings))
    assert cluster["apiVersion"] == "ray.io/v1"
    assert errors(cluster) == []


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(cluster: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = cluster
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return mutate


_DELETE = object()
_CONTAINER = "spec.headGroupSpec.template.spec.containers.0"


@pytest.mark.parametrize(
    "mutate",
    [
        _set("spec.headGroupSpec.bogus", True),
        _set(f"{_CONTAINER}.securityContext.readOnlyRootFS", True),
        _set("spec.workerGroupSpecs.0.minReplicas", "0"),
        _set("spec.autoscalerOptions.idleTimeoutSeconds", 1.5),
        _set("spec.authOptions.mode", "Token"),
        _set(f"{_CONTAINER}.resources.limits.cpu", "one"),
        _set("spec.headGroupSpec.template", _DELETE),
    ],
    ids=["unknown-field", "misspelt-field", "type", "integer", "enum", "quantity", "required"],
)
def test_the_schema_check_refuses_a_broken_manifest(
    mutate: Callable[[dict[str, Any]], None],
) -> None:
    cluster = ray_cluster(render_tenant_cluster(shape(), SETTINGS))
    mutate(cluster)
    assert errors(cluster)


# --- namespace, order, labels --------------------------------------------------------


def test_each_tenant_gets_its_own_valid_namespace() -> None:
    names = [tenant_namespace(t, SETTINGS) for t in (TENANT, OTHER_TENANT)]
    assert names[0] != names[1]
    for name in names:
        assert len(name) <= 63
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
        assert name.startswith("atrium-tenant-")
    assert names[0] == "atrium-tenant-ten-01m8nwcbfkatxbjpbv38xq3v0f"


@pytest.mark.parametrize(
    "tenant_id", ["TEN_01M8", "ten-01m8", "ten__x", "ten_x\n", "", "ten_" + "x" * 60]
)
def test_an_id_that_cannot_name_a_namespace_alone_is_refused(tenant_id: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        tenant_namespace(tenant_id, SETTINGS)


def test_objects_come_in_apply_order_all_in_the_tenants_namespace() -> None:
    objects = render_tenant_cluster(shape(), SETTINGS)
    kinds = [o["kind"] for o in objects]
    assert kinds[:2] == ["Namespace", "ResourceQuota"]
    assert set(kinds[2:-1]) == {"NetworkPolicy"}
    assert kinds[-1] == "RayCluster"
    namespace = objects[0]["metadata"]["name"]
    assert namespace == tenant_namespace(TENANT, SETTINGS)
    assert all(o["metadata"]["namespace"] == namespace for o in objects[1:])
    assert all(o["metadata"]["labels"]["atrium.io/tenant"] == TENANT for o in objects)


def test_the_namespace_is_a_tenant_one_under_restricted_pod_security() -> None:
    labels = render_tenant_cluster(shape(), SETTINGS)[0]["metadata"]["labels"]
    assert labels["atrium.io/zone"] == "tenant"
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == "latest"


def test_operator_labels_reach_every_object_and_pod_but_cannot_move_the_tenant() -> None:
    settings = replace(SETTINGS, labels={"team": "ml-platform", "atrium.io/tenant": "forged"})
    objects = render_tenant_cluster(shape(), settings)
    metadata = [o["metadata"] for o in objects]
    metadata += [t["metadata"] for t in pod_templates(ray_cluster(objects))]
    for meta in metadata:
        assert meta["labels"]["team"] == "ml-platform"
        assert meta["labels"]["atrium.io/tenant"] == TENANT


# --- token ---------------------------------------------------------------------------


def test_token_auth_uses_the_platforms_secret_in_the_tenants_namespace() -> None:
    cluster = ray_cluster(render_tenant_cluster(shape(), SETTINGS))
    secret = render_token_secret(TENANT, "s3cr3t-token", SETTINGS)
    assert cluster["spec"]["authOptions"] == {
        "mode": "token",
        "secretName": secret["metadata"]["name"],
    }
    assert secret["metadata"]["namespace"] == cluster["metadata"]["namespace"]
    assert base64.b64decode(secret["data"]["auth_token"]).decode() == "s3cr3t-token"


def test_an_empty_token_is_refused() -> None:
    with pytest.raises(ValueError, match="token"):
        render_token_secret(TENANT, "", SETTINGS)


def _walk(node: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_no_rendered_cluster_object_holds_a_secret_value() -> None:
    token = "tok_" + "9" * 40
    render_token_secret(TENANT, token, SETTINGS)
    objects = render_tenant_cluster(shape(gpus=1), SETTINGS)
    text = json.dumps(objects)
    assert token not in text
    assert base64.b64encode(token.encode()).decode() not in text
    assert by_kind(objects, "Secret") == []
    env = [e for node in _walk(objects) for e in node.get("env", [])]
    assert env, "the walk found the containers' environment"
    assert not [e for e in env if re.search("TOKEN|SECRET|PASSWORD|KEY", e["name"])]


# --- shape: workers, quota, GPUs -----------------------------------------------------


def _quantity(text: str) -> float:
    if text.endswith("m"):
        return int(text[:-1]) / 1000
    if text.endswith("Mi"):
        return int(text[:-2])
    return float(text)


@pytest.mark.parametrize(
    "the_shape",
    [shape(), shape(cpus=3, memory_mb=3000), shape(cpus=1, memory_mb=1024), shape(cpus=7.5)],
)
def test_cpu_workers_start_at_zero_and_fill_the_shape(the_shape: ClusterShape) -> None:
    group = groups(ray_cluster(render_tenant_cluster(the_shape, SETTINGS)))["cpu"]
    assert (group["minReplicas"], group["replicas"]) == (0, 0)
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    cpus, memory = _quantity(limits["cpu"]), _quantity(limits["memory"])
    assert group["rayStartParams"]["num-cpus"] == limits["cpu"]
    assert group["maxReplicas"] * cpus <= the_shape.cpus
    assert group["maxReplicas"] * memory <= the_shape.memory_mb
    assert (group["maxReplicas"] + 1) * cpus > the_shape.cpus  # no room for one more


def test_worker_groups_never_exceed_the_operators_cap() -> None:
    settings = replace(SETTINGS, max_workers=5)
    cluster = ray_cluster(render_tenant_cluster(shape(cpus=400, gpus=64), settings))
    assert {g["maxReplicas"] for g in groups(cluster).values()} == {5}


def test_a_gpu_group_exists_only_when_the_shape_has_gpus() -> None:
    assert set(groups(ray_cluster(render_tenant_cluster(shape(), SETTINGS)))) == {"cpu"}
    gpu = groups(ray_cluster(render_tenant_cluster(shape(gpus=3), SETTINGS)))["gpu"]
    resources = gpu["template"]["spec"]["containers"][0]["resources"]
    assert resources["limits"][GPU] == resources["requests"][GPU] == "1"
    assert (gpu["minReplicas"], gpu["replicas"], gpu["maxReplicas"]) == (0, 0, 3)
    assert gpu["rayStartParams"]["num-gpus"] == "1"


def _pod_total(template: dict[str, Any], extra: list[dict[str, Any]]) -> dict[str, float]:
    containers = [*template["spec"]["containers"], *extra]
    total = {"cpu": 0.0, "memory": 0.0, GPU: 0.0}
    for container in containers:
        for name, amount in container["resources"]["limits"].items():
            total[name] += _quantity(amount)
    return total


@pytest.mark.parametrize("gpus", [0, 2])
def test_the_quota_is_the_shape_plus_the_head_and_a_full_cluster_fits(gpus: int) -> None:
    the_shape = shape(gpus=gpus)
    objects = render_tenant_cluster(the_shape, SETTINGS)
    hard = by_kind(objects, "ResourceQuota")[0]["spec"]["hard"]
    cluster = ray_cluster(objects)
    head = _pod_total(
        cluster["spec"]["headGroupSpec"]["template"], [cluster["spec"]["autoscalerOptions"]]
    )
    assert _quantity(hard["limits.cpu"]) == the_shape.cpus + head["cpu"]
    assert _quantity(hard["limits.memory"]) == the_shape.memory_mb + head["memory"]
    assert hard[f"requests.{GPU}"] == str(gpus)
    assert hard["requests.cpu"] == hard["limits.cpu"]
    for group in groups(cluster).values():
        per_pod = _pod_total(group["template"], [])
        for name, cap in (("cpu", "limits.cpu"), ("memory", "limits.memory")):
            assert head[name] + group["maxReplicas"] * per_pod[name] <= _quantity(hard[cap])
        assert group["maxReplicas"] * per_pod[GPU] <= gpus


def test_idle_workers_go_after_the_shapes_idle_minutes() -> None:
    cluster = ray_cluster(render_tenant_cluster(shape(idle_minutes=7), SETTINGS))
    assert cluster["spec"]["enableInTreeAutoscaling"] is True
    assert cluster["spec"]["autoscalerOptions"]["idleTimeoutSeconds"] == 420


def test_the_head_runs_no_work_and_serves_the_dashboard() -> None:
    head = ray_cluster(render_tenant_cluster(shape(), SETTINGS))["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    ports = {
        p["name"]: p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]
    }
    assert ports["dashboard"] == 8265
    address = dashboard_address(TENANT, SETTINGS)
    assert address == f"http://ray-head-svc.{tenant_namespace(TENANT, SETTINGS)}.svc:8265"


@pytest.mark.parametrize("the_shape", [shape(cpus=0.5), shape(gpus=-1)])
def test_a_shape_without_a_whole_cpu_is_refused(the_shape: ClusterShape) -> None:
    with pytest.raises(ValueError, match="CPU"):
        render_tenant_cluster(the_shape, SETTINGS)


def test_the_image_is_the_ray_the_platform_runs() -> None:
    assert importlib.metadata.version("ray") == RAY_VERSION
    assert SETTINGS.image == f"rayproject/ray:{RAY_VERSION}-py311"
    assert (
        ray_cluster(render_tenant_cluster(shape(), SETTINGS))["spec"]["rayVersion"] == RAY_VERSION
    )


# --- pods locked down ----------------------------------------------------------------

LOCKED = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@pytest.mark.parametrize("runtime_class", [None, "gvisor"])
def test_every_pod_and_container_is_locked_down(runtime_class: str | None) -> None:
    settings = replace(SETTINGS, runtime_class_name=runtime_class)
    cluster = ray_cluster(render_tenant_cluster(shape(gpus=1), settings))
    templates = pod_templates(cluster)
    assert len(templates) == 3
    containers = [cluster["spec"]["autoscalerOptions"]]
    for template in templates:
        spec = template["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert spec.get("runtimeClassName") == runtime_class
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not spec.get("initContainers")
        containers += spec["containers"]
        _assert_scratch_is_private(spec)
    for container in containers:
        assert LOCKED.items() <= container["securityContext"].items(), container.get("name")
        assert container["resources"]["requests"] == container["resources"]["limits"]


def _assert_scratch_is_private(spec: dict[str, Any]) -> None:
    scratch, logs, shm = "/tmp", "/tmp/ray", "/dev/shm"  # noqa: S108 - paths in the pod
    volumes = {v["name"]: v for v in spec["volumes"]}
    for container in spec["containers"]:
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        assert all("emptyDir" in mounts[path] for path in (scratch, logs, shm))
        assert mounts[shm]["emptyDir"]["medium"] == "Memory"
        assert mounts[scratch] is not mounts[logs]


def test_the_service_account_token_reaches_only_the_autoscaler() -> None:
    cluster = ray_cluster(render_tenant_cluster(shape(), SETTINGS))
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]
    token_volumes = [
        v["name"]
        for v in head["volumes"]
        if any("serviceAccountToken" in s for s in v.get("projected", {}).get("sources", []))
    ]
    assert len(token_volumes) == 1
    autoscaler = {m["name"]: m for m in cluster["spec"]["autoscalerOptions"]["volumeMounts"]}
    assert autoscaler[token_volumes[0]]["mountPath"] == SERVICE_ACCOUNT_DIR
    assert autoscaler[token_volumes[0]]["readOnly"] is True
    for template in pod_templates(cluster):
        for container in template["spec"]["containers"]:
            assert token_volumes[0] not in {m["name"] for m in container["volumeMounts"]}


# --- network policy ------------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    namespace: str | None  # None: outside the Kubernetes cluster
    labels: Mapping[str, str]
    ip: str = "10.244.1.7"


NAMESPACE = tenant_namespace(TENANT, SETTINGS)
HEAD = Pod(NAMESPACE, {"ray.io/cluster": "ray", "ray.io/node-type": "head"})
WORKER = Pod(NAMESPACE, {"ray.io/cluster": "ray", "ray.io/node-type": "worker"})
CONTROL_PLANE = Pod("atrium", {"app.kubernetes.io/name": "atrium-control-plane"})
PLATFORM_RAY = Pod("atrium", {"ray.io/node-type": "head", "ray.io/cluster": "ray"})
POSTGRES = Pod("atrium", {"app.kubernetes.io/name": "postgres"})
REDIS = Pod("atrium", {"app.kubernetes.io/name": "redis"})
NEIGHBOUR = Pod(tenant_namespace(OTHER_TENANT, SETTINGS), dict(HEAD.labels))
PROMETHEUS = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
KUBE_DNS = Pod("kube-system", {"k8s-app": "kube-dns"})
API_SERVER = Pod(None, {}, ip="10.96.0.1")
INTERNET = Pod(None, {}, ip="93.184.216.34")


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "the evaluator reads matchLabels only"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _peer_matches(peer: Mapping[str, Any], own_namespace: str, other: Pod) -> bool:
    assert set(peer) <= {"ipBlock", "namespaceSelector", "podSelector"}
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        assert not block.get("except")
        return ipaddress.ip_address(other.ip) in ipaddress.ip_network(block["cidr"])
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        in_namespace = _selects(peer["namespaceSelector"], {NS_LABEL: other.namespace})
    else:
        in_namespace = other.namespace == own_namespace
    return in_namespace and _selects(peer.get("podSelector", {}), other.labels)


def allowed(direction: str, pod: Pod, other: Pod, port: int, protocol: str = "TCP") -> bool:
    """Whether the tenant's policies let ``pod`` receive from (Ingress) or send to (Egress)
    ``other`` on ``port``: NetworkPolicy semantics for the selectors these policies use."""
    policies = [
        p["spec"]
        for p in by_kind(render_tenant_cluster(shape(), SETTINGS), "NetworkPolicy")
        if p["metadata"]["namespace"] == pod.namespace
        and direction in p["spec"]["policyTypes"]
        and _selects(p["spec"]["podSelector"], pod.labels)
    ]
    if not policies:
        return True  # a pod no policy isolates
    peers_key = "from" if direction == "Ingress" else "to"
    for rule in (r for p in policies for r in p.get(direction.lower(), [])):
        ports = rule.get("ports") or [{"port": port, "protocol": protocol}]
        port_ok = any((p["port"], p.get("protocol", "TCP")) == (port, protocol) for p in ports)
        peers = rule.get(peers_key) or [{}]
        if port_ok and any(_peer_matches(peer, NAMESPACE, other) for peer in peers):
            return True
    return False


@pytest.mark.parametrize(
    ("direction", "pod", "other", "port", "protocol", "expected"),
    [
        ("Ingress", HEAD, CONTROL_PLANE, 8265, "TCP", True),
        ("Ingress", HEAD, CONTROL_PLANE, 6379, "TCP", False),
        ("Ingress", HEAD, CONTROL_PLANE, 10001, "TCP", False),
        ("Ingress", WORKER, CONTROL_PLANE, 8265, "TCP", False),
        ("Ingress", HEAD, PLATFORM_RAY, 8265, "TCP", False),
        ("Ingress", HEAD, NEIGHBOUR, 8265, "TCP", False),
        ("Ingress", HEAD, PROMETHEUS, 8080, "TCP", True),
        ("Ingress", WORKER, PROMETHEUS, 8080, "TCP", True),
        ("Ingress", HEAD, PROMETHEUS, 8265, "TCP", False),
        ("Ingress", WORKER, HEAD, 40123, "TCP", True),
        ("Ingress", HEAD, WORKER, 6379, "TCP", True),
        ("Ingress", HEAD, INTERNET, 8265, "TCP", False),
        ("Egress", WORKER, HEAD, 6379, "TCP", True),
        ("Egress", HEAD, WORKER, 40123, "TCP", True),
        ("Egress", WORKER, KUBE_DNS, 53, "UDP", True),
        ("Egress", WORKER, KUBE_DNS, 53, "TCP", True),
        ("Egress", WORKER, KUBE_DNS, 443, "TCP", False),
        ("Egress", WORKER, PLATFORM_RAY, 6379, "TCP", False),
        ("Egress", HEAD, PLATFORM_RAY, 8265, "TCP", False),
        ("Egress", WORKER, POSTGRES, 5432, "TCP", False),
        ("Egress", WORKER, REDIS, 6379, "TCP", False),
        ("Egress", HEAD, CONTROL_PLANE, 8080, "TCP", False),
        ("Egress", WORKER, NEIGHBOUR, 8265, "TCP", False),
        ("Egress", HEAD, INTERNET, 443, "TCP", False),
        ("Egress", WORKER, INTERNET, 443, "TCP", False),
        ("Egress", HEAD, API_SERVER, 443, "TCP", True),
        ("Egress", HEAD, API_SERVER, 6443, "TCP", True),
        ("Egress", HEAD, API_SERVER, 80, "TCP", False),
        ("Egress", WORKER, API_SERVER, 443, "TCP", False),
    ],
)
def test_the_network_policy_allows_only_what_the_cluster_needs(
    direction: str, pod: Pod, other: Pod, port: int, protocol: str, expected: bool
) -> None:
    assert allowed(direction, pod, other, port, protocol) is expected


def test_every_pod_is_isolated_both_ways_by_default() -> None:
    policies = by_kind(render_tenant_cluster(shape(), SETTINGS), "NetworkPolicy")
    deny = [p["spec"] for p in policies if p["spec"]["podSelector"] == {}]
    assert {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]} in deny


def test_without_pod_labels_any_pod_of_the_control_planes_namespace_may_call() -> None:
    settings = replace(SETTINGS, control_plane_pod_labels={}, control_plane_namespace="ops")
    policies = by_kind(render_tenant_cluster(shape(), settings), "NetworkPolicy")
    (dashboard,) = [p for p in policies if p["metadata"]["name"].endswith("dashboard")]
    assert dashboard["spec"]["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {NS_LABEL: "ops"}}}
    ]


@pytest.mark.parametrize("cidrs", [(), ("10.96.0.300/32",)])
def test_settings_refuse_an_api_server_the_autoscaler_cannot_reach(cidrs: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="api_server_cidrs"):
        KubeRaySettings(api_server_cidrs=cidrs)
