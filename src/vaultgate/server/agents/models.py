"""What a client may send about an agent, checked once, and the answers in the client's shapes
(``AgentInfo``, ``AgentCreateResult``, ``AgentListResult``, ``AgentKey``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from vaultgate.server.errors import Unprocessable

NAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
TYPES: Final = ("agent", "service")
MAX_SCOPES_BYTES: Final = 12 * 1024
MAX_METADATA_BYTES: Final = 8 * 1024
MAX_GRACE_SECONDS: Final = 7 * 86400
UPDATABLE: Final = frozenset({"display_name", "metadata", "scopes", "policy", "status"})


@dataclass(frozen=True, slots=True)
class NewAgent:
    name: str
    type: str
    display_name: str | None
    scopes: dict[str, list[str]]
    metadata: dict[str, Any]


def _compact_size(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def parse_name(raw: object) -> str:
    if not isinstance(raw, str) or not NAME_RE.match(raw):
        raise Unprocessable(
            "name: 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter or digit",
            field="name",
        )
    return raw


def parse_display_name(raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not 0 < len(raw) <= 200 or not raw.isprintable():
        raise Unprocessable(
            "display_name: a printable string of 1 to 200 characters", field="display_name"
        )
    return raw


def parse_scopes(raw: object) -> dict[str, list[str]]:
    """The agent's provider allowlist (``{provider: [scope, ...]}``), as the client checks it."""
    problem = "scopes: must map provider names to non-empty lists of scope strings"
    if not isinstance(raw, dict):
        raise Unprocessable(problem, field="scopes")
    for provider, values in raw.items():
        if not isinstance(provider, str) or not provider.strip() or provider != provider.strip():
            raise Unprocessable(problem, field="scopes")
        if not isinstance(values, list) or not values:
            raise Unprocessable(problem, field="scopes")
        if not all(isinstance(v, str) and v and v == v.strip() for v in values):
            raise Unprocessable(problem, field="scopes")
    if _compact_size(raw) > MAX_SCOPES_BYTES:
        raise Unprocessable(f"scopes: at most {MAX_SCOPES_BYTES} bytes", field="scopes")
    return {str(k): list(v) for k, v in raw.items()}


def parse_metadata(raw: object) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or _compact_size(raw) > MAX_METADATA_BYTES:
        raise Unprocessable(
            f"metadata: must be an object of at most {MAX_METADATA_BYTES} bytes", field="metadata"
        )
    return raw


def refuse_policy(raw: object) -> None:
    """An agent policy (the client's HitlConfig) is refused rather than stored unenforced."""
    if raw is not None and raw != {}:
        raise Unprocessable(
            "policy: vaultgate does not enforce agent-level policies; put requires_approval "
            "on the grant's policy instead",
            code="agent_policy_not_supported",
            field="policy",
        )


def parse_new(data: dict[str, Any]) -> NewAgent:
    kind = data.get("type") or "agent"
    if kind not in TYPES:
        raise Unprocessable("type: must be 'agent' or 'service'", field="type")
    refuse_policy(data.get("policy"))
    return NewAgent(
        name=parse_name(data.get("name")),
        type=str(kind),
        display_name=parse_display_name(data.get("display_name")),
        scopes=parse_scopes(data.get("scopes", {})),
        metadata=parse_metadata(data.get("metadata")),
    )


def parse_changes(data: dict[str, Any]) -> dict[str, Any]:
    """An update's fields, checked; ``status`` only to active/inactive (delete revokes)."""
    unknown = sorted(set(data) - UPDATABLE)
    if unknown:
        raise Unprocessable(f"{unknown[0]}: not a field of an agent update", field=unknown[0])
    refuse_policy(data.get("policy"))
    changes: dict[str, Any] = {}
    if data.get("display_name") is not None:
        changes["display_name"] = parse_display_name(data["display_name"])
    if data.get("metadata") is not None:
        changes["attributes"] = parse_metadata(data["metadata"])
    if data.get("scopes") is not None:
        changes["scopes"] = parse_scopes(data["scopes"])
    if data.get("status") is not None:
        if data["status"] not in ("active", "inactive"):
            raise Unprocessable("status: must be 'active' or 'inactive'", field="status")
        changes["status"] = data["status"]
    return changes


def parse_count(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise Unprocessable(f"{name}: a whole number from {low} to {high}", field=name)
    return int(raw)


def parse_flag(raw: str | None, name: str) -> bool:
    if raw in (None, "", "false"):
        return False
    if raw == "true":
        return True
    raise Unprocessable(f"{name}: 'true' or 'false'", field=name)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def agent_view(row: dict[str, Any], last_used_at: datetime | None) -> dict[str, Any]:
    """The client's ``AgentInfo``."""
    return {
        "id": row["id"],
        "name": row["name"],
        "display_name": row["display_name"],
        "type": row["type"],
        "status": row["status"],
        "scopes": row["scopes"],
        "scopes_pending": None,
        "scopes_applies_at": None,
        "policy": {},
        "metadata": row["attributes"],
        "rate_limit_per_minute": None,
        "version": row["version"],
        "created_at": _iso(row["created_at"]),
        "last_used_at": _iso(last_used_at),
        "parent_agent_id": None,
        "stored_legacy_managed_secret_names": [],
    }


def key_view(row: dict[str, Any]) -> dict[str, Any]:
    """The client's ``AgentKey`` (an ``api_keys`` row joined with its ``agent_keys`` row)."""
    return {
        "key_id": row["id"],
        "key_prefix": row["hint"],
        "name": row["name"],
        "created_at": _iso(row["created_at"]),
        "deprecated_at": _iso(row["deprecated_at"]),
        "revoked_at": _iso(row["revoked_at"]),
        "last_used_at": _iso(row["last_used_at"]),
    }
