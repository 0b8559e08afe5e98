"""Loaded models of one replica: an LRU keyed by version id, each with its own batcher,
bounded by a count and by a memory budget (artifact sizes).

Nothing here runs a tenant's model: each version is loaded and predicted in its
tenant's sandboxed runtime worker (``workers``); this side decrypts nothing either:
artifacts come decrypted from the control plane's internal routes (keys never reach
the cluster) and go to the worker as a read-only descriptor. A version is loaded once
even when many requests ask for it at once; when a worker dies, its versions are
forgotten and load again in its replacement.
Used by the gateway (shared deployments, served beside its own replicas) and by
dedicated deployments' replicas.

Why not Ray's model multiplexing (``@serve.multiplexed``): it evicts by a count of
models per replica, while models here differ in size by orders of magnitude, so this
cache also evicts by the bytes of their artifacts; and it loads models into the replica's
own process, while these live in sandboxed per-tenant workers it knows nothing of (a
dead worker must drop exactly its versions). Each cached model keeps its own batcher
(see ``batching.py`` and ``bench/batching.py``, which measures it against
``@serve.batch``); if Ray gains byte budgets and out-of-process models, replace this.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from pydantic import BaseModel, Field

from cluster.sandbox import Limits, default_sandbox
from serve_apps.runtime import Signature
from serve_apps.runtime.batching import Batcher
from serve_apps.runtime.secrets import ServeSecrets
from serve_apps.runtime.workers import (
    Worker,
    WorkerFailed,
    WorkerPool,
    WorkerSettings,
    background,
)


class WrongTenant(PermissionError):
    """A version asked for on behalf of a tenant it does not belong to."""


@dataclass
class Served:
    tenant_id: str
    worker: Worker
    batcher: Batcher
    size_bytes: int  # of the artifact: what the cache budgets memory by


class ModelCache:
    def __init__(
        self,
        *,
        control_url: str,
        internal_token: str,
        pool: WorkerPool,
        capacity: int = 16,
        budget_bytes: int = 2 * 1024**3,
        allow_pickle: bool = False,
        load_timeout_s: float = 120.0,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=control_url,
            headers={"Authorization": f"Bearer {internal_token}"},
            timeout=120,
        )
        self.pool = pool
        pool.on_exit.append(self._forget_worker)
        self._capacity = capacity
        self._budget = budget_bytes
        self._allow_pickle = allow_pickle
        self._load_timeout_s = load_timeout_s
        self._models: OrderedDict[str, Served] = OrderedDict()
        self._loading: dict[str, asyncio.Task[Served]] = {}

    def prewarm(self) -> None:
        """Keep this replica's spare workers started (from its event loop)."""
        self.pool.prewarm()

    def holds(self, version_id: str) -> bool:
        """Whether the version is loaded here (a request for it will not wait for a load)."""
        served = self._models.get(version_id)
        return served is not None and served.worker.alive

    async def get(self, version_id: str, tenant_id: str) -> Served:
        served = self._models.get(version_id)
        if served is None or not served.worker.alive:
            task = self._loading.get(version_id)
            if task is None:
                task = asyncio.get_running_loop().create_task(self._load(version_id, tenant_id))
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
        timeout_s: float = 30.0,
    ) -> dict[str, np.ndarray]:
        served = await self.get(version_id, tenant_id)
        batcher = served.batcher
        batcher.max_batch_size, batcher.wait_s, batcher.timeout_s = (
            max_batch_size,
            wait_ms / 1000,
            timeout_s,
        )
        return await served.batcher.submit(inputs)

    def _remember(self, version_id: str, served: Served) -> None:
        self._models[version_id] = served
        self._models.move_to_end(version_id)
        while len(self._models) > 1 and (
            len(self._models) > self._capacity
            or sum(s.size_bytes for s in self._models.values()) > self._budget
        ):
            evicted_id, evicted = self._models.popitem(last=False)
            self._drop(evicted_id, evicted)

    def _drop(self, version_id: str, served: Served) -> None:
        background(served.batcher.close())
        if served.worker.alive:
            background(served.worker.unload(version_id))

    def _forget_worker(self, worker: Worker) -> None:
        for version_id, served in list(self._models.items()):
            if served.worker is worker:
                del self._models[version_id]
                background(served.batcher.close())

    async def _load(self, version_id: str, tenant_id: str) -> Served:
        meta = await self._get(f"/internal/v1/model-versions/{version_id}")
        if meta["tenant_id"] != tenant_id:
            raise WrongTenant("this model belongs to another tenant")
        fd = await self._artifact(version_id)
        try:
            size = os.fstat(fd).st_size
            signature = Signature.model_validate(meta["signature"]) if meta["signature"] else None
            worker = await self.pool.get(tenant_id)
            await worker.load(
                version_id,
                meta["format"],
                signature,
                fd,
                allow_pickle=self._allow_pickle,
                timeout_s=self._load_timeout_s,
            )
        finally:
            os.close(fd)
        batcher = Batcher(
            functools.partial(worker.predict, version_id), max_batch_size=32, wait_s=0.005
        )
        return Served(meta["tenant_id"], worker, batcher, size)

    async def _artifact(self, version_id: str) -> int:
        """The decrypted artifact in an anonymous file (never on disk), read-only."""
        fd = os.memfd_create("atrium-artifact", os.MFD_CLOEXEC)
        try:
            url = f"/internal/v1/model-versions/{version_id}/artifact"
            async with self._http.stream("GET", url) as response:
                response.raise_for_status()
                async for chunk in response.aiter_bytes():
                    os.write(fd, chunk)
            readonly = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(fd)
        return readonly

    async def _get(self, path: str) -> dict[str, Any]:
        response = await self._http.get(path)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def close(self) -> None:
        await self.pool.close()
        with contextlib.suppress(Exception):
            await self._http.aclose()


