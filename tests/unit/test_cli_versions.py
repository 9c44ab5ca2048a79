"""The version verbs' pure parts and the deploy flags' plumbing; no server involved."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import botocore.session
import click
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner

from lamina.cli.client import DeploySpec, config_update_params, create_params, register_client_commands
from lamina.cli.versions import alias_params, parse_weights, put_alias


@pytest.fixture
def cli() -> click.Group:
    group = click.Group("lamina")
    register_client_commands(group)
    return group


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([], {}),
        (["2=0.1"], {"2": 0.1}),
        (["V2=0.5"], {"2": 0.5}),
        (["v12=1"], {"12": 1.0}),
        (["3=0", "3=.25"], {"3": 0.25}),  # a later item wins
    ],
)
def test_parse_weights(items: list[str], expected: dict[str, float]) -> None:
    assert parse_weights(items) == expected


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("2", "VERSION=WEIGHT"),
        ("=0.1", "VERSION=WEIGHT"),
        ("live=0.1", "VERSION=WEIGHT"),
        ("$LATEST=0.1", "VERSION=WEIGHT"),
        ("0=0.1", "VERSION=WEIGHT"),
        ("2=", "not a number"),
        ("2=ten", "not a number"),
        ("2=1.5", "between 0 and 1"),
        ("2=-0.1", "between 0 and 1"),
        ("2=nan", "between 0 and 1"),
    ],
)
def test_parse_weights_rejects(bad: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_weights([bad])


@pytest.mark.parametrize("bad", ["2", "2=2", "x=0.1"])
def test_bad_weight_is_a_usage_error(cli: click.Group, bad: str) -> None:
    result = CliRunner().invoke(cli, ["alias", "f", "live", "1", "--weight", bad])
    assert result.exit_code == 2
    assert "--weight" in result.output and "Traceback" not in result.output


def test_alias_and_publish_need_their_arguments(cli: click.Group) -> None:
    assert CliRunner().invoke(cli, ["alias", "f", "live"]).exit_code == 2
    assert CliRunner().invoke(cli, ["publish"]).exit_code == 2


def test_alias_params_always_set_routing() -> None:
    assert alias_params("f", "live", "1", {}, None) == {
        "FunctionName": "f",
        "Name": "live",
        "FunctionVersion": "1",
        "RoutingConfig": {"AdditionalVersionWeights": {}},
    }
    assert alias_params("f", "live", "1", {"2": 0.1}, "d")["RoutingConfig"] == {
        "AdditionalVersionWeights": {"2": 0.1}
    }
    assert alias_params("f", "live", "1", {}, "d")["Description"] == "d"


def _stubbed() -> tuple[Any, Stubber]:
    client = botocore.session.Session().create_client(
        "lambda", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    return client, Stubber(client)


def test_put_alias_creates_then_updates() -> None:
    client, stub = _stubbed()
    params = alias_params("f", "live", "1", {"2": 0.5}, None)
    arn = "arn:aws:lambda:us-east-1:123456789012:function:f:live"
    stub.add_client_error("get_alias", "ResourceNotFoundException", http_status_code=404)
    stub.add_response("create_alias", {"AliasArn": arn}, params)
    stub.add_response("get_alias", {"AliasArn": arn, "Name": "live"})
    stub.add_response("update_alias", {"AliasArn": arn}, params)
    with stub:
        assert put_alias(client, params) == arn
        assert put_alias(client, params) == arn
    stub.assert_no_pending_responses()


def test_layers_plumbing() -> None:
    layers = (
        "arn:aws:lambda:us-east-1:123456789012:layer:a:1",
        "arn:aws:lambda:us-east-1:123456789012:layer:b:2",
    )
    spec = DeploySpec(name="f", layers=layers)
    assert create_params(spec, b"zip", account_id="123456789012")["Layers"] == list(layers)
    assert config_update_params(spec) == {"FunctionName": "f", "Layers": list(layers)}
    plain = DeploySpec(name="f")
    assert "Layers" not in create_params(plain, b"zip", account_id="123456789012")
    assert config_update_params(plain) is None


def test_deploy_flags_parse(cli: click.Group, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = ["deploy", str(tmp_path), "--name", "f", "--layer", "a", "--layer", "b", "--publish"]
    result = CliRunner().invoke(
        cli,
        [*args, "--endpoint-url", f"http://127.0.0.1:{port}"],
        env={"LAMINA_ACCESS_KEY_ID": "k", "LAMINA_SECRET_ACCESS_KEY": "s"},
    )
    # the flags parse; the (absent) server is what fails, in one line
    assert result.exit_code == 1 and "cannot reach lamina" in result.output
