"""Per-request constraints: what the official client's ``with_constraints()`` sends, enforced.

``X-Alter-Scope-Constraints`` (scopes joined with ``,``) and ``X-Alter-Request-Rule`` (base64url,
unpadded, of ``{"rule_type", "rule_body"}``) are covered by the request's signature, so they are
the key holder's own narrowing of this one request. They may only narrow: each is enforced on
``/sdk/token`` and ``/sdk/proxy``, or the request is refused with a typed error. A constraint is
never accepted and then ignored.

Scopes. An app key holds, on its own app's grants, ``tokens:retrieve`` (``/sdk/token``),
``proxy:execute`` (``/sdk/proxy``) and ``grants:read``; each may be bound to one grant as
``<scope>:<grant_id>``. Naming a scope the key does not hold is a 400 ``constraint_not_narrowing``;
a request whose narrowed set lacks what its endpoint needs is a 403 ``insufficient_scope``.

Rules, as the client's ``rules.py`` and ``with_constraints()`` define them:

- ``json_match``: ``{"when": {"method": ...}, "effect": "deny"}``, deny only. A released token
  serves any method, so in retrieve mode a method condition counts as met (the client documents
  this); in proxy mode it is the forwarded method.
- ``content_match``: ``match`` (``operations``, ``families``), ``params``, and an ``effect`` of
  ``deny``, ``redact`` or ``step_up``. The vault classifies a request by its method alone (read:
  GET/HEAD/OPTIONS, write: POST/PUT/PATCH, delete: DELETE). Operation ids, the other families and
  parameter conditions need a provider's operation catalogue the vault does not have, and a
  retrieved token could serve any operation; such a rule fails closed, as the client says the
  rule does: it counts as matching.

When a rule fires: ``deny`` is a 403 ``request_rule_denied``; ``step_up`` a 403
``step_up_required`` (the vault keeps no session for an API caller, so none is fresh enough);
``redact`` removes the named fields from a proxied JSON object body, and where it cannot (retrieve
mode, where the vault never sees the body, or a body that is not a JSON object) the request is a
403 ``redact_discharge_failed``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from vaultgate.server.errors import Forbidden, InvalidInput

SCOPE_HEADER: Final = "x-alter-scope-constraints"
RULE_HEADER: Final = "x-alter-request-rule"
MAX_RULE_HEADER: Final = 4096
APP_KEY_SCOPES: Final = frozenset({"tokens:retrieve", "proxy:execute", "grants:read"})
NEEDED: Final = {"retrieve": "tokens:retrieve", "proxy": "proxy:execute"}
FAMILY_METHODS: Final = {
    "read": frozenset({"GET", "HEAD", "OPTIONS"}),
    "write": frozenset({"POST", "PUT", "PATCH"}),
    "delete": frozenset({"DELETE"}),
}
FAMILIES: Final = frozenset({"read", "write", "delete", "send", "admin", "payment"})
EFFECTS: Final = frozenset({"deny", "redact", "step_up"})


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str  # "json_match" or "content_match"
    effect: str
    methods: frozenset[str] | None = None  # json_match: None matches every method
    families: frozenset[str] = frozenset()
    unclassifiable: bool = False  # operation ids, params or families the vault cannot judge
    redact_fields: tuple[str, ...] = ()
    max_session_age: int | None = None


@dataclass(frozen=True, slots=True)
class Constraints:
    scopes: frozenset[str] | None = None  # None: the request does not narrow scopes
    rule: Rule | None = None
    redaction_failed: bool = False  # set by ``redacted`` when the body cannot be redacted


def _bad(message: str, code: str = "invalid_request_rule") -> InvalidInput:
    return InvalidInput(message, code=code, field=RULE_HEADER)


def parse_constraints(headers: Mapping[str, str]) -> Constraints | None:
    """The request's constraints (None when it carries none); a malformed one is a 400."""
    raw_scopes = headers.get(SCOPE_HEADER, "")
    raw_rule = headers.get(RULE_HEADER, "")
    if not raw_scopes and not raw_rule:
        return None
    return Constraints(
        scopes=_parse_scopes(raw_scopes) if raw_scopes else None,
        rule=_parse_rule(raw_rule) if raw_rule else None,
    )


def _parse_scopes(raw: str) -> frozenset[str]:
    scopes = [part.strip() for part in raw.split(",")]
    for scope in scopes:
        base = ":".join(scope.split(":", 2)[:2])
        if not scope or scope == "*" or base not in APP_KEY_SCOPES:
            raise InvalidInput(
                f"scope constraint {scope[:80]!r} is not held by an app key (it holds "
                f"{', '.join(sorted(APP_KEY_SCOPES))}, optionally as <scope>:<grant_id>)",
                code="constraint_not_narrowing",
                field=SCOPE_HEADER,
            )
    return frozenset(scopes)


