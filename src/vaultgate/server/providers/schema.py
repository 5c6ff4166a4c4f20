"""The shape of ``catalogue.json`` and the checks a template must pass to be loaded.

pydantic checks types and unknown keys; ``build_provider`` checks meaning: header names are
RFC 9110 tokens the vault may set, every placeholder names a field the credential type (or the
template) has, hosts are well formed. A failure is a packaging bug, reported as ValueError.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vaultgate.injection.credential import OPTIONAL_FIELDS, REQUIRED_FIELDS, CredentialType
from vaultgate.injection.rules import AdditionalRule, InjectionRules
from vaultgate.server.providers.hosts import check_host_template, is_dns_name
from vaultgate.server.providers.models import (
    AwsDefaults,
    CredentialField,
    HostParam,
    Placement,
    Provider,
)
from vaultgate.server.providers.templates import placeholders

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*\Z")
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*\Z")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")  # RFC 9110 section 5.6.2
_QUERY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
_CONTROL = re.compile(r"[\r\n\x00]")
# Headers the vault must never set: framing, routing and hop-by-hop fields, cookies.
FORBIDDEN_HEADERS = frozenset(
    {
        "host", "content-length", "content-type", "transfer-encoding", "connection",
        "keep-alive", "upgrade", "proxy-authenticate", "proxy-authorization", "proxy-connection",
        "te", "trailer", "cookie", "set-cookie", "x-forwarded-for", "x-forwarded-host",
        "x-forwarded-proto", "x-real-ip", "x-http-method-override", "x-method-override",
        "www-authenticate", "strict-transport-security", "content-security-policy",
    }
)  # fmt: skip
# The injection package derives this from username and password for Basic auth.
BASIC_FIELD = "basic"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParamSpec(_Spec):
    description: str = Field(min_length=1)
    default: str | None = None
    choices: tuple[str, ...] = ()
    optional: bool = False
    from_key: str | None = None


class FieldSpec(_Spec):
    description: str = Field(min_length=1)
    required: bool = True


class RuleSpec(_Spec):
    target: Literal["header", "query"]
    name: str = Field(min_length=1)
    value: str = Field(min_length=1)


class InjectionSpec(_Spec):
    header: str | None = None
    format: str | None = None
    additional: tuple[RuleSpec, ...] = ()
    sigv4: bool = False


class AwsSpec(_Spec):
    region: str
    service: str


class ProviderSpec(_Spec):
    slug: str
    name: str = Field(min_length=1)
    credential_type: CredentialType
    hosts: tuple[str, ...] = Field(min_length=1)
    injection: InjectionSpec
    placement: Literal["path"] | None = None
    docs_url: str
    params: dict[str, ParamSpec] = {}
    fields: dict[str, FieldSpec] = {}
    credential_defaults: dict[str, str] = {}
    credential_hints: dict[str, str] = {}
    key_field: str | None = None  # the type's first field: token, username, access_key_id
    key_pattern: str | None = None
    key_hint: str | None = None
    aws: AwsSpec | None = None
    base_path: str | None = None
    notes: str = ""


def build_provider(spec: ProviderSpec) -> Provider:
    """Check one template's meaning and turn it into a ``Provider``; ValueError when wrong."""
    where = spec.slug
    try:
        _check_identity(spec)
        _check_params(spec)
        _check_credential(spec)
        _check_injection(spec)
        _check_aws(spec)
    except ValueError as exc:
        raise ValueError(f"provider {where!r}: {exc}") from None
    return Provider(
        slug=spec.slug,
        name=spec.name,
        credential_type=spec.credential_type,
        hosts=spec.hosts,
        injection=_rules(spec.injection),
        placement=_placement(spec),
        docs_url=spec.docs_url,
        params=MappingProxyType({n: _param(n, p) for n, p in spec.params.items()}),
        fields=MappingProxyType({n: CredentialField(n, f.description, f.required)
                                 for n, f in spec.fields.items()}),
        credential_defaults=MappingProxyType(dict(spec.credential_defaults)),
        credential_hints=MappingProxyType(dict(spec.credential_hints)),
        key_field=_key_field(spec),
        key_pattern=spec.key_pattern,
        key_hint=spec.key_hint,
        aws=AwsDefaults(spec.aws.region, spec.aws.service) if spec.aws else None,
        base_path=spec.base_path,
        notes=spec.notes,
    )  # fmt: skip


def _check_identity(spec: ProviderSpec) -> None:
    if not _SLUG.match(spec.slug):
        raise ValueError("slug must be lower-case letters, digits and single hyphens")
    if not spec.docs_url.startswith("https://"):
        raise ValueError("docs_url must be an https URL")
    if spec.base_path is not None and not spec.base_path.startswith("/"):
        raise ValueError("base_path must start with /")


