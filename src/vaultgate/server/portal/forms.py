"""Form fields in, the API's request models out; and service errors back onto form fields.

The portal builds the same ``SecretCreate`` and policy documents the JSON API takes, so every rule
is checked once, in the services. Checks here are only the ones a person needs all at once (every
empty required field), which a service would report one at a time.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from typing import Any, get_args

from pydantic import ValidationError

from vaultgate.injection.credential import (
    CREDENTIAL_TYPES,
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    CredentialType,
)
from vaultgate.server.durations import DURATION_FORMAT, parse_duration
from vaultgate.server.errors import VaultError
from vaultgate.server.policy.methods import METHODS
from vaultgate.server.policy.models import BUDGET_METRICS, DAYS, BudgetPeriod
from vaultgate.server.portal.routing import Fields
from vaultgate.server.providers import Provider
from vaultgate.server.secrets.models import SecretCreate

FieldErrors = dict[str, str]
SECRET_PREFIX = "credential."
ADDITIONAL_ROWS = 3
_WINDOW = re.compile(r"([a-z,\-]+)\s+(\d\d:\d\d)\s*-\s*(\d\d:\d\d)")
_WHOLE = re.compile(r"-?[0-9]{1,20}")
# The policy names a budget's limit after its unit; the form has one amount field for all three.
_ALIASES = {f"policy.budget.{metric}": "policy.budget.amount" for metric in BUDGET_METRICS}


def match_field(field: str | None, known: Collection[str]) -> str | None:
    """The form field an error names: itself, a parent of it, or the first child of it."""
    if not field:
        return None
    field = _ALIASES.get(field, field)
    candidate = re.sub(r"\[(\d+)\]", r".\1", field)
    while candidate:
        for name in (candidate, re.sub(r"\.(\d+)", r"[\1]", candidate)):
            if name in known:
                return name
            child = next((k for k in known if k.startswith(name + ".")), None)
            if child is not None:
                return child
        candidate = candidate.rpartition(".")[0]
    return None


def errors_from(exc: VaultError, known: Collection[str]) -> FieldErrors:
    """A service's error, placed next to the field it names ("" is the form as a whole)."""
    return {match_field(exc.field, known) or "": exc.message}


def errors_from_validation(
    exc: ValidationError, known: Collection[str], rows: Sequence[int] = ()
) -> FieldErrors:
    """``rows``: the form row of each additional injection rule sent (empty rows are skipped)."""
    # Built from locations and messages only: the rejected input is never echoed back.
    found: FieldErrors = {}
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = list(error["loc"])
        if loc[:2] == ["injection", "additional"] and len(loc) > 2 and isinstance(loc[2], int):
            loc[2] = rows[loc[2]] if loc[2] < len(rows) else loc[2]
        field = ".".join(str(p) for p in loc)
        message = str(error["msg"]).removeprefix("Value error, ")
        found.setdefault(match_field(field, known) or "", f"{field}: {message}")
    return found


def echo(fields: Fields) -> dict[str, Any]:
    """The submitted values safe to put back into a redisplayed form: never a credential."""
    values: dict[str, Any] = {
        name: fields.get(name)
        for name in fields.names()
        if not name.startswith(SECRET_PREFIX) and name != "csrf"
    }
    values["policy.allowed_methods"] = fields.getlist("policy.allowed_methods")
    return values


# --- secrets --------------------------------------------------------------------------------


def _kind(ctype: str | None) -> CredentialType | None:
    return next((kind for kind in CREDENTIAL_TYPES if kind == ctype), None)


def credential_names(provider: Provider | None, ctype: str | None) -> list[str]:
    if provider is not None:
        return list(provider.credential_field_names())
    kind = _kind(ctype)
    return [*REQUIRED_FIELDS[kind], *OPTIONAL_FIELDS[kind]] if kind else []


def _required_credential(provider: Provider | None, ctype: str | None) -> list[str]:
    if provider is None:
        kind = _kind(ctype)
        return list(REQUIRED_FIELDS[kind]) if kind else []
    return [
        f["name"]
        for f in provider.to_public()["credential_fields"]
        if f["required"] and f["default"] is None
    ]


def credential_from(fields: Fields, names: Iterable[str]) -> dict[str, str]:
    return {n: fields.get(SECRET_PREFIX + n) for n in names if fields.get(SECRET_PREFIX + n)}


