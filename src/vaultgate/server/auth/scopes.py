"""Key scopes in the official client's grammar (``resource:verb``), and the scope of each route.

A key without controls (every key the management API mints) holds every scope; a derived key
holds the subset it was derived with. ``GET /sdk/scopes`` serves ``catalog()``.
"""

from __future__ import annotations

from typing import Any, Final

from vaultgate.server.errors import Forbidden, Unprocessable

SCOPE_VERSION: Final = 1
RESOURCES: Final[dict[str, tuple[str, ...]]] = {
    "tokens": ("retrieve",),
    "proxy": ("execute",),
    "grants": ("read", "write"),
    "keys": ("derive", "admin"),
    "audit": ("emit",),
    "agents": ("read", "write"),
    "approvals": ("read",),
}
ALL_SCOPES: Final = frozenset(f"{r}:{v}" for r, verbs in RESOURCES.items() for v in verbs)
# A derived key never derives (the client refuses it too): keys come from full keys only.
NEVER_DERIVED: Final = frozenset({"keys:derive"})

# (method, the client's route template) -> the scope it needs; routes not here need none.
ROUTE_SCOPES: Final[dict[tuple[str, str], str]] = {
    ("POST", "/sdk/token"): "tokens:retrieve",
    ("POST", "/sdk/proxy"): "proxy:execute",
    ("POST", "/sdk/oauth/audit/api-call"): "audit:emit",
    ("POST", "/sdk/oauth/audit/api-calls"): "audit:emit",
    ("POST", "/sdk/grants/list"): "grants:read",
    ("POST", "/sdk/grants/{grant_id}/mint"): "grants:write",
    ("POST", "/sdk/managed-secrets/{managed_secret_id}/grants"): "grants:write",
    ("POST", "/sdk/oauth/grants/{grant_id}/revoke"): "grants:write",
    ("POST", "/sdk/keys/derive"): "keys:derive",
    ("POST", "/sdk/keys/{key_id}/rotate"): "keys:admin",
    ("DELETE", "/sdk/keys/{key_id}"): "keys:admin",
    ("GET", "/sdk/agents"): "agents:read",
    ("GET", "/sdk/agents/{agent_id}"): "agents:read",
    ("GET", "/sdk/agents/{agent_id}/keys"): "agents:read",
    ("POST", "/sdk/agents"): "agents:write",
    ("PATCH", "/sdk/agents/{agent_id}"): "agents:write",
    ("DELETE", "/sdk/agents/{agent_id}"): "agents:write",
    ("POST", "/sdk/agents/{agent_id}/keys"): "agents:write",
    ("PATCH", "/sdk/agents/{agent_id}/keys/{key_id}/deprecate"): "agents:write",
    ("PATCH", "/sdk/agents/{agent_id}/keys/{key_id}/undeprecate"): "agents:write",
    ("DELETE", "/sdk/agents/{agent_id}/keys/{key_id}"): "agents:write",
    ("GET", "/sdk/approvals/{approval_id}"): "approvals:read",
    ("GET", "/sdk/approvals/{approval_id}/result"): "approvals:read",
}
# Routes that take any one of several scopes: the client polls an approval with the key that
# made the held call, which holds proxy:execute (its InsufficientScopeError.required_any_of).
ANY_OF: Final[dict[str, frozenset[str]]] = {
    "approvals:read": frozenset({"approvals:read", "proxy:execute"}),
}

# What a managed agent's own key may do: use the app's grants (as that agent) and poll its
# approvals, never administer agents, keys or grants. ``Agent.me()`` needs no scope.
AGENT_KEY_SCOPES: Final = frozenset(
    {"tokens:retrieve", "proxy:execute", "grants:read", "audit:emit", "approvals:read"}
)
# The client's AgentCannotMintSubagentsError: an agent key creating agents or agent keys.
AGENT_MINTING: Final = frozenset({("POST", "/sdk/agents"), ("POST", "/sdk/agents/{agent_id}/keys")})
AGENT_ME: Final = ("GET", "/sdk/agents/me")


def catalog() -> dict[str, Any]:
    """The client's ``ScopeCatalog``."""
    return {
        "scope_version": SCOPE_VERSION,
        "resources": {r: {"verbs": list(verbs)} for r, verbs in RESOURCES.items()},
        "action_verbs": sorted({v for verbs in RESOURCES.values() for v in verbs}),
        "deprecated": [],
    }


def parse_scopes(raw: object, field: str = "scopes") -> list[str]:
    """A requested scope list: known scopes only, at least one, no repeats kept."""
    if not isinstance(raw, list) or not raw or not all(isinstance(s, str) for s in raw):
        raise Unprocessable(f"{field}: must be a non-empty list of scopes", field=field)
    for scope in raw:
        if scope not in ALL_SCOPES:
            shown = "".join(c for c in scope[:64] if c.isprintable())
            raise Unprocessable(
                f"{field}: unknown scope {shown!r} (GET /sdk/scopes lists them)", field=field
            )
    return sorted(set(raw))


def holds(required: str, granted: frozenset[str]) -> bool:
    """Whether ``granted`` satisfies ``required`` (or one of its alternatives)."""
    return not ANY_OF.get(required, frozenset({required})).isdisjoint(granted)


def insufficient(missing: list[str], granted: frozenset[str], any_of: bool = False) -> Forbidden:
    """The client's ``InsufficientScopeError`` (403 ``insufficient_scope``)."""
    return Forbidden(
        f"this key lacks the scope {(' or ' if any_of else ', ').join(missing)}",
        code="insufficient_scope",
        extra={
            "required": missing,
            "granted": sorted(granted),
            "missing": missing,
            "scope_version": SCOPE_VERSION,
            "current_scope_version": SCOPE_VERSION,
            "required_any_of": any_of,
        },
    )


def insufficient_for(required: str, granted: frozenset[str]) -> Forbidden:
    alternatives = ANY_OF.get(required)
    if alternatives is None:
        return insufficient([required], granted)
    return insufficient(sorted(alternatives), granted, any_of=True)
