"""PolicyService.check_invoke — the hook later callers use — over a fake function registry and store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lamina.errors import AwsError
from lamina.policy.service import PolicyService

OWNER = "123456789012"


class FakeVersion:
    def __init__(self, name: str) -> None:
        self.name = name
        self.revision_id = "rev"


class FakeFunctions:
    account_id = OWNER

    def __init__(self) -> None:
        self.aliases: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = asyncio.Lock()

    def resolve(self, region: str, ident: str, qualifier: str | None = None) -> FakeVersion:
        if ident.split(":")[0] != "f" or qualifier not in (None, "$LATEST", "1"):
            raise AwsError("ResourceNotFoundException", "Function not found")
        return FakeVersion("f")

    def lock(self, region: str, name: str) -> asyncio.Lock:
        return self._lock


class FakeStore:
    async def call(self, fn: Any, *args: Any) -> Any:
        return fn(*args)

    def put_policy(self, key: Any, data: Any) -> None:
        pass

    def delete_policies(self, *args: Any) -> None:
        pass


def service() -> PolicyService:
    return PolicyService(functions=FakeFunctions(), store=FakeStore())  # type: ignore[arg-type]


def test_check_invoke() -> None:
    async def run() -> None:
        svc = service()
        check = svc.check_invoke
        with pytest.raises(AwsError) as exc:  # no policy: a service is denied
            check("us-east-1", "f", principal="s3.amazonaws.com")
        assert exc.value.code == "AccessDeniedException" and exc.value.status == 403
        assert "is not authorized to perform: lambda:InvokeFunction on resource: " in exc.value.message
        check("us-east-1", "f", principal=OWNER)  # the owner needs no policy
        check("us-east-1", "f", principal=f"arn:aws:iam::{OWNER}:role/r")
        params = {
            "FunctionName": "f",
            "StatementId": "s3",
            "Action": "lambda:InvokeFunction",
            "Principal": "s3.amazonaws.com",
            "SourceArn": "arn:aws:s3:::b",
        }
        await svc.add("us-east-1", params)
        check("us-east-1", "f", principal="s3.amazonaws.com", source_arn="arn:aws:s3:::b")
        check("us-east-1", "f", "$LATEST", principal="s3.amazonaws.com", source_arn="arn:aws:s3:::b")
        with pytest.raises(AwsError):  # another bucket
            check("us-east-1", "f", principal="s3.amazonaws.com", source_arn="arn:aws:s3:::c")
        with pytest.raises(AwsError):  # the version has its own (empty) policy
            check("us-east-1", "f", "1", principal="s3.amazonaws.com", source_arn="arn:aws:s3:::b")
        with pytest.raises(AwsError):  # another action
            check("us-east-1", "f", principal="s3.amazonaws.com", action="lambda:GetFunction")
        with pytest.raises(AwsError) as exc:  # a missing function is a 404, not a 403
            check("us-east-1", "g", principal="s3.amazonaws.com")
        assert exc.value.code == "ResourceNotFoundException"
        await svc.forget("us-east-1", "f", None)
        assert svc.policy_of("us-east-1", "f") is None

    asyncio.run(run())
