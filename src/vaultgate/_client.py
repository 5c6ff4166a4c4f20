"""``AlterVault``: the async client. It only moves bytes; ``_protocol`` decides what they are."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar

import httpx

from . import _verbs
from ._base import BaseVault
from ._calls import RESERVED_HEADERS, Call, Params
from ._errors import BackendError, NetworkError, VaultgateError, error_from_httpx
from ._keys import Keys
from ._lane import Lanes, VaultLane
from ._models import (
    ApprovalResult,
    ApprovalStatus,
    CallerType,
    GrantInfo,
    PendingApproval,
    RevokeGrantResult,
    UnifiedGrantListResult,
)
from ._protocol import (
    AUDIT_PATH,
    BATCH_PATH,
    PROXY_PATH,
    TOKEN_PATH,
    USER_AGENT,
    TokenGrant,
    VaultAnswer,
    proxy_outcome,
    proxy_payload,
    raise_for_provider,
    raise_for_stream,
    token_payload,
)
from ._reports import DEFAULT_BACKLOG, Outcome, Report, TaskOutbox
from ._transport import GRANT_EXTENSION, InjectingTransport

T = TypeVar("T")


class AlterVault(BaseVault):
    """Use stored credentials by grant id: ``async with AlterVault(api_key=...) as vault``.

    Settings, signing and client options come from ``BaseVault``; this class only sends.
    """

    _vault: httpx.AsyncClient
    _outbox: TaskOutbox
    _lane: VaultLane | None
    keys: Keys

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
        self._outbox = TaskOutbox(self._send_reports, max_pending_reports)
        # Small vault calls take the light lane (see _lane); streams keep httpx's own transport.
        self._lane = None if transport else VaultLane(self.base_url)
        self._vault = httpx.AsyncClient(**self._vault_options(transport or self._lane))
        self._streams = self._vault if transport else httpx.AsyncClient(**self._vault_options(None))
        self._injecting = InjectingTransport(upstream_transport or Lanes())
        self._upstream = httpx.AsyncClient(**self._upstream_options(self._injecting))
        self._upstream_headers = self._upstream.headers
        self.keys = Keys(self)

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
        await self._streams.aclose()
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
        outgoing = self._provider_request(call)
        outgoing.extensions[GRANT_EXTENSION] = grant
        started = time.monotonic()
        try:
            response = await self._call_provider(outgoing)
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
    ) -> httpx.Response | PendingApproval:
        """Proxy mode: the vault injects and calls the provider; the credential stays there.

        A grant whose policy holds the call for a human answers ``PendingApproval``: pass its
        ``approval_id`` to ``await_approval``.
        """
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
        return proxy_outcome(answer, call, api_key=self._key)

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
        response = await self._send(self._streams, request, "vault", stream=True)
        try:
            if response.status_code >= 400:
                await response.aread()
                raise_for_stream(response, self._key)
            yield response
        finally:
            await response.aclose()

    async def list_grants(
        self,
        *,
        provider_id: str | None = None,
        status: str | None = None,
        account: str | None = None,
        label: str | None = None,
        end_user_token: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> UnifiedGrantListResult:
        """The app's grants, newest last; every filter narrows (``provider_id`` = secret name)."""
        op = _verbs.list_grants(
            provider_id=provider_id,
            status=status,
            account=account,
            label=label,
            end_user_token=end_user_token,
            limit=limit,
            offset=offset,
        )
        return await self._run(op)

    async def mint_grant(
        self,
        source_grant_id: str,
        *,
        label: str,
        grant_policy: dict[str, Any] | None = None,
        grant_tags: list[str] | None = None,
    ) -> GrantInfo:
        """A sibling grant on the source grant's secret that can only narrow its policy."""
        op = _verbs.mint_grant(
            source_grant_id, label=label, grant_policy=grant_policy, grant_tags=grant_tags
        )
        return await self._run(op)

    async def revoke_grant(self, grant_id: str, *, reason: str | None = None) -> RevokeGrantResult:
        """Revoke the grant and every grant made from it; ``reason`` goes to the audit trail."""
        return await self._run(_verbs.revoke_grant(grant_id, reason=reason))

    async def get_approval_status(
        self, approval_id: str, *, wait: float | None = 0
    ) -> ApprovalStatus:
        """One poll; ``wait`` (up to 25 s) holds it open until the approval changes."""
        return await self._run(_verbs.approval_status(approval_id, wait=wait))

    async def await_approval(
        self,
        approval_id: str,
        *,
        timeout: float = 300.0,  # noqa: ASYNC109 - the official client's name and meaning
        poll_interval: float = 2.0,
    ) -> ApprovalResult:
        """Wait for the decision: the approved call's answer, or the typed ``ApprovalError``."""
        _verbs.check_wait(timeout, poll_interval)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        cause: VaultgateError | None = None
        while (left := deadline - loop.time()) > 0:
            try:
                poll = self.get_approval_status(approval_id, wait=_verbs.server_wait(left))
                status = await asyncio.wait_for(poll, left)
                if status.is_terminal and (status.status != "executed" or status.has_result):
                    _verbs.raise_if_unsuccessful(approval_id, status)
                    return await self._run(_verbs.approval_result(approval_id))
                cause = None
            except TimeoutError:  # the builtin: wait_for reached the caller's deadline
                break
            except (BackendError, NetworkError) as exc:
                if not _verbs.is_transient(exc):
                    raise
                cause = exc
            await asyncio.sleep(min(poll_interval, max(0.0, deadline - loop.time())))
        raise _verbs.timed_out(approval_id, timeout, cause)

    async def _run(self, op: _verbs.Op[T]) -> T:
        request = self._vault_request(
            self._vault, op.path, op.payload, method=op.method, timeout=op.timeout
        )
        return op.parse(await self._call_vault(request), self._key)

    async def _send_vault(self, path: str, payload: dict[str, Any], call: Call) -> VaultAnswer:
        request = self._vault_request(
            self._vault, path, payload, caller=call.caller, timeout=call.timeout
        )
        return await self._call_vault(request)

    async def _call_provider(self, request: httpx.Request) -> httpx.Response:
        """The provider call through the injecting transport, read whole (see _base)."""
        failure: NetworkError | None = None
        started = time.perf_counter()
        try:
            response = await self._injecting.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            failure = error_from_httpx(exc, "provider")
        if failure is not None:
            raise failure
        return self._provider_answer(response, request, started)

    async def _call_vault(self, request: httpx.Request) -> VaultAnswer:
        """Straight to the lane when there is one: the client's redirect, auth and cookie
        steps do nothing for these calls (none is followed, sent or kept) but cost CPU."""
        if self._lane is None:
            return await self._send(self._vault, request, "vault")
        failure: NetworkError | None = None
        try:
            return await self._lane.reply(request)
        except httpx.TransportError as exc:
            failure = error_from_httpx(exc, "vault")
        raise failure

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

    async def _send_reports(self, reports: list[Report]) -> list[Outcome]:
        """A sender's reports: batched where they can be (see _reports), the rest alone."""
        outbox, delivery = self._outbox, self._outbox.round(reports)
        for batch in delivery.batches:
            request = self._report_request(BATCH_PATH, *delivery.payload(batch))
            try:
                status, body = await self._answer(request)
            except Exception as exc:  # every report of the batch shares the failure
                delivery.failed(batch, exc)
            else:
                outbox.absorb(delivery, batch, status, body)
        singles = await asyncio.gather(
            *(
                self._answer(self._report_request(AUDIT_PATH, *reports[i]))
                for i in delivery.singles
            ),
            return_exceptions=True,
        )
        for index, answer in zip(delivery.singles, singles, strict=True):
            delivery.outcomes[index] = answer if isinstance(answer, BaseException) else answer[0]
        return delivery.outcomes

    async def _answer(self, request: httpx.Request) -> tuple[int, bytes]:
        """A report's status and body: nothing else of it is read, and an ``httpx.Response``
        built and read for it cost a share of the client's CPU."""
        if self._lane is None:
            response = await self._send(self._vault, request, "vault")
            return response.status_code, response.content
        failure: NetworkError | None = None
        try:
            answer = await self._lane.answer(request)
        except httpx.TransportError as exc:
            failure = error_from_httpx(exc, "vault")
        else:
            return answer.status, answer.body
        raise failure


Vault = AlterVault
