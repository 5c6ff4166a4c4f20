"""``SyncVault``: the blocking twin of ``AlterVault``, line for line; ``_protocol`` is shared."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

import httpx

from . import _verbs
from ._base import BaseVault
from ._calls import RESERVED_HEADERS, Call, Params
from ._errors import BackendError, NetworkError, VaultgateError, error_from_httpx
from ._keys import SyncKeys
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
    report_status,
    token_payload,
)
from ._reports import DEFAULT_BACKLOG, Outcome, Report, ThreadOutbox
from ._synclane import SyncLane, SyncLanes
from ._transport import GRANT_EXTENSION, SyncInjectingTransport

T = TypeVar("T")


class SyncVault(BaseVault):
    """Use stored credentials by grant id: ``with SyncVault(api_key=...) as vault``.

    Settings, signing and client options come from ``BaseVault``; this class only sends.
    """

    _vault: httpx.Client
    _outbox: ThreadOutbox
    _lane: SyncLane | None
    keys: SyncKeys

    def __init__(
        self,
        api_key: str,
        *,
        caller: str | None = None,
        caller_type: CallerType = CallerType.SERVICE,
        base_url: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        upstream_transport: httpx.BaseTransport | None = None,
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
        self._outbox = ThreadOutbox(self._send_reports, max_pending_reports)
        # Small vault calls take the light lane (see _synclane); streams keep httpx's transport.
        self._lane = None if transport else SyncLane(self.base_url)
        self._vault = httpx.Client(**self._vault_options(transport))
        self._injecting = SyncInjectingTransport(upstream_transport or SyncLanes())
        self._upstream = httpx.Client(**self._upstream_options(self._injecting))
        self._upstream_headers = self._upstream.headers
        self.keys = SyncKeys(self)

    def __enter__(self) -> SyncVault:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Deliver the queued outcome reports, stop their thread, then close both clients."""
        self._outbox.drain()
        if self._lane is not None:
            self._lane.close()
        self._vault.close()
        self._upstream.close()

    def request(
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
        timeout: float | None = None,
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
        answer = self._send_vault(TOKEN_PATH, token_payload(call), call)
        grant = TokenGrant.parse(answer, api_key=self._key)
        outgoing = self._provider_request(call)
        outgoing.extensions[GRANT_EXTENSION] = grant
        started = time.monotonic()
        try:
            response = self._call_provider(outgoing)
        except NetworkError:
            self._report(call, grant, outgoing, None, started)
            raise
        self._report(call, grant, outgoing, response, started)
        return raise_for_provider(response, grant.secrets)

    def proxy_request(
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
        timeout: float | None = None,
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
        answer = self._send_vault(PROXY_PATH, proxy_payload(call), call)
        return proxy_outcome(answer, call, api_key=self._key)

    @contextmanager
    def stream(
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
        timeout: float | None = None,
        caller: str | None = None,
    ) -> Iterator[httpx.Response]:
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
        response = self._send(self._vault, request, "vault", stream=True)
        try:
            if response.status_code >= 400:
                response.read()
                raise_for_stream(response, self._key)
            yield response
        finally:
            response.close()

    def list_grants(
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
        return self._run(op)

    def mint_grant(
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
        return self._run(op)

    def revoke_grant(self, grant_id: str, *, reason: str | None = None) -> RevokeGrantResult:
        """Revoke the grant and every grant made from it; ``reason`` goes to the audit trail."""
        return self._run(_verbs.revoke_grant(grant_id, reason=reason))

    def get_approval_status(self, approval_id: str, *, wait: float | None = 0) -> ApprovalStatus:
        """One poll; ``wait`` (up to 25 s) holds it open until the approval changes."""
        return self._run(_verbs.approval_status(approval_id, wait=wait))

    def await_approval(
        self, approval_id: str, *, timeout: float = 300.0, poll_interval: float = 2.0
    ) -> ApprovalResult:
        """Wait for the decision: the approved call's answer, or the typed ``ApprovalError``."""
        _verbs.check_wait(timeout, poll_interval)
        deadline = time.monotonic() + timeout
        cause: VaultgateError | None = None
        while (left := deadline - time.monotonic()) > 0:
            poll = _verbs.approval_status(approval_id, wait=_verbs.server_wait(left))
            # No wait_for here: the read timeout keeps a held poll inside the caller's deadline.
            poll = dataclasses.replace(poll, timeout=min(poll.timeout or self.timeout, left))
            try:
                status = self._run(poll)
                if status.is_terminal and (status.status != "executed" or status.has_result):
                    _verbs.raise_if_unsuccessful(approval_id, status)
                    return self._run(_verbs.approval_result(approval_id))
                cause = None
            except (BackendError, NetworkError) as exc:
                if not _verbs.is_transient(exc):
                    raise
                cause = exc
            time.sleep(min(poll_interval, max(0.0, deadline - time.monotonic())))
        raise _verbs.timed_out(approval_id, timeout, cause)

    def _run(self, op: _verbs.Op[T]) -> T:
        request = self._vault_request(
            self._vault, op.path, op.payload, method=op.method, timeout=op.timeout
        )
        return op.parse(self._call_vault(request), self._key)

    def _send_vault(self, path: str, payload: dict[str, Any], call: Call) -> VaultAnswer:
        request = self._vault_request(
            self._vault, path, payload, caller=call.caller, timeout=call.timeout
        )
        return self._call_vault(request)

    def _call_vault(self, request: httpx.Request) -> VaultAnswer:
        """Straight to the lane when there is one: the client's redirect, auth and cookie
        steps do nothing for these calls (none is followed, sent or kept) but cost CPU."""
        if self._lane is None:
            return self._send(self._vault, request, "vault")
        failure: NetworkError | None = None
        try:
            return self._lane.reply(request)
        except httpx.TransportError as exc:
            failure = error_from_httpx(exc, "vault")
        raise failure

    def _call_provider(self, request: httpx.Request) -> httpx.Response:
        """The provider call through the injecting transport, read whole (see _base)."""
        failure: NetworkError | None = None
        started = time.perf_counter()
        try:
            response = self._injecting.handle_request(request)
            try:
                response.read()
            finally:
                response.close()
        except httpx.TransportError as exc:
            failure = error_from_httpx(exc, "provider")
        if failure is not None:
            raise failure
        return self._provider_answer(response, request, started)

    @staticmethod
    def _send(
        client: httpx.Client, request: httpx.Request, where: str, *, stream: bool = False
    ) -> httpx.Response:
        failure: NetworkError | None = None
        try:
            return client.send(request, stream=stream)
        except httpx.TransportError as exc:
            failure = error_from_httpx(exc, where)
        # Raised outside the handler so no httpx exception (holding the request) is chained.
        raise failure

    def _send_reports(self, reports: list[Report]) -> list[Outcome]:
        """The report thread's batch: its reports batched where they can be (see _reports),
        the requests pipelined on the light lane, else sent one by one."""
        outbox, delivery = self._outbox, self._outbox.round(reports)
        batches, singles = delivery.batches, delivery.singles
        delivery.singles = []
        requests = [self._report_request(BATCH_PATH, *delivery.payload(b)) for b in batches]
        requests += [self._report_request(AUDIT_PATH, *reports[i]) for i in singles]
        answers = self._send_all(requests)
        for batch, answer in zip(batches, answers, strict=False):
            if isinstance(answer, BaseException):
                delivery.failed(batch, answer)
            else:
                outbox.absorb(delivery, batch, *answer)
        for index, answer in zip(singles, answers[len(batches) :], strict=True):
            delivery.outcomes[index] = answer if isinstance(answer, BaseException) else answer[0]
        # What the vault refused as a batch goes again, each report alone.
        again = [self._report_request(AUDIT_PATH, *reports[i]) for i in delivery.singles]
        for index, answer in zip(delivery.singles, self._send_all(again), strict=True):
            delivery.outcomes[index] = answer if isinstance(answer, BaseException) else answer[0]
        return delivery.outcomes

    def _send_all(self, requests: list[httpx.Request]) -> list[tuple[int, bytes] | BaseException]:
        """Each request's status and body (a resent report's replay refusal counted as
        delivered: ``report_status``), or why it has none."""
        if self._lane is None or not requests:
            return [self._try_answer(request) for request in requests]
        outcomes: list[tuple[int, bytes] | BaseException] = []
        for sent in self._lane.pipeline(requests):
            if sent.answer is not None:
                answer = sent.answer
                status = report_status(answer.status, answer.body, resent=sent.resent)
                outcomes.append((status, answer.body))
            else:
                assert sent.error is not None
                outcomes.append(error_from_httpx(sent.error, "vault"))
        return outcomes

    def _try_answer(self, request: httpx.Request) -> tuple[int, bytes] | BaseException:
        try:
            response = self._send(self._vault, request, "vault")
        except Exception as exc:  # one report's failure is its outcome, not the batch's
            return exc
        return response.status_code, response.content
