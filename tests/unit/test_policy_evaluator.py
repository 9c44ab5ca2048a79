"""The resource-policy evaluator: principals, actions, conditions, Deny precedence."""

from __future__ import annotations

from typing import Any

import pytest

from lamina.errors import AwsError
from lamina.policy.evaluator import arn_like, authorize, glob_match, principal_account
from lamina.policy.statements import build_statement, check_size, render_principal

FN = "arn:aws:lambda:us-east-1:123456789012:function:f"
BUCKET = "arn:aws:s3:::my-bucket"


def stmt(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Sid": "s",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "lambda:InvokeFunction",
    }
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def allows(statements: list[dict[str, Any]], **kw: Any) -> bool:
    kw.setdefault("principal", "s3.amazonaws.com")
    kw.setdefault("action", "lambda:InvokeFunction")
    return authorize({"Version": "2012-10-17", "Statement": statements}, **kw)


def test_no_policy_or_no_statement_denies() -> None:
    assert not authorize(None, principal="s3.amazonaws.com", action="lambda:InvokeFunction")
    assert not allows([])


def test_star_principal_allows_anyone() -> None:
    assert allows([stmt()])
    assert allows([stmt(Principal={"AWS": "*"})], principal="arn:aws:iam::999999999999:user/x")


@pytest.mark.parametrize(
    ("spec", "principal", "expected"),
    [
        ({"Service": "s3.amazonaws.com"}, "s3.amazonaws.com", True),
        ({"Service": "s3.amazonaws.com"}, "sns.amazonaws.com", False),
        ({"Service": ["sns.amazonaws.com", "s3.amazonaws.com"]}, "s3.amazonaws.com", True),
        ({"AWS": "arn:aws:iam::111122223333:root"}, "111122223333", True),
        ({"AWS": "arn:aws:iam::111122223333:root"}, "arn:aws:iam::111122223333:role/r", True),
        ({"AWS": "arn:aws:iam::111122223333:root"}, "arn:aws:sts::111122223333:assumed-role/r/s", True),
        ({"AWS": "arn:aws:iam::111122223333:root"}, "arn:aws:iam::444455556666:role/r", False),
        ({"AWS": "111122223333"}, "arn:aws:iam::111122223333:user/u", True),
        ({"AWS": "arn:aws:iam::111122223333:role/r"}, "arn:aws:iam::111122223333:role/r", True),
        ({"AWS": "arn:aws:iam::111122223333:role/r"}, "arn:aws:iam::111122223333:role/other", False),
        ({"AWS": "arn:aws:iam::111122223333:role/r"}, "111122223333", False),
        ({"Service": "s3.amazonaws.com"}, "arn:aws:iam::111122223333:root", False),
        ("not-a-principal", "s3.amazonaws.com", False),
    ],
)
def test_principal_matching(spec: Any, principal: str, expected: bool) -> None:
    assert allows([stmt(Principal=spec)], principal=principal) is expected


@pytest.mark.parametrize(
    ("spec", "action", "expected"),
    [
        ("lambda:InvokeFunction", "lambda:InvokeFunction", True),
        ("lambda:InvokeFunction", "lambda:GetFunction", False),
        ("lambda:InvokeFunction", "lambda:InvokeFunctionUrl", False),
        ("lambda:*", "lambda:InvokeFunctionUrl", True),
        ("*", "lambda:GetFunction", True),
        ("lambda:Invoke*", "lambda:InvokeFunctionUrl", True),
        ("lambda:Get?unction", "lambda:GetFunction", True),
        ("LAMBDA:invokefunction", "lambda:InvokeFunction", True),  # actions are case-insensitive
        (["lambda:GetFunction", "lambda:InvokeFunction"], "lambda:InvokeFunction", True),
        ("s3:*", "lambda:InvokeFunction", False),
    ],
)
def test_action_matching(spec: Any, action: str, expected: bool) -> None:
    assert allows([stmt(Action=spec)], action=action) is expected


def test_source_arn_condition_uses_arn_like() -> None:
    s = stmt(Condition={"ArnLike": {"AWS:SourceArn": BUCKET}})
    assert allows([s], source_arn=BUCKET)
    assert not allows([s], source_arn="arn:aws:s3:::other-bucket")
    assert not allows([s])  # the key is absent: a positive operator fails


