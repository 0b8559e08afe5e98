"""Tenant Ray clusters on Kubernetes: the KubeRay manifests of one tenant's cluster.

What exists here is rendering: ``render_tenant_cluster`` gives a tenant's
``ClusterShape`` a ``RayCluster`` of its own in a namespace of its own, and
``render_token_secret`` writes the Secret holding that cluster's Ray token. Applying them,
and the ``TenantClusters`` backend that waits for the head, reads its status and deletes
it, arrive with the operations issue.

Apply in this order: the objects of ``render_tenant_cluster`` up to (not including) the
``RayCluster``, then the token Secret, then the ``RayCluster``, so that no Ray pod ever
starts unfenced or without its token.

The token is the platform's: the control plane generates it (it must hold it to call the
cluster's Jobs API), writes it as a Secret, and names that Secret in
``spec.authOptions.secretName``. KubeRay then puts ``RAY_AUTH_MODE=token`` and
``RAY_AUTH_TOKEN`` (a ``secretKeyRef``) into every Ray container it builds, including the
autoscaler sidecar and the workers' ``wait-gcs-ready`` init container that it adds
itself; the ``RayCluster`` carries the Secret's name, never its value.

KubeRay's autoscaler sidecar scales workers by patching the ``RayCluster`` through the
API server, with the head pod's service-account token. That token is mounted into the
sidecar alone (the head's Ray container, where job drivers run, never sees it), and the
head pod alone may reach the API server's addresses (``api_server_cidrs``).

The cluster's caps: worker pods fill the shape's CPUs, memory and GPUs; the namespace's
ResourceQuota is the shape plus the head pod (its Ray container, which takes no Ray work,
and the autoscaler sidecar). When both worker groups would be full at once, the quota is
the hard stop.
"""

from __future__ import annotations

import base64
import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cluster.tenant import ClusterShape

RAY_VERSION = "2.60.0"  # the Ray the platform's Jobs client speaks (a unit test pins it)
CLUSTER_NAME = "ray"  # one RayCluster per tenant namespace
TOKEN_SECRET = "ray-auth-token"  # noqa: S105 - the Secret's name, not its value
TOKEN_KEY = "auth_token"  # noqa: S105 - the data key KubeRay reads from the Secret
DASHBOARD_PORT = 8265
METRICS_PORT = 8080
GCS_PORT = 6379
RAY_UID = 1000  # the user `ray` in rayproject/ray images
RAY_GID = 100
GPU = "nvidia.com/gpu"
# every pod's writable places: private emptyDirs (the root filesystem is read-only)
SCRATCH_DIR = "/tmp"  # noqa: S108
LOGS_DIR = "/tmp/ray"  # noqa: S108
SHM_DIR = "/dev/shm"  # noqa: S108
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# KubeRay's own volume names: the autoscaler sidecar it injects then shares our /tmp/ray
# (its event log is read by the head) instead of getting a volume of its own
LOGS_VOLUME = "ray-logs"
SHM_VOLUME = "shared-mem"
TMP_VOLUME = "tmp"
KUBE_API_VOLUME = "autoscaler-kube-api"
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_TENANT_ID = re.compile(r"[a-z0-9]+(_[a-z0-9]+)*")


@dataclass(frozen=True)
class KubeRaySettings:
    """How tenant clusters are laid out on one Kubernetes cluster (set by an operator)."""

    # the API server's endpoint addresses: the only place outside the namespace the head
    # may reach, for KubeRay's autoscaler sidecar (no autoscaling, no workers, without it)
    api_server_cidrs: tuple[str, ...]
    api_server_ports: tuple[int, ...] = (443, 6443)  # the endpoints' ports, after DNAT
    image: str = f"rayproject/ray:{RAY_VERSION}-py311"
    ray_version: str = RAY_VERSION
    namespace_prefix: str = "atrium-tenant-"
    runtime_class_name: str | None = None  # e.g. gVisor's or Kata's RuntimeClass
    worker_cpus: int = 2  # CPUs of one worker pod (fewer when the shape has fewer)
    max_workers: int = 16  # per worker group, whatever the shape
    head_cpus: float = 1.0  # the head's Ray container (it runs no tasks: num-cpus 0)
    head_memory_mb: int = 2048
    autoscaler_cpus: float = 0.5  # KubeRay's autoscaler sidecar in the head pod
    autoscaler_memory_mb: int = 512
    scratch_mb: int = 4096  # size limit of each pod's /tmp and /tmp/ray
    control_plane_namespace: str = "atrium"  # may reach the head's dashboard (Jobs API)
    control_plane_pod_labels: Mapping[str, str] = field(default_factory=dict)  # {}: any pod
    prometheus_namespace: str = "monitoring"  # may scrape every Ray pod's metrics port
    prometheus_pod_labels: Mapping[str, str] = field(default_factory=dict)
    dns_namespace: str = "kube-system"
    labels: Mapping[str, str] = field(default_factory=dict)  # added to every object

    def __post_init__(self) -> None:
        if not self.api_server_cidrs:
            raise ValueError("api_server_cidrs: the autoscaler cannot reach the API server")
        for cidr in self.api_server_cidrs:
            try:
                ipaddress.ip_network(cidr)
            except ValueError as exc:
                raise ValueError(f"api_server_cidrs: {exc}") from exc
        if self.worker_cpus < 1 or self.max_workers < 1:
            raise ValueError("worker_cpus and max_workers must be at least 1")
        for name in ("control_plane_pod_labels", "prometheus_pod_labels", "labels"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))


