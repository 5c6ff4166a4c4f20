"""Injection rules: where a credential goes on an outgoing request.

A rule set is data (stored with a secret or taken from a provider template). ``format`` and each
additional ``value`` are templates over the credential's fields: ``"Bearer {token}"``,
``"Token token={token}"``, ``"{username}"``. Nothing here touches the network.

Template grammar: literal text plus ``{field}`` placeholders whose names are identifiers.
Literal braces (``{{``/``}}``) are refused: no provider needs them, and refusing them keeps every
template expressible in the Alter wire format, whose ``injection_format`` is a plain ``{token}``
substitution.
"""

from __future__ import annotations

import base64
import functools
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

from vaultgate.injection.credential import Credential, CredentialType

if (
    TYPE_CHECKING
):  # only a type here; the vault's workers do not load httpx (see vaultgate/__init__)
    import httpx

Target = Literal["header", "query"]

MAX_ADDITIONAL_RULES: Final = 16
MAX_NAME_LENGTH: Final = 128
MAX_TEMPLATE_LENGTH: Final = 1024

# RFC 9110 section 5.6.2: token = 1*tchar.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FORBIDDEN: Final = re.compile("[\r\n\x00]")
# Controls but tab, and DEL: what an HTTP/1.1 header value cannot carry (ASCII is checked apart).
_NOT_IN_HEADER: Final = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
# RFC 3986 pchar minus the unreserved set quote() keeps anyway; "/" is not among them.
_PCHAR: Final = ":@!$&'()*+,;="

# Hop-by-hop and framing headers (RFC 9110/9112) belong to the connection, not to the credential.
# The rest mirror the official Alter SDK's refusal list, so that every rule set stored here can
# also be released over the Alter wire (`vaultgate.injection.wire`) without being refused there.
FORBIDDEN_HEADERS: Final[frozenset[str]] = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "trailers",
        "upgrade",
        "cookie",
        "set-cookie",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
        "x-http-method-override",
        "x-method-override",
        "www-authenticate",
        "strict-transport-security",
        "content-security-policy",
    }
)
# A caller must never choose who it authenticates as, whatever the rules inject.
CALLER_HEADERS_REMOVED: Final[tuple[str, ...]] = ("authorization", "cookie", "proxy-authorization")


class InjectionRuleError(ValueError):
    """A rule set, template or rendered value that cannot be used; ``field`` names the culprit.

    The message never carries a credential value.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class AdditionalRule:
    """One more header or query parameter, e.g. ``anthropic-version: 2023-06-01``."""

    target: Target
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class InjectionRules:
    """The main header (``header``/``format``, both optional) plus additional rules.

    ``sigv4`` marks AWS signing: the whole signature is computed per request instead.
    ``path_prefix`` is a template put before the request path, for the APIs that take the key
    in the URL path (Telegram: ``"/bot{token}"``); see `apply_path`.
    """

    header: str | None = None
    format: str | None = None
    additional: tuple[AdditionalRule, ...] = field(default_factory=tuple)
    sigv4: bool = False
    path_prefix: str | None = None


# --- templates -------------------------------------------------------------------------------


def placeholders(template: str, *, field: str = "template") -> set[str]:
    """The credential fields a template names; raises `InjectionRuleError` on a bad template."""
    return {name for _, name in template_pieces(template, field) if name is not None}


def render(template: str, credential: Mapping[str, str], *, field: str = "template") -> str:
    """The template with each ``{name}`` replaced by ``credential[name]``.

    Refuses a missing field and a value carrying CR, LF or NUL (header splitting).
    """
    out: list[str] = []
    # template_pieces checks the grammar before any value is touched.
    for literal, name in template_pieces(template, field):
        out.append(literal)
        if name is None:
            continue
        if name not in credential:
            raise InjectionRuleError(field, f"the credential has no field {name!r}")
        value = credential[name]
        if _FORBIDDEN.search(value):
            raise InjectionRuleError(field, f"credential field {name!r} contains CR, LF or NUL")
        out.append(value)
    return "".join(out)


def template_pieces(template: str, field: str) -> tuple[tuple[str, str | None], ...]:
    """(literal, placeholder name or None) pairs of a valid template."""
    _check_text(template, field, MAX_TEMPLATE_LENGTH)
    parsed = _parse(template)
    if isinstance(parsed, str):
        raise InjectionRuleError(field, parsed)
    return parsed


@functools.lru_cache(maxsize=1024)
def _parse(template: str) -> tuple[tuple[str, str | None], ...] | str:
    """The template's pieces, or what is wrong with it.

    Cached: the same few templates are rendered on every request of every grant, and parsing
    costs more than rendering. The problem is returned rather than raised so that it is cached
    too and the caller can name its own field.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return "unbalanced '{' or '}' in template"
    pieces: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if "{" in literal or "}" in literal:
            return "literal braces are not supported in templates"
        if name is not None and not _IDENTIFIER.fullmatch(name):
            return f"placeholder {{{name}}} is not a field name"
        if name is not None and (spec or conversion):
            return f"placeholder {{{name}}} takes no format or conversion"
        pieces.append((literal, name))
    return tuple(pieces)


