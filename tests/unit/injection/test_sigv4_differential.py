"""vaultgate's SigV4 signer against botocore's own, over generated requests.

The AWS suite (test_sigv4_conformance.py) needs ``../shared``; this runs in any clone. Every
credential shape (long-term keys, session tokens), both forms (headers, presigned query), S3's
unnormalised paths and the other services' normalised ones, methods, paths with odd characters,
repeated and untrimmed headers, empty and non-empty bodies. The canonical request is compared
first, so a failure shows which line of it differs, then the signature and what is sent.

Two places where botocore and the SigV4 specification part ways are kept out of the inputs, each
with its reason at the strategy that avoids it.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

botocore_auth = pytest.importorskip("botocore.auth")
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

from vaultgate.injection.sigv4 import (  # noqa: E402
    AwsCredentials,
    SigV4Request,
    presign_url,
    sign_headers,
    sign_outgoing,
)

B64 = string.ascii_letters + string.digits + "+/"
UPPER_ALNUM = string.ascii_uppercase + string.digits
TOKEN_CHARS = string.ascii_letters + string.digits + "-"
# Names botocore never signs, and names either signer computes itself: a generated header of
# one of these would test the exclusion lists, which differ on purpose, not the signature.
NOT_SIGNED_HERE = frozenset(
    {
        *botocore_auth.SIGNED_HEADERS_BLACKLIST,
        "authorization",
        "date",
        "host",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-amz-security-token",
    }
)


@dataclass(frozen=True)
class Case:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes
    creds: AwsCredentials
    region: str
    service: str
    now: datetime


access_key_ids = st.builds(
    lambda prefix, rest: prefix + rest,
    st.sampled_from(["AKIA", "ASIA", "AROA"]),
    st.text(UPPER_ALNUM, min_size=16, max_size=16),
) | st.text(string.ascii_letters + string.digits, min_size=1, max_size=40)
secret_keys = st.text(B64, min_size=40, max_size=40) | st.text(
    string.printable.strip(), min_size=1, max_size=64
)
session_tokens = st.none() | st.text(B64 + "=", min_size=16, max_size=400)
credentials = st.builds(AwsCredentials, access_key_ids, secret_keys, session_tokens)

regions = st.sampled_from(["us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-west-1"])
services = st.sampled_from(["s3", "sts", "iam", "execute-api", "dynamodb", "sqs", "lambda"])
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "get"])
hosts = st.sampled_from(
    ["example.amazonaws.com", "bucket.s3.eu-west-3.amazonaws.com", "127.0.0.1:9000", "h.test:8443"]
)

# Path segments decoded: spaces, '%', '+', sub-delimiters, non-ASCII, dot segments. They travel
# percent-encoded; sub-delimiters, ':' and '@' may also travel raw, as RFC 3986 allows.
segment_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(" %+=&;!$'()*,:@~"),
    max_size=8,
)
segments = segment_text | st.sampled_from([".", "..", ""])
raw_safe = st.sampled_from(["", "!$&'()*+,;=:@"])


@st.composite
def wire_paths(draw: st.DrawFn, *, s3: bool) -> str:
    parts = draw(st.lists(segments, max_size=6))
    if parts and parts[-1] in (".", ".."):
        # botocore's remove_dot_segments drops the slash RFC 3986 keeps after a final dot
        # segment ("/a/b/.." is "/a/" there, "/a" in botocore); AWS's suite has no such case.
        parts.append("")
    # S3 signs the path as sent; botocore (unlike the AWS suite) does not escape what is raw,
    # so the S3 paths are sent escaped throughout.
    safe = "/" if s3 else "/" + draw(raw_safe)
    return "/" + "/".join(quote(p, safe=safe) for p in parts)


query_pairs = st.lists(
    st.tuples(st.text(min_size=1, max_size=6), st.text(max_size=8)),
    max_size=4,
    unique_by=lambda p: p[0],
)
header_names = st.text(TOKEN_CHARS, min_size=1, max_size=12).filter(
    lambda n: n.lower() not in NOT_SIGNED_HERE and not n.lower().startswith("x-amz-")
)
header_values = st.text(string.ascii_letters + string.digits + " \t-_.:;/=,", max_size=24)
headers = st.lists(st.tuples(header_names, header_values), max_size=5)
amz_headers = st.lists(
    st.tuples(st.sampled_from(["X-Amz-Target", "x-amz-meta-note", "X-Amz-Acl"]), header_values),
    max_size=2,
)
bodies = st.just(b"") | st.binary(min_size=1, max_size=256)


@st.composite
def cases(draw: st.DrawFn, *, with_body: bool = True) -> Case:
    service = draw(services)
    query = draw(query_pairs)
    # Strictly encoded on the wire: botocore signs a URL's query as written, vaultgate decodes
    # and re-encodes it (as AWS specifies); they meet on a query that is already canonical.
    encoded = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in query)
    path = draw(wire_paths(s3=service == "s3"))
    url = f"https://{draw(hosts)}{path}" + (f"?{encoded}" if encoded else "")
    return Case(
        method=draw(methods),
        url=url,
        headers=draw(headers) + draw(amz_headers),
        body=draw(bodies) if with_body else b"",
        creds=draw(credentials),
        region=draw(regions),
        service=service,
        now=draw(moments),
    )


def _recording(signer: type[Any]) -> type[Any]:
    class Recording(signer):  # type: ignore[misc, valid-type]
        canonical: str | None = None

        def canonical_request(self, request: AWSRequest) -> str:
            self.canonical = super().canonical_request(request)
            return self.canonical

    return Recording


def botocore_sign(case: Case, headers: list[tuple[str, str]], *, query: int | None = None) -> Any:
    """botocore's signature of ``case`` (the header form, or presigned for ``query`` seconds)."""
    s3 = case.service == "s3"
    if query is None:
        cls = botocore_auth.S3SigV4Auth if s3 else botocore_auth.SigV4Auth
    else:
        cls = botocore_auth.S3SigV4QueryAuth if s3 else botocore_auth.SigV4QueryAuth
    creds = Credentials(
        case.creds.access_key_id, case.creds.secret_access_key, case.creds.session_token
    )
    extra = {} if query is None else {"expires": query}
    signer = _recording(cls)(creds, case.service, case.region, **extra)
    request = AWSRequest(method=case.method, url=case.url, data=case.body)
    for name, value in headers:
        request.headers[name] = value  # HTTPHeaders appends: repeats stay in order
    naive = case.now.astimezone(UTC).replace(tzinfo=None)
    with mock.patch.object(botocore_auth, "get_current_datetime", return_value=naive):
        signer.add_auth(request)
    return signer, request