@dataclass(frozen=True)
class _Scope:
    """One tenant's cluster being rendered: what every object's metadata needs."""

    tenant_id: str
    namespace: str
    settings: KubeRaySettings

    @property
    def labels(self) -> dict[str, str]:
        return {
            **self.settings.labels,
            "app.kubernetes.io/managed-by": "atrium",
            "atrium.io/tenant": self.tenant_id,
        }

    def metadata(self, name: str) -> dict[str, Any]:
        return {"name": name, "namespace": self.namespace, "labels": self.labels}


@dataclass(frozen=True)
class _Workers:
    cpus: int  # per pod
    memory_mb: int  # per pod
    cpu_replicas: int
    gpu_replicas: int


def tenant_namespace(tenant_id: str, settings: KubeRaySettings) -> str:
    """The tenant's namespace: the prefix and the id, ``_`` read as ``-``.

    Ids outside ``[a-z0-9_]`` are refused rather than folded: folding case or other
    characters could give two tenants one namespace.
    """
    if not _TENANT_ID.fullmatch(tenant_id):
        raise ValueError(f"tenant id {tenant_id!r} cannot name a namespace")
    name = settings.namespace_prefix + tenant_id.replace("_", "-")
    if len(name) > 63 or not _LABEL.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid namespace name (DNS-1123 label)")
    return name


def dashboard_address(tenant_id: str, settings: KubeRaySettings) -> str:
    """The head's dashboard (Jobs API) inside the Kubernetes cluster: KubeRay's head
    Service ``<cluster>-head-svc``."""
    namespace = tenant_namespace(tenant_id, settings)
    return f"http://{CLUSTER_NAME}-head-svc.{namespace}.svc:{DASHBOARD_PORT}"


def render_tenant_cluster(shape: ClusterShape, settings: KubeRaySettings) -> list[dict[str, Any]]:
    """The tenant's Namespace, ResourceQuota, NetworkPolicies and RayCluster, in apply
    order. No object holds a secret value."""
    scope = _Scope(shape.tenant_id, tenant_namespace(shape.tenant_id, settings), settings)
    return [
        _namespace(scope),
        _quota(shape, scope),
        *_network_policies(scope),
        _ray_cluster(shape, _size_workers(shape, settings), scope),
    ]


def render_token_secret(tenant_id: str, token: str, settings: KubeRaySettings) -> dict[str, Any]:
    """The Secret KubeRay hands to every Ray container as ``RAY_AUTH_TOKEN``."""
    if not token:
        raise ValueError("an empty Ray token would leave the cluster open")
    scope = _Scope(tenant_id, tenant_namespace(tenant_id, settings), settings)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": scope.metadata(TOKEN_SECRET),
        "type": "Opaque",
        "data": {TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }


def _size_workers(shape: ClusterShape, settings: KubeRaySettings) -> _Workers:
    whole_cpus = math.floor(shape.cpus)
    if whole_cpus < 1 or shape.gpus < 0:
        raise ValueError("a tenant cluster needs at least one CPU and no negative GPUs")
    cpus = min(settings.worker_cpus, whole_cpus)
    return _Workers(
        cpus=cpus,
        memory_mb=math.floor(shape.memory_mb * cpus / shape.cpus),
        cpu_replicas=min(settings.max_workers, whole_cpus // cpus),
        gpu_replicas=min(settings.max_workers, shape.gpus),
    )


def _namespace(scope: _Scope) -> dict[str, Any]:
    pod_security = {
        f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")
    }
    labels = {**scope.labels, "atrium.io/zone": "tenant", **pod_security}
    labels["pod-security.kubernetes.io/enforce-version"] = "latest"
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": scope.namespace, "labels": labels},
    }