def template_fields(credential: Credential) -> dict[str, str]:
    """The fields a template may name: the credential's own plus derived ones.

    A ``basic`` credential also exposes ``basic`` = base64(username:password), so the Basic rule
    is the ordinary template ``"Basic {basic}"``.
    """
    if credential.type in ("oauth2_client_credentials", "oauth2_refresh_token"):
        # Only the access token the vault obtains is ever injected (as {token}): a rule naming
        # the client secret or the refresh token would send it out, so none can.
        return {"token": credential.get("access_token", "")}
    fields = dict(credential)
    if credential.type == "basic" and "username" in fields and "password" in fields:
        pair = f"{fields['username']}:{fields['password']}".encode()
        fields["basic"] = base64.b64encode(pair).decode("ascii")
    return fields


# --- validation ------------------------------------------------------------------------------


def validate_rules(rules: InjectionRules) -> None:
    """Raise `InjectionRuleError` unless the rule set is safe and injects a credential."""
    if rules.sigv4:
        if rules.header or rules.format or rules.additional or rules.path_prefix is not None:
            raise InjectionRuleError("injection.sigv4", "SigV4 rules take no other rule")
        return
    carried: set[str] = set()
    if rules.path_prefix is not None:
        carried |= _check_path_prefix(rules.path_prefix)
    headers: set[str] = set()
    if rules.header is not None:
        headers.add(_check_header_name(rules.header, "injection.header"))
        if rules.format is None:
            raise InjectionRuleError("injection.format", "required when a header is given")
        _header_value(rules.format, "injection.format")
        carried |= placeholders(rules.format, field="injection.format")
    elif rules.format is not None:
        raise InjectionRuleError("injection.header", "required when a format is given")
    if len(rules.additional) > MAX_ADDITIONAL_RULES:
        raise InjectionRuleError("injection.additional", f"at most {MAX_ADDITIONAL_RULES} rules")
    queries: set[str] = set()
    for index, rule in enumerate(rules.additional):
        carried |= _check_additional(rule, f"injection.additional[{index}]", headers, queries)
    if not carried:
        raise InjectionRuleError("injection", "the rules inject no credential field")


def _check_additional(
    rule: AdditionalRule, where: str, headers: set[str], queries: set[str]
) -> set[str]:
    if rule.target == "header":
        name = _check_header_name(rule.name, f"{where}.name")
        seen = headers
    elif rule.target == "query":
        _check_text(rule.name, f"{where}.name", MAX_NAME_LENGTH)
        if not rule.name:
            raise InjectionRuleError(f"{where}.name", "a query parameter name cannot be empty")
        name = rule.name
        seen = queries
    else:
        raise InjectionRuleError(f"{where}.target", "must be 'header' or 'query'")
    if name in seen:
        raise InjectionRuleError(f"{where}.name", f"{rule.name!r} is injected twice")
    seen.add(name)
    if rule.target == "header":
        _header_value(rule.value, f"{where}.value")
    return placeholders(rule.value, field=f"{where}.value")


def _check_path_prefix(prefix: str) -> set[str]:
    where = "injection.path_prefix"
    if not prefix.startswith("/") or any(char in prefix for char in "?#\\"):
        raise InjectionRuleError(where, "must start with '/' and hold no '?', '#' or '\\'")
    return placeholders(prefix, field=where)


def _check_header_name(name: str, where: str) -> str:
    """The lower-cased name, once it is a token that a credential may be injected as."""
    _check_text(name, where, MAX_NAME_LENGTH)
    if not _TOKEN.fullmatch(name):
        raise InjectionRuleError(where, "a header name must be an RFC 9110 token")
    lowered = name.lower()
    if lowered in FORBIDDEN_HEADERS or lowered.startswith("proxy-"):
        raise InjectionRuleError(where, f"{name!r} cannot carry a credential")
    return lowered


def _check_text(text: str, where: str, limit: int) -> None:
    if not isinstance(text, str):
        raise InjectionRuleError(where, "must be a string")
    if _FORBIDDEN.search(text):
        raise InjectionRuleError(where, "contains CR, LF or NUL")
    if len(text) > limit:
        raise InjectionRuleError(where, f"longer than {limit} characters")


# --- applying --------------------------------------------------------------------------------


def default_rules(credential_type: CredentialType) -> InjectionRules:
    """How a credential of this type is injected when neither a provider nor the user says."""
    if credential_type == "bearer":
        return InjectionRules(header="Authorization", format="Bearer {token}")
    if credential_type == "api_key":
        return InjectionRules(header="X-API-Key", format="{token}")
    if credential_type == "basic":
        return InjectionRules(header="Authorization", format="Basic {basic}")
    if credential_type == "aws_sigv4":
        return InjectionRules(sigv4=True)
    if credential_type in ("oauth2_client_credentials", "oauth2_refresh_token"):
        return InjectionRules(header="Authorization", format="Bearer {token}")
    raise InjectionRuleError("credential_type", f"unknown credential type {credential_type!r}")


