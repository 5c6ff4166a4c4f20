"""Putting the grant's credential on an outgoing request (server-side injection).

The caller's own authentication and the vault's headers come off; the grant's rules (or a SigV4
signature) go on. Policy was decided on the caller's request: nothing here may change what was
decided on, only add the credential to it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from urllib.parse import parse_qsl, urlencode

from vaultgate.injection.rules import InjectionRuleError, apply_path, apply_rules_to_pairs
from vaultgate.injection.sigv4 import AwsCredentials, detect_region_service, sign_outgoing
from vaultgate.server.egress.client import strip_hop_by_hop
from vaultgate.server.egress.hygiene import OVERRIDE_HEADERS
from vaultgate.server.egress.pipeline import Authorized
from vaultgate.server.egress.urls import Target, normalize_path
from vaultgate.server.errors import Unprocessable

Headers = list[tuple[str, str]]

# Headers that only concern the vault and never travel on.
_VAULT_HEADERS = (
    "x-api-key",
    "x-vaultgate-target",
    "x-vaultgate-reason",
    "x-vaultgate-caller",
    "host",
)


def inject(
    auth: Authorized,
    method: str,
    target: Target,
    headers: Headers,
    extra_query: Headers,
    body: bytes | None,
    *,
    now: datetime,
) -> tuple[Target, Headers]:
    """The target and headers with the credential applied; the caller's own auth removed.

    Policy was decided on the caller's path; a ``path_prefix`` (a key in the URL path) is put in
    front only here, so a glob never has to, and never can, mention the credential.
    """
    # Content-Length stays: a streamed body goes on with the length it was declared with (the
    # upstream client enforces it); a buffered one gets its length from the client.
    out = [
        (lower, v)
        for k, v in strip_hop_by_hop(headers)
        if (lower := k.lower()) not in _VAULT_HEADERS and lower not in OVERRIDE_HEADERS
    ]
    path = normalize_path(target.path)
    if path != target.path:
        target = replace(target, path=path)
    rules, credential = auth.grant.rules, auth.credential
    if rules.sigv4:
        return _sigv4(auth, method, target, out, extra_query, body or b"", now)
    params: Headers = parse_qsl(target.query, keep_blank_values=True) if target.query else []
    before = list(params)
    params.extend(extra_query)
    try:
        out = apply_rules_to_pairs(rules, credential, out, params)
        if rules.path_prefix is not None:
            target = replace(target, path=apply_path(rules, credential, target.path))
    except InjectionRuleError as exc:
        # Rules are checked when stored; this is a credential they cannot render. The message
        # names the rule, never a value.
        raise Unprocessable(exc.message, code="injection_failed", field=exc.field) from None
    if params != before:
        target = replace(target, query=urlencode(params))
    # Lower-case names throughout (the injected ones too), as httpx.Headers used to hand them on.
    return target, [(name.lower(), value) for name, value in out]


def _sigv4(
    auth: Authorized,
    method: str,
    target: Target,
    headers: Headers,
    extra_query: Headers,
    body: bytes,
    now: datetime,
) -> tuple[Target, Headers]:
    if extra_query:
        query = "&".join(filter(None, [target.query, urlencode(extra_query)]))
        target = replace(target, query=query)
    region, service = detect_region_service(target.host)
    aws = auth.grant.aws or {}
    region, service = region or aws.get("region"), service or aws.get("service")
    if not region or not service:
        raise Unprocessable(
            "cannot tell the AWS region and service of this host; set them on "
            "the secret (aws.region, aws.service)",
            field="aws",
        )
    cred = auth.credential
    creds = AwsCredentials(
        cred["access_key_id"], cred["secret_access_key"], cred.get("session_token")
    )
    signed = sign_outgoing(
        method,
        target.url,
        headers,
        body,
        creds,
        host=target.netloc,
        region=region,
        service=service,
        now=now,
    )
    return target, signed