def _quota(shape: ClusterShape, scope: _Scope) -> dict[str, Any]:
    settings = scope.settings
    cpus = _cpu(shape.cpus + settings.head_cpus + settings.autoscaler_cpus)
    memory = _memory(shape.memory_mb + settings.head_memory_mb + settings.autoscaler_memory_mb)
    hard = {
        "requests.cpu": cpus,
        "limits.cpu": cpus,
        "requests.memory": memory,
        "limits.memory": memory,
        f"requests.{GPU}": str(shape.gpus),  # 0: no pod here may ask for a GPU
    }
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": scope.metadata("tenant-cluster"),
        "spec": {"hard": hard},
    }


def _ray_cluster(shape: ClusterShape, workers: _Workers, scope: _Scope) -> dict[str, Any]:
    groups = [_worker_group("cpu", workers, workers.cpu_replicas, 0, scope)]
    if workers.gpu_replicas:
        groups.append(_worker_group("gpu", workers, workers.gpu_replicas, 1, scope))
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": scope.metadata(CLUSTER_NAME),
        "spec": {
            "rayVersion": scope.settings.ray_version,
            "authOptions": {"mode": "token", "secretName": TOKEN_SECRET},
            "enableInTreeAutoscaling": True,
            "autoscalerOptions": _autoscaler(shape, scope.settings),
            "headGroupSpec": _head_group(scope),
            "workerGroupSpecs": groups,
        },
    }


def _head_group(scope: _Scope) -> dict[str, Any]:
    settings = scope.settings
    resources = _resources(settings.head_cpus, settings.head_memory_mb)
    ports = {"gcs-server": GCS_PORT, "dashboard": DASHBOARD_PORT, "metrics": METRICS_PORT}
    container = _container("ray-head", resources, settings)
    container["ports"] = [{"name": n, "containerPort": p} for n, p in ports.items()]
    template = _pod_template(container, settings.head_memory_mb, scope)
    # the service-account token is mounted into the autoscaler sidecar alone (see
    # _autoscaler): the head's Ray container, where tenants' job drivers run, never sees it
    template["spec"]["volumes"].append(_kube_api_volume())
    return {
        "serviceType": "ClusterIP",
        "rayStartParams": {
            "num-cpus": "0",  # tasks and actors go to workers; the head stays responsive
            "dashboard-host": "0.0.0.0",  # noqa: S104 - the pod's IP; NetworkPolicy fences it
            "metrics-export-port": str(METRICS_PORT),
        },
        "template": template,
    }


def _worker_group(
    name: str, workers: _Workers, max_replicas: int, gpus: int, scope: _Scope
) -> dict[str, Any]:
    resources = _resources(workers.cpus, workers.memory_mb, gpus)
    params = {"num-cpus": str(workers.cpus), "metrics-export-port": str(METRICS_PORT)}
    if gpus:
        params["num-gpus"] = str(gpus)
    container = _container("ray-worker", resources, scope.settings)
    return {
        "groupName": name,
        "replicas": 0,
        "minReplicas": 0,
        "maxReplicas": max_replicas,
        "rayStartParams": params,
        "template": _pod_template(container, workers.memory_mb, scope),
    }


