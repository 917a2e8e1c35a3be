"""`config.schema`: the JSON Schema generated from the model, and the committed copy of it."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import jsonschema
import pytest
import yaml

from shim.config import model
from shim.config.schema import config_schema, field_docs
from tests.support.paths import REPO

COMMITTED = REPO / "config.schema.json"
REGENERATE = "run: .venv/bin/python -m shim config schema > config.schema.json"


def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(config_schema())


def errors(raw: object) -> list[str]:
    return sorted(
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(raw)
    )


def test_the_committed_schema_is_up_to_date() -> None:
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert committed == config_schema(), REGENERATE


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(config_schema())


def test_the_example_validates() -> None:
    raw = yaml.safe_load((REPO / "config.example.yaml").read_text(encoding="utf-8"))
    assert errors(raw) == []


def _configmap_config(path: str) -> Any:
    for document in yaml.safe_load_all((REPO / path).read_text(encoding="utf-8")):
        if document and document.get("kind") == "ConfigMap":
            return yaml.safe_load(document["data"]["config.yaml"])
    return yaml.safe_load((REPO / path).read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "path", ["deploy/kubernetes/config/config.yaml", "deploy/compose/shim.yaml"]
)
def test_the_shipped_configurations_validate(path: str) -> None:
    assert errors(_configmap_config(path)) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, [": 'upstream' is a required property"]),
        ({"upstream": {}}, ["upstream: 'url' is a required property"]),
        (
            {"upstream": {"url": "http://x", "read_timout": "5s"}},
            ["upstream: Additional properties are not allowed ('read_timout' was unexpected)"],
        ),
        (
            {"upstream": {"url": "ftp://x"}},
            ["upstream.url: 'ftp://x' does not match '^https?://'"],
        ),
        ({"upstream": {"url": "http://x"}, "shutdown_grace": "soon"}, ["shutdown_grace: 'soon'"]),
        (
            {"upstream": {"url": "http://x"}, "account_management": {"dialect": "mas-0.8"}},
            ["account_management.dialect: 'mas-0.8'"],
        ),
        (
            {"upstream": {"url": "http://x"}, "account_management": {"unsupported": "drop"}},
            ["account_management.unsupported: 'drop'"],
        ),
    ],
)
def test_mistakes_are_caught(raw: object, expected: list[str]) -> None:
    found = errors(raw)
    assert len(found) == len(expected), found
    for got, prefix in zip(found, expected, strict=True):
        assert got.startswith(prefix), got


def test_what_the_parser_accepts_validates() -> None:
    raw = {
        "listen": ":8080",
        "upstream": {"url": "https://portal:8443", "connect_timeout": 2, "max_connections": 16},
        "admin": None,
        "trusted_proxies": ["10.0.0.0/8", "::1/128"],
        "account_management": {
            "dialect": {"org.matrix.device_delete": "delete_device"},
            "aliases": {"org.matrix.deactivate_account": "org.matrix.account_deactivate"},
            "unsupported": {"redirect": "https://help.example.com/"},
        },
        "discovery": {"max_body_bytes": "2MiB", "actions": ["org.matrix.profile"]},
        "limits": {"max_head_bytes": 65536, "head_timeout": "250ms"},
    }
    assert errors(raw) == []


def test_every_field_is_in_the_schema_with_its_default_and_docs() -> None:
    schema = config_schema()
    limits = schema["properties"]["limits"]
    for item in fields(model.LimitsConfig):
        assert item.name in limits["properties"]
    assert limits["properties"]["head_timeout"]["default"] == 10.0
    assert limits["properties"]["head_timeout"]["description"].startswith("a whole request head")
    assert limits["description"].startswith("What one client may cost")
    account = schema["properties"]["account_management"]["properties"]
    assert account["dialect"]["default"] == model.DEFAULT_DIALECT
    assert "table" not in account
    assert schema["properties"]["admin"]["properties"]["listen"]["default"] == "127.0.0.1:9090"
    assert schema["properties"]["tls"]["anyOf"][1] == {"type": "null"}


def test_field_docs_read_the_comments() -> None:
    docs = field_docs(model.UpstreamConfig)
    assert docs["max_connections"].startswith("connections to the portal per worker")
    assert "url" not in docs
