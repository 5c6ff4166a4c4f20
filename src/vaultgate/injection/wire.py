"""Rule set + credential <-> the injection fields of an Alter ``/sdk/token`` answer.

The official SDK knows one mechanism: ``injection_format`` with its first ``{token}`` replaced by
``access_token`` goes into ``injection_header``, then each ``additional_injections`` entry copies
``access_token`` or one ``additional_credentials`` value into a header or a query parameter.
`to_wire` renders our templates into that shape so the official SDK sends exactly what
`rules.apply_rules` would; `apply_wire` is the same injection for our own SDK.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from vaultgate.injection.credential import Credential, CredentialType
from vaultgate.injection.rules import (
    AdditionalRule,
    Injection,
    InjectionRuleError,
    InjectionRules,
    apply_rules,
    injected_header_names,
    injected_query_names,
    rendered,
    template_fields,
    template_pieces,
    validate_rules,
)
from vaultgate.injection.sigv4 import (
    ALGORITHM,
    SIGV4_HEADERS,
    AwsCredentials,
    detect_region_service,
    sign_outgoing,
)

if TYPE_CHECKING:  # the vault's workers do not load httpx (see vaultgate/__init__)
    import httpx

# The official SDK always sets a main header whose format must contain {token}. A rule set with
# no main header (a key in the query only), or one whose header name the SDK refuses, therefore
# gets this harmless one: it carries the grant id, which is an identifier and not a secret.
GRANT_HEADER: Final = "X-Vaultgate-Grant"

# The official SDK's own limits (alter-sdk 0.29.0, protocol section 3.3).
_MAIN_HEADER: Final = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,59}")
_KEY: Final = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,99}")
_SOURCE: Final = re.compile(r"token|additional_credentials\.([a-z][a-z0-9_]*)")
_MAX_FORMAT: Final = 200
_MAX_RULES: Final = 10
_MAX_VALUE: Final = 8192


def to_wire(
    rules: InjectionRules,
    credential: Credential,
    *,
    grant_id: str | None = None,
    region: str | None = None,
    service: str | None = None,
) -> dict[str, Any]:
    """``access_token`` and the four injection fields for this rule set and credential.

    ``grant_id`` is needed only when the rules have no main header the SDK can take (see
    `GRANT_HEADER`); ``region``/``service`` are the SigV4 fallbacks for hosts that do not name
    them. Raises `InjectionRuleError` when the rules cannot be expressed within the SDK's limits.
    """
    validate_rules(rules)
    if rules.path_prefix is not None:
        # The official SDK has no way to put a value in the path: such a grant needs proxy mode.
        raise InjectionRuleError(
            "injection.path_prefix", "not expressible in the Alter wire format"
        )
    if rules.sigv4:
        return _sigv4_to_wire(credential, region, service)
    values = rendered(rules, credential)
    main = values[0] if rules.header is not None else None
    extra = values[1:] if main is not None else values
    if main is not None and _MAIN_HEADER.fullmatch(main.name):
        header = main.name
        token, fmt = _main_token(rules.format or "", credential, main.value)
    else:
        if grant_id is None:
            raise InjectionRuleError("grant_id", "needed when the rules have no SDK main header")
        header, token, fmt = GRANT_HEADER, grant_id, "{token}"
        extra = ([main] if main is not None else []) + extra
    credentials, injections = _additional(extra, token)
    return {
        "access_token": token,
        "injection_header": header,
        "injection_format": fmt,
        "additional_credentials": credentials or None,
        "additional_injections": injections or None,
    }


def _main_token(template: str, credential: Credential, value: str) -> tuple[str, str]:
    """(access_token, injection_format) for the main header.

    A template with one placeholder (``Bearer {token}``, ``Basic {basic}``) keeps its literal
    text as the format and sends the bare field, as the official SDK expects; anything else is
    sent pre-rendered under the format ``{token}``.
    """
    # Literal braces are refused by the template grammar, so the one placeholder is the only
    # brace pair and a plain replace turns it into the SDK's {token}.
    names = [name for _, name in template_pieces(template, "injection.format") if name is not None]
    if len(names) == 1:
        bare = template_fields(credential)[names[0]]
        fmt = template.replace("{" + names[0] + "}", "{token}", 1)
        if bare and len(fmt) <= _MAX_FORMAT:
            return bare, fmt
    return value, "{token}"


def _additional(values: list[Injection], token: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Each value pre-rendered into ``additional_credentials`` (v0, v1...) and referenced.

    A value equal to the access token is referenced as ``token``; equal values share one key.
    """
    credentials: dict[str, str] = {}
    by_value: dict[str, str] = {}
    injections: list[dict[str, str]] = []
    for index, item in enumerate(values):
        where = f"injection.additional[{index}]"
        if not _KEY.fullmatch(item.name):
            raise InjectionRuleError(f"{where}.name", "the Alter wire format refuses this name")
        if len(item.value) > _MAX_VALUE:
            raise InjectionRuleError(f"{where}.value", f"longer than {_MAX_VALUE} characters")
        if item.value == token:
            source = "token"
        else:
            key = by_value.setdefault(item.value, f"v{len(by_value)}")
            credentials[key] = item.value
            source = f"additional_credentials.{key}"
        target = "header" if item.target == "header" else "query_param"
        injections.append({"target": target, "key": item.name, "value_source": source})
    if len(injections) > _MAX_RULES or len(credentials) > _MAX_RULES:
        raise InjectionRuleError(
            "injection.additional", f"the Alter wire format takes {_MAX_RULES}"
        )
    return credentials, injections


