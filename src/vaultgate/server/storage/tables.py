"""The schema, as SQLAlchemy Core tables. Migrations under ``migrations/`` build exactly this."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases (SQLite hands back naive values otherwise)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


ID = sa.String(36)

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

master_keys = sa.Table(
    "master_keys",
    metadata,
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("kcv", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

apps = sa.Table(
    "apps",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("app_id", ID, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("hint", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Column("last_used_at", UTCDateTime, nullable=True),
)

secrets = sa.Table(
    "secrets",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("app_id", ID, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("provider", sa.String(64), nullable=True),
    # 32 since the OAuth types (0003_oauth); SQLite keeps its original 16, which it never enforces
    # (widening it there would mean rebuilding the table under its foreign keys).
    sa.Column(
        "credential_type", sa.String(32).with_variant(sa.String(16), "sqlite"), nullable=False
    ),
    sa.Column("injection", sa.JSON, nullable=False),
    sa.Column("allowed_hosts", sa.JSON, nullable=False),
    sa.Column("aws", sa.JSON, nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("last_used_at", UTCDateTime, nullable=True),
    sa.Column("deleted_at", UTCDateTime, nullable=True),
    # A deleted secret keeps its row (its grants answer "revoked", its history stays readable),
    # so only live secrets need unique names (`declare_postgresql`: the same index there).
    sa.Index(
        "uq_secrets_live_name",
        "app_id",
        "name",
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL"),
    ),
)

secret_versions = sa.Table(
    "secret_versions",
    metadata,
    sa.Column("secret_id", ID, sa.ForeignKey("secrets.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("ciphertext", sa.LargeBinary, nullable=True),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=True),
    sa.Column("master_key_id", sa.String(64), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("destroyed_at", UTCDateTime, nullable=True),
)

grants = sa.Table(
    "grants",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("secret_id", ID, sa.ForeignKey("secrets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("app_id", ID, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    sa.Column("parent_id", ID, sa.ForeignKey("grants.id"), nullable=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("policy", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("depth", sa.Integer, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Column("last_used_at", UTCDateTime, nullable=True),
    sa.Index("ix_grants_secret_id", "secret_id"),
    sa.Index("ix_grants_parent_id", "parent_id"),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("id", ID, nullable=False, unique=True),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("code", sa.String(64), nullable=True),
    sa.Column("app_id", ID, nullable=True),
    sa.Column("key_id", ID, nullable=True),
    sa.Column("caller", sa.String(255), nullable=True),
    sa.Column("source_ip", sa.String(64), nullable=True),
    sa.Column("portal_user", sa.String(320), nullable=True),
    sa.Column("grant_id", ID, nullable=True),
    sa.Column("secret_id", ID, nullable=True),
    sa.Column("method", sa.String(16), nullable=True),
    sa.Column("url", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("mode", sa.String(16), nullable=True),
    sa.Column("upstream_status", sa.Integer, nullable=True),
    sa.Column("latency_ms", sa.Integer, nullable=True),
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Column("details", sa.JSON, nullable=True),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("mac", sa.String(64), nullable=False),
    sa.Index("ix_audit_events_grant_id", "grant_id"),
    sa.Index("ix_audit_events_app_id", "app_id"),
    sa.Index("ix_audit_events_ts", "ts"),
)

portal_users = sa.Table(
    "portal_users",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_login_at", UTCDateTime, nullable=True),
)

# --- several workers and nodes (see fleet/): state every process must share exactly ---------

# Nonces of signed SDK requests that released a credential, one row each: the primary key makes
# a replay to another worker or node fail inside the transaction that records the use.
sdk_nonces = sa.Table(
    "sdk_nonces",
    metadata,
    sa.Column("nonce", sa.String(200), primary_key=True),  # "<key id>:<nonce>"
    sa.Column("seen_at", sa.Double, nullable=False),  # epoch seconds
    sa.Index("ix_sdk_nonces_seen_at", "seen_at"),
)

# One row per admitted use of a rate-limited grant (and of each limited ancestor): the sliding
# window is counted here, under the audit head lock, so the limit is exact across processes.
rate_hits = sa.Table(
    "rate_hits",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("grant_id", ID, nullable=False),
    sa.Column("at", sa.Double, nullable=False),  # epoch seconds
    sa.Index("ix_rate_hits_grant_id_at", "grant_id", "at"),
    sa.Index("ix_rate_hits_at", "at"),
)

# Human approvals (server/approvals). The held request and its result are sealed blobs (the
# barrier's envelope, bound to the approval's id); only what the queue lists is plain.
approval_requests = sa.Table(
    "approval_requests",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("app_id", ID, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    sa.Column("grant_id", ID, sa.ForeignKey("grants.id", ondelete="CASCADE"), nullable=False),
    sa.Column("key_id", ID, nullable=True),
    sa.Column("caller", sa.String(255), nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("eligible", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("request_sealed", sa.LargeBinary, nullable=True),
    sa.Column("result_sealed", sa.LargeBinary, nullable=True),
    sa.Column("upstream_status", sa.Integer, nullable=True),
    sa.Column("decision_reason", sa.Text, nullable=True),
    sa.Column("execution_error", sa.Text, nullable=True),
    sa.Column("claimed_by", sa.String(64), nullable=True),
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("decided_at", UTCDateTime, nullable=True),
    sa.Column("claimed_at", UTCDateTime, nullable=True),
    sa.Column("executed_at", UTCDateTime, nullable=True),
    sa.Column("result_expires_at", UTCDateTime, nullable=True),
    sa.Index("ix_approval_requests_status", "status"),
    sa.Index("ix_approval_requests_grant_id", "grant_id"),
)

approval_gates = sa.Table(
    "approval_gates",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column(
        "request_id", ID, sa.ForeignKey("approval_requests.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("approver", sa.String(320), nullable=True),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("decided_at", UTCDateTime, nullable=True),
    # Each person counts once per request: the database refuses a second gate for them.
    sa.UniqueConstraint("request_id", "approver", name="uq_approval_gates_request_approver"),
    sa.Index("ix_approval_gates_request_id", "request_id"),
)

approver_groups = sa.Table(
    "approver_groups",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("email", sa.String(320), primary_key=True),
)

# Sign-in attempts per account and per source address, shared by every worker and node. ``key``
# is a SHA-256 of "email:<address>" or "ip:<address>", so no attacker-chosen text is stored.
login_throttle = sa.Table(
    "login_throttle",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("window_start", sa.Float, nullable=False),
    sa.Index("ix_login_throttle_window_start", "window_start"),
)

# The scoped-key controls of an app key (the official client's ``keys.*``): a key without a row is
# a full app key. ``parent_key_id`` links a derived key to the key it was derived from.
key_controls = sa.Table(
    "key_controls",
    metadata,
    sa.Column("key_id", ID, sa.ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("parent_key_id", ID, sa.ForeignKey("api_keys.id"), nullable=True),
    sa.Column("key_type", sa.String(4), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("cidr_allowlist", sa.JSON, nullable=True),
    sa.Column("deprecated_at", UTCDateTime, nullable=True),
    sa.Column("grace_until", UTCDateTime, nullable=True),
    sa.Column("rate_limit_rpm", sa.Integer, nullable=True),  # requests per minute, per key
    # The key's rate as a GCRA "theoretical arrival time" (epoch seconds), moved by every request
    # it is allowed (auth/key_rates.py): one row per key, so the rate holds across the fleet.
    sa.Column("rate_tat", sa.Float, nullable=True),
    # Whose rate_tat this key spends when not its own: a rotated key's successor spends the
    # bucket of the key it replaced (the first of its rotations), so rotating never refills it.
    sa.Column("rate_key_id", ID, nullable=True),
    sa.Index("ix_key_controls_parent_key_id", "parent_key_id"),
)

# One row per live node process (fleet/heartbeat.py): which master keys it holds, when it last
# said so. Re-wrapping refuses to start while a node seen within the liveness bound lacks the key.
fleet_nodes = sa.Table(
    "fleet_nodes",
    metadata,
    sa.Column("node_id", sa.String(200), primary_key=True),  # "<VAULTGATE_NODE_NAME>/<pid>"
    sa.Column("key_ids", sa.JSON, nullable=False),  # the master key ids this node can unwrap with
    sa.Column("last_seen", sa.Double, nullable=False),  # epoch seconds, the node's clock
)

# Managed agents (the official client's ``app.agents``): an agent is a named workload of an app;
# its keys are app keys of that app (``agent_keys`` links them), so every request made with one
# is attributed to the verified agent.
agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("app_id", ID, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("display_name", sa.String(200), nullable=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("attributes", sa.JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Index("ix_agents_app_id", "app_id"),
)

agent_keys = sa.Table(
    "agent_keys",
    metadata,
    sa.Column("key_id", ID, sa.ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("agent_id", ID, sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    sa.Column("deprecated_at", UTCDateTime, nullable=True),
    sa.Index("ix_agent_keys_agent_id", "agent_id"),
)

# Budgets (server/budgets): a grant's spend per budget window, added to by the audit batch that
# admits a use or records a metered outcome, so the totals are exact across processes. One row
# per grant, period and window: the history of a grant's usage, kept.
budget_usage = sa.Table(
    "budget_usage",
    metadata,
    sa.Column("grant_id", ID, primary_key=True),
    sa.Column("period", sa.String(8), primary_key=True),  # hour, day or month
    sa.Column("window_start", sa.BigInteger, primary_key=True),  # epoch seconds, UTC
    sa.Column("requests", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("tokens_in", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("tokens_out", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("usd_nanos", sa.BigInteger, nullable=False, server_default="0"),
)

# Audit streaming (server/sinks): where the trail is pushed. The audit table itself is the outbox:
# each sink keeps a cursor (the last seq it delivered) instead of a copy of every event, so a
# request's commit writes nothing more. The webhook secret is a sealed blob (the barrier's
# envelope, bound to the sink's id), never readable back.
audit_sinks = sa.Table(
    "audit_sinks",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("filter", sa.JSON, nullable=False),
    sa.Column("secret_sealed", sa.LargeBinary, nullable=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("alert_lead_seconds", sa.Integer, nullable=True),
    sa.Column("cursor", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("next_attempt_at", sa.Double, nullable=False),  # epoch seconds
    sa.Column("delivered_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Named leases (fleet/leases.py): which process runs a singleton loop (a sink's delivery, the
# alerter) until ``until`` (epoch seconds); another process takes over once it lapses.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("until", sa.Double, nullable=False),
)

# One row per alert already raised (server/alerts): the key names the object and its window,
# and is inserted in the transaction that appends the alert event, so an alert fires once.
alert_marks = sa.Table(
    "alert_marks",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# The token state of an OAuth secret, shared by every worker and node: the current access token
# and (for a refresh-token grant) the newest refresh token, sealed together through the barrier;
# the row is what the one refresh per fleet locks. ``version`` is the secret version it belongs
# to: a rotated secret starts again from its new credential.
oauth_tokens = sa.Table(
    "oauth_tokens",
    metadata,
    sa.Column("secret_id", ID, sa.ForeignKey("secrets.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("ciphertext", sa.LargeBinary, nullable=True),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=True),
    sa.Column("master_key_id", sa.String(64), nullable=True),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("refresh_at", sa.Float, nullable=True),
    sa.Column("retry_at", sa.Float, nullable=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# OAuth clients an operator registered, one per (app, provider): the provider's endpoints come
# from a template (or are stated for ``custom``); the client secret is sealed (oauth/sealing.py).
oauth_apps = sa.Table(
    "oauth_apps",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("app_id", ID, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("template", sa.String(32), nullable=False),
    sa.Column("client_id", sa.String(512), nullable=False),
    sa.Column("client_secret", sa.LargeBinary, nullable=True),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("redirect_uri", sa.String(2048), nullable=False),
    sa.Column("endpoints", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("app_id", "provider", name="uq_oauth_apps_app_id_provider"),
)

# A Connect session: ``session_token`` (the SDK polls with it) and ``link`` (the consent URL's)
# are stored as SHA-256 only, and so is the current ``state``; the PKCE verifier is sealed.
connect_sessions = sa.Table(
    "connect_sessions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("app_id", ID, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("link_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("state_hash", sa.String(64), nullable=True, unique=True),
    sa.Column("verifier", sa.LargeBinary, nullable=True),
    sa.Column("providers", sa.JSON, nullable=False),
    sa.Column("provider", sa.String(64), nullable=True),
    sa.Column("app_user_id", sa.String(255), nullable=True),
    sa.Column("scopes", sa.JSON, nullable=True),
    sa.Column("return_url", sa.String(2048), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

# A connected account: the managed secret (type oauth2_refresh_token) that holds its tokens, the
# end user it belongs to and the account the provider reported.
oauth_connections = sa.Table(
    "oauth_connections",
    metadata,
    sa.Column("secret_id", ID, sa.ForeignKey("secrets.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("grant_id", ID, sa.ForeignKey("grants.id"), nullable=False, unique=True),
    sa.Column("app_id", ID, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("app_user_id", sa.String(255), nullable=True),
    sa.Column("account_id", sa.String(255), nullable=False),
    sa.Column("account_login", sa.String(255), nullable=True),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("disconnected_at", UTCDateTime, nullable=True),
    sa.Index("ix_oauth_connections_app_id_provider", "app_id", "provider"),
)


def declare_postgresql() -> None:
    """Add the schema's PostgreSQL-only options, when an engine on PostgreSQL is created.

    Not declared with the tables: SQLAlchemy imports a dialect to check the options named after
    it, and PostgreSQL's is about 2 MiB that a vault on SQLite never needs.
    """
    index = next(i for i in secrets.indexes if i.name == "uq_secrets_live_name")
    index.dialect_options["postgresql"]["where"] = sa.text("deleted_at IS NULL")