def secret_body(
    fields: Fields, provider: Provider | None, known: Collection[str]
) -> tuple[SecretCreate | None, FieldErrors]:
    ctype = None if provider else (fields.get("credential_type") or None)
    errors = _missing(fields, provider, ctype)
    if errors:
        return None, errors
    raw: dict[str, Any] = {
        "app_id": fields.get("app_id"),
        "name": fields.get("name"),
        "credential": credential_from(fields, credential_names(provider, ctype)),
    }
    hosts = fields.lines("allowed_hosts")
    if hosts:
        raw["allowed_hosts"] = hosts
    if provider is not None:
        raw["provider"] = provider.slug
        raw["provider_params"] = {
            p: fields.get(f"provider_params.{p}")
            for p in provider.params
            if fields.get(f"provider_params.{p}")
        }
    else:
        raw.update(_custom_parts(fields, ctype))
    try:
        return SecretCreate.model_validate(raw), {}
    except ValidationError as exc:
        return None, errors_from_validation(exc, known, _rule_rows(fields))


def _missing(fields: Fields, provider: Provider | None, ctype: str | None) -> FieldErrors:
    errors: FieldErrors = {}
    if not fields.get("name"):
        errors["name"] = "name: give the secret a name"
    if not fields.get("app_id"):
        errors["app_id"] = "app_id: choose an app"
    if provider is None and _kind(ctype) is None:
        errors["credential_type"] = "credential_type: choose a credential type"
    for name in _required_credential(provider, ctype):
        if not fields.get(SECRET_PREFIX + name):
            errors[SECRET_PREFIX + name] = f"{name}: required"
    if provider is None and not fields.lines("allowed_hosts"):
        errors["allowed_hosts"] = "allowed_hosts: where may this secret be sent? One host a line"
    return errors


def _rule_rows(fields: Fields) -> list[int]:
    """The form rows that hold an additional rule, in order: the n-th rule sent is row rows[n]."""
    return [
        i
        for i in range(ADDITIONAL_ROWS)
        if fields.get(f"injection.additional[{i}].name")
        or fields.get(f"injection.additional[{i}].value")
    ]


def _custom_parts(fields: Fields, ctype: str | None) -> dict[str, Any]:
    parts: dict[str, Any] = {"credential_type": ctype}
    additional = [
        {
            "target": fields.get(f"injection.additional[{i}].target") or "header",
            "name": fields.get(f"injection.additional[{i}].name"),
            "value": fields.get(f"injection.additional[{i}].value"),
        }
        for i in _rule_rows(fields)
    ]
    header, fmt = fields.get("injection.header"), fields.get("injection.format")
    if header or fmt or additional:
        parts["injection"] = {
            "header": header or None,
            "format": fmt or None,
            "additional": additional,
        }
    if ctype == "aws_sigv4":
        aws = {k: fields.get(f"aws.{k}") for k in ("region", "service") if fields.get(f"aws.{k}")}
        if aws:
            parts["aws"] = aws
    return parts


# --- grants and policies --------------------------------------------------------------------


def ttl_seconds(text: str) -> int | None:
    """``3600``, ``90s``, ``30m``, ``12h`` or ``7d`` as seconds; None when empty; ValueError."""
    if not text:
        return None
    try:
        return parse_duration(text)
    except ValueError:
        raise ValueError(f"ttl_seconds: {DURATION_FORMAT}") from None


def policy_doc(fields: Fields) -> tuple[dict[str, Any], FieldErrors]:
    """The policy document a policy form describes; an empty field means "not restricted"."""
    doc: dict[str, Any] = {}
    errors: FieldErrors = {}
    methods = [m.upper() for m in fields.getlist("policy.allowed_methods")]
    if methods:
        doc["allowed_methods"] = methods
    for name in ("allowed_paths", "ip_allow", "ip_deny", "callers"):
        if values := fields.lines(f"policy.{name}"):
            doc[name] = values
    for name in ("not_before", "expires_at"):
        if value := fields.get(f"policy.{name}"):
            doc[name] = value
    for name in ("require_reason", "proxy_only"):
        if fields.get(f"policy.{name}"):
            doc[name] = True
    _rate(fields, doc, errors)
    _schedule(fields, doc, errors)
    _budget(fields, doc, errors)
    return doc, errors


def _rate(fields: Fields, doc: dict[str, Any], errors: FieldErrors) -> None:
    requests, per = (
        fields.get("policy.rate_limit.requests"),
        fields.get("policy.rate_limit.per_seconds"),
    )
    if not requests and not per:
        return
    if not (requests.isdigit() and per.isdigit()):
        # Named on the field that is wrong: the one that is not a whole number, or is missing.
        wrong = "requests" if not requests.isdigit() else "per_seconds"
        errors[f"policy.rate_limit.{wrong}"] = (
            "rate_limit: give both a number of requests and a period in seconds"
        )
        return
    doc["rate_limit"] = {"requests": int(requests), "per_seconds": int(per)}