def _decode_rule(raw: str) -> dict[str, Any]:
    if len(raw) > MAX_RULE_HEADER:
        raise _bad(f"the request rule is longer than {MAX_RULE_HEADER} bytes")
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8")
        document = json.loads(text)
    except (binascii.Error, ValueError, RecursionError):
        raise _bad("the request rule is not base64url-encoded JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("rule_body"), dict):
        raise _bad("the request rule must be an object with rule_type and a rule_body object")
    return document


def _parse_rule(raw: str) -> Rule:
    document = _decode_rule(raw)
    kind, body = document.get("rule_type"), document["rule_body"]
    if kind == "json_match":
        return _json_match(body)
    if kind == "content_match":
        return _content_match(body)
    raise _bad(
        f"request rule type {str(kind)[:40]!r} is not supported (json_match, content_match)",
        code="unsupported_request_rule",
    )


def _json_match(body: dict[str, Any]) -> Rule:
    when, effect = body.get("when", {}), body.get("effect", "deny")
    if effect != "deny" or set(body) - {"when", "effect"} or not isinstance(when, dict):
        raise _bad("a json_match rule is {when: {method: ...}, effect: 'deny'}")
    if set(when) - {"method"}:
        raise _bad("a json_match rule can only match on method (the URL is not matchable)")
    if "method" not in when:
        return Rule("json_match", "deny")
    method = when["method"]
    methods = [method] if isinstance(method, str) else method
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        raise _bad("json_match when.method must be a method or a list of methods")
    return Rule("json_match", "deny", methods=frozenset(m.upper() for m in methods))


def _strings(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _bad(f"content_match {name} must be a list of strings")
    return list(value)


def _content_match(body: dict[str, Any]) -> Rule:
    match, effect = body.get("match"), body.get("effect", "deny")
    if not isinstance(match, dict) or effect not in EFFECTS:
        raise _bad("a content_match rule needs a match object and an effect of deny/redact/step_up")
    operations = _strings(match.get("operations"), "match.operations")
    families = _strings(match.get("families"), "match.families")
    if (not operations and not families) or set(families) - FAMILIES:
        raise _bad("content_match match names operations and/or known families")
    params = body.get("params") or []
    if not isinstance(params, list):
        raise _bad("content_match params must be a list")
    judged = frozenset(f for f in families if f in FAMILY_METHODS)
    return Rule(
        "content_match",
        effect,
        families=judged,
        unclassifiable=bool(operations or params or set(families) - judged),
        redact_fields=tuple(_redact_fields(body, effect)),
        max_session_age=_max_age(body, effect),
    )


def _redact_fields(body: dict[str, Any], effect: str) -> list[str]:
    if effect != "redact":
        return []
    fields = _strings((body.get("redact") or {}).get("fields"), "redact.fields")
    if not fields:
        raise _bad("a redact rule names the fields to remove (redact.fields)")
    return fields


def _max_age(body: dict[str, Any], effect: str) -> int | None:
    if effect != "step_up":
        return None
    age = (body.get("step_up") or {}).get("max_session_age_seconds")
    if isinstance(age, bool) or not isinstance(age, int) or not 1 <= age <= 86_400:
        raise _bad("a step_up rule needs step_up.max_session_age_seconds in [1, 86400]")
    return age


def fires(rule: Rule, mode: str, method: str) -> bool:
    """Whether the rule applies to this request; what the vault cannot judge counts as yes."""
    if mode != "proxy":
        return True  # a retrieved credential serves any method and any operation
    if rule.kind == "json_match":
        return rule.methods is None or method.upper() in rule.methods
    if rule.unclassifiable:
        return True
    return any(method.upper() in FAMILY_METHODS[family] for family in rule.families)


def enforce(constraints: Constraints | None, mode: str, method: str, grant_id: str) -> None:
    """Raise the typed refusal this request's constraints call for; None when they allow it."""
    if constraints is None:
        return
    if constraints.scopes is not None:
        _check_scopes(constraints.scopes, mode, grant_id)
    rule = constraints.rule
    if rule is None or not fires(rule, mode, method):
        return
    if rule.effect == "deny":
        raise Forbidden("this request's own rule denies it", code="request_rule_denied")
    if rule.effect == "step_up":
        raise Forbidden(
            "this request's rule requires a stepped-up session, which an API key cannot present",
            code="step_up_required",
            extra={"max_session_age_seconds": rule.max_session_age},
        )
    if mode != "proxy" or constraints.redaction_failed:
        raise Forbidden(
            "this request's redact rule cannot be applied (the vault redacts only the JSON "
            "object body of a proxied request), so the request was refused",
            code="redact_discharge_failed",
        )


def _check_scopes(scopes: frozenset[str], mode: str, grant_id: str) -> None:
    needed = NEEDED.get(mode)
    if needed is None or needed in scopes or f"{needed}:{grant_id}" in scopes:
        return
    raise Forbidden(
        f"this request was narrowed to scopes that do not include {needed}",
        code="insufficient_scope",
        extra={"required": [needed], "granted": sorted(scopes), "missing": [needed]},
    )


def redacted(
    constraints: Constraints | None, method: str, body: bytes | None
) -> tuple[Constraints | None, bytes | None]:
    """A proxied body with the redact rule's fields removed (nothing put in their place).

    When the rule fires and the body cannot be redacted, the constraints come back marked, and
    ``enforce`` refuses the request where every denial is audited.
    """
    rule = constraints.rule if constraints else None
    if constraints is None or rule is None or rule.effect != "redact":
        return constraints, body
    if not fires(rule, "proxy", method) or body is None:
        return constraints, body
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        document = None
    if not isinstance(document, dict):
        return replace(constraints, redaction_failed=True), body
    for name in rule.redact_fields:
        _remove(document, name.split("."))
    return constraints, json.dumps(document, separators=(",", ":")).encode()


def _remove(document: dict[str, Any], path: list[str]) -> None:
    """Remove one field, ``a.b`` naming ``b`` inside object ``a``; an absent field is fine."""
    parent: Any = document
    for part in path[:-1]:
        parent = parent.get(part) if isinstance(parent, dict) else None
    if isinstance(parent, dict):
        parent.pop(path[-1], None)
