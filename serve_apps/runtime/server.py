"""The Serve deployment that holds models and predicts: one class for both modes.

- shared: one application for every tenant's small models, multiplexed by version id
  (an LRU of loaded models per replica);
- dedicated: an application of its own per deployment, with its own replicas and
  resources (set in the Serve config the reconciler renders).

Each loaded model has its own ``Batcher``, so rows of different models never share a
batch. Artifacts come decrypted from the control plane's internal route; keys never
reach the cluster. This module imports Ray; it receives a ``RuntimeConfig``, never the
control plane's settings.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pydantic import BaseModel, Field
from ray import serve

from serve_apps.runtime import LoadedModel, Signature, load_model
from serve_apps.runtime.batching import Batcher

MAX_MODELS_PER_REPLICA = 16


class RuntimeConfig(BaseModel):
    control_url: str = Field(description="The control plane, for artifacts.")
    internal_token: str = Field(description="Presented to the control plane's internal routes.")
    allow_pickle: bool = False


@dataclass
class Served:
    tenant_id: str
    model: LoadedModel
    batcher: Batcher


class ModelServer:
    def __init__(self, config: dict[str, Any]) -> None:
        self._config = RuntimeConfig.model_validate(config)
        self._http = httpx.AsyncClient(
            base_url=self._config.control_url,
            headers={"Authorization": f"Bearer {self._config.internal_token}"},
            timeout=120,
        )
        # one prediction at a time per replica: the frameworks use the cores themselves
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")

    @serve.multiplexed(max_num_models_per_replica=MAX_MODELS_PER_REPLICA)  # type: ignore[untyped-decorator]
    async def _served(self, version_id: str) -> Served:
        meta = await self._get(f"/internal/v1/model-versions/{version_id}")
        folder = Path(tempfile.mkdtemp(prefix="atrium-model-"))
        try:
            path = folder / "artifact"
            async with self._http.stream(
                "GET", f"/internal/v1/model-versions/{version_id}/artifact"
            ) as response:
                response.raise_for_status()
                with path.open("wb") as out:
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
            signature = Signature.model_validate(meta["signature"]) if meta["signature"] else None
            model = await asyncio.to_thread(
                load_model,
                meta["format"],
                path,
                signature,
                allow_pickle=self._config.allow_pickle,
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # loaded models keep no file open
        batcher = Batcher(
            model.predict_checked, max_batch_size=32, wait_s=0.005, executor=self._executor
        )
        return Served(meta["tenant_id"], model, batcher)

    async def _get(self, path: str) -> dict[str, Any]:
        response = await self._http.get(path)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def predict(
        self, tenant_id: str, inputs: dict[str, np.ndarray], max_batch_size: int, wait_ms: float
    ) -> dict[str, np.ndarray]:
        """Predict with the version named by the request's multiplexed model id."""
        served: Served = await self._served(serve.get_multiplexed_model_id())
        if served.tenant_id != tenant_id:  # the gateway resolved it in the tenant; recheck
            raise PermissionError("this model belongs to another tenant")
        checked = served.model.check(inputs)  # per request: one bad request fails alone
        served.batcher.max_batch_size, served.batcher.wait_s = max_batch_size, wait_ms / 1000
        return await served.batcher.submit(checked)

    async def metadata(self, tenant_id: str) -> dict[str, Any]:
        """The loaded version's signature (loading it if needed: a warm-up)."""
        served: Served = await self._served(serve.get_multiplexed_model_id())
        if served.tenant_id != tenant_id:
            raise PermissionError("this model belongs to another tenant")
        return served.model.signature.model_dump()


def build(config: dict[str, Any]) -> Any:
    """The application for ``import_path: serve_apps.runtime.server:build``; its
    deployment options (replicas, resources, queue) come from the Serve config."""
    deployment: Any = serve.deployment(ModelServer)
    return deployment.bind(config)