@dataclass(frozen=True, slots=True)
class Injection:
    """One rendered value and where it goes. Its repr hides the value."""

    target: Target
    name: str
    value: str = field(repr=False)


def rendered(rules: InjectionRules, credential: Credential) -> list[Injection]:
    """Every value the rules inject, main header first, in rule order.

    An additional rule whose value renders blank is left out (as the official SDK does); a blank
    main header is an error, since it is the credential itself.
    """
    if rules.sigv4:
        raise InjectionRuleError("injection.sigv4", "SigV4 is applied by vaultgate.injection.sigv4")
    fields = template_fields(credential)
    out: list[Injection] = []
    if rules.header is not None and rules.format is not None:
        value = render(rules.format, fields, field="injection.format")
        if not value.strip():
            raise InjectionRuleError("injection.format", "the credential renders an empty value")
        out.append(Injection("header", rules.header, _header_value(value, "injection.format")))
    for index, rule in enumerate(rules.additional):
        where = f"injection.additional[{index}].value"
        value = render(rule.value, fields, field=where)
        if not value.strip():
            continue
        if rule.target == "header":
            value = _header_value(value, where)
        out.append(Injection(rule.target, rule.name, value))
    return out


def _header_value(value: str, where: str) -> str:
    """``value`` once it is something HTTP/1.1 can carry: visible ASCII, spaces and tabs.

    Checked here so that a credential with, say, an accented username fails as a rule error
    rather than as an encoding error deep in the HTTP client.
    """
    if not value.isascii() or _NOT_IN_HEADER.search(value):
        raise InjectionRuleError(where, "renders characters a header value cannot carry")
    return value


def injected_header_names(rules: InjectionRules) -> set[str]:
    """Lower-cased names of every header the rules may set."""
    names = {rule.name.lower() for rule in rules.additional if rule.target == "header"}
    if rules.header is not None:
        names.add(rules.header.lower())
    return names


def injected_query_names(rules: InjectionRules) -> set[str]:
    """Names of every query parameter the rules may set (case-sensitive, like a query)."""
    return {rule.name for rule in rules.additional if rule.target == "query"}


def apply_rules(
    rules: InjectionRules,
    credential: Credential,
    headers: httpx.Headers,
    params: list[tuple[str, str]],
) -> None:
    """Inject the credential into ``headers`` and ``params`` in place.

    The caller's own ``Authorization``, ``Cookie``, ``Proxy-Authorization`` and every header the
    rules inject are removed first; an injected query parameter replaces same-named ones.
    Everything is rendered before anything is changed, so a failure leaves both untouched.
    """
    values = rendered(rules, credential)
    for name in (*CALLER_HEADERS_REMOVED, *sorted(injected_header_names(rules))):
        if name in headers:
            del headers[name]
    for item in values:
        if item.target == "header":
            headers[item.name] = item.value
        else:
            params[:] = [pair for pair in params if pair[0] != item.name]
            params.append((item.name, item.value))


def apply_rules_to_pairs(
    rules: InjectionRules,
    credential: Credential,
    headers: list[tuple[str, str]],
    params: list[tuple[str, str]],
) -> list[tuple[str, str]]:
    """`apply_rules` on a plain header list (the server's proxy path): the new header list.

    Same removals and order as `apply_rules` (an ``httpx.Headers`` appends a name it no longer
    holds), without building a case-insensitive multi-dict for one request. ``params`` is
    changed in place; on failure neither list is.
    """
    values = rendered(rules, credential)
    removed = {*CALLER_HEADERS_REMOVED, *injected_header_names(rules)}
    out = [(name, value) for name, value in headers if name.lower() not in removed]
    for item in values:
        if item.target == "header":
            out.append((item.name, item.value))
        else:
            params[:] = [pair for pair in params if pair[0] != item.name]
            params.append((item.name, item.value))
    return out


def apply_path(rules: InjectionRules, credential: Credential, path: str) -> str:
    """``path`` (as sent on the wire) behind the rendered ``path_prefix``, if the rules have one.

    The credential's values are percent-encoded, so a ``?``, ``#`` or ``/`` in a key cannot
    change where the request goes.
    """
    if rules.path_prefix is None:
        return path
    fields = {
        name: quote(value, safe=_PCHAR) for name, value in template_fields(credential).items()
    }
    if any(value in (".", "..") for value in fields.values()):  # a dot segment would climb
        raise InjectionRuleError("injection.path_prefix", "a credential field is '.' or '..'")
    prefix = render(rules.path_prefix, fields, field="injection.path_prefix").rstrip("/")
    return prefix + (path if path.startswith("/") else "/" + path)


def strip_query(url: str, names: Iterable[str]) -> str:
    """``url`` without the query parameters in ``names``: what an audit record may keep."""
    drop = set(names)
    parts = urlsplit(url)
    if not drop or not parts.query:
        return url
    kept = [
        piece
        for piece in parts.query.split("&")
        if piece and unquote_plus(piece.partition("=")[0]) not in drop
    ]
    return urlunsplit(parts._replace(query="&".join(kept)))
