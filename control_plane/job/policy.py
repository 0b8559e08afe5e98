"""What a Ray job submission may ask for, on the tenant's own cluster.

The cluster is the tenant's, but its shape, its network reach and what it installs are
the platform's to grant: a submission that asks for more CPUs or GPUs than the plan
gives, custom resources, a runtime environment that installs or fetches from outside
(``pip``, ``conda``, ``uv``, ``container``, ``image_uri``, remote URIs), or environment
variables that steer Ray itself (``RAY_*``) is refused with 422 naming the field.
Packages a job needs come with its ``working_dir`` / ``py_modules``, uploaded through
the proxy (``gcs://`` URIs, size-capped by the plan).
"""

from __future__ import annotations

import json
from typing import Any

from cluster.tenant import ClusterShape
from control_plane.errors import ValidationFailed

# runtime_env keys that install software or pull images from outside the platform
INSTALLERS = ("pip", "conda", "uv", "container", "image_uri")
# runtime_env keys that are plain settings, safe as they are
SETTINGS = ("env_vars", "config", "nsight", "worker_process_setup_hook", "_ray_commit")
MAX_ENTRYPOINT = 64 * 1024


def check_submission(body: bytes, shape: ClusterShape, *, gpus_per_job: float | None) -> None:
    """Raise 422 naming the first field the tenant may not set as given."""
    try:
        request = json.loads(body or b"{}")
    except ValueError as exc:
        raise _refuse("body", f"the job submission is not JSON: {exc}") from None
    if not isinstance(request, dict):
        raise _refuse("body", "the job submission must be a JSON object")
    entrypoint = request.get("entrypoint")
    if not isinstance(entrypoint, str) or not entrypoint.strip():
        raise _refuse("entrypoint", "entrypoint must be a non-empty command")
    if len(entrypoint) > MAX_ENTRYPOINT:
        raise _refuse("entrypoint", f"entrypoint is longer than {MAX_ENTRYPOINT} characters")
    _resources(request, shape, gpus_per_job)
    runtime_env = request.get("runtime_env") or {}
    if not isinstance(runtime_env, dict):
        raise _refuse("runtime_env", "runtime_env must be an object")
    _runtime_env(runtime_env)


def _resources(request: dict[str, Any], shape: ClusterShape, gpus_per_job: float | None) -> None:
    if request.get("entrypoint_resources"):
        raise _refuse(
            "entrypoint_resources",
            "custom Ray resources are not available on this cluster; use "
            "entrypoint_num_cpus / entrypoint_num_gpus / entrypoint_memory",
        )
    gpus_allowed = float(shape.gpus) if gpus_per_job is None else min(shape.gpus, gpus_per_job)
    checks = (
        ("entrypoint_num_cpus", float(shape.cpus), "CPUs (max_cluster_cpus)"),
        ("entrypoint_num_gpus", gpus_allowed, "GPUs (max_cluster_gpus, max_gpus_per_job)"),
        ("entrypoint_memory", float(shape.memory_mb) * 1024 * 1024, "bytes of memory"),
    )
    for name, allowed, what in checks:
        value = request.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise _refuse(name, f"{name} must be a non-negative number")
        if value > allowed:
            raise _refuse(name, f"{name} is {value:g}; the plan's cluster has {allowed:g} {what}")


def _runtime_env(runtime_env: dict[str, Any]) -> None:
    for key, value in runtime_env.items():
        field = f"runtime_env.{key}"
        if key in INSTALLERS:
            raise _refuse(
                field,
                f"runtime_env '{key}' installs or fetches software from outside the "
                "platform, which this plan does not allow; ship your code in working_dir "
                "or py_modules",
            )
        if key == "working_dir":
            _local_uri(field, value)
        elif key == "py_modules":
            if not isinstance(value, list):
                raise _refuse(field, "py_modules must be a list")
            for item in value:
                _local_uri(field, item)
        elif key == "env_vars":
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise _refuse(field, "env_vars must map names to strings")
            steering = sorted(k for k in value if k.upper().startswith("RAY_"))
            if steering:
                raise _refuse(field, f"env_vars may not set Ray's own settings: {steering}")
        elif key not in SETTINGS:
            raise _refuse(field, f"runtime_env '{key}' is not available on this cluster")


def _local_uri(field: str, value: object) -> None:
    """Only packages uploaded through the platform (``gcs://``), never a remote URI."""
    if not isinstance(value, str) or not value.startswith("gcs://"):
        raise _refuse(
            field,
            f"{field} must be a package uploaded with the job (ray job submit --working-dir "
            "uploads it); remote URIs are not fetched",
        )


def _refuse(field: str, detail: str) -> ValidationFailed:
    return ValidationFailed(detail, extra={"field": field})
