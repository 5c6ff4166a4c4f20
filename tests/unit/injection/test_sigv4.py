"""SigV4 beyond the AWS suite: host detection, S3 paths, unsigned payloads, what is never shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from vaultgate.injection.sigv4 import (
    UNSIGNED_PAYLOAD,
    AwsCredentials,
    SigV4Request,
    canonical_uri,
    detect_region_service,
    normalize_path,
    presign_url,
    sign_headers,
)

CREDS = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "SESSION-TOKEN-X")
NOW = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("iam.amazonaws.com", ("us-east-1", "iam")),
        ("sts.amazonaws.com", ("us-east-1", "sts")),
        ("s3.eu-west-1.amazonaws.com", ("eu-west-1", "s3")),
        ("bucket.s3.amazonaws.com", ("us-east-1", "s3")),
        ("s3.amazonaws.com", ("us-east-1", "s3")),
        ("bucket.s3.eu-central-1.amazonaws.com", ("eu-central-1", "s3")),
        ("bucket.s3-eu-west-1.amazonaws.com", ("eu-west-1", "s3")),
        ("s3-us-west-2.amazonaws.com", ("us-west-2", "s3")),
        ("s3.dualstack.ap-south-1.amazonaws.com", ("ap-south-1", "s3")),
        ("bucket.s3-fips.us-east-2.amazonaws.com", ("us-east-2", "s3")),
        ("bucket.vpce-1a2b.s3.us-east-1.vpce.amazonaws.com", ("us-east-1", "s3")),
        ("sts.us-west-2.amazonaws.com", ("us-west-2", "sts")),
        ("dynamodb.us-east-1.amazonaws.com", ("us-east-1", "dynamodb")),
        ("DynamoDB.US-EAST-1.amazonaws.com.", ("us-east-1", "dynamodb")),
        ("dynamodb.us-east-1.amazonaws.com:443", ("us-east-1", "dynamodb")),
        ("kms-fips.us-west-2.amazonaws.com", ("us-west-2", "kms")),
        ("bedrock-runtime.us-east-1.amazonaws.com", ("us-east-1", "bedrock")),
        ("runtime.sagemaker.eu-west-1.amazonaws.com", ("eu-west-1", "sagemaker")),
        ("abc123.execute-api.eu-west-1.amazonaws.com", ("eu-west-1", "execute-api")),
        ("monitoring.us-gov-west-1.amazonaws.com", ("us-gov-west-1", "monitoring")),
        ("iam.cn-north-1.amazonaws.com.cn", ("cn-north-1", "iam")),
        ("ec2.us-west-2.api.aws", ("us-west-2", "ec2")),
        ("lambda-fips.us-east-1.api.aws", ("us-east-1", "lambda")),
    ],
)
def test_detect_region_service(host: str, expected: tuple[str, str]) -> None:
    assert detect_region_service(host) == expected


@pytest.mark.parametrize(
    "host",
    [
        "example.amazonaws.com",
        "amazonaws.com",
        "api.openai.com",
        "amazonaws.com.evil.example",
        "api.aws",
    ],
)
def test_detect_region_service_refuses_other_hosts(host: str) -> None:
    assert detect_region_service(host) == (None, None)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", "/"),
        ("/", "/"),
        ("/a/b/../c", "/a/c"),
        ("/a/b/..", "/a/"),
        ("/a/./b/", "/a/b/"),
        ("//a//b", "/a/b"),
        ("/../..", "/"),
    ],
)
def test_normalize_path(path: str, expected: str) -> None:
    assert normalize_path(path) == expected


def test_canonical_uri_encodes_wire_escapes_again_except_for_s3() -> None:
    assert canonical_uri("/my%20doc/a b", normalize=True) == "/my%2520doc/a%20b"
    assert canonical_uri("/my%2fdoc/a b/../x", normalize=False) == "/my%2Fdoc/a%20b/../x"
    assert canonical_uri("/100%", normalize=False) == "/100%25"


def test_unsigned_payload_is_signed_and_sent_as_such() -> None:
    req = SigV4Request(
        "PUT", "https://bucket.s3.amazonaws.com/key", [("Host", "bucket.s3.amazonaws.com")], b"data"
    )
    signed = sign_headers(
        req, CREDS, "us-east-1", "s3", NOW, normalize=False, sign_body=True, unsigned_payload=True
    )
    assert signed.canonical_request.endswith("\n" + UNSIGNED_PAYLOAD)
    assert ("x-amz-content-sha256", UNSIGNED_PAYLOAD) in signed.headers
    hashed = sign_headers(req, CREDS, "us-east-1", "s3", NOW, normalize=False, sign_body=True)
    assert hashed.signature != signed.signature


def test_the_body_is_part_of_the_signature() -> None:
    one = SigV4Request("POST", "https://sts.amazonaws.com/", body=b"Action=GetCallerIdentity")
    two = SigV4Request("POST", "https://sts.amazonaws.com/", body=b"Action=AssumeRole")
    args = (CREDS, "us-east-1", "sts", NOW)
    assert sign_headers(one, *args).signature != sign_headers(two, *args).signature


def test_host_is_taken_from_the_url_when_not_given() -> None:
    req = SigV4Request("GET", "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08")
    signed = sign_headers(req, CREDS, "us-east-1", "iam", NOW)
    assert "\nhost:iam.amazonaws.com\n" in signed.canonical_request
    assert "\nAction=ListUsers&Version=2010-05-08\n" in signed.canonical_request


def test_callers_own_signature_headers_are_not_signed() -> None:
    req = SigV4Request(
        "GET",
        "https://iam.amazonaws.com/",
        [
            ("Host", "iam.amazonaws.com"),
            ("Authorization", "forged"),
            ("X-Amz-Date", "19700101T000000Z"),
        ],
    )
    signed = sign_headers(req, CREDS, "us-east-1", "iam", NOW)
    assert "forged" not in signed.canonical_request
    assert "19700101" not in signed.canonical_request
    assert (
        "SignedHeaders=host;x-amz-date;x-amz-security-token,"
        in dict(signed.headers)["Authorization"]
    )


def test_now_must_be_aware_and_is_converted_to_utc() -> None:
    req = SigV4Request("GET", "https://iam.amazonaws.com/")
    with pytest.raises(ValueError, match="timezone"):
        sign_headers(req, CREDS, "us-east-1", "iam", datetime(2015, 8, 30, 12, 36))
    local = NOW.astimezone(timezone(timedelta(hours=2)))
    assert sign_headers(req, CREDS, "us-east-1", "iam", local) == sign_headers(
        req, CREDS, "us-east-1", "iam", NOW
    )


def test_presigned_url_keeps_the_callers_query_and_fragment_goes() -> None:
    req = SigV4Request("GET", "https://bucket.s3.amazonaws.com/k?versionId=3#frag")
    signed = presign_url(req, CREDS, "us-east-1", "s3", NOW, expires=60, normalize=False)
    assert signed.url.startswith("https://bucket.s3.amazonaws.com/k?versionId=3&X-Amz-Algorithm=")
    assert signed.url.endswith("&X-Amz-Signature=" + signed.signature)
    assert "X-Amz-Expires=60" in signed.url
    assert "#" not in signed.url


def test_secrets_never_show_in_reprs() -> None:
    assert "wJalr" not in repr(CREDS)
    assert "SESSION" not in repr(CREDS)
    assert "AKIDEXAMPLE" in repr(CREDS)
