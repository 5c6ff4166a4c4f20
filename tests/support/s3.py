"""A loopback S3-shaped server (PutObject, GetObject, ListObjectsV2) that checks every request's
SigV4 signature with botocore's own signer (an implementation independent of vaultgate's), and
answers 403 ``SignatureDoesNotMatch`` as S3 does when it does not verify."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


@dataclass
class S3Upstream:
    port: int
    access_key_id: str
    secret_access_key: str
    session_token: str | None
    region: str
    objects: dict[tuple[str, str], bytes] = field(default_factory=dict)
    verified: list[str] = field(default_factory=list)  # "METHOD path" of each verified request
    refused: list[str] = field(default_factory=list)
    seen: list[bytes] = field(default_factory=list)  # every request, raw, for leak checks

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def check(self, method: str, path: str, headers: dict[str, str], body: bytes) -> str | None:
        """None when the signature verifies; otherwise what is wrong."""
        auth = headers.get("authorization", "")
        algorithm, _, rest = auth.partition(" ")
        if algorithm != "AWS4-HMAC-SHA256":
            return "not a SigV4 Authorization header"
        parts = dict(p.strip().split("=", 1) for p in rest.split(",") if "=" in p)
        access_key, _, scope = parts.get("Credential", "").partition("/")
        _date, region, service, terminal = [*scope.split("/"), "", "", "", ""][:4]
        if (access_key, region, service, terminal) != (
            self.access_key_id,
            self.region,
            "s3",
            "aws4_request",
        ):
            return f"unexpected credential scope {parts.get('Credential')!r}"
        content_sha = headers.get("x-amz-content-sha256", "")
        if content_sha not in ("UNSIGNED-PAYLOAD", hashlib.sha256(body).hexdigest()):
            return "x-amz-content-sha256 does not match the body"
        if self.session_token is not None and headers.get("x-amz-security-token") != (
            self.session_token
        ):
            return "missing or wrong session token"
        signed = parts.get("SignedHeaders", "").split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            return "host and x-amz-date must be signed"
        request = AWSRequest(
            method=method,
            url=self.origin + path,
            headers={name: headers[name] for name in signed if name in headers},
            data=body,
        )
        request.context["timestamp"] = headers["x-amz-date"]
        signer = S3SigV4Auth(
            Credentials(self.access_key_id, self.secret_access_key, self.session_token),
            "s3",
            self.region,
        )
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if not hmac.compare_digest(expected, parts.get("Signature", "")):
            return "the signature does not match"
        return None


def _list_xml(bucket: str, keys: list[tuple[str, bytes]]) -> bytes:
    contents = "".join(
        f"<Contents><Key>{escape(k)}</Key><Size>{len(v)}</Size>"
        f'<ETag>"{hashlib.md5(v).hexdigest()}"</ETag>'  # S3's ETag is an MD5
        "<StorageClass>STANDARD</StorageClass>"
        "<LastModified>2026-01-01T00:00:00.000Z</LastModified></Contents>"
        for k, v in keys
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>{escape(bucket)}</Name><Prefix></Prefix><KeyCount>{len(keys)}</KeyCount>"
        f"<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>{contents}</ListBucketResult>"
    ).encode()


def _handler(s3: S3Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            s3.seen.append(self.requestline.encode() + repr(self.headers.items()).encode() + body)
            problem = s3.check(self.command, self.path, headers, body)
            if problem is not None:
                s3.refused.append(f"{self.command} {self.path}: {problem}")
                error = (
                    "<Error><Code>SignatureDoesNotMatch</Code>"
                    f"<Message>{escape(problem)}</Message></Error>"
                ).encode()
                self._send(403, error, {"Content-Type": "application/xml"})
                return
            s3.verified.append(f"{self.command} {self.path}")
            url = urlsplit(self.path)
            bucket, _, key = unquote(url.path).lstrip("/").partition("/")
            if self.command == "PUT" and key:
                s3.objects[(bucket, key)] = body
                etag = f'"{hashlib.md5(body).hexdigest()}"'
                self._send(200, b"", {"ETag": etag})
            elif self.command == "GET" and key:
                found = s3.objects.get((bucket, key))
                if found is None:
                    self._send(404, b"<Error><Code>NoSuchKey</Code></Error>")
                    return
                etag = f'"{hashlib.md5(found).hexdigest()}"'
                self._send(200, found, {"ETag": etag, "Content-Type": "binary/octet-stream"})
            elif self.command == "GET" and parse_qs(url.query).get("list-type") == ["2"]:
                keys = sorted((k, v) for (b, k), v in s3.objects.items() if b == bucket)
                self._send(200, _list_xml(bucket, keys), {"Content-Type": "application/xml"})
            else:
                self._send(400, b"<Error><Code>NotImplemented</Code></Error>")

        do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _serve

    return Handler


@contextmanager
def run_s3(
    access_key_id: str, secret_access_key: str, session_token: str | None, region: str
) -> Iterator[S3Upstream]:
    s3 = S3Upstream(0, access_key_id, secret_access_key, session_token, region)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(s3))
    s3.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield s3
    finally:
        server.shutdown()
        server.server_close()
