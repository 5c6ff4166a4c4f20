"""`sign_outgoing`: the one SigV4 helper the SDK and the server both sign with."""

from __future__ import annotations

from datetime import UTC, datetime

from vaultgate.injection.sigv4 import AwsCredentials, SigV4Request, sign_headers, sign_outgoing

CREDS = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session")
NOW = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)


def _sign(
    headers: list[tuple[str, str]], url: str = "https://h.example/a", service: str = "dynamodb"
) -> dict[str, str]:
    out = sign_outgoing(
        "POST",
        url,
        headers,
        b"{}",
        CREDS,
        host="h.example",
        region="us-east-1",
        service=service,
        now=NOW,
    )
    return {name.lower(): value for name, value in out}


def _signed_names(headers: dict[str, str]) -> list[str]:
    return headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")


def test_every_x_amz_header_is_signed_and_nothing_a_hop_may_rewrite() -> None:
    out = _sign([("X-Amz-Target", "DynamoDB_20120810.ListTables"), ("Accept", "*/*")])
    assert _signed_names(out) == [
        "host",
        "x-amz-content-sha256",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-target",
    ]
    assert out["x-amz-target"] == "DynamoDB_20120810.ListTables"
    assert out["accept"] == "*/*"


def test_the_callers_own_auth_and_sigv4_headers_are_replaced() -> None:
    out = _sign(
        [
            ("Authorization", "Bearer caller"),
            ("Cookie", "s=1"),
            ("Proxy-Authorization", "x"),
            ("X-Amz-Date", "19990101T000000Z"),
            ("X-Amz-Security-Token", "forged"),
        ]
    )
    assert out["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/")
    assert "cookie" not in out and "proxy-authorization" not in out
    assert out["x-amz-date"] == "20150830T123600Z"
    assert out["x-amz-security-token"] == "session"


def test_the_signature_is_the_one_sign_headers_computes() -> None:
    out = _sign([("X-Amz-Target", "T")])
    expected = sign_headers(
        SigV4Request(
            "POST", "https://h.example/a", [("host", "h.example"), ("x-amz-target", "T")], b"{}"
        ),
        CREDS,
        "us-east-1",
        "dynamodb",
        NOW,
        sign_body=True,
    )
    assert out["authorization"] == {k.lower(): v for k, v in expected.headers}["authorization"]


def test_s3_paths_are_signed_as_written() -> None:
    url = "https://h.example/a//b/../c"
    out = _sign([], url=url, service="s3")

    def signature(normalize: bool) -> str:
        req = SigV4Request("POST", url, [("host", "h.example")], b"{}")
        return sign_headers(
            req, CREDS, "us-east-1", "s3", NOW, normalize=normalize, sign_body=True
        ).signature

    assert out["authorization"].endswith(f"Signature={signature(False)}")
    assert signature(False) != signature(True)
