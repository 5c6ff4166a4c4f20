"""``boto3_client()`` of the unmodified official client: real botocore calls (PutObject,
GetObject, ListObjectsV2) signed through a vaultgate SigV4 grant, checked by a loopback
S3-shaped server that recomputes each signature with botocore's own signer."""

from __future__ import annotations

import asyncio
from typing import Any

import alter_sdk
import botocore.exceptions
import pytest

from support.injection import Tenant
from support.s3 import S3Upstream, run_s3

AKID = "AKIDBOTO3EXAMPLE"
SECRET = "canary-boto3-secret-Jw62Hs0Qe4"
SESSION = "canary-boto3-session-Ux19Mb3Zc8"
REGION = "eu-central-1"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    with run_s3(AKID, SECRET, SESSION, REGION) as server:
        # botocore's own setting for where S3 is (no endpoint_url argument on boto3_client).
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.origin)
        monkeypatch.delenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", raising=False)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        yield server


def aws_grant(tenant: Tenant, s3: S3Upstream, secret: str = SECRET) -> str:
    return tenant.store(
        {
            "credential_type": "aws_sigv4",
            "credential": {
                "access_key_id": AKID,
                "secret_access_key": secret,
                "session_token": SESSION,
            },
            "aws": {"region": REGION, "service": "s3"},
        },
        [s3.origin],
    )


async def test_put_get_and_list_objects_through_a_sigv4_grant(
    tenant: Tenant, s3: S3Upstream
) -> None:
    grant = aws_grant(tenant, s3)
    async with alter_sdk.App(api_key=tenant.key) as app:
        client = await app.boto3_client("s3", grant_id=grant, region_name=REGION, reason="backup")
        put = await asyncio.to_thread(
            client.put_object, Bucket="backups", Key="daily/a b.txt", Body=b"hello vault"
        )
        got = await asyncio.to_thread(client.get_object, Bucket="backups", Key="daily/a b.txt")
        body = got["Body"].read()
        listed = await asyncio.to_thread(client.list_objects_v2, Bucket="backups")
    assert s3.refused == []
    assert len(s3.verified) == 3
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert body == b"hello vault"
    assert [o["Key"] for o in listed["Contents"]] == ["daily/a b.txt"]
    assert s3.objects == {("backups", "daily/a b.txt"): b"hello vault"}
    assert not any(SECRET.encode() in raw or tenant.key.encode() in raw for raw in s3.seen)
    with tenant.vault.admin() as admin:
        uses = admin.get("/v1/audit", params={"grant_id": grant, "event": "grant:use"}).json()
    assert sorted(u["method"] for u in uses["items"]) == ["GET", "GET", "PUT"]
    assert {(u["mode"], u["reason"]) for u in uses["items"]} == {("retrieve", "backup")}
    assert SECRET not in str(uses)


async def test_a_signature_under_the_wrong_secret_is_refused_by_the_upstream(
    tenant: Tenant, s3: S3Upstream
) -> None:
    # The twin of the test above: the verifier is not a rubber stamp.
    grant = aws_grant(tenant, s3, secret="canary-boto3-wrong-Lq07Ty2Pd5")
    async with alter_sdk.App(api_key=tenant.key) as app:
        client = await app.boto3_client("s3", grant_id=grant, region_name=REGION)
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            await asyncio.to_thread(client.list_objects_v2, Bucket="backups")
    assert raised.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert s3.verified == [] and len(s3.refused) == 1
