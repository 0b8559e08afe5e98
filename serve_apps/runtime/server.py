"""The Serve deployment of a dedicated deployment: its own replicas, resources and
queue (all set in the Serve config the reconciler renders), holding its versions in a
``ModelCache`` (one batcher per model). Shared deployments are served by the gateway's
own replicas with the same cache. Imports Ray; receives a ``RuntimeConfig``, never the
control plane's settings.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from ray import serve

from serve_apps.runtime.cache import ModelCache


class RuntimeConfig(BaseModel):
    control_url: str = Field(description="The control plane, for artifacts.")
    internal_token: str = Field(description="Presented to the control plane's internal routes.")
    allow_pickle: bool = False
    max_models: int = Field(16, ge=1, description="Loaded versions per replica (LRU).")
    models_budget_mb: int = Field(2048, ge=1, description="Their artifacts' total size cap.")


def model_cache(config: RuntimeConfig) -> ModelCache:
    # one prediction at a time per replica: the frameworks use the cores themselves
    return ModelCache(
        control_url=config.control_url,
        internal_token=config.internal_token,
        executor=ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict"),
        capacity=config.max_models,
        budget_bytes=config.models_budget_mb * 1024 * 1024,
        allow_pickle=config.allow_pickle,
    )


class ModelServer:
    def __init__(self, config: dict[str, Any]) -> None:
        self._models = model_cache(RuntimeConfig.model_validate(config))

    async def predict(
        self,
        tenant_id: str,
        version_id: str,
        inputs: dict[str, np.ndarray],
        max_batch_size: int,
        wait_ms: float,
    ) -> dict[str, np.ndarray]:
        return await self._models.predict(tenant_id, version_id, inputs, max_batch_size, wait_ms)


def build(config: dict[str, Any]) -> Any:
    """The application for ``import_path: serve_apps.runtime.server:build``."""
    deployment: Any = serve.deployment(ModelServer)
    return deployment.bind(config)
