"""Sinks as the API, CLI and portal see them: create, list, change, delete, with their state.

Every change is an audit event in the change's own transaction. The webhook secret goes through
the barrier (bound to the sink's id) and comes back only as ``secret_set``.
"""

from __future__ import annotations

import ipaddress
import struct
import uuid
from collections.abc import Collection
from typing import Any, Final
from urllib.parse import urlsplit

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from vaultgate.server.audit.events import AuditEvent
from vaultgate.server.audit.sink import AuditSink
from vaultgate.server.auth.services import Actor, actor_fields
from vaultgate.server.clock import Clock
from vaultgate.server.crypto import Barrier, Sealed, wrapping_key_id
from vaultgate.server.errors import Conflict, NotFound, PreconditionFailed, Unprocessable
from vaultgate.server.etags import entity_tag
from vaultgate.server.settings import Network
from vaultgate.server.sinks import outbox, transports
from vaultgate.server.sinks.models import CONFIGS, Sink, SinkCreate, SinkUpdate
from vaultgate.server.storage.engine import reading
from vaultgate.server.storage.tables import audit_sinks, leases

_AAD: Final = b"vaultgate/sink-secret/v1\x00"
SINK_CREATE: Final = "sink:create"
SINK_UPDATE: Final = "sink:update"
SINK_DELETE: Final = "sink:delete"


def _aad(sink_id: str) -> bytes:
    raw = sink_id.encode()
    return _AAD + struct.pack(">I", len(raw)) + raw


def seal_secret(barrier: Barrier, sink_id: str, secret: str) -> bytes:
    sealed = barrier.seal_secret(secret.encode(), aad=_aad(sink_id))
    return struct.pack(">I", len(sealed.wrapped_key)) + sealed.wrapped_key + sealed.ciphertext


def _split(blob: bytes) -> tuple[bytes, bytes]:
    (size,) = struct.unpack(">I", blob[:4])
    return blob[4 : 4 + size], blob[4 + size :]


def rewrap_secret(barrier: Barrier, sink_id: str, blob: bytes) -> bytes:
    """The sealed secret with its data key wrapped under the active master key (``master-key
    rewrap``, which walks every sealed column: ``server/sealed_values.py``)."""
    wrapped, ciphertext = _split(blob)
    new, _ = barrier.rewrap(wrapped, aad=_aad(sink_id))
    return struct.pack(">I", len(new)) + new + ciphertext


def secret_key_id(blob: bytes) -> str | None:
    """The master key a sealed secret's data key is wrapped under (unauthenticated until opened);
    None when it is malformed. A head of the blob that holds the wrapped key is enough."""
    if len(blob) < 4:
        return None
    wrapped, _ = _split(blob)
    return wrapping_key_id(Sealed(ciphertext=b"", wrapped_key=wrapped, master_key_id=""))


def open_secret(barrier: Barrier, sink: Sink) -> bytes:
    """The webhook key, for signing one delivery (held only for the length of the send)."""
    wrapped, ciphertext = _split(sink.secret_sealed or b"")
    sealed = Sealed(ciphertext=ciphertext, wrapped_key=wrapped, master_key_id="")
    return barrier.open_secret(sealed, aad=_aad(sink.id))


def settings_etag(sink: Sink) -> str:
    """The entity tag of what a ``PATCH`` can change (not the delivery state, which moves on
    its own, nor the write-only secret): ``GET``/``PATCH /v1/audit/sinks/{ref}`` send it,
    ``If-Match`` names it."""
    return entity_tag(
        {
            "config": sink.config,
            "filter": sink.filter.model_dump(),
            "enabled": sink.enabled,
            "alert_lead_seconds": sink.alert_lead_seconds,
        }
    )


def _check_tls_files(config: dict[str, Any]) -> None:
    """Load them as delivery will, so a missing or wrong file is a 422 now, not a failure later.

    Every node of a fleet reads the files itself: a node without them fails its deliveries with
    ``last_error`` saying so.
    """
    try:
        transports.tls_context(config["ca_file"], config["cert_file"], config["key_file"])
    except transports.TlsFileError as exc:
        field = f"config.{exc.field}"
        raise Unprocessable(f"{field}: {exc}", field=field) from None


