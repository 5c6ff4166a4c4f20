"""Owns what a credential looks like on the wire: injection rules, SigV4, Alter request signing.

Shared by SDK and server: stdlib and httpx only; never imports vaultgate.server or logs a secret.
"""

from vaultgate.injection.credential import Credential, CredentialType
from vaultgate.injection.rules import (
    AdditionalRule,
    Injection,
    InjectionRuleError,
    InjectionRules,
    apply_path,
    apply_rules,
    default_rules,
    injected_header_names,
    injected_query_names,
    placeholders,
    render,
    rendered,
    strip_query,
    template_fields,
    validate_rules,
)
from vaultgate.injection.signing import (
    SignatureError,
    canonical_path,
    parse_timestamp,
    sign_request,
    signing_key,
    string_to_sign,
    string_to_sign_v2,
    verify_signature,
)
from vaultgate.injection.sigv4 import (
    AwsCredentials,
    SignedRequest,
    SigV4Request,
    detect_region_service,
    presign_url,
    sign_headers,
    sign_outgoing,
)
from vaultgate.injection.wire import apply_wire, from_wire, injected_names, to_wire

__all__ = [
    "AdditionalRule",
    "AwsCredentials",
    "Credential",
    "CredentialType",
    "Injection",
    "InjectionRuleError",
    "InjectionRules",
    "SigV4Request",
    "SignatureError",
    "SignedRequest",
    "apply_path",
    "apply_rules",
    "apply_wire",
    "canonical_path",
    "default_rules",
    "detect_region_service",
    "from_wire",
    "injected_header_names",
    "injected_names",
    "injected_query_names",
    "parse_timestamp",
    "placeholders",
    "presign_url",
    "render",
    "rendered",
    "sign_headers",
    "sign_outgoing",
    "sign_request",
    "signing_key",
    "string_to_sign",
    "string_to_sign_v2",
    "strip_query",
    "template_fields",
    "to_wire",
    "validate_rules",
    "verify_signature",
]