def _check_params(spec: ProviderSpec) -> None:
    declared = set(spec.params)
    used: set[str] = set()
    for template in spec.hosts:
        used.update(check_host_template(template, declared))
    required = {name for name, param in spec.params.items() if not param.optional}
    for template in _injection_templates(spec.injection) + _base_path(spec):
        used.update(name for name in placeholders(template) if name in declared)
    if spec.base_path is not None:
        _within(placeholders(spec.base_path), required, "base_path")
    for name, param in spec.params.items():
        if not _IDENTIFIER.match(name):
            raise ValueError(f"parameter name {name!r} is not a lower-case identifier")
        if name not in used:
            raise ValueError(f"parameter {name!r} is never used")
        for value in (param.default, *param.choices):
            if value is not None and not is_dns_name(value):
                raise ValueError(f"parameter {name!r} has a default or choice that is no DNS name")
        if param.default is not None and param.choices and param.default not in param.choices:
            raise ValueError(f"parameter {name!r} defaults to a value outside its choices")
        if param.from_key is not None and _compile(param.from_key).groups < 1:
            raise ValueError(f"parameter {name!r}: from_key needs a capturing group")


def _check_credential(spec: ProviderSpec) -> None:
    kind = spec.credential_type
    own = (*REQUIRED_FIELDS[kind], *OPTIONAL_FIELDS[kind])
    for name in spec.fields:
        if not _IDENTIFIER.match(name) or name in own or name == BASIC_FIELD:
            raise ValueError(f"extra credential field {name!r} is invalid or shadows another")
        if name in spec.params:
            raise ValueError(f"{name!r} is both a parameter and a credential field")
    allowed = {*own, *spec.fields}
    for mapping, label in ((spec.credential_defaults, "default"), (spec.credential_hints, "hint")):
        _within(tuple(mapping), allowed, f"credential {label}")
    if _key_field(spec) not in allowed:
        raise ValueError(f"key_field {spec.key_field!r} is not a credential field")
    if spec.key_pattern is not None:
        _compile(spec.key_pattern)
    elif spec.key_hint is not None:
        raise ValueError("key_hint without key_pattern")


def _check_injection(spec: ProviderSpec) -> None:
    rules, kind = spec.injection, spec.credential_type
    if rules.sigv4 != (kind == "aws_sigv4"):
        raise ValueError("sigv4 signing goes with credential_type aws_sigv4, and only with it")
    if (rules.header is None) != (rules.format is None):
        raise ValueError("injection header and format go together")
    templates = _injection_templates(rules)
    if rules.sigv4 or spec.placement == "path":
        if templates:
            raise ValueError("a sigv4 or path template carries no header or additional rules")
        return
    if rules.header is not None:
        _check_header_name(rules.header)
    for rule in rules.additional:
        if rule.target == "header":
            _check_header_name(rule.name)
        elif not _QUERY_NAME.match(rule.name):
            raise ValueError(f"query parameter name {rule.name!r} is invalid")
    secret = {*REQUIRED_FIELDS[kind], *OPTIONAL_FIELDS[kind], *spec.fields}
    if kind == "basic":
        secret.add(BASIC_FIELD)
    public = {name for name, param in spec.params.items() if not param.optional}
    carried: set[str] = set()
    for template in templates:
        if _CONTROL.search(template):
            raise ValueError("an injection template contains CR, LF or NUL")
        names = placeholders(template)
        _within(names, secret | public, "injection template")
        carried.update(name for name in names if name in secret)
    if not carried.intersection(REQUIRED_FIELDS[kind]) and BASIC_FIELD not in carried:
        raise ValueError("the injection rules never send the credential")


def _check_aws(spec: ProviderSpec) -> None:
    if (spec.aws is not None) != (spec.credential_type == "aws_sigv4"):
        raise ValueError("aws defaults go with credential_type aws_sigv4, and only with it")


def _check_header_name(name: str) -> None:
    if not _TOKEN.match(name):
        raise ValueError(f"header name {name!r} is not an RFC 9110 token")
    if name.lower() in FORBIDDEN_HEADERS:
        raise ValueError(f"header {name!r} may not be injected")


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid pattern {pattern!r}: {exc}") from None


def _within(names: tuple[str, ...], allowed: set[str], what: str) -> None:
    unknown = sorted(set(names) - allowed)
    if unknown:
        raise ValueError(f"{what} uses unknown names {unknown}")


def _injection_templates(rules: InjectionSpec) -> tuple[str, ...]:
    main = (rules.format,) if rules.format is not None else ()
    return main + tuple(rule.value for rule in rules.additional)


def _base_path(spec: ProviderSpec) -> tuple[str, ...]:
    return (spec.base_path,) if spec.base_path is not None else ()


def _key_field(spec: ProviderSpec) -> str:
    return spec.key_field or REQUIRED_FIELDS[spec.credential_type][0]


def _placement(spec: ProviderSpec) -> Placement:
    if spec.placement is not None:
        return spec.placement
    if spec.injection.sigv4:
        return "sigv4"
    return "header" if spec.injection.header is not None else "query"


def _param(name: str, spec: ParamSpec) -> HostParam:
    return HostParam(name, spec.description, spec.default, spec.choices, spec.optional,
                     spec.from_key)  # fmt: skip


def _rules(spec: InjectionSpec) -> InjectionRules:
    additional = tuple(AdditionalRule(r.target, r.name, r.value) for r in spec.additional)
    return InjectionRules(spec.header, spec.format, additional, spec.sigv4)
