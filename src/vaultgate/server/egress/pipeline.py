"""The request path every runtime mode shares, top to bottom:

authenticate (done by the caller), load the grant, decide, check the destination, audit, open the
secret. Injection, forwarding and the outcome record follow in egress/modes.py (one entry per
mode) and egress/relay.py (whose close records the outcome). Nothing is
decrypted before the policy and the destination have both said yes, and nothing is released before
the audit record of the use is durable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import ipaddress
import time
from dataclasses import dataclass
from datetime import datetime

import anyio.to_thread

from vaultgate.injection.credential import Credential
from vaultgate.server.approvals.hold import check_hold
from vaultgate.server.audit.events import AuditEvent
from vaultgate.server.audit.writer import AuditWriter
from vaultgate.server.auth.keys import Principal
from vaultgate.server.auth.services import KeyService
from vaultgate.server.budgets import Pricing, Spend, Spending, Usage
from vaultgate.server.clock import Clock
from vaultgate.server.egress.events import completed, use_details, use_event
from vaultgate.server.egress.guard import AddressGuard
from vaultgate.server.egress.hygiene import check_request
from vaultgate.server.egress.refusals import host_refusal
from vaultgate.server.egress.urls import Target, host_allowed, normalize_path
from vaultgate.server.errors import (
    Forbidden,
    MasterKeyUnavailable,
    NotFound,
    Unavailable,
    Unprocessable,
    VaultError,
)
from vaultgate.server.fleet.admission import Admission, StaleView
from vaultgate.server.oauth.tokens import OAUTH_TYPES, Holder, OAuthTokens
from vaultgate.server.observability.metrics import DECISION_SECONDS
from vaultgate.server.observability.tracing import span
from vaultgate.server.policy import Decision, RequestFacts, decide, denial_error
from vaultgate.server.policy.constraints import Constraints
from vaultgate.server.policy.constraints import enforce as enforce_constraints
from vaultgate.server.policy.decide import Mode
from vaultgate.server.secrets.grants import GrantContext, GrantService
from vaultgate.server.secrets.services import SecretService
from vaultgate.server.secrets.usage import UsageRecorder

# A decision refused as stale is made again on fresh data; changes are rare, so a third refusal
# in a row means the grant is being edited in a loop.
STALE_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class UseRequest:
    principal: Principal
    grant_id: str
    method: str
    target: Target
    mode: Mode
    caller: str | None
    reason: str | None
    client_ip: str | None
    request_id: str
    display_url: str  # the URL as audited: injected query values never appear in it
    nonce: str | None = (
        None  # fleet.admission.nonce_key of a signed request: one use per deployment
    )
    constraints: Constraints | None = None  # the caller's own narrowing (with_constraints)
    context: dict[str, str] | None = None  # X-Alter-Context, stored with the use event


@dataclass(frozen=True, slots=True)
class Authorized:
    grant: GrantContext
    credential: Credential
    event_id: str
    # The use's own event: what follows on the request (its outcome, an alert) completes it.
    event: AuditEvent | None = None

    def follow_up(self, use: UseRequest, now: datetime) -> AuditEvent:
        """The use's event, to be completed (`egress.events.completed`)."""
        if self.event is not None:
            return self.event
        return dataclasses.replace(
            use_event(use, self.grant, now, event="grant:use", outcome="allowed", code="allowed"),
            id=self.event_id,
        )

    at: float = 0.0  # epoch seconds of the use: its usage counts in the windows of this instant
    spending: Spending = ()  # the budgets of the grant and its ancestors, own first

    @property
    def metered(self) -> bool:
        """Whether the answer's usage must be read: a budget of the lineage counts it."""
        return bool(self.spending)

    expires_in: int | None = None  # an OAuth access token's remaining life, for /sdk/token


