"""AWS Signature Version 4: the header form and the query (presigned URL) form.

Written against the AWS SigV4 test suite (``conformance/aws-sigv4``). The intermediate canonical
request and string to sign are returned alongside the signature, so a mismatch with AWS can be
diagnosed without a debugger. ``normalize=False`` is the S3 behaviour: the path is neither
normalised nor encoded a second time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote, unquote, urlsplit

ALGORITHM: Final = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD: Final = "UNSIGNED-PAYLOAD"
# Headers this module computes; a caller's copies are dropped rather than signed.
SIGV4_HEADERS: Final[frozenset[str]] = frozenset(
    {"authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"}
)

# A caller must not choose who it authenticates as (the same set as rules.CALLER_HEADERS_REMOVED,
# repeated so this module stays standard-library only).
_CALLER_AUTH: Final = frozenset({"authorization", "cookie", "proxy-authorization"})
_ESCAPE: Final = re.compile(r"%[0-9A-Fa-f]{2}")
_SPACES: Final = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """An access key pair; the secret and the session token never appear in a repr."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class SigV4Request:
    """What is signed. ``url`` keeps its path as sent on the wire (already percent-encoded)."""

    method: str
    url: str
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """The result: headers to add (header form) or the presigned ``url`` (query form)."""

    headers: list[tuple[str, str]]
    url: str
    canonical_request: str
    string_to_sign: str
    signature: str


@dataclass(frozen=True, slots=True)
class _Scope:
    amz_date: str
    credential_scope: str
    date: str
    region: str
    service: str


def sign_headers(
    req: SigV4Request,
    creds: AwsCredentials,
    region: str,
    service: str,
    now: datetime,
    *,
    normalize: bool = True,
    sign_body: bool = False,
    unsigned_payload: bool = False,
    omit_session_token: bool = False,
) -> SignedRequest:
    """Sign into headers: ``Authorization``, ``X-Amz-Date`` and, as asked, the others.

    ``sign_body`` adds and signs ``x-amz-content-sha256``; ``omit_session_token`` sends the
    session token unsigned (some services, as in the STS "header after" case, want that).
    """
    scope = _scope(now, region, service)
    payload = _payload_hash(req.body, unsigned_payload)
    token = creds.session_token
    added: list[tuple[str, str]] = []
    signed_extra: list[tuple[str, str]] = [("x-amz-date", scope.amz_date)]
    if token:
        added.append(("X-Amz-Security-Token", token))
        if not omit_session_token:
            signed_extra.append(("x-amz-security-token", token))
    added.append(("X-Amz-Date", scope.amz_date))
    if sign_body:
        added.append(("x-amz-content-sha256", payload))
        signed_extra.append(("x-amz-content-sha256", payload))
    headers = [*_request_headers(req), *signed_extra]
    canonical_headers, signed = _canonical_headers(headers)
    path, query = _split(req.url)
    canonical = "\n".join(
        [
            req.method.upper(),
            canonical_uri(path, normalize=normalize),
            canonical_query(_parse_query(query)),
            canonical_headers,
            signed,
            payload,
        ]
    )
    string_to_sign, signature = _sign(canonical, creds, scope)
    authorization = (
        f"{ALGORITHM} Credential={creds.access_key_id}/{scope.credential_scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    added.append(("Authorization", authorization))
    return SignedRequest(added, req.url, canonical, string_to_sign, signature)


def sign_outgoing(
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    creds: AwsCredentials,
    *,
    host: str,
    region: str,
    service: str,
    now: datetime,
) -> list[tuple[str, str]]:
    """``headers`` as they should be sent: the caller's own auth and SigV4 headers dropped, the
    signature added. One helper for the SDK and the server, so both sign the same set.

    Signed: ``host`` (given, as the Host header will carry it) and every ``x-amz-*`` header sent,
    which AWS requires (an unsigned ``X-Amz-Target`` is refused); nothing else, since a hop may
    rewrite other headers. S3 keeps its path as written (no second encoding).
    """
    kept = [
        (name, value)
        for name, value in headers
        if name.lower() not in SIGV4_HEADERS and name.lower() not in _CALLER_AUTH
    ]
    signed = [("host", host)]
    signed += [(n, v) for n, v in kept if n.lower().startswith("x-amz-")]
    result = sign_headers(
        SigV4Request(method, url, signed, body),
        creds,
        region,
        service,
        now,
        normalize=service != "s3",
        sign_body=True,
    )
    return [*kept, *result.headers]


def presign_url(
    req: SigV4Request,
    creds: AwsCredentials,
    region: str,
    service: str,
    now: datetime,
    *,
    expires: int = 3600,
    normalize: bool = True,
    unsigned_payload: bool = False,
    omit_session_token: bool = False,
) -> SignedRequest:
    """Sign into the query string: the returned ``url`` carries ``X-Amz-Signature``."""
    scope = _scope(now, region, service)
    canonical_headers, signed = _canonical_headers(_request_headers(req))
    auth_params = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{creds.access_key_id}/{scope.credential_scope}"),
        ("X-Amz-Date", scope.amz_date),
        ("X-Amz-SignedHeaders", signed),
        ("X-Amz-Expires", str(expires)),
    ]
    token = creds.session_token
    if token:
        auth_params.append(("X-Amz-Security-Token", token))
    signed_params = [
        p for p in auth_params if not (omit_session_token and p[0] == "X-Amz-Security-Token")
    ]
    path, query = _split(req.url)
    canonical = "\n".join(
        [
            req.method.upper(),
            canonical_uri(path, normalize=normalize),
            canonical_query([*_parse_query(query), *signed_params]),
            canonical_headers,
            signed,
            _payload_hash(req.body, unsigned_payload),
        ]
    )
    string_to_sign, signature = _sign(canonical, creds, scope)
    auth_params.append(("X-Amz-Signature", signature))
    added = "&".join(f"{name}={_uri_encode(value)}" for name, value in auth_params)
    base = req.url.partition("#")[0].partition("?")[0]
    url = f"{base}?{query}&{added}" if query else f"{base}?{added}"
    return SignedRequest([], url, canonical, string_to_sign, signature)


