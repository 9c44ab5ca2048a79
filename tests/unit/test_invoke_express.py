"""Which invokes take the express lane (the rest take the general, model-driven path)."""

from __future__ import annotations

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lamina.api.invoke_express import ExpressInvoke
from lamina.web.connection import Request

ENDPOINT = "http://127.0.0.1:9000"


def boto_request(path: str, headers: dict[str, str] | None = None, body: bytes = b"{}") -> Request:
    """A request as botocore signs it, parsed as the front parses it."""
    req = AWSRequest(method="POST", url=ENDPOINT + path, data=body, headers=headers or {})
    SigV4Auth(Credentials("AKID", "secret"), "lambda", "us-east-1").add_auth(req)
    raw_path, _, query = path.encode().partition(b"?")
    pairs = [(k.lower().encode(), v.encode()) for k, v in req.headers.items()]
    return Request("POST", raw_path, query, pairs, dict(pairs))


def eligible(path: str, name: str, headers: dict[str, str] | None = None) -> tuple[str, str | None] | None:
    return ExpressInvoke.eligible(boto_request(path, headers), {"FunctionName": name})


def test_plain_invokes_take_the_express_lane() -> None:
    assert eligible("/2015-03-31/functions/f/invocations", "f") == ("f", None)
    assert eligible("/2015-03-31/functions/my-fn_2/invocations?Qualifier=7", "my-fn_2") == ("my-fn_2", "7")
    assert eligible("/2015-03-31/functions/f/invocations?Qualifier=live", "f") == ("f", "live")
    assert eligible(
        "/2015-03-31/functions/f/invocations", "f", {"X-Amz-Invocation-Type": "RequestResponse"}
    ) == ("f", None)
    assert eligible("/2015-03-31/functions/f/invocations", "f", {"X-Amzn-Trace-Id": "Root=1-a-b"}) == (
        "f",
        None,
    )


def test_everything_else_takes_the_general_path() -> None:
    path = "/2015-03-31/functions/f/invocations"
    for headers in (
        {"X-Amz-Invocation-Type": "Event"},
        {"X-Amz-Invocation-Type": "DryRun"},
        {"X-Amz-Invocation-Type": "bogus"},
        {"X-Amz-Log-Type": "Tail"},
        {"X-Amz-Log-Type": "None"},
        {"X-Amz-Client-Context": "e30="},
        {"X-Amz-Tenant-Id": "t"},
    ):
        assert eligible(path, "f", headers) is None, headers
    # ARNs, partial ARNs, name:qualifier and odd names: the model's pattern decides
    for name in ("arn:aws:lambda:us-east-1:123456789012:function:f", "f:1", "a.b", "x" * 65, ""):
        assert eligible(path, name) is None, name
    # "$LATEST" comes percent-encoded; other parameters; qualifiers the model would refuse
    for query in ("Qualifier=%24LATEST", "Qualifier=", "Qualifier=1&x=2", "Other=1", "Qualifier=a.b"):
        assert eligible(f"{path}?{query}", "f") is None, query


def test_repeated_headers_take_the_general_path() -> None:
    req = boto_request("/2015-03-31/functions/f/invocations")
    req.headers.append((b"x-amz-date", b"20200101T000000Z"))
    assert ExpressInvoke.eligible(req, {"FunctionName": "f"}) is None
