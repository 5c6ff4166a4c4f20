"""Provider transports that apply the credential at the last moment.

The credential is added below httpx's client, inside the transport, so the request the client
logs (``httpx`` logs each URL at INFO), keeps on the response, and puts in its exceptions is
the request *before* injection: a key injected as a query parameter never reaches a log line or
``response.request``. The grant travels to the transport in a request extension, removed on use.
"""

from __future__ import annotations

from typing import Final

import httpx

from vaultgate.injection.rules import InjectionRuleError

from ._errors import BackendError
from ._protocol import TokenGrant

GRANT_EXTENSION: Final = "vaultgate.grant"


def _wired(request: httpx.Request) -> httpx.Request:
    grant = request.extensions.pop(GRANT_EXTENSION, None)
    if not isinstance(grant, TokenGrant):
        return request
    try:
        return grant.inject(request)
    except InjectionRuleError as exc:
        raise BackendError(
            f"the vault's injection fields cannot be applied ({exc.field})",
            code="invalid_injection",
        ) from None


class InjectingTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(_wired(request))

    async def aclose(self) -> None:
        await self._inner.aclose()


class SyncInjectingTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(_wired(request))

    def close(self) -> None:
        self._inner.close()
