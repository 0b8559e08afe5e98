"""A local Ray head for ``atrium up``: started in this process, so it stops with it.

Token authentication is on (Ray's own), the dashboard listens on loopback only, and the
token is kept in ATRIUM_HOME so the control plane's REST calls can present it.

Ray's processes (GCS, raylet, dashboard, and every worker the raylet spawns later)
copy the environment they are started with, so ``ray.init`` runs with the environment
cut down to an allow-list: no ``ATRIUM_*`` setting (secret key, database URL, master
key, S3 keys…) reaches the cluster. Replicas get their secrets from the serve secrets
file instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# what Ray and the frameworks its workers run need; nothing else crosses
_ALLOWED = re.compile(
    r"^(PATH|HOME|USER|LOGNAME|SHELL|LANG|LANGUAGE|LC_\w+|TZ|TMPDIR|TEMP|TMP"
    r"|VIRTUAL_ENV|PYTHONPATH|PYTHONHOME|LD_LIBRARY_PATH|SSL_CERT_FILE|SSL_CERT_DIR"
    r"|RAY_\w+|CUDA_VISIBLE_DEVICES|NVIDIA_\w+|ROCR_VISIBLE_DEVICES|HIP_VISIBLE_DEVICES"
    r"|OMP_NUM_THREADS|OPENBLAS_\w+|MKL_\w+)$"
)


@dataclass(frozen=True)
class LocalRay:
    dashboard_url: str
    gcs_address: str


def start(
    *,
    token: str,
    num_cpus: int | None = None,
    dashboard_port: int = 8265,
    high_throughput: bool = False,
) -> LocalRay:
    # before Ray is imported: its token loader reads the environment once; Ray's own
    # processes inherit these
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = token
    if high_throughput:  # HAProxy instead of the Python proxy, replicas' main loop, gRPC
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
        os.environ["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "1"
    import ray

    with allowed_environment():
        context: Any = ray.init(
            num_cpus=num_cpus,
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=dashboard_port,
            configure_logging=False,
            log_to_driver=False,
        )
    url = str(context.dashboard_url)
    url = url if url.startswith("http") else f"http://{url}"
    return LocalRay(dashboard_url=url, gcs_address=str(context.address_info["gcs_address"]))


def allowed(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``environ`` that Ray's processes may inherit."""
    return {k: v for k, v in environ.items() if _ALLOWED.match(k)}


@contextmanager
def allowed_environment() -> Iterator[None]:
    """``os.environ`` cut down to the allow-list for the block, then restored (keeping
    what Ray itself set meanwhile). Only at start-up: other threads would see it too."""
    saved = dict(os.environ)
    reduced = allowed(saved)
    _replace(reduced)
    try:
        yield
    finally:
        set_by_ray = {k: v for k, v in os.environ.items() if reduced.get(k) != v}
        _replace({**saved, **set_by_ray})


def _replace(values: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(values)


def stop() -> None:
    import ray

    ray.shutdown()