def test_arn_like_wildcards_per_component() -> None:
    assert arn_like("arn:aws:s3:::bucket-*", "arn:aws:s3:::bucket-42")
    assert arn_like("arn:aws:sns:*:123456789012:topic", "arn:aws:sns:eu-west-1:123456789012:topic")
    assert arn_like("arn:aws:sns:us-east-?:*:t", "arn:aws:sns:us-east-2:123456789012:t")
    assert not arn_like("arn:aws:sns:us-east-?:*:t", "arn:aws:sns:us-east-12:123456789012:t")
    assert arn_like("arn:aws:events:*:*:rule/*", "arn:aws:events:us-east-1:1:rule/a/b:c")
    assert not arn_like("arn:aws:s3:::bucket", "arn:aws:s3:::bucket/key")
    assert not arn_like("arn:aws:s3", "arn:aws:s3:::b")  # fewer than six components never match
    assert not arn_like("*", "arn:aws:s3:::b")


def test_glob_match() -> None:
    assert glob_match("a*c", "abbbc") and glob_match("a?c", "abc") and not glob_match("a?c", "abbc")
    assert glob_match("a.c", "a.c") and not glob_match("a.c", "abc")  # regex characters are literal
    assert not glob_match("ABC", "abc") and glob_match("ABC", "abc", ignore_case=True)


def test_source_account_condition() -> None:
    s = stmt(Condition={"StringEquals": {"AWS:SourceAccount": "111122223333"}})
    assert allows([s], source_account="111122223333")
    assert not allows([s], source_account="444455556666")
    assert not allows([s])


def test_condition_keys_are_case_insensitive() -> None:
    s = stmt(Condition={"StringEquals": {"aws:sourceaccount": "111122223333"}})
    assert allows([s], source_account="111122223333")


def test_all_conditions_must_hold_any_value_may() -> None:
    s = stmt(
        Condition={
            "StringEquals": {"AWS:SourceAccount": ["111122223333", "444455556666"]},
            "ArnLike": {"AWS:SourceArn": "arn:aws:s3:::b-*"},
        }
    )
    assert allows([s], source_account="444455556666", source_arn="arn:aws:s3:::b-1")
    assert not allows([s], source_account="444455556666", source_arn="arn:aws:s3:::c-1")
    assert not allows([s], source_account="999999999999", source_arn="arn:aws:s3:::b-1")


def test_string_like_and_negated_operators() -> None:
    like = stmt(Condition={"StringLike": {"AWS:SourceArn": "arn:aws:sqs:*"}})
    assert allows([like], source_arn="arn:aws:sqs:us-east-1:1:q")
    assert not allows([like], source_arn="arn:aws:sns:us-east-1:1:q")
    not_eq = stmt(Condition={"StringNotEquals": {"AWS:SourceAccount": "111122223333"}})
    assert not allows([not_eq], source_account="111122223333")
    assert allows([not_eq], source_account="444455556666")
    assert allows([not_eq])  # a negated operator holds for an absent key
    not_like = stmt(Condition={"ArnNotLike": {"AWS:SourceArn": "arn:aws:s3:::secret-*"}})
    assert not allows([not_like], source_arn="arn:aws:s3:::secret-1")
    assert allows([not_like], source_arn="arn:aws:s3:::public")


def test_if_exists_operators() -> None:
    s = stmt(Condition={"StringEqualsIfExists": {"AWS:SourceAccount": "111122223333"}})
    assert allows([s])
    assert allows([s], source_account="111122223333")
    assert not allows([s], source_account="444455556666")


