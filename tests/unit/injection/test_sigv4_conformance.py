"""The AWS SigV4 test suite (awslabs/aws-c-auth), read in place from ../shared/conformance.

Every case is checked in both forms: canonical request, string to sign, signature and the whole
signed request. Without the suite the tests skip, unless CI is set: then they fail.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from vaultgate.injection.sigv4 import AwsCredentials, SigV4Request, presign_url, sign_headers

SUITE = Path(__file__).resolve().parents[3] / ".." / "shared" / "conformance" / "aws-sigv4"
CASES = sorted(p.name for p in SUITE.iterdir() if p.is_dir()) if SUITE.is_dir() else []


def require_suite() -> None:
    if SUITE.is_dir():
        return
    message = f"AWS SigV4 conformance suite not found at {SUITE.resolve()}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class RawRequest:
    request_line: str
    method: str
    path: str
    header_lines: list[str]  # as written, continuation lines folded into their header
    headers: list[tuple[str, str]]
    body: bytes


def parse_request(text: str) -> RawRequest:
    """request.txt: a request line, headers (with obs-fold continuations), a blank line, a body."""
    text = text.replace("\r\n", "\n")
    head, _, body = text.partition("\n\n")
    request_line, *lines = head.split("\n")
    method, rest = request_line.split(" ", 1)
    path = rest.rsplit(" ", 1)[0]  # the path itself may hold spaces
    header_lines: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t") and header_lines:
            header_lines[-1] += "\n" + line
        elif line:
            header_lines.append(line)
    headers = [tuple(line.split(":", 1)) for line in header_lines]
    return RawRequest(request_line, method, path, header_lines, headers, body.encode())  # type: ignore[arg-type]


def load(case: str) -> tuple[RawRequest, dict[str, object], Path]:
    folder = SUITE / case
    request = parse_request((folder / "request.txt").read_text(encoding="utf-8"))
    context = json.loads((folder / "context.json").read_text(encoding="utf-8"))
    return request, context, folder


def expected(folder: Path, name: str) -> str:
    return (folder / name).read_text(encoding="utf-8")


def signing_inputs(request: RawRequest, context: dict[str, object]):  # type: ignore[no-untyped-def]
    creds = context["credentials"]
    assert isinstance(creds, dict)
    aws = AwsCredentials(creds["access_key_id"], creds["secret_access_key"], creds.get("token"))
    host = {n.lower(): v for n, v in request.headers}["host"].strip()
    base = f"https://{host}"
    req = SigV4Request(request.method, base + request.path, request.headers, request.body)
    now = datetime.fromisoformat(str(context["timestamp"]))
    return req, aws, now, base


def test_the_suite_has_all_38_cases() -> None:
    require_suite()
    assert len(CASES) == 38


@pytest.mark.parametrize("case", CASES or ["suite-missing"])
def test_header_form(case: str) -> None:
    require_suite()
    request, context, folder = load(case)
    req, aws, now, _ = signing_inputs(request, context)
    signed = sign_headers(
        req,
        aws,
        str(context["region"]),
        str(context["service"]),
        now,
        normalize=bool(context["normalize"]),
        sign_body=bool(context["sign_body"]),
        omit_session_token=bool(context.get("omit_session_token", False)),
    )
    assert signed.canonical_request == expected(folder, "header-canonical-request.txt")
    assert signed.string_to_sign == expected(folder, "header-string-to-sign.txt")
    assert signed.signature == expected(folder, "header-signature.txt").strip()
    added = [f"{name}:{value}" for name, value in signed.headers]
    whole = "\n".join([request.request_line, *request.header_lines, *added]) + "\n\n"
    assert whole + request.body.decode() == expected(folder, "header-signed-request.txt")


@pytest.mark.parametrize("case", CASES or ["suite-missing"])
def test_query_form(case: str) -> None:
    require_suite()
    request, context, folder = load(case)
    req, aws, now, base = signing_inputs(request, context)
    signed = presign_url(
        req,
        aws,
        str(context["region"]),
        str(context["service"]),
        now,
        expires=int(context["expiration_in_seconds"]),  # type: ignore[call-overload]
        normalize=bool(context["normalize"]),
        omit_session_token=bool(context.get("omit_session_token", False)),
    )
    assert signed.canonical_request == expected(folder, "query-canonical-request.txt")
    assert signed.string_to_sign == expected(folder, "query-string-to-sign.txt")
    assert signed.signature == expected(folder, "query-signature.txt").strip()
    assert signed.headers == []
    assert signed.url.startswith(base)
    line = f"{request.method} {signed.url[len(base) :]} HTTP/1.1"
    whole = "\n".join([line, *request.header_lines]) + "\n\n" + request.body.decode()
    assert whole == expected(folder, "query-signed-request.txt")
