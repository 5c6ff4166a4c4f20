"""Typed settings, loaded once at start from flags and ``VAULTGATE_*`` variables, then passed in.

Nothing else in the server reads the environment: ``load_settings(env=...)`` takes the mapping,
so tests hand in a dict instead of patching ``os.environ``.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vaultgate.injection.credential import REDACTED

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORT = 8200
DEFAULT_DATA_DIR = Path(".vaultgate")


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable or flag."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = None
    master_key: str | None = field(default=None, repr=False)
    master_key_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    allow_private_destinations: tuple[Network, ...] = ()
    trusted_proxies: tuple[Network, ...] = ()
    log_level: str = "info"
    max_request_body: int = 10 * 1024 * 1024
    max_response_body: int = 50 * 1024 * 1024
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    cache_ttl: float = 2.0
    # The proxy's HTTP limits (README, "The proxy's HTTP behaviour"); VAULTGATE_<NAME> sets each.
    upstream_connections: int = 256  # the pool, all upstreams together
    upstream_connections_per_host: int = 32  # so one slow upstream cannot take the whole pool
    max_inflight_per_grant: int = 64  # concurrent proxied requests of one grant, per node
    first_byte_timeout: float = 120.0  # request sent -> the upstream's response headers
    header_timeout: float = 10.0  # connection open (or previous answer) -> request headers read
    max_connections: int = 4096  # open client connections per node; more are answered 503
    # "full": a commit (a use record above all) is on disk before it returns; "normal" accepts
    # losing the last commits to an OS crash or power loss (storage/engine.py).
    durability: str = "full"
    # The event loop `serve` runs on: "asyncio" (the default), "uvloop", or "auto" (uvloop when
    # installed). asyncio's loop relays an upstream's early answer that is followed by a reset
    # mid-upload every time (egress/sockets.py); uvloop writes from C and loses about half of
    # those answers to a 502, for some 5% less CPU per request at concurrency 1 (README).
    event_loop: str = "asyncio"
    # Approvals: the base of the portal links handed to approvers, the largest body held.
    public_url: str | None = None
    approval_max_body: int = 256 * 1024
    approval_webhook_url: str | None = None
    approval_webhook_secret: str | None = field(default=None, repr=False)
    approval_webhook_backoff_ms: int = 1000
    # Traces (observability/tracing.py): off unless an OTLP/HTTP endpoint is given.
    otlp_endpoint: str | None = None
    otel_service_name: str = "vaultgate"
    # How this node names itself in the fleet's heartbeat rows (fleet/heartbeat.py).
    node_name: str = field(default_factory=socket.gethostname)
    # Budgets: a JSON price table whose models replace the shipped ones (budgets/pricing.py).
    pricing_file: Path | None = None
    # Audit sinks and alerts (server/sinks, server/alerts); VAULTGATE_<NAME> sets each.
    sink_poll_seconds: float = 0.5
    sink_batch: int = 500
    sink_backoff_seconds: float = 1.0
    sink_max_backoff_seconds: float = 300.0
    sink_lease_seconds: float = 30.0
    sink_timeout_seconds: float = 10.0
    alert_lead_seconds: int = 86400
    alert_interval_seconds: float = 10.0
    alert_denial_spike_count: int = 20
    alert_denial_spike_window: int = 60
    alert_sink_lag_events: int = 1000
    alert_sink_lag_seconds: float = 300.0
    alert_verify_interval_seconds: float = 3600.0
    oauth_refresh_margin: int = 60  # seconds before expiry when an access token is refreshed
    oauth_token_timeout: int = 5  # per token request; below SQLite's busy timeout (10 s)

    def __repr__(self) -> str:
        shown = REDACTED if self.master_key else None
        return (
            f"Settings(data_dir={str(self.data_dir)!r}, database_url={safe_url(self.db_url)!r}, "
            f"master_key={shown!r}, host={self.host!r}, port={self.port})"
        )

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'vaultgate.db').resolve()}"

    @property
    def key_file(self) -> Path:
        return self.master_key_file or self.data_dir / "master.key"

    def with_overrides(self, **overrides: Any) -> Settings:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def safe_url(url: str) -> str:
    """The database URL without its password, for logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def parse_networks(values: Sequence[str] | str, name: str) -> tuple[Network, ...]:
    items = values.replace(",", " ").split() if isinstance(values, str) else list(values)
    try:
        return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item)
    except ValueError as exc:
        raise SettingsError(f"{name}: not a CIDR list ({exc})") from None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected an integer") from None


def _durability(raw: str) -> str:
    if raw.strip().lower() not in ("full", "normal"):
        raise SettingsError("VAULTGATE_DURABILITY: expected full or normal")
    return raw.strip().lower()


EVENT_LOOPS = ("asyncio", "uvloop", "auto")


def _event_loop(raw: str) -> str:
    value = raw.strip().lower() or "asyncio"
    if value not in EVENT_LOOPS:
        raise SettingsError("VAULTGATE_EVENT_LOOP: expected asyncio, uvloop or auto")
    return value


def _otlp_endpoint(raw: str) -> str | None:
    url = raw.strip()
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise SettingsError(
            "VAULTGATE_OTLP_ENDPOINT: expected an http:// or https:// URL "
            "(the collector's OTLP/HTTP traces endpoint, e.g. http://127.0.0.1:4318/v1/traces)"
        )
    return url


