"""Real web frameworks behind a function URL: a FastAPI app through Mangum and aws-lambda-powertools
resolvers, deployed as zips with their dependencies vendored by pip, called with urllib.

The vendored directory is built once per test session (``pip install --target``); without a
network (or pip) the tests skip with pip's own message.  The function runtime is python3.11 like
the test interpreter, so pip's binary wheels (pydantic-core) are the right ones.  The same apps
also run behind the API Gateway REST (payload 1.0) and ALB event shapes
(``lamina:url-event-format``), which Mangum and Powertools each parse with their own handlers.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import create_function
from .test_function_urls import http, public

PACKAGES = ("fastapi", "mangum", "aws-lambda-powertools")
FORMAT_TAG = "lamina:url-event-format"

FASTAPI_APP = """
from fastapi import FastAPI, Query, Request, Response
from mangum import Mangum
from pydantic import BaseModel

app = FastAPI()


class Item(BaseModel):
    name: str
    price: float


@app.get("/items/{item_id}")
def read_item(item_id: int, request: Request, q: str | None = None, tag: list[str] = Query(default=[])):
    return {"item_id": item_id, "q": q, "tag": tag, "path": request.url.path,
            "host": request.headers.get("host"), "cookie": request.cookies.get("session")}


@app.post("/items", status_code=201)
def create_item(item: Item, response: Response):
    response.set_cookie("last", item.name)
    return {"created": item.model_dump(), "total": item.price * 2}


@app.put("/blobs/{name}")
async def put_blob(name: str, request: Request):
    data = await request.body()
    return Response(content=data[::-1], media_type="application/octet-stream", headers={"x-name": name})


handler = Mangum(app, lifespan="off")
"""

POWERTOOLS_APP = """
import os

from aws_lambda_powertools.event_handler import (
    ALBResolver, APIGatewayRestResolver, LambdaFunctionUrlResolver, Response,
)

kind = os.environ["RESOLVER"]
if kind == "alb":  # ALB passes query parameters URL-encoded: Powertools decodes them on request
    app = ALBResolver(decode_query_parameters=True)
else:
    app = {"url": LambdaFunctionUrlResolver, "rest": APIGatewayRestResolver}[kind]()


def last(value):
    return value[-1] if isinstance(value, list) else value


@app.get("/items/<item_id>")
def get_item(item_id: str):
    event = app.current_event
    headers = {k.lower(): last(v) for k, v in event.resolved_headers_field.items()}
    return {"item_id": item_id, "q": last(event.resolved_query_string_parameters.get("q")),
            "ua": headers.get("user-agent")}


@app.post("/items")
def post_item():
    body = app.current_event.json_body
    return Response(status_code=201, content_type="application/json",
                    body={"created": body, "total": body["price"] * 2})


def handler(event, context):
    return app.resolve(event, context)
"""


@pytest.fixture(scope="session")
def vendored_zip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A zip of fastapi, mangum and aws-lambda-powertools with their dependencies, built once."""
    target = tmp_path_factory.mktemp("vendored") / "site"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), *PACKAGES]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot vendor {', '.join(PACKAGES)} with pip: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot vendor {', '.join(PACKAGES)} with pip (no network?): {done.stderr[-600:]}")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for path in sorted(target.rglob("*")):
            rel = path.relative_to(target)
            if path.is_file() and "__pycache__" not in rel.parts and rel.parts[0] != "bin":
                zf.write(path, rel.as_posix())
    return buf.getvalue()


