"""A provider template: where a credential may go and how it is written onto a request.

Templates are public data (hosts, header names, formats); the methods here take a client's
parameters and credential and answer with values or an ``Unprocessable`` naming the field at
fault. No message ever carries a credential value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from vaultgate.injection.credential import OPTIONAL_FIELDS, REQUIRED_FIELDS, CredentialType
from vaultgate.injection.rules import AdditionalRule, InjectionRules
from vaultgate.server.errors import Unprocessable
from vaultgate.server.providers.hosts import check_host_entry, is_dns_name
from vaultgate.server.providers.names import with_article
from vaultgate.server.providers.templates import placeholders, substitute

# "path" marks a provider whose API wants the key inside the URL path (Telegram): the
# injection rules cannot express it, so such a template is listed but cannot back a secret.
Placement = Literal["header", "query", "path", "sigv4"]


@dataclass(frozen=True, slots=True)
class HostParam:
    """A value a host template needs (``shop`` in ``{shop}.myshopify.com``).

    ``from_key`` is a regex whose first group finds the value inside the key itself
    (Mailchimp's data centre is the key's ``-us6`` suffix).
    """

    name: str
    description: str
    default: str | None = None
    choices: tuple[str, ...] = ()
    optional: bool = False
    from_key: str | None = None


@dataclass(frozen=True, slots=True)
class CredentialField:
    """A credential field a provider needs beyond its type's (Datadog's ``application_key``)."""

    name: str
    description: str
    required: bool = True


@dataclass(frozen=True, slots=True)
class AwsDefaults:
    """Fallback signing scope for hosts whose name does not reveal it."""

    region: str
    service: str


@dataclass(frozen=True, slots=True)
class Provider:
    """One API's template. ``hosts`` and injection values may hold ``{param}`` placeholders;
    use ``resolve_hosts`` and ``injection_rules`` to get them filled for an account."""

    slug: str
    name: str
    credential_type: CredentialType
    hosts: tuple[str, ...]
    injection: InjectionRules
    placement: Placement
    docs_url: str
    params: Mapping[str, HostParam] = field(default_factory=dict)
    fields: Mapping[str, CredentialField] = field(default_factory=dict)
    credential_defaults: Mapping[str, str] = field(default_factory=dict)
    credential_hints: Mapping[str, str] = field(default_factory=dict)
    key_field: str = "token"
    key_pattern: str | None = None
    key_hint: str | None = None
    aws: AwsDefaults | None = None
    base_path: str | None = None
    notes: str = ""
    _key_regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.compile(self.key_pattern) if self.key_pattern is not None else None
        object.__setattr__(self, "_key_regex", regex)

    @property
    def injectable(self) -> bool:
        """Whether a secret can be created from this template."""
        return self.placement != "path"

    def credential_field_names(self) -> tuple[str, ...]:
        """Every field a credential for this provider may carry."""
        kind = self.credential_type
        return (*REQUIRED_FIELDS[kind], *OPTIONAL_FIELDS[kind], *self.fields)

    # -- parameters and hosts -------------------------------------------------------------

    def derive_params(self, credential: Mapping[str, str]) -> dict[str, str]:
        """Parameters that can be read off the key itself (Mailchimp's ``dc``)."""
        key = credential.get(self.key_field, "")
        found: dict[str, str] = {}
        for param in self.params.values():
            match = re.search(param.from_key, key) if param.from_key else None
            if match is not None:
                found[param.name] = match.group(1)
        return found

    def resolve_hosts(self, params: Mapping[str, str]) -> tuple[str, ...]:
        """The allowed-host entries with the parameters filled in, lower-cased, deduplicated.

        An entry that needs an optional parameter the client left out is dropped.
        """
        values = self._param_values(params)
        hosts: list[str] = []
        for template in self.hosts:
            used = placeholders(template)
            if any(name not in values for name in used):
                continue
            host = substitute(template, values).lower()
            try:
                check_host_entry(host)
            except ValueError:
                # Each value is a DNS name, but a long one can still overflow a label.
                raise _param_error(used[0], "makes a host name that is too long") from None
            if host not in hosts:
                hosts.append(host)
        return tuple(hosts)

    def resolve_base_path(self, params: Mapping[str, str]) -> str | None:
        if self.base_path is None:
            return None
        return substitute(self.base_path, self._param_values(params))

    def injection_rules(self, params: Mapping[str, str]) -> InjectionRules:
        """The injection rules with host parameters (Algolia's ``app_id``) filled in.

        Credential placeholders (``{token}``, ``{basic}``) stay for the injection package.
        """
        values = self._param_values(params)
        rules = self.injection
        return InjectionRules(
            header=rules.header,
            format=substitute(rules.format, values) if rules.format is not None else None,
            additional=tuple(
                AdditionalRule(rule.target, rule.name, substitute(rule.value, values))
                for rule in rules.additional
            ),
            sigv4=rules.sigv4,
        )

    def _param_values(self, params: Mapping[str, str]) -> dict[str, str]:
        for name in params:
            if name not in self.params:
                raise _param_error(name, f"is not a parameter of {self.name}")
        values: dict[str, str] = {}
        for name, spec in self.params.items():
            value = params.get(name, spec.default)
            if value is None:
                if spec.optional:
                    continue
                raise _param_error(name, f"is required by {self.name}: {spec.description}")
            if not is_dns_name(value):
                raise _param_error(name, "must be a DNS label or dotted name")
            if spec.choices and value.lower() not in spec.choices:
                raise _param_error(name, f"must be one of {', '.join(spec.choices)}")
            values[name] = value
        return values

    # -- credentials ----------------------------------------------------------------------

    def check_key(self, credential: Mapping[str, str]) -> None:
        """Refuse a key that cannot belong to this provider (a typo, a key for another API)."""
        if self._key_regex is None:
            return
        value = credential.get(self.key_field)
        if value is None or self._key_regex.search(value) is None:
            hint = f" (expected {self.key_hint})" if self.key_hint else ""
            said = with_article(self.name)
            raise Unprocessable(
                f"credential.{self.key_field} does not look like {said} key{hint}",
                field=f"credential.{self.key_field}",
            )

    def optional_blanks(self) -> dict[str, str]:
        """This template's own optional fields (no default), each as an empty value."""
        return {
            spec.name: ""
            for spec in self.fields.values()
            if not spec.required and spec.name not in self.credential_defaults
        }

    def prepare_credential(self, given: Mapping[str, str]) -> dict[str, str]:
        """The credential with this template's defaults applied, checked for completeness.

        Mailgun's username defaults to ``api`` and Stripe-style keys to an empty password, so
        the client supplies only what is secret.
        """
        allowed = self.credential_field_names()
        for name in given:
            if name not in allowed:
                raise _field_error(name, f"is not a field of a {self.name} credential")
        # An optional field left out (or left blank in a form) is stored empty: a rule that
        # names it then renders blank and is left out of the request ("sent when stored").
        merged = {**self.optional_blanks(), **self.credential_defaults, **given}
        required = [*REQUIRED_FIELDS[self.credential_type]]
        required += [spec.name for spec in self.fields.values() if spec.required]
        for name in required:
            value = merged.get(name)
            if value is None or (value == "" and self.credential_defaults.get(name) != ""):
                raise _field_error(name, f"is required for {self.name}")
        self.check_key(merged)
        return merged

    # -- presentation ---------------------------------------------------------------------

    def to_public(self) -> dict[str, Any]:
        """The template as ``GET /v1/providers`` shows it: JSON-ready, no secrets in it."""
        return {
            "slug": self.slug,
            "name": self.name,
            "credential_type": self.credential_type,
            "placement": self.placement,
            "injectable": self.injectable,
            "hosts": list(self.hosts),
            "params": [_public_param(param) for param in self.params.values()],
            "credential_fields": self._public_fields(),
            "injection": _public_rules(self.injection),
            "key_pattern": self.key_pattern,
            "key_hint": self.key_hint,
            "aws": {"region": self.aws.region, "service": self.aws.service} if self.aws else None,
            "base_path": self.base_path,
            "docs_url": self.docs_url,
            "notes": self.notes,
        }

    def _public_fields(self) -> list[dict[str, Any]]:
        kind = self.credential_type
        rows: list[dict[str, Any]] = []
        for name in self.credential_field_names():
            extra = self.fields.get(name)
            rows.append(
                {
                    "name": name,
                    "required": extra.required if extra else name in REQUIRED_FIELDS[kind],
                    "description": extra.description if extra else None,
                    "default": self.credential_defaults.get(name),
                    "hint": self.credential_hints.get(name),
                }
            )
        return rows


def _public_param(param: HostParam) -> dict[str, Any]:
    return {
        "name": param.name,
        "description": param.description,
        "default": param.default,
        "choices": list(param.choices),
        "optional": param.optional,
        "from_key": param.from_key is not None,
    }


def _public_rules(rules: InjectionRules) -> dict[str, Any]:
    return {
        "header": rules.header,
        "format": rules.format,
        "additional": [
            {"target": rule.target, "name": rule.name, "value": rule.value}
            for rule in rules.additional
        ],
        "sigv4": rules.sigv4,
    }


def _param_error(name: str, problem: str) -> Unprocessable:
    name = name[:64]  # a client's unknown name is echoed back; keep the answer small
    return Unprocessable(f"provider_params.{name} {problem}", field=f"provider_params.{name}")


def _field_error(name: str, problem: str) -> Unprocessable:
    name = name[:64]
    return Unprocessable(f"credential.{name} {problem}", field=f"credential.{name}")
