"""Loaded models of one replica: an LRU keyed by version id, each with its own batcher,
bounded by a count and by a memory budget (artifact sizes).

Artifacts come decrypted from the control plane's internal routes (keys never reach
the cluster); a version is loaded once even when many requests ask for it at once.
Used by the gateway (shared deployments, served in its own replicas: one hop less) and
by dedicated deployments' replicas.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections import OrderedDict
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pydantic import BaseModel, Field

from serve_apps.runtime import LoadedModel, Signature, load_model
from serve_apps.runtime.batching import Batcher


class WrongTenant(PermissionError):
    """A version asked for on behalf of a tenant it does not belong to."""


@dataclass
class Served:
    tenant_id: str
    model: LoadedModel
    batcher: Batcher
    size_bytes: int  # of the artifact: what the cache budgets memory by


class ModelCache:
    def __init__(
        self,
        *,
        control_url: str,
        internal_token: str,
        executor: Executor,
        capacity: int = 16,
        budget_bytes: int = 2 * 1024**3,
        allow_pickle: bool = False,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=control_url,
            headers={"Authorization": f"Bearer {internal_token}"},
            timeout=120,
        )
        self._executor = executor
        self._capacity = capacity
        self._budget = budget_bytes
        self._allow_pickle = allow_pickle
        self._models: OrderedDict[str, Served] = OrderedDict()
        self._loading: dict[str, asyncio.Task[Served]] = {}

    def holds(self, version_id: str) -> bool:
        """Whether the version is loaded here (a request for it will not wait for a load)."""
        return version_id in self._models

    async def get(self, version_id: str, tenant_id: str) -> Served:
        served = self._models.get(version_id)
        if served is None:
            task = self._loading.get(version_id)
            if task is None:
                task = asyncio.get_running_loop().create_task(self._load(version_id))
                self._loading[version_id] = task
            try:
                served = await asyncio.shield(task)
            finally:
                if task.done():
                    self._loading.pop(version_id, None)
            self._remember(version_id, served)
        else:
            self._models.move_to_end(version_id)
        if served.tenant_id != tenant_id:  # the caller resolved it in the tenant; recheck
            raise WrongTenant("this model belongs to another tenant")
        return served

    async def predict(
        self,
        tenant_id: str,
        version_id: str,
        inputs: dict[str, np.ndarray],
        max_batch_size: int,
        wait_ms: float,
    ) -> dict[str, np.ndarray]:
        served = await self.get(version_id, tenant_id)
        checked = served.model.check(inputs)  # per request: one bad request fails alone
        served.batcher.max_batch_size, served.batcher.wait_s = max_batch_size, wait_ms / 1000
        return await served.batcher.submit(checked)

    def _remember(self, version_id: str, served: Served) -> None:
        self._models[version_id] = served
        self._models.move_to_end(version_id)
        while len(self._models) > 1 and (
            len(self._models) > self._capacity
            or sum(s.size_bytes for s in self._models.values()) > self._budget
        ):
            _, evicted = self._models.popitem(last=False)
            asyncio.get_running_loop().create_task(evicted.batcher.close())

    async def _load(self, version_id: str) -> Served:
        meta = await self._get(f"/internal/v1/model-versions/{version_id}")
        folder = Path(tempfile.mkdtemp(prefix="atrium-model-"))
        try:
            path = folder / "artifact"
            url = f"/internal/v1/model-versions/{version_id}/artifact"
            async with self._http.stream("GET", url) as response:
                response.raise_for_status()
                with path.open("wb") as out:
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
            size = path.stat().st_size
            signature = Signature.model_validate(meta["signature"]) if meta["signature"] else None
            model = await asyncio.to_thread(
                load_model, meta["format"], path, signature, allow_pickle=self._allow_pickle
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # loaded models keep no file open
        batcher = Batcher(
            model.predict_checked, max_batch_size=32, wait_s=0.005, executor=self._executor
        )
        return Served(meta["tenant_id"], model, batcher, size)

    async def _get(self, path: str) -> dict[str, Any]:
        response = await self._http.get(path)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


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
