"""The accounts file (lamina.accounts.store) and cross-account routing (lamina.accounts.routing)."""

from __future__ import annotations

import asyncio
import json
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from lamina.accounts import routing, store
from lamina.accounts.store import AccountError
from lamina.errors import AwsError
from lamina.policy.service import PolicyService

ROOT = "123456789012"


def test_create_persists_0600_with_a_unique_12_digit_id(tmp_path: Path) -> None:
    a = store.create(tmp_path, "team-a", reserved_ids=frozenset({ROOT}))
    b = store.create(tmp_path, "team_b")
    path = store.accounts_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(a.account_id) == 12 and a.account_id.isdigit() and a.account_id[0] != "0"
    assert a.account_id not in (ROOT, b.account_id) and a.access_key_id != b.access_key_id
    assert store.load(tmp_path) == [a, b]
    assert json.loads(path.read_text())["accounts"][0]["secret_access_key"] == a.secret_access_key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accounts.json", "accounts.lock"]  # no temp left


def test_ids_avoid_reserved_and_existing_ones(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    draws = iter([23456789012, 23456789012, 0])  # 1e11 + draw: the root's id, again, then a free one
    monkeypatch.setattr(store.secrets, "randbelow", lambda _n: next(draws))
    acc = store.create(tmp_path, "x", reserved_ids=frozenset({ROOT}))
    assert acc.account_id == "100000000000"


def test_names_are_checked(tmp_path: Path) -> None:
    for bad in ("", "a b", "root", "Root", "_x", "-x", "a.b", "é", "x" * 65):
        with pytest.raises(AccountError):
            store.create(tmp_path, bad)
    store.create(tmp_path, "x" * 64)
    store.create(tmp_path, "dup")
    with pytest.raises(AccountError, match="already exists"):
        store.create(tmp_path, "dup")
    assert [a.name for a in store.load(tmp_path)] == ["x" * 64, "dup"]


def test_delete_and_signature_changes(tmp_path: Path) -> None:
    assert store.load(tmp_path) == [] and store.signature(tmp_path) is None
    a = store.create(tmp_path, "a")
    first = store.signature(tmp_path)
    store.create(tmp_path, "b")
    assert store.signature(tmp_path) != first
    assert store.delete(tmp_path, "a") == a
    assert [x.name for x in store.load(tmp_path)] == ["b"]
    with pytest.raises(AccountError, match="no account named 'a'"):
        store.delete(tmp_path, "a")


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    threads = [threading.Thread(target=store.create, args=(tmp_path, f"n{i}")) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.name for a in store.load(tmp_path)) == [f"n{i}" for i in range(8)]


def test_secrets_stay_out_of_reprs_and_errors(tmp_path: Path) -> None:
    acc = store.create(tmp_path, "a")
    assert acc.secret_access_key not in repr(acc) and acc.access_key_id in repr(acc)
    path = store.accounts_path(tmp_path)
    path.write_text(path.read_text()[:-20])  # truncated: invalid JSON that holds the secret
    with pytest.raises(AccountError) as exc:
        store.load(tmp_path)
    assert acc.secret_access_key[:10] not in str(exc.value)
    path.write_text(json.dumps({"accounts": [{**acc.to_json(), "account_id": "12"}]}))
    with pytest.raises(AccountError, match="invalid account entry"):
        store.load(tmp_path)


# -- routing ----------------------------------------------------------------------------------------


class FakeVersion:
    def __init__(self, name: str) -> None:
        self.name = name
        self.revision_id = "rev"


class FakeFunctions:
    """The one function ``f`` (and its version 1) of ``account_id``."""

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.aliases: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = asyncio.Lock()

    def resolve(self, region: str, ident: str, qualifier: str | None = None) -> FakeVersion:
        name = ident.split(":function:")[-1].split(":")[0]
        if name != "f" or qualifier not in (None, "$LATEST", "1"):
            raise AwsError("ResourceNotFoundException", "Function not found")
        return FakeVersion("f")

    def lock(self, region: str, name: str) -> asyncio.Lock:
        return self._lock


class FakeStore:
    async def call(self, fn: Any, *args: Any) -> Any:
        return fn(*args)

    def put_policy(self, key: Any, data: Any) -> None:
        pass


class Tenant:
    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        # The real policy service and evaluator, over a fake registry of one function.
        self.policies = PolicyService(functions=FakeFunctions(account_id), store=FakeStore())  # type: ignore[arg-type]


OWNER, CALLER = "111111111111", "222222222222"
ARN = f"arn:aws:lambda:us-east-1:{OWNER}:function:f"


def tenants() -> dict[str, Tenant]:
    return {OWNER: Tenant(OWNER), CALLER: Tenant(CALLER)}


def grant(owner: Tenant, principal: str, action: str = "lambda:InvokeFunction") -> None:
    params = {"FunctionName": "f", "StatementId": principal[-6:] + action[7:], "Action": action}
    asyncio.run(owner.policies.add("us-east-1", {**params, "Principal": principal}))


def route(by: dict[str, Tenant], op: str, **params: Any) -> Tenant:
    return routing.route(by, by[CALLER], op, "us-east-1", params)


def test_target_account() -> None:
    assert routing.target_account({"FunctionName": "f"}) is None
    assert routing.target_account({"FunctionName": "f:live"}) is None
    assert routing.target_account({"FunctionName": ARN}) == OWNER
    assert routing.target_account({"FunctionName": f"{OWNER}:function:f"}) == OWNER
    assert routing.target_account({"Resource": ARN}) == OWNER
    assert routing.target_account({"MaxItems": 3}) is None


def test_own_resources_never_need_a_policy() -> None:
    by = tenants()
    assert route(by, "DeleteFunction", FunctionName="f") is by[CALLER]
    assert route(by, "Invoke", FunctionName=ARN.replace(OWNER, CALLER)) is by[CALLER]


def test_cross_account_invoke_is_denied_until_the_owner_allows_it() -> None:
    by = tenants()
    with pytest.raises(AwsError) as exc:
        route(by, "Invoke", FunctionName=ARN)
    assert (exc.value.code, exc.value.status) == ("AccessDeniedException", 403)
    assert exc.value.message == (
        f"User: arn:aws:iam::{CALLER}:root is not authorized to perform: lambda:InvokeFunction on resource: "
        f"{ARN} because no resource-based policy allows the lambda:InvokeFunction action"
    )
    grant(by[OWNER], CALLER)
    assert route(by, "Invoke", FunctionName=ARN) is by[OWNER]
    assert route(by, "InvokeWithResponseStream", FunctionName=ARN) is by[OWNER]
    # The grant is for invoking: other operations stay denied, writes whatever the policy says.
    for op, action in (("GetFunction", "lambda:GetFunction"), ("DeleteFunction", "lambda:DeleteFunction")):
        with pytest.raises(AwsError) as exc:
            route(by, op, FunctionName=ARN)
        assert f"perform: {action} on" in exc.value.message
    grant(by[OWNER], "*", "lambda:*")
    assert route(by, "GetFunction", FunctionName=ARN) is by[OWNER]
    with pytest.raises(AwsError, match="lambda:UpdateFunctionConfiguration"):
        route(by, "UpdateFunctionConfiguration", FunctionName=ARN)


def test_root_arn_principal_and_qualified_resources() -> None:
    by = tenants()
    grant(by[OWNER], f"arn:aws:iam::{CALLER}:root")
    assert route(by, "Invoke", FunctionName=ARN) is by[OWNER]
    # Version 1 has its own (empty) policy, as on AWS.
    with pytest.raises(AwsError) as exc:
        route(by, "Invoke", FunctionName=ARN, Qualifier="1")
    assert f"on resource: {ARN}:1 " in exc.value.message


def test_missing_functions_and_accounts_look_denied() -> None:
    by = tenants()
    grant(by[OWNER], CALLER)
    for ident in (ARN + "x", ARN.replace(OWNER, "333333333333")):
        with pytest.raises(AwsError) as exc:
            route(by, "Invoke", FunctionName=ident)
        assert exc.value.code == "AccessDeniedException", ident


def test_malformed_identifiers_stay_with_the_caller_for_its_400() -> None:
    by = tenants()
    for ident in ("arn:aws:lambda:us-east-1:abc:function:f", "123:function:f", f"{OWNER}:function:bad name"):
        assert route(by, "Invoke", FunctionName=ident) is by[CALLER], ident