def _autoscaler(shape: ClusterShape, settings: KubeRaySettings) -> dict[str, Any]:
    mounts = [
        *_scratch_mounts(),
        {"name": KUBE_API_VOLUME, "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True},
    ]
    return {
        "idleTimeoutSeconds": shape.idle_minutes * 60,
        "upscalingMode": "Default",
        "imagePullPolicy": "IfNotPresent",
        "resources": _resources(settings.autoscaler_cpus, settings.autoscaler_memory_mb),
        "securityContext": _container_security(),
        "env": _env(),
        "volumeMounts": mounts,
    }


def _container(name: str, resources: dict[str, Any], settings: KubeRaySettings) -> dict[str, Any]:
    return {
        "name": name,
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "env": _env(),
        "resources": resources,
        "securityContext": _container_security(),
        "volumeMounts": [*_scratch_mounts(), {"name": SHM_VOLUME, "mountPath": SHM_DIR}],
    }


def _env() -> list[dict[str, str]]:
    return [
        # the root filesystem is read-only: caches and `pip --user` land in scratch
        {"name": "HOME", "value": SCRATCH_DIR},
        {"name": "RAY_USAGE_STATS_ENABLED", "value": "0"},
    ]


def _scratch_mounts() -> list[dict[str, Any]]:
    return [
        {"name": TMP_VOLUME, "mountPath": SCRATCH_DIR},
        {"name": LOGS_VOLUME, "mountPath": LOGS_DIR},
    ]


def _pod_template(container: dict[str, Any], memory_mb: int, scope: _Scope) -> dict[str, Any]:
    settings = scope.settings
    scratch = _memory(settings.scratch_mb)
    spec: dict[str, Any] = {
        "containers": [container],
        "volumes": [
            {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": scratch}},
            {"name": LOGS_VOLUME, "emptyDir": {"sizeLimit": scratch}},
            # the object store; memory-backed, so it counts against the pod's memory limit
            {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": _memory(memory_mb)}},
        ],
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RAY_UID,
            "runAsGroup": RAY_GID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
    }
    if settings.runtime_class_name:
        spec["runtimeClassName"] = settings.runtime_class_name
    return {"metadata": {"labels": scope.labels}, "spec": spec}


def _container_security() -> dict[str, Any]:
    # KubeRay copies the Ray container's securityContext onto the init container it adds
    return {
        "runAsNonRoot": True,
        "runAsUser": RAY_UID,
        "runAsGroup": RAY_GID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _kube_api_volume() -> dict[str, Any]:
    """What the kubelet would mount into every container, as a volume we mount into one."""
    sources = [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {
            "downwardAPI": {
                "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
            }
        },
    ]
    return {"name": KUBE_API_VOLUME, "projected": {"sources": sources}}


def _network_policies(scope: _Scope) -> list[dict[str, Any]]:
    """Deny everything, then allow: the namespace to itself, DNS, the control plane to the
    head's dashboard, Prometheus to the metrics port, the head to the API server."""
    settings = scope.settings
    head = {"matchLabels": {"ray.io/cluster": CLUSTER_NAME, "ray.io/node-type": "head"}}
    ray_pods = {"matchLabels": {"ray.io/cluster": CLUSTER_NAME}}
    # a peer with a podSelector and no namespaceSelector: pods of this namespace only
    here: list[dict[str, Any]] = [{"podSelector": {}}]
    control_plane = _peer(settings.control_plane_namespace, settings.control_plane_pod_labels)
    prometheus = _peer(settings.prometheus_namespace, settings.prometheus_pod_labels)
    dns = {"to": [_peer(settings.dns_namespace, {})], "ports": [_port(53, "UDP"), _port(53)]}
    api_server = {
        "to": [{"ipBlock": {"cidr": cidr}} for cidr in settings.api_server_cidrs],
        "ports": [_port(p) for p in settings.api_server_ports],
    }
    dashboard = {"from": [control_plane], "ports": [_port(DASHBOARD_PORT)]}
    metrics = {"from": [prometheus], "ports": [_port(METRICS_PORT)]}
    return [
        _policy(scope, "deny-all", {}, ingress=[], egress=[]),
        _policy(scope, "allow-same-namespace", {}, ingress=[{"from": here}], egress=[{"to": here}]),
        _policy(scope, "allow-dns", {}, egress=[dns]),
        _policy(scope, "allow-control-plane-to-dashboard", head, ingress=[dashboard]),
        _policy(scope, "allow-prometheus-scrape", ray_pods, ingress=[metrics]),
        _policy(scope, "allow-autoscaler-to-api-server", head, egress=[api_server]),
    ]


def _policy(
    scope: _Scope,
    name: str,
    selector: dict[str, Any],
    *,
    ingress: list[Any] | None = None,
    egress: list[Any] | None = None,
) -> dict[str, Any]:
    """One NetworkPolicy; a direction given as ``[]`` is denied, ``None`` left alone."""
    spec: dict[str, Any] = {"podSelector": selector, "policyTypes": []}
    for kind, rules in (("Ingress", ingress), ("Egress", egress)):
        if rules is not None:
            spec["policyTypes"].append(kind)
            if rules:
                spec[kind.lower()] = rules
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": scope.metadata(name),
        "spec": spec,
    }


def _peer(namespace: str, pod_labels: Mapping[str, str]) -> dict[str, Any]:
    """Pods in ``namespace`` (with ``pod_labels``, when given): both selectors must match."""
    peer: dict[str, Any] = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    }
    if pod_labels:
        peer["podSelector"] = {"matchLabels": dict(pod_labels)}
    return peer


def _port(number: int, protocol: str = "TCP") -> dict[str, Any]:
    return {"protocol": protocol, "port": number}


def _resources(cpus: float, memory_mb: int, gpus: int = 0) -> dict[str, Any]:
    """Requests equal to limits: the pod gets what it is charged for (Guaranteed QoS)."""
    amounts = {"cpu": _cpu(cpus), "memory": _memory(memory_mb)}
    if gpus:
        amounts[GPU] = str(gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _cpu(cpus: float) -> str:
    millis = round(cpus * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def _memory(megabytes: int) -> str:
    return f"{megabytes}Mi"