def _sigv4_to_wire(
    credential: Credential, region: str | None, service: str | None
) -> dict[str, Any]:
    if credential.type != "aws_sigv4":
        raise InjectionRuleError("injection.sigv4", "SigV4 needs an aws_sigv4 credential")
    extra = {
        "secret_key": credential["secret_access_key"],
        "session_token": credential.get("session_token"),
        "region": region,
        "service": service,
    }
    return {
        "access_token": credential["access_key_id"],
        "injection_header": "Authorization",
        "injection_format": ALGORITHM,
        "additional_credentials": {key: value for key, value in extra.items() if value},
        "additional_injections": None,
    }


# --- the receiving side (our SDK) ------------------------------------------------------------


def from_wire(payload: Mapping[str, Any]) -> tuple[InjectionRules, Credential]:
    """The rule set and credential an ``/sdk/token`` answer describes.

    Follows the official SDK's reading: defaults ``Authorization`` / ``Bearer {token}``, SigV4
    when the format starts with ``AWS4-HMAC-SHA256`` and ``additional_credentials`` is present,
    and our `GRANT_HEADER` dropped (it exists only for the official SDK's sake).
    """
    token = _text(payload, "access_token")
    extra = _credentials(payload.get("additional_credentials"))
    header = _text(payload, "injection_header", "Authorization")
    fmt = _text(payload, "injection_format", "Bearer {token}")
    if fmt.startswith(ALGORITHM) and extra is not None:
        return InjectionRules(sigv4=True), _aws_credential(token, extra)
    if fmt.count("{token}") != 1:
        # The official SDK substitutes the first {token} only; one is all we send or accept.
        raise InjectionRuleError("injection_format", "must hold {token} exactly once")
    if "token" in (extra or {}):
        raise InjectionRuleError("additional_credentials.token", "clashes with access_token")
    fields = {"token": token, **(extra or {})}
    additional = tuple(_rules_from_wire(payload.get("additional_injections"), fields))
    if header.lower() == GRANT_HEADER.lower() and fmt == "{token}":
        rules = InjectionRules(additional=additional)
    else:
        rules = InjectionRules(header=header, format=fmt, additional=additional)
    validate_rules(rules)
    kind: CredentialType = (
        "bearer" if header.lower() == "authorization" and fmt == "Bearer {token}" else "api_key"
    )
    return rules, Credential(kind, fields)


def _rules_from_wire(raw: object, fields: Mapping[str, str]) -> list[AdditionalRule]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InjectionRuleError("additional_injections", "must be a list")
    rules: list[AdditionalRule] = []
    for index, entry in enumerate(raw):
        where = f"additional_injections[{index}]"
        if not isinstance(entry, Mapping):
            raise InjectionRuleError(where, "must be an object")
        target, key, source = entry.get("target"), entry.get("key"), entry.get("value_source")
        if target not in ("header", "query_param") or not isinstance(key, str):
            raise InjectionRuleError(where, "needs target header|query_param and a key")
        match = _SOURCE.fullmatch(source) if isinstance(source, str) else None
        if match is None:
            raise InjectionRuleError(f"{where}.value_source", "is not token or additional_*")
        name = match.group(1) or "token"
        if fields.get(name):  # the official SDK skips a rule whose value is missing or empty
            value = "{" + name + "}"
            rules.append(AdditionalRule("header" if target == "header" else "query", key, value))
    return rules


