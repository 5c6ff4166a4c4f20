"""``AlterVault``: the async client. It only moves bytes; ``_protocol`` decides what they are."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import httpx

from ._base import BaseVault
from ._calls import RESERVED_HEADERS, Call, Params
from ._errors import NetworkError, error_from_httpx
from ._models import CallerType
from ._protocol import (
    AUDIT_PATH,
    PROXY_PATH,
    TOKEN_PATH,
    USER_AGENT,
    TokenGrant,
    proxy_payload,
    proxy_response,
    raise_for_provider,
    raise_for_stream,
    token_payload,
)
from ._reports import DEFAULT_BACKLOG, TaskOutbox
from ._transport import GRANT_EXTENSION, InjectingTransport


class AlterVault(BaseVault):
    """Use stored credentials by grant id: ``async with AlterVault(api_key=...) as vault``.

    Settings, signing and client options come from ``BaseVault``; this class only sends.
    """

    _outbox: TaskOutbox

    def __init__(
        self,
        api_key: str,
        *,
        caller: str | None = None,
        caller_type: CallerType = CallerType.SERVICE,
        base_url: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        upstream_transport: httpx.AsyncBaseTransport | None = None,
        env: Mapping[str, str] | None = None,
        max_pending_reports: int = DEFAULT_BACKLOG,
    ) -> None:
        super().__init__(
            api_key,
            caller=caller,
            caller_type=caller_type,
            base_url=base_url,
            timeout=timeout,
            env=env,
        )
        self._outbox = TaskOutbox(self._send_report, max_pending_reports)
        self._vault = httpx.AsyncClient(**self._vault_options(transport))
        inner = upstream_transport or httpx.AsyncHTTPTransport()
        self._upstream = httpx.AsyncClient(**self._upstream_options(InjectingTransport(inner)))

    async def __aenter__(self) -> AlterVault:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Deliver the pending outcome reports, then close both HTTP clients."""
        await self._outbox.drain()
        await self._vault.aclose()
        await self._upstream.aclose()

    async def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        grant_id: str,
        reason: str | None = None,
        json: Any = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpx's per-request timeout
        caller: str | None = None,
    ) -> httpx.Response:
        """Retrieve mode: fetch the credential, inject it here, call the provider, report."""
        call = Call.make(
            method,
            url,
            grant_id=grant_id,
            reason=reason,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
            caller=caller,
        )
        call.require_https()
        answer = await self._send_vault(TOKEN_PATH, token_payload(call), call)
        grant = TokenGrant.parse(answer, api_key=self._key)
        outgoing = call.provider_request(self._upstream)
        outgoing.extensions[GRANT_EXTENSION] = grant
        started = time.monotonic()
        try:
            response = await self._send(self._upstream, outgoing, "provider")
        except NetworkError:
            self._report(call, grant, outgoing, None, started)
            raise
        self._report(call, grant, outgoing, response, started)
        return raise_for_provider(response, grant.secrets)

    async def proxy_request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        grant_id: str,
        reason: str | None = None,
        json: Any = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpx's per-request timeout
        caller: str | None = None,
    ) -> httpx.Response:
        """Proxy mode: the vault injects and calls the provider; the credential stays there."""
        call = Call.make(
            method,
            url,
            grant_id=grant_id,
            reason=reason,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
            caller=caller,
            reserved=RESERVED_HEADERS,
        )
        answer = await self._send_vault(PROXY_PATH, proxy_payload(call), call)
        response = proxy_response(answer, call, api_key=self._key)
        return raise_for_provider(response, (self._key,))

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        grant_id: str,
        reason: str | None = None,
        json: Any = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpx's per-request timeout
        caller: str | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """Transparent proxy: a streaming response the vault forwards event by event."""
        call = Call.make(
            method,
            url,
            grant_id=grant_id,
            reason=reason,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
            caller=caller,
            reserved=RESERVED_HEADERS,
        )
        request = call.stream_request(
            self.base_url, self._key, user_agent=USER_AGENT, timeout=self.timeout
        )
        response = await self._send(self._vault, request, "vault", stream=True)
        try:
            if response.status_code >= 400:
                await response.aread()
                raise_for_stream(response, self._key)
            yield response
        finally:
            await response.aclose()

    async def _send_vault(self, path: str, payload: dict[str, Any], call: Call) -> httpx.Response:
        request = self._signer.build(
            self._vault, path, payload, caller=call.caller, timeout=call.timeout
        )
        return await self._send(self._vault, request, "vault")

    @staticmethod
    async def _send(
        client: httpx.AsyncClient, request: httpx.Request, where: str, *, stream: bool = False
    ) -> httpx.Response:
        failure: NetworkError | None = None
        try:
            return await client.send(request, stream=stream)
        except httpx.TransportError as exc:
            failure = error_from_httpx(exc, where)
        # Raised outside the handler so no httpx exception (holding the request) is chained.
        raise failure

    async def _send_report(self, body: dict[str, Any], call: Call) -> httpx.Response:
        return await self._send_vault(AUDIT_PATH, body, call)


Vault = AlterVault
