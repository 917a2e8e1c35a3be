"""The rewritten discovery documents validate against the Matrix spec's schema (v1.19).

The schema is the 200 response of `GET /_matrix/client/v1/auth_metadata` in the spec's OpenAPI
file. It requires `issuer`, the endpoints and the `*_supported` lists; all three OAuth vectors
(prototype-unstable-keys, mas-0.9-to-1.9, mas-1.10-and-later) carry them, so all three are used.
Its `account_management_actions_supported` items are an enum of the six stable names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from yarl import URL

from shim.config.parse import parse_config
from shim.core.discovery import rewrite_discovery
from tests.support.paths import DATA

SPEC = DATA / "spec"
OAUTH_VECTORS = ["prototype-unstable-keys", "mas-0.9-to-1.9", "mas-1.10-and-later"]
DIALECTS = ["stable", "mas-0.7", "mas-0.9", "msc3824"]


@cache
def api_schema() -> dict[str, Any]:
    api = yaml.safe_load((SPEC / "oauth_server_metadata.v1.19.yaml").read_text())
    schema: dict[str, Any] = api["paths"]["/auth_metadata"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    return schema


@cache
def extension_schema() -> dict[str, Any]:
    """data/schemas/oauth2-account-management-server-metadata.yaml: items are any string."""
    path = SPEC / "oauth2-account-management-server-metadata.v1.19.yaml"
    schema: dict[str, Any] = yaml.safe_load(path.read_text())
    return schema


def synapse_schema() -> dict[str, Any]:
    """The spec's schema plus what Synapse requires of the portal's document (see README)."""
    return {"allOf": [api_schema(), {"required": ["issuer", "account_management_uri"]}]}


def refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def vector(name: str) -> dict[str, Any]:
    documents = json.loads((DATA / "vectors.json").read_text())["discovery"]
    return {k: v for k, v in documents[name].items() if k != "_about"}


def rewritten(name: str, dialect: str, **discovery: Any) -> dict[str, Any]:
    config = parse_config(
        {
            "upstream": {"url": "http://127.0.0.1:9000"},
            "account_management": {"dialect": dialect},
            "discovery": {"advertise": "stable", **discovery},
        }
    )
    return rewrite_discovery(
        vector(name),
        discovery=config.discovery,
        account=config.account_management,
        default_uri="https://shim.example.com/account/",
    )


#: `format: uri` is only asserted by jsonschema with an RFC 3986 package installed; this one
#: checks what matters here (an absolute URL with a scheme and a host) without a new dependency.
def is_absolute_url(value: object) -> bool:
    if not isinstance(value, str):
        return True  # `type` reports non-strings
    url = URL(value)
    return url.is_absolute() and bool(url.scheme) and bool(url.host)


FORMATS = FormatChecker(formats=())
FORMATS.checks("uri")(is_absolute_url)


def errors(schema: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    validator = Draft202012Validator(schema, format_checker=FORMATS)
    return [error.message for error in validator.iter_errors(doc)]


def test_the_uri_format_is_checked() -> None:
    doc = {**rewritten("mas-1.10-and-later", "stable"), "account_management_uri": "/account/"}
    assert errors(api_schema(), doc) == ["'/account/' is not a 'uri'"]


def test_the_schemas_are_valid_and_self_contained() -> None:
    # The API file's only $ref is in its 404 response (definitions/errors/error.yaml, not
    # copied here); the 200 schema is inline, and the two data/schemas files are stand-alone.
    # Checking for none keeps the validation complete: an unresolved $ref would hide rules.
    for schema in (api_schema(), extension_schema()):
        Draft202012Validator.check_schema(schema)
        assert list(refs(schema)) == []
    enum = api_schema()["properties"]["account_management_actions_supported"]["items"]["enum"]
    assert len(enum) == 6


@pytest.mark.parametrize("unstable_keys", [False, True])
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", OAUTH_VECTORS)
def test_rewritten_documents_validate(name: str, dialect: str, unstable_keys: bool) -> None:
    doc = rewritten(name, dialect, unstable_keys=unstable_keys)
    assert errors(api_schema(), doc) == []
    assert errors(synapse_schema(), doc) == []
    assert errors(extension_schema(), doc) == []


@pytest.mark.parametrize("name", ["mas-0.9-to-1.9", "mas-1.10-and-later"])
def test_control_upstream_legacy_names_fail_the_enum(name: str) -> None:
    found = errors(api_schema(), vector(name))
    assert found
    assert all("is not one of" in message for message in found)


def test_control_prototype_fails_what_synapse_requires() -> None:
    # The spec's schema makes the account-management keys optional and allows extra keys, so
    # the prototype's org.matrix.msc4191.* document passes it unchanged; what breaks in the
    # field is Synapse, which requires `account_management_uri`.
    prototype = vector("prototype-unstable-keys")
    assert errors(api_schema(), prototype) == []
    assert errors(synapse_schema(), prototype) == [
        "'account_management_uri' is a required property"
    ]


def test_stable_plus_legacy_fails_the_enum_but_fits_the_extension_schema() -> None:
    # Why `advertise: stable` is the default: legacy names are outside the API file's enum.
    doc = rewritten("mas-1.10-and-later", "mas-0.9", advertise="stable+legacy")
    assert errors(api_schema(), doc)
    assert errors(extension_schema(), doc) == []