def _schedule(fields: Fields, doc: dict[str, Any], errors: FieldErrors) -> None:
    zone, lines = fields.get("policy.schedule.timezone"), fields.lines("policy.schedule.windows")
    if not zone and not lines:
        return
    if not zone or not lines:
        where = "policy.schedule.timezone" if not zone else "policy.schedule.windows"
        errors[where] = "schedule: give a time zone and at least one window"
        return
    windows = []
    for number, line in enumerate(lines, start=1):
        window = parse_window(line)
        if window is None:
            errors["policy.schedule.windows"] = (
                f"schedule line {number}: write it as days and times, e.g. mon-fri 09:00-17:00"
            )
            return
        windows.append(window)
    doc["schedule"] = {"timezone": zone, "windows": windows}


def _budget(fields: Fields, doc: dict[str, Any], errors: FieldErrors) -> None:
    """The budget as the API takes it; its rules (amounts, periods, decimals) are the policy
    model's, so only an unknown kind or a missing amount is caught here."""
    kind = fields.get("policy.budget.kind")
    if not kind:  # "none": no budget, and saving removes the one set
        return
    if kind not in BUDGET_METRICS:
        errors["policy.budget.kind"] = "budget: choose none, requests, tokens or USD"
        return
    amount = fields.get("policy.budget.amount")
    if not amount:
        errors["policy.budget.amount"] = f"budget: give the number of {kind} allowed per period"
        return
    budget: dict[str, Any] = {kind: amount if kind == "usd" else _whole(amount)}
    if per := fields.get("policy.budget.per"):
        budget["per"] = per
    if alert := fields.get("policy.budget.alert_at_percent"):
        budget["alert_at_percent"] = _whole(alert)
    doc["budget"] = budget


def _whole(text: str) -> int | str:
    """Digits as the number a JSON client would send; anything else as text, for the policy
    model to refuse with its own message."""
    return int(text) if _WHOLE.fullmatch(text) else text


def parse_window(line: str) -> dict[str, Any] | None:
    match = _WINDOW.fullmatch(line.strip().lower())
    if match is None:
        return None
    days: list[str] = []
    for part in match[1].split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            return None
        lo, hi = DAYS.index(first), DAYS.index(last or first)
        days += [DAYS[i % 7] for i in range(lo, hi + 1 if hi >= lo else hi + 8)]
    return {"days": days, "start": match[2], "end": match[3]}


def policy_values(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored policy as form values, to prefill the edit form."""
    values: dict[str, Any] = {"policy.allowed_methods": doc.get("allowed_methods", [])}
    for name in ("allowed_paths", "ip_allow", "ip_deny", "callers"):
        values[f"policy.{name}"] = "\n".join(doc.get(name) or [])
    for name in ("not_before", "expires_at"):
        values[f"policy.{name}"] = doc.get(name) or ""
    for name in ("require_reason", "proxy_only"):
        values[f"policy.{name}"] = "on" if doc.get(name) else ""
    rate = doc.get("rate_limit") or {}
    values["policy.rate_limit.requests"] = str(rate.get("requests", ""))
    values["policy.rate_limit.per_seconds"] = str(rate.get("per_seconds", ""))
    schedule = doc.get("schedule") or {}
    values["policy.schedule.timezone"] = schedule.get("timezone", "")
    values["policy.schedule.windows"] = "\n".join(
        f"{','.join(w['days'])} {w['start']}-{w['end']}" for w in schedule.get("windows", [])
    )
    budget = doc.get("budget") or {}
    kind = next((metric for metric in BUDGET_METRICS if metric in budget), "")
    values["policy.budget.kind"] = kind
    values["policy.budget.amount"] = str(budget.get(kind, ""))
    values["policy.budget.per"] = budget.get("per", "day")
    values["policy.budget.alert_at_percent"] = str(budget.get("alert_at_percent", ""))
    return values


POLICY_FIELDS: tuple[str, ...] = (
    "policy.allowed_methods",
    "policy.allowed_paths",
    "policy.not_before",
    "policy.expires_at",
    "policy.schedule.timezone",
    "policy.schedule.windows",
    "policy.ip_allow",
    "policy.ip_deny",
    "policy.callers",
    "policy.rate_limit.requests",
    "policy.rate_limit.per_seconds",
    "policy.require_reason",
    "policy.proxy_only",
)
# Policy fields the form does not show: saving it keeps them as they are.
NOT_ON_FORM: tuple[str, ...] = ("requires_approval",)
# The kind comes first: an error on the budget as a whole (a clone's narrowing) lands on it.
BUDGET_FIELDS: tuple[str, ...] = (
    "policy.budget.kind",
    "policy.budget.amount",
    "policy.budget.per",
    "policy.budget.alert_at_percent",
)
BUDGET_KINDS: tuple[tuple[str, str], ...] = tuple(
    (metric, "USD" if metric == "usd" else metric) for metric in BUDGET_METRICS
)
BUDGET_PERIODS: tuple[str, ...] = get_args(BudgetPeriod)
ALL_METHODS = METHODS
