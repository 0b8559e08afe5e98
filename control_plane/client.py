"""A small client of Atrium's HTTP API for the CLI: credentials from the environment,
Problem Details turned into readable errors, uploads streamed with progress."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

CHUNK = 1 << 20


class ApiError(Exception):
    """The API answered with an error; ``str()`` is what to show the user."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        super().__init__(f"{status} {body.get('title', 'error')}: {body.get('detail', '')}")


@dataclass(frozen=True)
class Upload:
    """A multipart form whose file part is read from disk chunk by chunk."""

    path: Path
    fields: dict[str, str]
    boundary: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "boundary", secrets.token_hex(16))

    def _head(self) -> bytes:
        parts = [
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in self.fields.items()
        ]
        parts.append(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="file";'
            f' filename="{self.path.name.replace(chr(34), "")}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        return "".join(parts).encode()

    def _tail(self) -> bytes:
        return f"\r\n--{self.boundary}--\r\n".encode()

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def length(self) -> int:
        return len(self._head()) + self.path.stat().st_size + len(self._tail())

    def body(self, progress: Callable[[int], None]) -> Iterator[bytes]:
        yield self._head()
        with self.path.open("rb") as source:
            while chunk := source.read(CHUNK):
                progress(len(chunk))
                yield chunk
        yield self._tail()


class Client:
    def __init__(self, url: str, credential: str, *, timeout: float = 600) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {credential}"},
            timeout=timeout,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(0, {"title": "Cannot reach Atrium", "detail": str(exc)}) from None
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"title": response.reason_phrase, "detail": response.text[:500]}
            raise ApiError(response.status_code, body)
        return None if response.status_code == 204 else response.json()

    def upload(
        self, path: str, form: Upload, progress: Callable[[int], None], **params: str
    ) -> Any:
        headers = {"Content-Type": form.content_type, "Content-Length": str(form.length)}
        return self.call("POST", path, content=form.body(progress), headers=headers, params=params)

    def find_model(self, name_or_id: str) -> dict[str, Any]:
        """A model by id, or else by name (names are unique in a tenant)."""
        if name_or_id.startswith("mdl_"):
            found: dict[str, Any] = self.call("GET", f"/api/v1/models/{name_or_id}")
            return found
        cursor: str | None = None
        while True:
            page = self.call("GET", "/api/v1/models", params={"limit": 100, "cursor": cursor})
            for model in page["items"]:
                if model["name"] == name_or_id:
                    return dict(model)
            cursor = page.get("next_cursor")
            if not cursor:
                raise ApiError(404, {"title": "Not found", "detail": f"no model '{name_or_id}'"})
