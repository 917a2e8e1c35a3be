"""`config.env` and `config.yaml_errors`: a misspelt variable is named, a YAML error located."""

from __future__ import annotations

from pathlib import Path

import pytest

from shim.config.env import known_variables, unknown_variable_warnings
from shim.config.errors import ConfigError
from shim.config.parse import ENV_OVERRIDES, load_config


def test_the_known_variables() -> None:
    assert known_variables() == ("MSC4191_SHIM_CONFIG", *ENV_OVERRIDES)


def test_a_misspelt_variable_gets_the_nearest_name() -> None:
    env = {
        "MSC4191_SHIM_UPSTREAM_ULR": "http://x",
        "MSC4191_SHIM_LOG_LEVEL": "INFO",
        "MSC4191_SHIM_OVERLAY": "sidecar",  # the ess-helm post-renderer's, not the shim's
        "PATH": "/usr/bin",
    }
    assert unknown_variable_warnings(env) == [
        "warning: environment variable MSC4191_SHIM_UPSTREAM_ULR is not one msc4191-shim "
        "reads; did you mean MSC4191_SHIM_UPSTREAM_URL?"
    ]


def test_a_name_like_nothing_lists_what_is_read() -> None:
    [warning] = unknown_variable_warnings({"MSC4191_SHIM_XYZZY": "1"})
    assert warning.endswith("the shim reads " + ", ".join(known_variables()))


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("upstream:\n  url: http://x\n  bad: [\n", "line 4, column 1"),
        ("upstream:\n  url: http://x\n listen: 1\n", "line 3, column 2"),
        ("upstream: {url: 'http://x'\n", "line 2, column 1"),
    ],
)
def test_a_yaml_error_names_the_file_and_line(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), {})
    [problem] = caught.value.problems
    assert problem.message.startswith(f"{path}, {where}: not valid YAML: ")
    assert "<unicode string>" not in problem.message
    assert "\n" not in problem.message
