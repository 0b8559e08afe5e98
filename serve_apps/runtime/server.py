"""The Serve deployment of a dedicated deployment: its own replicas, resources and
queue (all set in the Serve config the reconciler renders), holding its versions in a
``ModelCache`` (one batcher per model); each replica owns its sandboxed worker. Shared
deployments are served beside the gateway's own replicas with the same cache. Imports
Ray; receives a ``RuntimeConfig``, never the control plane's settings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray import serve

from serve_apps.runtime.cache import RuntimeConfig, model_cache


class ModelServer:
    def __init__(self, config: dict[str, Any]) -> None:
        self._models = model_cache(RuntimeConfig.model_validate(config))

    async def check_health(self) -> None:
        """Serve's periodic health check, which also keeps spare workers started."""
        self._models.prewarm()

    async def predict(
        self,
        tenant_id: str,
        version_id: str,
        inputs: dict[str, np.ndarray],
        max_batch_size: int,
        wait_ms: float,
        timeout_s: float = 30.0,
    ) -> dict[str, np.ndarray]:
        return await self._models.predict(
            tenant_id, version_id, inputs, max_batch_size, wait_ms, timeout_s
        )


def build(config: dict[str, Any]) -> Any:
    """The application for ``import_path: serve_apps.runtime.server:build``."""
    deployment: Any = serve.deployment(ModelServer)
    return deployment.bind(config)
