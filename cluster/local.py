"""A local Ray head for ``atrium up``: started in this process, so it stops with it.

Token authentication is on (Ray's own), the dashboard listens on loopback only, and the
token is kept in ATRIUM_HOME so the control plane's REST calls can present it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


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


def stop() -> None:
    import ray

    ray.shutdown()