def deploy(lam: Any, vendored: bytes, source: str, *, fmt: str | None = None, resolver: str = "url") -> str:
    """A function from the vendored zip plus ``app.py``, with a public URL; the URL."""
    buf = io.BytesIO(vendored)
    with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("app.py", source)
    kw: dict[str, Any] = {"Tags": {FORMAT_TAG: fmt}} if fmt else {}
    name = create_function(
        lam,
        buf.getvalue(),
        MemorySize=512,
        Timeout=60,
        Environment={"Variables": {"RESOLVER": resolver}},
        **kw,
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name)
    url = str(lam.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"])
    public(lam, name)
    return url


@pytest.fixture(scope="module")
def fastapi_urls(lam: Any, vendored_zip: bytes) -> Iterator[dict[str, str]]:
    formats = (None, "apigateway-rest", "alb", "alb-multivalue")
    urls = {fmt: deploy(lam, vendored_zip, FASTAPI_APP, fmt=fmt) for fmt in formats}
    yield {str(k): v for k, v in urls.items()}


def check_fastapi(url: str, *, repeats: bool = True) -> None:
    """GET with a path parameter, query parameters (one repeated) and a cookie; POST JSON; PUT
    binary; a 422 and a 404 from FastAPI itself.  ``repeats=False``: only the last value of a
    repeated parameter arrives (an ALB without multi-value headers)."""
    status, headers, body = http(
        "GET", url + "items/42?q=hello%20world&tag=a&tag=b", headers={"Cookie": "session=s1; other=2"}
    )
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    got = json.loads(body)
    assert got == {
        "item_id": 42,
        "q": "hello world",
        "tag": ["a", "b"] if repeats else ["b"],
        "path": "/items/42",
        "host": url.split("/")[2],
        "cookie": "s1",
    }
    status, _, body = http("GET", url + "items/not-a-number")
    assert status == 422 and json.loads(body)["detail"][0]["loc"] == ["path", "item_id"]
    pen = json.dumps({"name": "pen", "price": 1.25}).encode()
    status, headers, body = http("POST", url + "items", pen, {"content-type": "application/json"})
    assert status == 201, body
    assert json.loads(body) == {"created": {"name": "pen", "price": 1.25}, "total": 2.5}
    assert headers["set-cookie"].startswith("last=pen")
    blob = bytes(range(256))  # binary both ways: base64 in the event and in Mangum's response
    status, headers, body = http("PUT", url + "blobs/b1", blob, {"content-type": "application/octet-stream"})
    assert (status, body, headers["x-name"]) == (200, blob[::-1], "b1")
    status, _, body = http("GET", url + "nowhere")
    assert (status, json.loads(body)) == (404, {"detail": "Not Found"})


def test_fastapi_mangum_payload_2(fastapi_urls: dict[str, str]) -> None:
    check_fastapi(fastapi_urls["None"])


def test_fastapi_mangum_api_gateway_rest(fastapi_urls: dict[str, str]) -> None:
    check_fastapi(fastapi_urls["apigateway-rest"])


def test_fastapi_mangum_alb(fastapi_urls: dict[str, str]) -> None:
    check_fastapi(fastapi_urls["alb"], repeats=False)


def test_fastapi_mangum_alb_multivalue(fastapi_urls: dict[str, str]) -> None:
    check_fastapi(fastapi_urls["alb-multivalue"])


RESOLVERS = [("url", None), ("rest", "apigateway-rest"), ("alb", "alb"), ("alb", "alb-multivalue")]


@pytest.mark.parametrize(("resolver", "fmt"), RESOLVERS)
def test_powertools_resolvers(lam: Any, vendored_zip: bytes, resolver: str, fmt: str | None) -> None:
    url = deploy(lam, vendored_zip, POWERTOOLS_APP, fmt=fmt, resolver=resolver)
    status, headers, body = http("GET", url + "items/7?q=x%2By", headers={"User-Agent": "pt-test"})
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"item_id": "7", "q": "x+y", "ua": "pt-test"}
    payload = json.dumps({"name": "ink", "price": 3}).encode()
    status, headers, body = http("POST", url + "items", payload, {"content-type": "application/json"})
    assert status == 201, body
    assert json.loads(body) == {"created": {"name": "ink", "price": 3}, "total": 6}
    status, _, body = http("GET", url + "missing")
    assert status == 404, body