# --- canonical forms -------------------------------------------------------------------------


def canonical_uri(path: str, *, normalize: bool = True) -> str:
    """The canonical URI of a wire path.

    With ``normalize`` (every service but S3) dot segments and empty segments go and the path is
    encoded again, so an escape already on the wire (``%20``) becomes ``%2520`` as AWS expects.
    Without it (S3) the path is kept as is and only bytes that are not yet escaped are encoded.
    """
    if not path:
        return "/"
    if normalize:
        return _uri_encode(normalize_path(path), safe="/")
    pieces: list[str] = []
    last = 0
    for escape in _ESCAPE.finditer(path):
        pieces.append(_uri_encode(path[last : escape.start()], safe="/"))
        pieces.append(escape.group().upper())
        last = escape.end()
    pieces.append(_uri_encode(path[last:], safe="/"))
    return "".join(pieces)


def normalize_path(path: str) -> str:
    """RFC 3986 dot-segment removal, with empty segments (``//``) collapsed as AWS does."""
    segments: list[str] = []
    parts = path.split("/")[1:] if path.startswith("/") else path.split("/")
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if segments:
                segments.pop()
            continue
        segments.append(part)
    trailing = bool(segments) and parts[-1] in ("", ".", "..")
    return "/" + "/".join(segments) + ("/" if trailing else "")