class RuntimeConfig(BaseModel):
    control_url: str = Field(description="The control plane, for artifacts.")
    secrets_file: str = Field(
        description="The platform secrets (a ServeSecrets JSON file); args carry only its path."
    )
    secrets_revision: str = Field(
        "", description="Changes when that file is rewritten, so replicas restart and reread it."
    )
    allow_pickle: bool = False
    worker_memory_mb: int = Field(2048, ge=64, description="Each runtime worker's memory cap.")
    worker_cpus: float = Field(1.0, gt=0, description="Each runtime worker's CPU share.")
    workers: int = Field(16, ge=1, description="Runtime workers (one per tenant) per replica.")
    worker_idle_s: float = Field(300, gt=0, description="An idle worker is stopped after this.")
    worker_spares: int = Field(0, ge=0, description="Workers started ahead, for new tenants.")
    worker_warm: list[str] = Field(
        default_factory=list, description="Formats whose frameworks workers import at start."
    )
    max_models: int = Field(16, ge=1, description="Loaded versions per replica (LRU).")
    models_budget_mb: int = Field(2048, ge=1, description="Their artifacts' total size cap.")


def model_cache(config: RuntimeConfig) -> ModelCache:
    limits = Limits(memory_mb=config.worker_memory_mb, cpus=config.worker_cpus)
    settings = WorkerSettings(
        limits,
        max_workers=config.workers,
        idle_s=config.worker_idle_s,
        spares=config.worker_spares,
        warm=tuple(config.worker_warm),
    )
    return ModelCache(
        control_url=config.control_url,
        internal_token=ServeSecrets.load(config.secrets_file).internal_token,
        pool=WorkerPool(default_sandbox(), settings),
        capacity=config.max_models,
        budget_bytes=config.models_budget_mb * 1024 * 1024,
        allow_pickle=config.allow_pickle,
    )


__all__ = ["ModelCache", "RuntimeConfig", "Served", "WorkerFailed", "WrongTenant", "model_cache"]