def test_function_url_auth_type() -> None:
    s = stmt(
        Action="lambda:InvokeFunctionUrl",
        Condition={"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}},
    )
    assert allows([s], principal="*", action="lambda:InvokeFunctionUrl", url_auth_type="NONE")
    assert not allows([s], principal="*", action="lambda:InvokeFunctionUrl", url_auth_type="AWS_IAM")
    assert not allows([s], principal="*", action="lambda:InvokeFunctionUrl")
    via = stmt(Condition={"Bool": {"lambda:InvokedViaFunctionUrl": "true"}})
    assert allows([via], url_auth_type="NONE")
    assert not allows([via])


def test_unknown_operator_fails_closed() -> None:
    assert not allows([stmt(Condition={"NumericLessThan": {"AWS:SourceAccount": "5"}})], source_account="1")
    assert not allows([stmt(Condition={"StringEquals": "junk"})])


def test_explicit_deny_wins_in_any_order() -> None:
    allow = stmt(Sid="a")
    deny = stmt(Sid="d", Effect="Deny", Principal={"Service": "s3.amazonaws.com"})
    assert not allows([allow, deny])
    assert not allows([deny, allow])
    assert allows([allow, deny], principal="sns.amazonaws.com")  # the deny does not match sns


def test_deny_with_unmet_condition_does_not_apply() -> None:
    deny = stmt(Effect="Deny", Condition={"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::bad"}})
    assert allows([stmt(), deny], source_arn="arn:aws:s3:::good")
    assert not allows([stmt(), deny], source_arn="arn:aws:s3:::bad")


def test_not_action_and_not_principal() -> None:
    assert allows([stmt(Action=None, NotAction="lambda:GetFunction")])
    assert not allows([stmt(Action=None, NotAction="lambda:Invoke*")])
    s = stmt(Principal=None, NotPrincipal={"Service": "sns.amazonaws.com"})
    assert allows([s]) and not allows([s], principal="sns.amazonaws.com")


def test_malformed_statements_grant_nothing() -> None:
    assert not allows([stmt(Principal=None)])
    assert not allows([stmt(Action=None)])
    assert not allows([stmt(Effect="Maybe")])
    assert not authorize({"Statement": ["junk"]}, principal="*", action="lambda:InvokeFunction")


def test_statement_list_and_single_statement_documents() -> None:
    assert authorize([stmt()], principal="x.amazonaws.com", action="lambda:InvokeFunction")
    assert authorize({"Statement": stmt()}, principal="x.amazonaws.com", action="lambda:InvokeFunction")


def test_principal_account() -> None:
    assert principal_account("111122223333") == "111122223333"
    assert principal_account("arn:aws:iam::111122223333:user/u") == "111122223333"
    assert principal_account("arn:aws:sts::111122223333:assumed-role/r/s") == "111122223333"
    assert principal_account("s3.amazonaws.com") is None
    assert principal_account("*") is None


def test_render_principal() -> None:
    assert render_principal("*") == "*"
    assert render_principal("123456789012") == {"AWS": "arn:aws:iam::123456789012:root"}
    assert render_principal("arn:aws:iam::1:role/r") == {"AWS": "arn:aws:iam::1:role/r"}
    assert render_principal("s3.amazonaws.com") == {"Service": "s3.amazonaws.com"}
    with pytest.raises(AwsError) as exc:
        render_principal("nobody")
    assert exc.value.code == "InvalidParameterValueException"


def test_build_statement_order_and_conditions() -> None:
    params = {
        "StatementId": "s3",
        "Action": "lambda:InvokeFunction",
        "Principal": "s3.amazonaws.com",
        "SourceArn": BUCKET,
        "SourceAccount": "111122223333",
    }
    s = build_statement(params, FN)
    assert list(s) == ["Sid", "Effect", "Principal", "Action", "Resource", "Condition"]
    assert s["Condition"] == {
        "StringEquals": {"AWS:SourceAccount": "111122223333"},
        "ArnLike": {"AWS:SourceArn": BUCKET},
    }
    assert authorize(
        [s],
        principal="s3.amazonaws.com",
        action="lambda:InvokeFunction",
        source_arn=BUCKET,
        source_account="111122223333",
    )
    assert not authorize([s], principal="s3.amazonaws.com", action="lambda:InvokeFunction", source_arn=BUCKET)
    bare = build_statement({"StatementId": "x", "Action": "lambda:*", "Principal": "*"}, FN)
    assert "Condition" not in bare


def test_policy_size_limit() -> None:
    check_size([stmt(Sid=str(i)) for i in range(10)])
    with pytest.raises(AwsError) as exc:
        check_size([stmt(Sid=str(i), Resource=FN) for i in range(300)])
    assert exc.value.code == "PolicyLengthExceededException"
    assert "bigger than the limit (20480)" in exc.value.message