def _text(payload: Mapping[str, Any], name: str, default: str | None = None) -> str:
    value = payload.get(name, default)
    if value is None:
        value = default
    if not isinstance(value, str) or not value:
        raise InjectionRuleError(name, "must be a non-empty string")
    return value


def _credentials(raw: object) -> dict[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise InjectionRuleError("additional_credentials", "must map strings to strings")
    return dict(raw)


def _aws_credential(access_key_id: str, extra: Mapping[str, str]) -> Credential:
    if not extra.get("secret_key"):
        raise InjectionRuleError("additional_credentials.secret_key", "required for SigV4")
    fields = {"access_key_id": access_key_id, "secret_access_key": extra["secret_key"]}
    if extra.get("session_token"):
        fields["session_token"] = extra["session_token"]
    return Credential("aws_sigv4", fields)


Wired = tuple[InjectionRules, Credential]


def injected_names(
    payload: Mapping[str, Any], *, wired: Wired | None = None
) -> tuple[frozenset[str], frozenset[str]]:
    """(lower-cased header names, query names) the payload injects: to strip from audit reports.

    ``wired`` is ``from_wire(payload)`` when the caller has it already (it is not cheap).
    """
    rules, _ = wired or from_wire(payload)
    if rules.sigv4:
        return SIGV4_HEADERS, frozenset()
    return frozenset(injected_header_names(rules)), frozenset(injected_query_names(rules))


def apply_wire(
    payload: Mapping[str, Any],
    request: httpx.Request,
    *,
    now: datetime | None = None,
    wired: Wired | None = None,
) -> httpx.Request:
    """A copy of ``request`` with the credential of an ``/sdk/token`` answer applied.

    Headers are replaced and query parameters merged as `apply_rules` does. For SigV4 the body
    must be in memory (bytes); the region and service come from the AWS host when it names them
    and from the payload otherwise. ``now`` defaults to the current time (for the signature);
    ``wired`` is ``from_wire(payload)`` when the caller has it already.
    """
    import httpx  # the SDK's side only: the vault's workers never load httpx

    rules, credential = wired or from_wire(payload)
    headers = httpx.Headers(request.headers)
    url = request.url
    if rules.sigv4:
        body = _sign_aws(payload, request, credential, headers, now or datetime.now(UTC))
        # The signed bytes are the bytes sent: the copy carries them already read.
        return httpx.Request(
            request.method, url, headers=headers, content=body, extensions=request.extensions
        )
    params = list(url.params.multi_items())
    apply_rules(rules, credential, headers, params)
    if injected_query_names(rules):
        url = url.copy_with(params=params)
    return httpx.Request(
        request.method, url, headers=headers, stream=request.stream, extensions=request.extensions
    )


def _sign_aws(
    payload: Mapping[str, Any],
    request: httpx.Request,
    credential: Credential,
    headers: httpx.Headers,
    now: datetime,
) -> bytes:
    """Sign ``request`` into ``headers``; returns the body bytes that were signed."""
    import httpx  # the SDK's side only, as in apply_wire

    extra = _credentials(payload.get("additional_credentials")) or {}
    detected_region, detected_service = detect_region_service(request.url.host)
    region = detected_region or extra.get("region")
    service = detected_service or extra.get("service")
    if not region or not service:
        raise InjectionRuleError("additional_credentials.region", "no AWS region/service for host")
    aws = AwsCredentials(
        credential["access_key_id"],
        credential["secret_access_key"],
        credential.get("session_token"),
    )
    body = request.read()
    out = sign_outgoing(
        request.method,
        str(request.url),
        list(headers.multi_items()),
        body,
        aws,
        host=headers.get("host") or request.url.netloc.decode("ascii"),
        region=region,
        service=service,
        now=now,
    )
    headers.clear()
    headers.update(httpx.Headers(out))
    return body
