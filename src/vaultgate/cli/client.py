"""The management API, called over HTTP with an admin key (VAULTGATE_URL, VAULTGATE_ADMIN_KEY)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import httpx

DEFAULT_URL = "http://127.0.0.1:8200"


class ApiClient:
    def __init__(self, env: Mapping[str, str], url: str | None, key: str | None) -> None:
        self.base = (url or env.get("VAULTGATE_URL") or DEFAULT_URL).rstrip("/")
        self._key = key or env.get("VAULTGATE_ADMIN_KEY")

    def __repr__(self) -> str:
        return f"ApiClient(base={self.base!r}, key=***)"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.exchange(method, path, **kwargs)[0]

    def exchange(
        self, method: str, path: str, *, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> tuple[Any, Mapping[str, str]]:
        """The answer's body (JSON, text or None) and its headers; an error is an ``ApiError``."""
        if not self._key:
            raise click.UsageError("set VAULTGATE_ADMIN_KEY (or pass --admin-key) to an admin key")
        # Imported on use: every command module loads with the CLI, and a `serve` worker started
        # from the `vaultgate` script imports the CLI again without ever calling the API.
        import httpx

        sent = {**(headers or {}), "Authorization": f"Bearer {self._key}"}
        try:
            with httpx.Client(base_url=self.base, timeout=30.0, trust_env=False) as client:
                response = client.request(method, path, headers=sent, **kwargs)
        except httpx.HTTPError as exc:
            raise click.ClickException(f"cannot reach the vault at {self.base}: {exc}") from None
        if response.status_code >= 400:
            raise ApiError(response.status_code, _error_text(response))
        if response.status_code == 204 or not response.content:
            return None, response.headers
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json(), response.headers
        return response.text, response.headers


class ApiError(click.ClickException):
    """The vault refused a call: the message is its status, code and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error_text(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", {})
        return f"{response.status_code} {detail.get('error')}: {detail.get('message')}"
    except (ValueError, AttributeError):
        return f"{response.status_code}: {response.text[:200]}"