class SinkStore:
    def __init__(
        self,
        engine: Engine,
        barrier: Barrier,
        audit: AuditSink,
        clock: Clock,
        *,
        private_networks: tuple[Network, ...] = (),
    ) -> None:
        self._engine = engine
        self._barrier = barrier
        self._audit = audit
        self._clock = clock
        self._private = private_networks

    def __repr__(self) -> str:
        return "SinkStore()"

    # --- reading ----------------------------------------------------------------------------
    def sinks(self, *, enabled_only: bool = False) -> list[Sink]:
        query = sa.select(audit_sinks).order_by(audit_sinks.c.name)
        if enabled_only:
            query = query.where(audit_sinks.c.enabled.is_(True))
        with reading(self._engine) as conn:
            return [Sink.from_row(row._mapping) for row in conn.execute(query)]

    def list(self) -> list[dict[str, Any]]:
        return [self.public(sink) for sink in self.sinks()]

    def find(self, ref: str) -> Sink:
        """A sink by id or by name; 404 otherwise."""
        query = sa.select(audit_sinks).where(
            sa.or_(audit_sinks.c.id == ref, audit_sinks.c.name == ref)
        )
        with reading(self._engine) as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"there is no audit sink {ref!r}", code="sink_not_found")
        return Sink.from_row(row._mapping)

    def public(self, sink: Sink) -> dict[str, Any]:
        now = self._clock()
        with reading(self._engine) as conn:
            lag = outbox.lag(conn, sink.cursor, now)
        return {
            "id": sink.id,
            "name": sink.name,
            "kind": sink.kind,
            "config": sink.config,
            "filter": sink.filter.model_dump(),
            "enabled": sink.enabled,
            "secret_set": sink.secret_sealed is not None,
            "alert_lead_seconds": sink.alert_lead_seconds,
            "created_at": sink.created_at.isoformat(),
            "updated_at": sink.updated_at.isoformat(),
            "state": {
                "cursor": sink.cursor,
                "lag_events": lag.events,
                "lag_seconds": round(lag.seconds, 3),
                "attempts": sink.attempts,
                "last_error": sink.last_error,
                "next_attempt_at": (
                    outbox.utc(sink.next_attempt_at).isoformat() if sink.attempts else None
                ),
                "delivered_at": sink.delivered_at.isoformat() if sink.delivered_at else None,
            },
        }

    # --- changing ---------------------------------------------------------------------------
    def create(self, body: SinkCreate, actor: Actor) -> dict[str, Any]:
        config = self._config(body.kind, body.config)
        if body.kind == "webhook" and body.secret is None:
            raise Unprocessable("secret: a webhook sink needs a signing secret", field="secret")
        now, sink_id = self._clock(), str(uuid.uuid4())
        row: dict[str, Any] = {
            "id": sink_id,
            "name": body.name,
            "kind": body.kind,
            "config": config,
            "filter": body.filter.model_dump(),
            "secret_sealed": self._sealed(sink_id, body.secret),
            "enabled": body.enabled,
            "alert_lead_seconds": body.alert_lead_seconds,
            "attempts": 0,
            "last_error": None,
            "next_attempt_at": 0.0,
            "delivered_at": None,
            "created_at": now,
            "updated_at": now,
        }
        with self._engine.begin() as conn:
            if conn.execute(
                sa.select(audit_sinks.c.id).where(audit_sinks.c.name == body.name)
            ).first():
                raise Conflict(
                    f"name: a sink named {body.name!r} exists", code="duplicate_name", field="name"
                )
            # The sink's own creation event is past its start: "now" means after this commit.
            row["cursor"] = 0 if body.start == "beginning" else outbox.head_seq(conn) + 1
            conn.execute(audit_sinks.insert().values(row))
            self._record(conn, SINK_CREATE, row, actor)
        return self.public(self.find(sink_id))

    def update(
        self, ref: str, body: SinkUpdate, actor: Actor, *, expected: Collection[str] | None = None
    ) -> Sink:
        """The sink as changed, read again. ``expected``: the ``settings_etag`` tags the change
        may be based on; settings changed since are a ``PreconditionFailed``, nothing written."""
        sink = self.find(ref)
        values: dict[str, Any] = {"updated_at": self._clock()}
        if body.config is not None:
            values["config"] = self._config(sink.kind, body.config)
        if body.secret is not None:
            values["secret_sealed"] = self._sealed(sink.id, body.secret)
        if body.filter is not None:
            values["filter"] = body.filter.model_dump()
        for name in ("enabled", "alert_lead_seconds"):
            if name in body.model_fields_set:
                values[name] = getattr(body, name)
        with self._engine.begin() as conn:
            if expected is not None:
                # Read again under the row's lock: the check and the write see the same version.
                locked = sa.select(audit_sinks).where(audit_sinks.c.id == sink.id)
                row = conn.execute(locked.with_for_update()).first()
                if row is None:
                    raise NotFound(f"there is no audit sink {ref!r}", code="sink_not_found")
                current = settings_etag(Sink.from_row(row._mapping))
                if current not in expected:
                    raise PreconditionFailed(
                        f"audit sink {sink.name!r} has changed since it was read; read it again "
                        "and re-apply the change",
                        code="sink_changed",
                        headers={"ETag": current},
                    )
            conn.execute(sa.update(audit_sinks).where(audit_sinks.c.id == sink.id).values(values))
            self._record(conn, SINK_UPDATE, {"id": sink.id, "name": sink.name, **values}, actor)
        return self.find(sink.id)

    def delete(self, ref: str, actor: Actor) -> None:
        sink = self.find(ref)
        with self._engine.begin() as conn:
            conn.execute(sa.delete(audit_sinks).where(audit_sinks.c.id == sink.id))
            conn.execute(sa.delete(leases).where(leases.c.name == outbox.lease_name(sink.id)))
            self._record(conn, SINK_DELETE, {"id": sink.id, "name": sink.name}, actor)

    def _record(self, conn: sa.Connection, event: str, row: dict[str, Any], actor: Actor) -> None:
        # Names and settings only: the sealed secret is reduced to whether one was set.
        shown = {
            k: v for k, v in row.items() if k in ("name", "kind", "config", "filter", "enabled")
        }
        if "secret_sealed" in row:
            shown["secret_set"] = row["secret_sealed"] is not None
        details = {"sink_id": row["id"], **shown}
        self._audit.append(
            conn,
            AuditEvent.new(
                event=event, outcome="ok", now=self._clock(), details=details, **actor_fields(actor)
            ),
        )

    def _sealed(self, sink_id: str, secret: str | None) -> bytes | None:
        return None if secret is None else seal_secret(self._barrier, sink_id, secret)

    def _config(self, kind: str, raw: dict[str, Any]) -> dict[str, Any]:
        try:
            config = CONFIGS[kind].model_validate(raw).model_dump()
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in ("config", *first["loc"]))
            raise Unprocessable(f"{where}: {first['msg']}", field=where) from None
        if kind == "webhook":
            self._check_url(config["url"])
        if kind == "syslog" and config["tls"]:
            _check_tls_files(config)
        return config

    def _check_url(self, url: str) -> None:
        """https, or plain http to an address the operator allowed as private (tests, dev)."""
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
            parts.port  # noqa: B018 -- raises ValueError on a bad port
        except ValueError:
            raise Unprocessable("config.url: not a URL", field="config.url") from None
        if not host or parts.username or parts.password or parts.fragment:
            raise Unprocessable(
                "config.url: needs a host, and no user, password or fragment", field="config.url"
            )
        if parts.scheme == "https":
            return
        if parts.scheme == "http" and self._is_private_allowed(host):
            return
        raise Unprocessable(
            "config.url: a webhook must be https (http only to an address allowed by "
            "--allow-private-destinations)",
            field="config.url",
        )

    def _is_private_allowed(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._private)