def load_settings(env: Mapping[str, str], **flags: Any) -> Settings:
    """Settings from the environment mapping; command-line flags (not None) take precedence."""
    base = Settings(
        data_dir=Path(env.get("VAULTGATE_DATA_DIR") or DEFAULT_DATA_DIR),
        database_url=env.get("VAULTGATE_DATABASE_URL") or None,
        master_key=env.get("VAULTGATE_MASTER_KEY") or None,
        master_key_file=Path(p) if (p := env.get("VAULTGATE_MASTER_KEY_FILE")) else None,
        host=env.get("VAULTGATE_HOST") or "127.0.0.1",
        port=_int(env, "VAULTGATE_PORT", DEFAULT_PORT),
        allow_private_destinations=parse_networks(
            env.get("VAULTGATE_ALLOW_PRIVATE_DESTINATIONS", ""),
            "VAULTGATE_ALLOW_PRIVATE_DESTINATIONS",
        ),
        trusted_proxies=parse_networks(
            env.get("VAULTGATE_TRUSTED_PROXIES", ""), "VAULTGATE_TRUSTED_PROXIES"
        ),
        log_level=env.get("VAULTGATE_LOG_LEVEL") or "info",
        durability=_durability(env.get("VAULTGATE_DURABILITY") or "full"),
        event_loop=_event_loop(env.get("VAULTGATE_EVENT_LOOP") or ""),
        public_url=(env.get("VAULTGATE_PUBLIC_URL") or "").rstrip("/") or None,
        approval_max_body=_int(env, "VAULTGATE_APPROVAL_MAX_BODY", 256 * 1024),
        approval_webhook_url=env.get("VAULTGATE_APPROVAL_WEBHOOK_URL") or None,
        approval_webhook_secret=env.get("VAULTGATE_APPROVAL_WEBHOOK_SECRET") or None,
        approval_webhook_backoff_ms=_int(env, "VAULTGATE_APPROVAL_WEBHOOK_BACKOFF_MS", 1000),
        otlp_endpoint=_otlp_endpoint(env.get("VAULTGATE_OTLP_ENDPOINT") or ""),
        otel_service_name=env.get("VAULTGATE_OTEL_SERVICE_NAME") or "vaultgate",
        node_name=env.get("VAULTGATE_NODE_NAME") or socket.gethostname(),
        oauth_refresh_margin=_int(env, "VAULTGATE_OAUTH_REFRESH_MARGIN", 60),
        oauth_token_timeout=_int(env, "VAULTGATE_OAUTH_TOKEN_TIMEOUT", 5),
    )
    base = replace(base, **proxy_limits(env))
    if pricing := env.get("VAULTGATE_PRICING_FILE"):
        base = replace(base, pricing_file=Path(pricing))
    base = replace(base, **sink_settings(env))
    for name in ("allow_private_destinations", "trusted_proxies"):
        if flags.get(name):
            flags[name] = parse_networks(flags[name], "--" + name.replace("_", "-"))
    if "data_dir" in flags and flags["data_dir"] is not None:
        flags["data_dir"] = Path(flags["data_dir"])
    settings = base.with_overrides(**flags)
    if not 0 < settings.port < 65536:
        raise SettingsError("port: must be between 1 and 65535")
    return settings


_PROXY_INTS: tuple[str, ...] = (
    "upstream_connections",
    "upstream_connections_per_host",
    "max_inflight_per_grant",
    "max_connections",
)
_PROXY_SECONDS = ("read_timeout", "first_byte_timeout", "header_timeout", "cache_ttl")


def proxy_limits(env: Mapping[str, str]) -> dict[str, Any]:
    """The proxy's limits set in ``env`` (``VAULTGATE_MAX_INFLIGHT_PER_GRANT=128``...)."""
    return _positive_numbers(env, _PROXY_INTS, _PROXY_SECONDS)


def _positive_numbers(
    env: Mapping[str, str], ints: tuple[str, ...], seconds: tuple[str, ...]
) -> dict[str, Any]:
    """``VAULTGATE_<NAME>`` of each name given in ``env``: an integer or a number of seconds,
    greater than 0; the names not set are left out (their defaults stand)."""
    found: dict[str, Any] = {}
    for name in (*ints, *seconds):
        variable = "VAULTGATE_" + name.upper()
        raw = env.get(variable)
        if raw is None or raw == "":
            continue
        try:
            value: float = int(raw) if name in ints else float(raw)
        except ValueError:
            kind = "an integer" if name in ints else "a number of seconds"
            raise SettingsError(f"{variable}: expected {kind}") from None
        if not value > 0:
            raise SettingsError(f"{variable}: must be greater than 0")
        found[name] = value
    return found


_SINK_INTS: tuple[str, ...] = (
    "sink_batch",
    "alert_lead_seconds",
    "alert_denial_spike_count",
    "alert_denial_spike_window",
    "alert_sink_lag_events",
)
_SINK_SECONDS: tuple[str, ...] = (
    "sink_poll_seconds",
    "sink_backoff_seconds",
    "sink_max_backoff_seconds",
    "sink_lease_seconds",
    "sink_timeout_seconds",
    "alert_interval_seconds",
    "alert_sink_lag_seconds",
    "alert_verify_interval_seconds",
)


def sink_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The audit sink and alert settings set in ``env`` (``VAULTGATE_SINK_BATCH=500``...)."""
    return _positive_numbers(env, _SINK_INTS, _SINK_SECONDS)