class Pipeline:
    def __init__(
        self,
        grants: GrantService,
        secrets: SecretService,
        audit: AuditWriter,
        clock: Clock,
        usage: UsageRecorder | None = None,
        guard: AddressGuard | None = None,
        keys: KeyService | None = None,
        pricing: Pricing | None = None,
        oauth: OAuthTokens | None = None,
    ) -> None:
        self._pricing = pricing or Pricing({})
        self._grants = grants
        self._secrets = secrets
        self._audit = audit
        self._keys = keys
        self._oauth = oauth
        self._clock = clock
        self._usage = usage or UsageRecorder(grants.engine)
        self._guard = guard or AddressGuard()
        self._loading: dict[str, asyncio.Future[GrantContext | None]] = {}
        # Plain integers, read when metrics are scraped: the event loop is their only writer.
        self.cache_hits = 0
        self.cache_misses = 0

    async def grant(self, grant_id: str) -> GrantContext | None:
        """The grant's request-path view: from the cache when fresh, else read off the loop."""
        # The cache answers nearly every request; a thread hop costs more than the rest of
        # the decision, so it is paid only on a miss.
        cached = self._grants.cached(grant_id)
        if cached is not None:
            self.cache_hits += 1
            return cached
        self.cache_misses += 1
        # One load per grant at a time: when a popular grant's entry expires, the requests
        # arriving meanwhile wait for that load instead of each starting their own.
        loading = self._loading.get(grant_id)
        if loading is None:
            loading = asyncio.ensure_future(
                anyio.to_thread.run_sync(self._grants.resolve, grant_id)
            )
            self._loading[grant_id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(grant_id, None))
        return await asyncio.shield(loading)

    async def authorize(self, use: UseRequest, grant: GrantContext | None = None) -> Authorized:
        """Decide, record the use durably, open the credential; decide again on a stale view.

        ``grant`` is the grant's state as the caller already loaded it for this request; a
        decision made again after a stale view reads it afresh.

        The use's record is refused (``StaleView``) when a revocation, rotation or policy edit
        committed anywhere after the caches behind this decision were loaded; the key and the
        grant are then read afresh and the request decided again (see fleet.admission).
        """
        for _ in range(STALE_ATTEMPTS):
            try:
                return await self._authorize_once(use, grant)
            except StaleView:
                grant = None
                if self._keys is not None:
                    principal = await anyio.to_thread.run_sync(self._keys.reload, use.principal)
                    use = dataclasses.replace(use, principal=principal)
        raise Unavailable(
            "the grant kept changing while this request was decided; retry",
            code="changing_grant",
        )

    async def _authorize_once(self, use: UseRequest, loaded: GrantContext | None) -> Authorized:
        grant = loaded or await self.grant(use.grant_id)
        if grant is None or grant.app_id != use.principal.app_id:
            # Another app's grant answers exactly like one that does not exist.
            raise NotFound("grant not found", code="grant_not_found")
        now = self._clock()
        started = time.perf_counter()
        try:
            with span("vaultgate.decide", **{"vaultgate.mode": use.mode}):
                self._check(grant, use, now)
                await self._vet_address(use)
        except VaultError as exc:
            self._audit.submit(self._event(use, grant, now, "grant:deny", "denied", exc.code))
            raise
        finally:
            DECISION_SECONDS.observe(time.perf_counter() - started)
        # A call that waits for people stops here, before any use: its handler holds it.
        check_hold(grant.policies, use.method, use.target.path)
        await self._require_master_key(use, grant, now)
        event = self._event(use, grant, now, "grant:use", "allowed", "allowed")
        admission = self._admission(use, grant, now)
        with span("vaultgate.audit.commit"):
            await self._audit.record(event, admission)
        grant, credential = await self._open(grant)
        credential, expires_in = await self.injectable(use, grant, credential)
        if self._usage.touch(grant.grant_id, grant.secret_id, use.principal.key_id, now):
            # Not awaited: last_used_at is bookkeeping and must not slow the request down.
            asyncio.get_running_loop().run_in_executor(None, self._usage.flush)
        return Authorized(
            grant,
            credential,
            event.id,
            event=event,
            at=admission.at,
            spending=admission.spending,
            expires_in=expires_in,
        )

    async def injectable(
        self, use: UseRequest, grant: GrantContext, stored: Credential
    ) -> tuple[Credential, int | None]:
        """What the injection rules get: the stored credential, or for an OAuth secret its
        current access token (and its remaining life) in place of the client credentials.

        Only the access token goes on: the injection rules never see the client secret or the
        refresh token. A token that cannot be had is the use's outcome, recorded as an error.
        """
        if stored.type not in OAUTH_TYPES:
            return stored, None
        if self._oauth is None:
            raise Unavailable("OAuth tokens are not served here", code="oauth_unavailable")
        holder = Holder(
            grant.app_id, grant.secret_id, grant.secret_version, grant.grant_id, grant.provider
        )
        try:
            token = await self._oauth.access(holder, stored)
        except VaultError as exc:
            now = self._clock()
            self._audit.submit(self._event(use, grant, now, "grant:outcome", "error", exc.code))
            raise
        return token.credential(), token.expires_in(time.time())

    async def _open(self, grant: GrantContext) -> tuple[GrantContext, Credential]:
        """The grant's current credential, even when a rotation won the race to it.

        A rotation committed between this request's decision and this point destroyed the
        version the decision saw. The request has not used any value yet, so it takes the new
        one; a deleted secret (no newer version) answers as revoked, not as a missing grant.
        """
        try:
            if self._secrets.is_cached(grant.secret_id, grant.secret_version):
                return grant, self._open_version(grant)  # AES-GCM is microseconds: no hop
            return grant, await anyio.to_thread.run_sync(self._open_version, grant)
        except NotFound as exc:
            if exc.code != "credential_revoked":
                raise
        fresh = await anyio.to_thread.run_sync(self._grants.refresh, grant.grant_id)
        if fresh is None or fresh.revoked or fresh.secret_version <= grant.secret_version:
            raise Forbidden("this grant has been revoked", code="grant_revoked") from None
        return fresh, await anyio.to_thread.run_sync(self._open_version, fresh)

    async def _require_master_key(
        self, use: UseRequest, grant: GrantContext, now: datetime
    ) -> None:
        """Refuse, before the use record, a version this node cannot unwrap (a failure, audited
        as such, never an allowed use). The read it makes is the one `_open` then finds cached."""
        check = functools.partial(
            self._secrets.require_master_key, grant.secret_id, grant.secret_version
        )
        try:
            if self._secrets.is_cached(grant.secret_id, grant.secret_version):
                check()
            else:
                await anyio.to_thread.run_sync(check)
        except MasterKeyUnavailable as exc:
            self._audit.submit(self._event(use, grant, now, "grant:deny", "error", exc.code))
            raise
        except NotFound:
            pass  # a rotation destroyed this version meanwhile: `_open` takes the new one

    def _open_version(self, grant: GrantContext) -> Credential:
        return self._secrets.open(
            grant.app_id, grant.secret_id, grant.secret_version, grant.credential_type
        )

    async def _vet_address(self, use: UseRequest) -> None:
        """Refuse, before the use record, a destination the vault would never connect to.

        Retrieve mode: the SDK connects, not the vault, so this is the only check; without it a
        grant whose hosts name an internal address (or a name that resolves to one) would hand
        its credential out for loopback or cloud metadata. The proxy modes are vetted again
        where the vault connects, on the very address it connects to.

        Every mode checks here so that one destination reads the same in the audit trail: a
        ``grant:use`` means the credential was opened for the request, so a destination that is
        refused or cannot be resolved is a ``grant:deny`` with its code (``blocked_destination``,
        ``upstream_error``), in retrieve mode and in the proxy alike. Only what happens after
        the credential is opened (an upstream that refuses the connection, times out or
        answers) is a ``grant:outcome``.
        """
        if use.mode == "retrieve":
            await self._guard.resolve_and_vet(use.target.host, use.target.port)
        else:
            await self._guard.prevet(use.target.host, use.target.port)

    def _check(self, grant: GrantContext, use: UseRequest, now: datetime) -> None:
        if grant.revoked:
            raise Forbidden("this grant has been revoked", code="grant_revoked")
        if grant.expires_at is not None and now >= grant.expires_at:
            raise Forbidden("this grant has expired", code="grant_expired")
        check_request(use.method, use.target.query, grant.policies)
        facts = RequestFacts(
            method=use.method.upper(),
            path=normalize_path(use.target.path),
            client_ip=_ip(use.client_ip),
            caller=use.caller,
            reason=use.reason,
            mode=use.mode,
            agent=use.principal.agent_name,
        )
        for policy in grant.policies[1:]:
            _raise_if_denied(decide(policy, facts, now))
        own = grant.policies[0]
        _raise_if_denied(decide(own, facts, now))
        if not host_allowed(use.target, grant.hosts):
            raise Unprocessable(
                host_refusal(use.target, grant.hosts),
                code="blocked_destination",
                field="url",
            )
        enforce_constraints(use.constraints, use.mode, use.method, grant.grant_id)

    @staticmethod
    def _admission(use: UseRequest, grant: GrantContext, now: datetime) -> Admission:
        """What the use's record must still pass: fresh view, unseen nonce, rate budgets.

        A clone spends its ancestors' budgets too: otherwise N clones would multiply a parent's
        rate limit by N. Its own comes first, and a refusal spends none of them.
        """
        lineage = grant.lineage or (grant.grant_id,)
        budgets = tuple(
            (grant_id, policy.rate_limit)
            for grant_id, policy in zip(lineage, grant.policies, strict=False)
            if policy.rate_limit is not None
        )
        spending = tuple(
            (grant_id, policy.budget)
            for grant_id, policy in zip(lineage, grant.policies, strict=False)
            if policy.budget is not None
        )
        view = min(use.principal.generation, grant.generation)
        return Admission(
            at=now.timestamp(), view=view, nonce=use.nonce, budgets=budgets, spending=spending
        )

    @staticmethod
    def _event(
        use: UseRequest,
        grant: GrantContext,
        now: datetime,
        event: str,
        outcome: str,
        code: str,
    ) -> AuditEvent:
        return use_event(use, grant, now, event=event, outcome=outcome, code=code)

    def refuse(self, use: UseRequest, grant: GrantContext, exc: VaultError) -> None:
        """Audit, as a denial, a refusal decided outside `authorize` (a fairness limit)."""
        self._audit.submit(self._event(use, grant, self._clock(), "grant:deny", "denied", exc.code))

    def record_outcome(
        self,
        use: UseRequest,
        auth: Authorized,
        *,
        status: int,
        latency_ms: int,
        bytes_out: int | None = None,
        error: str | None = None,
        usage: Usage | None = None,
    ) -> None:
        """Queue the outcome (not awaited); a metered one spends its lineage's budgets."""
        event, admission = self._outcome(use, auth, status, latency_ms, bytes_out, error, usage)
        self._audit.submit(event, admission)

    async def settle_outcome(
        self,
        use: UseRequest,
        auth: Authorized,
        *,
        status: int,
        latency_ms: int,
        bytes_out: int,
        usage: Usage,
    ) -> None:
        """Record a metered outcome durably before the answer ends: the caller's next request,
        on any node, is then decided on a spend that includes this one."""
        event, admission = self._outcome(use, auth, status, latency_ms, bytes_out, None, usage)
        await self._audit.record(event, admission)

    def _outcome(
        self,
        use: UseRequest,
        auth: Authorized,
        status: int,
        latency_ms: int,
        bytes_out: int | None,
        error: str | None,
        usage: Usage | None,
    ) -> tuple[AuditEvent, Admission | None]:
        details: dict[str, object] = dict(use_details(use.principal, use.context) or {})
        if bytes_out is not None:
            details["response_bytes"] = bytes_out
        admission = self._spent(auth, usage, details)
        now = self._clock()
        event = completed(
            auth.follow_up(use, now),
            now,
            event="grant:outcome",
            outcome="error" if error else "ok",
            code=error,
            details=details,
            upstream_status=status,
            latency_ms=latency_ms,
        )
        return event, admission

    def _spent(
        self, auth: Authorized, usage: Usage | None, details: dict[str, object]
    ) -> Admission | None:
        """The usage in the outcome's details, and the spend its budgets count."""
        if usage is None or not auth.spending:
            return None
        cost = self._pricing.cost(usage)
        details["usage"] = {
            **usage.as_details(),
            "usd_nanos": cost or 0,
            "priced": cost is not None,
        }
        spend = Spend(usage.tokens_in, usage.tokens_out, cost or 0)
        return Admission(at=auth.at, spending=auth.spending, spend=spend)


def _raise_if_denied(decision: Decision) -> None:
    if not decision.allowed:
        raise denial_error(decision, retry_after=decision.retry_after)


def _ip(raw: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    return None if raw is None else _parse_ip(raw)


@functools.lru_cache(maxsize=4096)
def _parse_ip(raw: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # Cached: a caller's address repeats on every request it makes, and parsing it costs more
    # than the policy decision that uses it. Address objects are immutable.
    try:
        return ipaddress.ip_address(raw)
    except ValueError:
        return None