def canonical_query(pairs: Sequence[tuple[str, str]]) -> str:
    """Pairs encoded strictly (RFC 3986 unreserved only) and sorted by name, then value."""
    encoded = sorted((_uri_encode(name), _uri_encode(value)) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


def _canonical_headers(headers: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """The canonical header block and the signed-headers list.

    Repeated names are joined with ``,`` in order; folded lines and runs of spaces collapse to one.
    """
    merged: dict[str, list[str]] = {}
    for name, value in headers:
        merged.setdefault(name.strip().lower(), []).append(_SPACES.sub(" ", value).strip())
    names = sorted(merged)
    block = "".join(f"{name}:{','.join(merged[name])}\n" for name in names)
    return block, ";".join(names)


def _request_headers(req: SigV4Request) -> list[tuple[str, str]]:
    headers = [(n, v) for n, v in req.headers if n.strip().lower() not in SIGV4_HEADERS]
    if not any(name.strip().lower() == "host" for name, _ in headers):
        headers.insert(0, ("host", urlsplit(req.url).netloc.rpartition("@")[2]))
    return headers


def _parse_query(query: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for piece in query.split("&"):
        if piece:
            name, _, value = piece.partition("=")
            # '+' stays a plus: SigV4 decodes percent escapes only.
            pairs.append((unquote(name), unquote(value)))
    return pairs


def _split(url: str) -> tuple[str, str]:
    """The raw path and raw query of ``url``, untouched by any URL library normalisation."""
    rest = url.partition("#")[0]
    if "://" in rest:
        rest = rest.split("://", 1)[1]
        slash = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        rest = rest[slash:]
    path, _, query = rest.partition("?")
    return path, query


def _uri_encode(text: str, safe: str = "") -> str:
    return quote(text, safe=safe + "-_.~")


def _payload_hash(body: bytes, unsigned: bool) -> str:
    return UNSIGNED_PAYLOAD if unsigned else hashlib.sha256(body).hexdigest()


# --- keys and signature ----------------------------------------------------------------------


def _scope(now: datetime, region: str, service: str) -> _Scope:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    utc = now.astimezone(UTC)
    date = utc.strftime("%Y%m%d")
    credential_scope = f"{date}/{region}/{service}/aws4_request"
    return _Scope(utc.strftime("%Y%m%dT%H%M%SZ"), credential_scope, date, region, service)


def _sign(canonical: str, creds: AwsCredentials, scope: _Scope) -> tuple[str, str]:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{scope.amz_date}\n{scope.credential_scope}\n{digest}"
    key = signing_key(creds.secret_access_key, scope.date, scope.region, scope.service)
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    return string_to_sign, signature


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """The derived key: HMAC chain over date, region, service and ``aws4_request``."""
    key = ("AWS4" + secret_access_key).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


# --- region and service from the host --------------------------------------------------------

_REGION: Final = re.compile(r"(?:[a-z]{2}|us-gov|us-iso|us-isob|eu-isoe)-[a-z]+-\d+")
_AWS_SUFFIXES: Final = (".amazonaws.com.cn", ".amazonaws.com", ".api.aws")
# Region-less endpoints of global services; each signs as us-east-1. An allow-list, so that a
# host such as the test suite's ``example.amazonaws.com`` is never taken for a service.
_GLOBAL_SERVICES: Final[frozenset[str]] = frozenset(
    {"iam", "sts", "route53", "cloudfront", "organizations", "waf", "shield", "globalaccelerator"}
)
# Endpoint prefixes whose signing name differs from the label in the host.
_SIGNING_NAMES: Final[dict[str, str]] = {
    "bedrock-runtime": "bedrock",
    "bedrock-agent": "bedrock",
    "bedrock-agent-runtime": "bedrock",
    "email": "ses",
    "s3-accesspoint": "s3",
    "s3-control": "s3",
    "runtime.sagemaker": "sagemaker",
    "runtime-v2-lex": "lex",
    "data.iot": "iotdata",
}


def detect_region_service(host: str) -> tuple[str | None, str | None]:
    """``(region, service)`` for an AWS endpoint host, ``(None, None)`` when it is not one.

    Handles ``{service}.{region}.amazonaws.com``, ``*.api.aws``, the China partition, FIPS and
    dual-stack labels, VPC endpoints, the S3 virtual-hosted, dash-region and global forms, and
    region-less global services (``iam.amazonaws.com`` signs as us-east-1).
    """
    name = host.strip().lower().rstrip(".")
    name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    suffix = next((s for s in _AWS_SUFFIXES if name.endswith(s)), None)
    if suffix is None:
        return None, None
    labels = [label for label in name[: -len(suffix)].split(".") if label]
    if not labels:
        return None, None
    s3 = _detect_s3(labels)
    if s3 is not None:
        return s3
    regions = [i for i, label in enumerate(labels) if _REGION.fullmatch(label)]
    if regions:
        return labels[regions[-1]], _service_before(labels, regions[-1])
    if len(labels) == 1 and labels[0] in _GLOBAL_SERVICES:
        return "us-east-1", labels[0]
    return None, None


def _detect_s3(labels: list[str]) -> tuple[str | None, str | None] | None:
    """S3's own host shapes, or None when the host is not S3's."""
    for index, label in enumerate(labels):
        base = label.removesuffix("-fips")
        if base in ("s3", "s3-external-1"):
            after = [part for part in labels[index + 1 :] if part not in ("dualstack", "vpce")]
            region = after[0] if after and _REGION.fullmatch(after[0]) else "us-east-1"
            return region, "s3"
        if base.startswith("s3-") and _REGION.fullmatch(base[3:]):
            return base[3:], "s3"
    return None


def _service_before(labels: list[str], region_index: int) -> str | None:
    candidates = [label for label in labels[:region_index] if label not in ("dualstack", "fips")]
    if not candidates:
        return None
    if len(candidates) >= 2:
        dotted = ".".join(candidates[-2:])
        if dotted in _SIGNING_NAMES:
            return _SIGNING_NAMES[dotted]
    service = candidates[-1].removesuffix("-fips")
    return _SIGNING_NAMES.get(service, service)
