"""How a secret is injected and where it may go: from a provider template or stated by hand.

Everything is checked when the secret is stored, so a request never meets a rule it cannot apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from vaultgate.injection.credential import Credential, CredentialType
from vaultgate.injection.rules import (
    AdditionalRule,
    InjectionRuleError,
    InjectionRules,
    default_rules,
    placeholders,
    template_fields,
    validate_rules,
)
from vaultgate.server.egress.urls import parse_allowed_host
from vaultgate.server.errors import Unprocessable
from vaultgate.server.providers import Catalogue, Provider
from vaultgate.server.secrets.models import InjectionIn, SecretCreate


@dataclass(frozen=True, slots=True)
class Spec:
    credential_type: CredentialType
    rules: InjectionRules
    allowed_hosts: tuple[str, ...]
    aws: dict[str, str] | None
    provider: Provider | None


def provider_of(body: SecretCreate, catalogue: Catalogue) -> Provider | None:
    if not body.provider:
        return None
    provider = catalogue.get(body.provider)
    if not provider.injectable and body.injection is None:
        raise Unprocessable(
            f"provider: {provider.slug} takes its key in the URL path, which vaultgate cannot "
            "inject; store it as a custom secret if the API offers a header form",
            field="provider",
        )
    return provider


def resolve_spec(body: SecretCreate, provider: Provider | None, params: dict[str, str]) -> Spec:
    ctype = _credential_type(body, provider)
    if body.injection is not None:
        rules = rules_from_input(body.injection, ctype)
    elif provider is not None:
        rules = provider.injection_rules(params)
    else:
        try:
            rules = default_rules(ctype)
        except InjectionRuleError:
            # A type with no default rule (an OAuth credential before its injection exists)
            # is the client's to complete, never a 500.
            raise Unprocessable(
                f"injection: required for credential_type {ctype} (it has no default rule)",
                field="injection",
            ) from None
    if body.allowed_hosts is not None:
        hosts = tuple(body.allowed_hosts)
    elif provider is not None:
        hosts = provider.resolve_hosts(params)
    else:
        raise Unprocessable(
            "allowed_hosts: required for a custom secret (where may it be sent?)",
            field="allowed_hosts",
        )
    check_hosts(hosts)
    aws = _aws(body, ctype, provider)
    return Spec(ctype, rules, hosts, aws, provider)


def _credential_type(body: SecretCreate, provider: Provider | None) -> CredentialType:
    if provider is not None:
        if body.credential_type and body.credential_type != provider.credential_type:
            raise Unprocessable(
                f"credential_type: provider {provider.slug} takes {provider.credential_type}",
                field="credential_type",
            )
        return provider.credential_type
    if body.credential_type is None:
        raise Unprocessable(
            "credential_type: required when no provider is given", field="credential_type"
        )
    return cast(CredentialType, body.credential_type)


def _aws(
    body: SecretCreate, ctype: CredentialType, provider: Provider | None
) -> dict[str, str] | None:
    if body.aws is not None and ctype != "aws_sigv4":
        raise Unprocessable("aws: only for credential_type aws_sigv4", field="aws")
    if ctype != "aws_sigv4":
        return None
    merged: dict[str, str] = {}
    if provider is not None and provider.aws is not None:
        merged = {"region": provider.aws.region, "service": provider.aws.service}
    if body.aws is not None:
        merged.update(body.aws.model_dump(exclude_none=True))
    return merged


def rules_from_input(raw: InjectionIn, ctype: CredentialType) -> InjectionRules:
    if ctype == "aws_sigv4":
        raise Unprocessable(
            "injection: AWS SigV4 secrets are signed per request; custom rules do not apply",
            field="injection",
        )
    additional = tuple(
        AdditionalRule(target=cast(Any, a.target), name=a.name, value=a.value)
        for a in raw.additional
    )
    rules = InjectionRules(header=raw.header, format=raw.format, additional=additional)
    if rules.header is not None and rules.format is None:
        rules = InjectionRules(header=rules.header, format="{token}", additional=additional)
    try:
        validate_rules(rules)
    except InjectionRuleError as exc:
        raise Unprocessable(str(exc), field=exc.field) from None
    return rules


def check_rules_fit(rules: InjectionRules, credential: Credential) -> None:
    """Every placeholder the rules use must be a field this credential has."""
    if rules.sigv4:
        return
    available = set(template_fields(credential))
    templates = [("injection.format", rules.format or "")]
    templates += [
        (f"injection.additional[{i}].value", a.value) for i, a in enumerate(rules.additional)
    ]
    for where, template in templates:
        missing = placeholders(template) - available
        if missing:
            raise Unprocessable(
                f"{where}: uses {', '.join(sorted('{' + m + '}' for m in missing))}, which "
                f"a credential of type {credential.type} does not have",
                field=where,
            )


def check_hosts(hosts: tuple[str, ...]) -> None:
    if not hosts:
        raise Unprocessable("allowed_hosts: must name at least one host", field="allowed_hosts")
    for i, entry in enumerate(hosts):
        try:
            parse_allowed_host(entry)
        except ValueError as exc:
            raise Unprocessable(f"allowed_hosts[{i}]: {exc}", field=f"allowed_hosts[{i}]") from None


def rules_to_doc(rules: InjectionRules) -> dict[str, Any]:
    return {
        "header": rules.header,
        "format": rules.format,
        "additional": [
            {"target": a.target, "name": a.name, "value": a.value} for a in rules.additional
        ],
        "sigv4": rules.sigv4,
    }


def rules_from_doc(doc: dict[str, Any]) -> InjectionRules:
    return InjectionRules(
        header=doc.get("header"),
        format=doc.get("format"),
        additional=tuple(
            AdditionalRule(a["target"], a["name"], a["value"]) for a in doc.get("additional", [])
        ),
        sigv4=bool(doc.get("sigv4")),
    )