@settings(max_examples=300)
@given(case=cases())
def test_header_form_matches_botocore(case: Case) -> None:
    s3 = case.service == "s3"
    ours = sign_headers(
        SigV4Request(case.method, case.url, case.headers, case.body),
        case.creds,
        case.region,
        case.service,
        case.now,
        normalize=not s3,
        sign_body=s3,  # botocore's S3 signer always adds x-amz-content-sha256; the rest never
    )
    theirs, request = botocore_sign(case, case.headers)
    assert ours.canonical_request == theirs.canonical
    added = {name.lower(): value for name, value in ours.headers}
    assert added["authorization"] == request.headers["Authorization"]
    assert added["x-amz-date"] == request.headers["X-Amz-Date"]
    assert added.get("x-amz-security-token") == request.headers.get("X-Amz-Security-Token")


@settings(max_examples=300)
@given(case=cases(with_body=False), expires=st.integers(min_value=1, max_value=604800))
def test_query_form_matches_botocore(case: Case, expires: int) -> None:
    # Presigned URLs carry no body (botocore would move one into the query string).
    s3 = case.service == "s3"
    ours = presign_url(
        SigV4Request(case.method, case.url, case.headers, b""),
        case.creds,
        case.region,
        case.service,
        case.now,
        expires=expires,
        normalize=not s3,
        unsigned_payload=s3,
    )
    theirs, request = botocore_sign(case, case.headers, query=expires)
    assert ours.canonical_request == theirs.canonical
    ours_url, their_url = urlsplit(ours.url), urlsplit(request.url)
    assert ours_url.path == their_url.path
    # The same parameters, in another order (only the signature must come last).
    assert sorted(parse_qsl(ours_url.query, keep_blank_values=True)) == sorted(
        parse_qsl(their_url.query, keep_blank_values=True)
    )
    assert ours_url.query.endswith(f"X-Amz-Signature={ours.signature}")


@settings(max_examples=200)
@given(case=cases(), caller_auth=st.sampled_from([[], [("Authorization", "Bearer caller")]]))
def test_what_the_vault_sends_matches_botocore(
    case: Case, caller_auth: list[tuple[str, str]]
) -> None:
    """`sign_outgoing`, the function both the SDK and the server send through."""
    host = urlsplit(case.url).netloc
    sent = sign_outgoing(
        case.method,
        case.url,
        [*case.headers, *caller_auth],
        case.body,
        case.creds,
        host=host,
        region=case.region,
        service=case.service,
        now=case.now,
    )
    # It signs the host and the x-amz-* headers, and always the payload hash.
    signed = [("host", host), *((n, v) for n, v in case.headers if n.lower().startswith("x-amz-"))]
    if case.service != "s3":
        import hashlib

        signed.append(("X-Amz-Content-SHA256", hashlib.sha256(case.body).hexdigest()))
    _, request = botocore_sign(case, signed)
    authorization = [v for n, v in sent if n.lower() == "authorization"]
    assert authorization == [request.headers["Authorization"]]
    assert "Bearer caller" not in [v for _, v in sent]


def test_the_session_token_is_signed_in_both_forms() -> None:
    """One fixed case, read by eye: a session token changes both signatures, as in botocore."""
    creds = AwsCredentials("ASIAEXAMPLEEXAMPLE00", "s" * 40, "token/with+base64=")
    plain = AwsCredentials("ASIAEXAMPLEEXAMPLE00", "s" * 40)
    req = SigV4Request("GET", "https://sts.amazonaws.com/?Action=GetCallerIdentity")
    now = datetime(2026, 1, 31, 12, tzinfo=UTC)
    with_token = sign_headers(req, creds, "us-east-1", "sts", now)
    without = sign_headers(req, plain, "us-east-1", "sts", now)
    assert "x-amz-security-token:token/with+base64=" in with_token.canonical_request
    assert with_token.signature != without.signature
    presigned = presign_url(req, creds, "us-east-1", "sts", now + timedelta(seconds=1))
    assert "X-Amz-Security-Token=token%2Fwith%2Bbase64%3D" in presigned.url
