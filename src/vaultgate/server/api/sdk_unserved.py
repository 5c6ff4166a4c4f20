"""Honest answers for the official client's routes vaultgate does not serve: 501, never 404.

The official client turns any 404 without a code it knows into ``GrantNotFoundError``, so a bare
"no such route" would tell a user calling ``app.agents.create()`` that a grant does not exist.
A 501 with ``not_implemented`` falls through every one of the client's status branches to a plain
``BackendError`` whose message names the route (see the README's compatibility table).
"""

from __future__ import annotations

import re

# (method, route, the client call that uses it), from alter-sdk 0.29.0. Only the ones vaultgate
# does not serve matter here, but the whole list names a route in the 501 message.
CLIENT_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("POST", "/sdk/token", "request()"),
    ("POST", "/sdk/proxy", "proxy_request()"),
    ("POST", "/sdk/oauth/audit/api-call", "request() audit report"),
    ("POST", "/sdk/grants/list", "list_grants()"),
    ("POST", "/sdk/grants/{grant_id}/mint", "mint_grant()"),
    ("POST", "/sdk/managed-secrets/{managed_secret_id}/grants", "create_managed_secret_grant()"),
    ("POST", "/sdk/oauth/grants/{grant_id}/revoke", "revoke_grant()"),
    ("POST", "/sdk/grants/{grant_id}/delegate", "Agent.delegate()"),
    ("DELETE", "/sdk/grants/{grant_id}/delegations/{agent_id}", "revoke_delegation()"),
    ("POST", "/sdk/grants/{grant_id}/report-scope-mismatch", "scope-mismatch report"),
    ("POST", "/sdk/oauth/connect/session", "create_connect_session()"),
    ("POST", "/sdk/oauth/connect/session/poll", "poll_connect_session()"),
    ("POST", "/sdk/managed-secrets/connect/session", "create_managed_secret_connect_session()"),
    ("GET", "/sdk/oauth/provider-catalog", "oauth_providers.list()"),
    ("POST", "/sdk/auth/session", "create_auth_session()"),
    ("POST", "/sdk/auth/poll", "poll_auth_session()"),
    ("POST", "/sdk/auth/verify-token", "verify_user_token()"),
    ("POST", "/sdk/identity/resolve", "resolve_identity()"),
    ("POST", "/sdk/identity/assert", "assert_identity()"),
    ("GET", "/sdk/agents/me", "Agent.me()"),
    ("POST", "/sdk/agents", "agents.create()"),
    ("GET", "/sdk/agents", "agents.list() / agents.get_by_name()"),
    ("GET", "/sdk/agents/{agent_id}", "agents.get()"),
    ("PATCH", "/sdk/agents/{agent_id}", "agents.update() / suspend() / resume()"),
    ("DELETE", "/sdk/agents/{agent_id}", "agents.delete()"),
    ("POST", "/sdk/agents/{agent_id}/keys", "agents.mint_key()"),
    ("GET", "/sdk/agents/{agent_id}/keys", "agents.list_keys()"),
    ("PATCH", "/sdk/agents/{agent_id}/keys/{key_id}/deprecate", "agents.deprecate_key()"),
    ("PATCH", "/sdk/agents/{agent_id}/keys/{key_id}/undeprecate", "agents.undeprecate_key()"),
    ("DELETE", "/sdk/agents/{agent_id}/keys/{key_id}", "agents.revoke_key()"),
    ("POST", "/sdk/keys/derive", "keys.derive()"),
    ("POST", "/sdk/keys/{key_id}/rotate", "keys.rotate()"),
    ("DELETE", "/sdk/keys/{key_id}", "keys.revoke()"),
    ("GET", "/sdk/scopes", "scopes.list()"),
    ("GET", "/sdk/approvals/{approval_id}", "get_approval_status() / await_approval()"),
    ("GET", "/sdk/approvals/{approval_id}/result", "await_approval()"),
    ("POST", "/sdk/spans", "spans.emit()"),
    ("GET", "/sdk/provider-specs", "provider_specs.list()"),
    ("GET", "/sdk/provider-specs/{kind}/{provider_id}", "provider_specs.get()"),
    (
        "GET",
        "/sdk/provider-specs/{kind}/{provider_id}/operations",
        "provider_specs.list_operations()",
    ),
    (
        "GET",
        "/sdk/provider-specs/{kind}/{provider_id}/operations/{operation_id}",
        "provider_specs.get_operation()",
    ),
)

_MAX_ECHO = 200


def _pattern(route: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(route)) + "$")


_MATCHERS = tuple((method, _pattern(route), route, call) for method, route, call in CLIENT_ROUTES)


def route_of(method: str, path: str) -> tuple[str, str] | None:
    """The client route (template, call) a request is for, or None for a route it never uses."""
    for known_method, pattern, route, call in _MATCHERS:
        if known_method == method and pattern.match(path):
            return route, call
    return None


def describe(method: str, path: str) -> tuple[str, str]:
    """(route, message) of the 501 for an ``/sdk/`` request no route of vaultgate answers."""
    known = route_of(method, path)
    if known is not None:
        route = f"{method} {known[0]}"
        message = (
            f"vaultgate does not implement {route} (the official client's {known[1]}); "
            "see the compatibility table in vaultgate's README"
        )
        return route, message
    # Never one of the client's routes: echo what was asked, printable and capped.
    shown = "".join(c if c.isprintable() else "?" for c in path[:_MAX_ECHO])
    route = f"{method[:16]} {shown}"
    return route, f"vaultgate does not implement {route}"
