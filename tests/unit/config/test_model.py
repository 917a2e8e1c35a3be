"""The model holds every default once; the parser reads them from it and restates none."""

from __future__ import annotations

import ast
from dataclasses import fields

import pytest
from yarl import URL

from shim.config import model, parse
from shim.config.errors import ConfigError
from shim.config.model import Config, LimitsConfig, UpstreamConfig
from shim.config.parse import model_defaults, parse_config
from tests.support.paths import REPO


def test_a_minimal_file_is_the_model_with_its_defaults() -> None:
    parsed = parse_config({"upstream": {"url": "http://portal:8081"}})
    assert parsed == Config(upstream=UpstreamConfig(url=URL("http://portal:8081")))


def test_the_parser_restates_no_numeric_default() -> None:
    """No number in the parser equals a model default (choices such as 'json' are allowed)."""
    defaults = {
        value
        for cls in (UpstreamConfig, LimitsConfig, model.DiscoveryConfig, Config)
        for value in model_defaults(cls).values()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    tree = ast.parse((REPO / "shim/config/parse.py").read_text(encoding="utf-8"))
    numbers = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float)
    }
    assert not defaults & numbers, "a default is written in parse.py; read it from the model"


def test_every_model_field_is_a_key_the_file_may_set() -> None:
    """A field the parser never reads would be a default the operator cannot change."""
    for cls, table in (
        (UpstreamConfig, parse._UPSTREAM),
        (LimitsConfig, parse._LIMITS),
        (model.DiscoveryConfig, parse._DISCOVERY),
        (model.LogConfig, parse._LOG),
        (model.AdminConfig, parse._ADMIN),
    ):
        assert {f.name for f in fields(cls)} == set(table), cls.__name__


def test_limits_are_read_with_their_units() -> None:
    config = parse_config(
        {
            "upstream": {"url": "http://p", "max_connections": 8},
            "limits": {
                "head_timeout": "2s",
                "keepalive_timeout": "500ms",
                "body_idle_timeout": 3,
                "max_head_bytes": "16KiB",
                "max_connections": 10,
            },
        }
    )
    assert config.limits == LimitsConfig(2.0, 0.5, 3.0, 16384, 10)
    assert config.upstream.max_connections == 8


def test_bad_limits_are_all_reported_with_their_keys() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                "upstream": {"url": "http://p", "max_connections": 0},
                "limits": {"head_timeout": 0, "max_connections": "many", "max_head_byte": 1},
            }
        )
    assert [str(p) for p in caught.value.problems] == [
        "upstream.max_connections: expected a whole number above zero such as 256, got 0",
        "limits.head_timeout: expected a duration above zero such as 10s, got 0",
        "limits.max_connections: expected a whole number above zero such as 256, got 'many'",
        "limits.max_head_byte: unknown key; did you mean 'max_head_bytes'?",
    ]


@pytest.mark.parametrize(
    "url", ["https://admin:hunter2@portal.internal", "http://svc@portal:8081/auth"]
)
def test_credentials_in_the_upstream_url_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"upstream": {"url": url}})
    (problem,) = caught.value.problems
    assert problem.path == "upstream.url"
    assert "credentials in the URL" in problem.message
    assert "basic auth" in problem.message
    assert "hunter2" not in str(caught.value)
    assert "admin" not in problem.message
    assert "svc" not in problem.message


def test_the_example_shows_the_limits_defaults() -> None:
    config = parse.load_config(str(REPO / "config.example.yaml"), env={})
    assert config.limits == LimitsConfig()
    assert config.upstream.max_connections == model_defaults(UpstreamConfig)["max_connections"]
