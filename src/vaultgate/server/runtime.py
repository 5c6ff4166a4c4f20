"""Everything a running node holds, built once from Settings and handed to the API layer.

Nodes keep no state of their own beyond caches: several can serve one PostgreSQL database.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from vaultgate.server.agents.services import AgentService
from vaultgate.server.audit.sink import AuditSink
from vaultgate.server.audit.writer import AuditWriter
from vaultgate.server.auth.key_controls import KeyControls
from vaultgate.server.auth.sdk import NonceCache, SdkAuthenticator
from vaultgate.server.auth.services import KeyService
from vaultgate.server.budgets import Pricing, load_pricing
from vaultgate.server.clock import Clock, utcnow
from vaultgate.server.crypto import API_KEY_HASH, AUDIT_CHAIN, PORTAL_SESSION, Barrier
from vaultgate.server.egress.client import UpstreamClient, UpstreamTimeouts
from vaultgate.server.egress.guard import AddressGuard
from vaultgate.server.egress.pipeline import Pipeline
from vaultgate.server.fleet.admission import Admitter
from vaultgate.server.fleet.changes import Changes
from vaultgate.server.fleet.heartbeat import Heartbeat, node_id
from vaultgate.server.fleet.memory import Trimmer, glibc_trim
from vaultgate.server.keys_at_rest import NodeKeys, check_against_database, load_keyring
from vaultgate.server.oauth import OAuthTokens, TokenStore
from vaultgate.server.oauth.client import request_token
from vaultgate.server.observability.tracing import Tracing
from vaultgate.server.providers import Catalogue, load_catalogue
from vaultgate.server.secrets.cache import GrantCache
from vaultgate.server.secrets.grants import GrantService
from vaultgate.server.secrets.services import SecretService
from vaultgate.server.settings import Settings
from vaultgate.server.storage.engine import create_engine, migrate

if TYPE_CHECKING:
    from vaultgate.server.alerts import Alerter
    from vaultgate.server.approvals.services import ApprovalService
    from vaultgate.server.oauth.apps import OAuthAppService
    from vaultgate.server.oauth.connect import ConnectService
    from vaultgate.server.sinks import Deliverer, SinkStore


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    barrier: Barrier
    audit: AuditWriter
    keys: KeyService
    secrets: SecretService
    grants: GrantService
    pipeline: Pipeline
    upstream: UpstreamClient
    sdk_auth: SdkAuthenticator
    catalogue: Catalogue
    cache: GrantCache
    clock: Clock
    session_key: bytes
    audit_key: bytes
    timeouts: UpstreamTimeouts
    guard: AddressGuard
    key_controls: KeyControls
    agents: AgentService
    changes: Changes = field(default_factory=Changes)
    tracing: Tracing | None = None  # set when VAULTGATE_OTLP_ENDPOINT is
    heartbeat: Heartbeat | None = None
    pricing: Pricing = field(default_factory=lambda: Pricing({}))

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        engine: Engine | None = None,
        migrated: bool = False,
    ) -> Runtime:
        """Open the database and the key set; refuses (MasterKeyError) a key that does not fit.

        ``migrated``: the schema is known to be current (a supervisor's worker, whose parent
        migrated it before starting any), so alembic is not even imported.
        """
        keyring = load_keyring(settings)
        engine = engine or create_engine(settings.db_url, durability=settings.durability)
        if not migrated:
            migrate(engine)
        check_against_database(engine, keyring)
        barrier = Barrier(keyring)
        audit_key = barrier.derive_key(AUDIT_CHAIN)
        sink = AuditSink(audit_key)
        changes = Changes()
        writer = AuditWriter(engine, audit_key, admitter=Admitter(changes))
        cache = GrantCache(settings.cache_ttl, changes)
        catalogue = load_catalogue()
        hash_key = barrier.derive_key(API_KEY_HASH)
        keys = KeyService(engine, hash_key, sink, clock, settings.cache_ttl, changes)
        secrets = SecretService(
            engine,
            barrier,
            catalogue,
            sink,
            clock,
            cache,
            keys=NodeKeys(settings, barrier),
        )
        grants = GrantService(engine, sink, clock, cache)
        guard = AddressGuard(settings.allow_private_destinations)
        pricing = load_pricing(settings.pricing_file)
        token_store = TokenStore(
            engine,
            barrier,
            sink,
            clock,
            time.time,
            request_token,
            margin=settings.oauth_refresh_margin,
            timeout=settings.oauth_token_timeout,
        )
        oauth = OAuthTokens(token_store.obtain, guard, time.time)
        return cls(
            settings=settings,
            engine=engine,
            barrier=barrier,
            audit=writer,
            keys=keys,
            secrets=secrets,
            grants=grants,
            pipeline=Pipeline(
                grants, secrets, writer, clock, guard=guard, keys=keys, pricing=pricing, oauth=oauth
            ),
            upstream=UpstreamClient.from_settings(guard, settings),
            sdk_auth=SdkAuthenticator(keys, NonceCache(), time.time),
            catalogue=catalogue,
            cache=cache,
            clock=clock,
            session_key=barrier.derive_key(PORTAL_SESSION),
            audit_key=audit_key,
            timeouts=UpstreamTimeouts.from_settings(settings),
            guard=guard,
            key_controls=KeyControls(engine, keys, clock, settings.cache_ttl),
            agents=AgentService(engine, keys, sink, clock),
            changes=changes,
            tracing=(
                Tracing(settings.otlp_endpoint, service_name=settings.otel_service_name)
                if settings.otlp_endpoint
                else None
            ),
            heartbeat=Heartbeat(
                engine,
                node_id(settings.node_name),
                secrets.keys.refresh,
                after_beat=Trimmer(glibc_trim()).after_beat,
            ),
            pricing=pricing,
        )

    @functools.cached_property
    def approvals(self) -> ApprovalService:
        # Built on first use, from the parts above; imported here because the executor needs
        # this module's Runtime (and api.forward) to send a call.
        from vaultgate.server.approvals.executor import execute
        from vaultgate.server.approvals.notify import Notifier
        from vaultgate.server.approvals.services import ApprovalService

        settings = self.settings
        service = ApprovalService(
            self.engine,
            self.barrier,
            self.audit_key,
            self.clock,
            portal_base=settings.public_url or f"http://{settings.host}:{settings.port}",
            lease_seconds=settings.connect_timeout + settings.read_timeout + 60,
        )
        service.executor = lambda request_id: execute(self, request_id)
        service.notifier = Notifier(
            settings.approval_webhook_url,
            settings.approval_webhook_secret,
            backoff=settings.approval_webhook_backoff_ms / 1000,
        )
        return service

    @functools.cached_property
    def sinks(self) -> SinkStore:
        from vaultgate.server.sinks import SinkStore

        return SinkStore(
            self.engine,
            self.barrier,
            AuditSink(self.audit_key),
            self.clock,
            private_networks=self.settings.allow_private_destinations,
        )

    @functools.cached_property
    def deliverer(self) -> Deliverer:
        from vaultgate.server.sinks import Deliverer
        from vaultgate.server.sinks.delivery import DeliverySettings

        s = self.settings
        config = DeliverySettings(
            poll_seconds=s.sink_poll_seconds,
            batch=s.sink_batch,
            backoff_seconds=s.sink_backoff_seconds,
            max_backoff_seconds=s.sink_max_backoff_seconds,
            lease_seconds=s.sink_lease_seconds,
            timeout_seconds=s.sink_timeout_seconds,
        )
        return Deliverer(
            self.engine,
            self.sinks,
            self.barrier,
            self.clock,
            config,
            default_lead=s.alert_lead_seconds,
        )

    @functools.cached_property
    def alerter(self) -> Alerter:
        from vaultgate.server.alerts import Alerter, AlertSettings

        s = self.settings
        config = AlertSettings(
            lead_seconds=s.alert_lead_seconds,
            interval_seconds=s.alert_interval_seconds,
            denial_spike_count=s.alert_denial_spike_count,
            denial_spike_window=s.alert_denial_spike_window,
            sink_lag_events=s.alert_sink_lag_events,
            sink_lag_seconds=s.alert_sink_lag_seconds,
            verify_interval_seconds=s.alert_verify_interval_seconds,
            lease_seconds=s.sink_lease_seconds,
        )
        return Alerter(
            self.engine, AuditSink(self.audit_key), self.audit_key, self.sinks, self.clock, config
        )

    @property
    def public_base(self) -> str:
        settings = self.settings
        return settings.public_url or f"http://{settings.host}:{settings.port}"

    @functools.cached_property
    def oauth_apps(self) -> OAuthAppService:
        from vaultgate.server.oauth.apps import OAuthAppService

        return OAuthAppService(
            self.engine,
            self.barrier,
            AuditSink(self.audit_key),
            self.clock,
            callback_url=f"{self.public_base}/connect/callback",
            # Plain-http endpoints only where private destinations are allowed (tests, dev).
            allow_http=bool(self.settings.allow_private_destinations),
        )

    @functools.cached_property
    def connect(self) -> ConnectService:
        from vaultgate.server.oauth.connect import ConnectService

        return ConnectService(
            self.engine,
            self.barrier,
            AuditSink(self.audit_key),
            self.clock,
            self.oauth_apps,
            self.secrets,
            self.guard,
            public_base=self.public_base,
        )

    async def start(self) -> None:
        self.changes.start(self.engine)
        if self.heartbeat is not None:
            self.heartbeat.start()
        _ = self.approvals  # built once, before any request thread could race to build two
        self.audit.start()
        await self.upstream.start()
        # Off the request path: they read the audit table after the fact (sinks/, alerts/).
        await self.deliverer.start()
        await self.alerter.start()

    async def close(self) -> None:
        await self.alerter.stop()
        await self.deliverer.stop()
        await self.upstream.close()
        self.audit.stop()
        if self.heartbeat is not None:
            self.heartbeat.stop()
        self.changes.stop()
        if self.tracing is not None:
            self.tracing.shutdown()  # exports what the batch still holds
        self.engine.dispose()
