"""RestRouter against the real Lambda model, with requests built by botocore's own serializer."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import prepare_request_dict
from botocore.model import OperationModel, ServiceModel
from botocore.serialize import create_serializer

from lamina.protocol import RestRouter

ENDPOINT = "http://127.0.0.1:9000"


def wire(op: OperationModel, params: dict[str, Any]) -> tuple[str, str, str]:
    """(method, raw path, raw query) exactly as botocore would put them on the wire."""
    request = create_serializer("rest-json", include_validation=False).serialize_to_request(params, op)
    prepare_request_dict(request, endpoint_url=ENDPOINT)
    url = urlsplit(request["url"])
    return request["method"], url.path, url.query


def sample_label(op: OperationModel, label: str) -> str:
    member = next(
        m
        for name, m in op.input_shape.members.items()
        if m.serialization.get("location") == "uri" and m.serialization.get("name", name) == label
    )
    return "7" if member.type_name in ("integer", "long") else f"sample-{label}"


def test_every_operation_routes_to_itself(model: ServiceModel, router: RestRouter) -> None:
    assert len(model.operation_names) >= 90
    for name in model.operation_names:
        op = model.operation_model(name)
        path, _, query = op.http["requestUri"].partition("?")
        labels = {k: sample_label(op, k) for k in re.findall(r"\{([^}+]+)\+?\}", path)}
        filled = path
        for label, value in labels.items():
            filled = filled.replace("{" + label + "}", value).replace("{" + label + "+}", value)
        found = router.match(op.http["method"], filled, query)
        assert found is not None, name
        assert found[0].name == name
        assert found[1] == labels


def test_every_operation_routes_from_botocore_serializer(model: ServiceModel, router: RestRouter) -> None:
    for name in model.operation_names:
        op = model.operation_model(name)
        params: dict[str, Any] = {}
        expected: dict[str, str] = {}
        for member_name, member in op.input_shape.members.items() if op.input_shape else []:
            if member.serialization.get("location") == "uri":
                value = 3 if member.type_name in ("integer", "long") else "arn:aws:x:$LATEST/y z"
                params[member_name] = value
                expected[member.serialization.get("name", member_name)] = str(value)
        method, path, query = wire(op, params)
        found = router.match(method, path, query)
        assert found is not None, name
        assert found[0].name == name
        assert found[1] == expected


def test_arn_label_is_percent_decoded(model: ServiceModel, router: RestRouter) -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:my-fn:$LATEST"
    method, path, query = wire(model.operation_model("GetFunction"), {"FunctionName": arn})
    assert "%3A" in path and "%24LATEST" in path
    found = router.match(method, path, query)
    assert found is not None
    assert found[0].name == "GetFunction"
    assert found[1] == {"FunctionName": arn}


def test_encoded_slash_stays_in_its_label(router: RestRouter) -> None:
    found = router.match("GET", "/2015-03-31/functions/a%2Fb/configuration")
    assert found is not None
    assert found[0].name == "GetFunctionConfiguration"
    assert found[1] == {"FunctionName": "a/b"}


def test_literal_query_disambiguates(router: RestRouter) -> None:
    by_arn = router.match("GET", "/2018-10-31/layers", "find=LayerVersion&Arn=arn%3Ax")
    listing = router.match("GET", "/2018-10-31/layers", "MaxItems=5")
    assert by_arn is not None and by_arn[0].name == "GetLayerVersionByArn"
    assert listing is not None and listing[0].name == "ListLayers"
    path = "/2019-09-30/functions/f/provisioned-concurrency"
    listed = router.match("GET", path, "List=ALL")
    single = router.match("GET", path, "Qualifier=prod")
    assert listed is not None and listed[0].name == "ListProvisionedConcurrencyConfigs"
    assert single is not None and single[0].name == "GetProvisionedConcurrencyConfig"


def test_most_literal_route_wins(router: RestRouter) -> None:
    found = router.match("GET", "/2019-09-25/functions/f/event-invoke-config/list")
    assert found is not None and found[0].name == "ListFunctionEventInvokeConfigs"
    found = router.match("GET", "/2015-03-31/functions/f/aliases/live")
    assert found is not None and found[0].name == "GetAlias"
    assert found[1] == {"FunctionName": "f", "Name": "live"}


def test_method_and_path_misses(router: RestRouter) -> None:
    assert router.match("GET", "/2015-03-31/nope") is None
    assert router.match("PATCH", "/2015-03-31/functions/f") is None
    assert router.match("POST", "/2015-03-31/functions/f/configuration") is None
    assert router.match("GET", "/2015-03-31/functions//configuration") is None  # empty label
    assert router.match("GET", "2015-03-31/functions") is None
    assert router.path_known("/2015-03-31/functions/f/configuration")
    assert router.path_known("/2018-10-31/layers")
    assert not router.path_known("/2015-03-31/nope")


def test_trailing_slash_and_lower_case_method(router: RestRouter) -> None:
    found = router.match("get", "/2015-03-31/functions/")
    assert found is not None and found[0].name == "ListFunctions"


def test_long_label_is_text(router: RestRouter) -> None:
    found = router.match("DELETE", "/2018-10-31/layers/my-layer/versions/12")
    assert found is not None and found[0].name == "DeleteLayerVersion"
    assert found[1] == {"LayerName": "my-layer", "VersionNumber": "12"}


def test_malformed_escapes_decode_like_urllib(router: RestRouter) -> None:
    for raw, decoded in [
        ("100%", "100%"),
        ("a%2", "a%2"),
        ("%zz", "%zz"),
        ("a=b%3D", "a=b="),
        ("%C3%A9", "é"),
    ]:
        found = router.match("GET", f"/2015-03-31/functions/{raw}")
        assert found is not None
        assert found[1] == {"FunctionName": decoded}


GREEDY_MODEL = {
    "metadata": {
        "protocol": "rest-json",
        "apiVersion": "2020-01-01",
        "endpointPrefix": "x",
        "serviceId": "X",
    },
    "operations": {
        name: {
            "name": name,
            "http": {"method": "GET", "requestUri": uri},
            "input": {"shape": "In"},
        }
        for name, uri in {
            "GetObject": "/{Bucket}/{Key+}",
            "GetAcl": "/{Bucket}/{Key+}?acl",
            "GetBucket": "/{Bucket}",
            "Tail": "/files/{Key+}/meta",
        }.items()
    },
    "shapes": {
        "In": {
            "type": "structure",
            "members": {
                "Bucket": {"shape": "S", "location": "uri", "locationName": "Bucket"},
                "Key": {"shape": "S", "location": "uri", "locationName": "Key"},
            },
        },
        "S": {"type": "string"},
    },
}


def test_greedy_labels() -> None:
    router = RestRouter(ServiceModel(GREEDY_MODEL))
    found = router.match("GET", "/bkt/a/b%20c/d.txt")
    assert found is not None and found[0].name == "GetObject"
    assert found[1] == {"Bucket": "bkt", "Key": "a/b c/d.txt"}
    found = router.match("GET", "/bkt/a/b", "acl")
    assert found is not None and found[0].name == "GetAcl"
    found = router.match("GET", "/bkt")
    assert found is not None and found[0].name == "GetBucket"
    found = router.match("GET", "/files/x/y/meta")
    assert found is not None and found[0].name == "Tail"
    assert found[1] == {"Key": "x/y"}
    found = router.match("GET", "/bkt/dir/")  # a greedy label keeps its trailing slash
    assert found is not None and found[1] == {"Bucket": "bkt", "Key": "dir/"}


def test_a_remembered_match_is_the_same_answer_with_a_dict_of_its_own(model: ServiceModel) -> None:
    from lamina.protocol import router as router_module

    router = RestRouter(model)
    path = "/2015-03-31/functions/my-fn/invocations"
    first = router.match("POST", path)
    assert first is not None and first[0].name == "Invoke" and first[1] == {"FunctionName": "my-fn"}
    first[1]["FunctionName"] = "changed by a caller"
    again = router.match("POST", path)
    assert again is not None and again[0] is first[0] and again[1] == {"FunctionName": "my-fn"}
    assert router.match("GET", path) is None and router.match("GET", path) is None  # misses too
    for i in range(router_module.MATCH_CACHE + 5):  # bounded: many distinct paths empty it
        assert router.match("POST", f"/2015-03-31/functions/f{i}/invocations") is not None
    assert len(router._matched) <= router_module.MATCH_CACHE
