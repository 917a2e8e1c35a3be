"""A JSON Schema of the configuration file, generated from the model in `config.model`.

Pure. Each section is a model dataclass: its fields become properties (type from the annotation,
default from the field, description from the `#:` comments above it and the class docstring),
fields without a default are required, unknown keys are refused as the parser refuses them.
Where the file says something other than the model holds, `YAML_FIELDS` writes the file's keys:
`account_management.table` is read from `dialect` and `aliases`.

`msc4191-shim config schema` prints it; `config.schema.json` at the repository root is a copy a
test keeps up to date, for editors (yaml-language-server) and CI.
"""

from __future__ import annotations

import ast
import inspect
import ipaddress
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, fields, is_dataclass
from pathlib import Path
from typing import Any, Final, Literal, get_args, get_origin, get_type_hints

from yarl import URL

from shim.config import model
from shim.config.actions import RedirectUnsupported
from shim.config.model import Config
from shim.config.values import ListenAddress
from shim.vocabulary import (
    BUILTIN_ALIASES,
    BUILTIN_DIALECTS,
    STABLE_ACTIONS,
    ActionTable,
)

DURATION: Final = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"
SIZE: Final = r"^\s*\d+\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$"
#: int fields that are sizes (`1MiB`), by name; every other int is a plain count
SIZE_FIELDS: Final = frozenset({"max_body_bytes", "max_head_bytes", "request_buffer"})

Schema = dict[str, Any]


def _dialect_schema() -> Schema:
    mapping = {
        "type": "object",
        "minProperties": 1,
        "propertyNames": {"enum": list(STABLE_ACTIONS)},
        "additionalProperties": {"type": "string", "minLength": 1},
    }
    return {
        "description": "what the portal understands: a built-in dialect, or a mapping "
        "stable name -> the portal's name (an action left out is unsupported)",
        "default": model.DEFAULT_DIALECT,
        "anyOf": [{"enum": list(BUILTIN_DIALECTS)}, mapping],
    }


def _aliases_schema() -> Schema:
    return {
        "description": "extra client spellings: name -> stable name",
        "default": {},
        "type": "object",
        "additionalProperties": {"enum": list(STABLE_ACTIONS)},
    }


def _admin_listen_schema() -> Schema:
    return {
        "description": "host:port of /healthz, /readyz, /metrics and the status page; a bare "
        "port is refused (it would bind every interface)",
        "default": str(model.AdminConfig().listen),
        **_scalar_schema(ListenAddress, "listen"),
        "type": "string",
    }


#: (section class, field) -> the file's keys for it, when they are not the field itself or the
#: parser reads them more strictly than their type says
YAML_FIELDS: Final[Mapping[tuple[type[Any], str], Mapping[str, Callable[[], Schema]]]] = {
    (model.AccountManagementConfig, "table"): {
        "dialect": _dialect_schema,
        "aliases": _aliases_schema,
    },
    (model.AdminConfig, "listen"): {"listen": _admin_listen_schema},
}


def config_schema() -> Schema:
    """The JSON Schema (draft 2020-12) of the whole configuration file."""
    schema: Schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "msc4191-shim configuration",
    }
    schema.update(section_schema(Config))
    return schema


def section_schema(cls: type[Any]) -> Schema:
    """One section: an object with a property per key, the keys without a default required."""
    hints = get_type_hints(cls)
    docs = field_docs(cls)
    properties: Schema = {}
    required = []
    for item in fields(cls):
        override = YAML_FIELDS.get((cls, item.name))
        if override is not None:
            properties.update({key: build() for key, build in override.items()})
            continue
        prop = value_schema(hints[item.name], item.name)
        if item.name in docs:
            prop = {"description": docs[item.name], **prop}
        default = _default(item)
        if default is MISSING:
            required.append(item.name)
        elif type(default).__module__ != model.__name__:  # a section's are on its own keys
            prop["default"] = yaml_value(default, item.name)
        properties[item.name] = prop
    schema: Schema = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        schema["required"] = required
    doc = inspect.getdoc(cls)
    if doc and cls.__module__ == model.__name__ and not doc.startswith(cls.__name__ + "("):
        schema = {"description": doc.split("\n\n")[0].replace("\n", " "), **schema}
    return schema


def value_schema(hint: Any, name: str) -> Schema:
    """The schema of one value, from its annotation (`name` tells sizes from counts)."""
    origin, args = get_origin(hint), get_args(hint)
    if set(args) == {ipaddress.IPv4Network, ipaddress.IPv6Network}:
        return {"type": "string", "description": "a CIDR such as 10.0.0.0/8 or ::1/128"}
    if origin in (types.UnionType, typing.Union):
        options = [value_schema(a, name) for a in args if a is not type(None)]
        option = options[0] if len(options) == 1 else {"anyOf": options}
        return {"anyOf": [option, {"type": "null"}]} if type(None) in args else option
    if origin is Literal:
        return {"enum": list(args)}
    if origin is tuple:
        return {"type": "array", "items": value_schema(args[0], name)}
    if isinstance(hint, type) and is_dataclass(hint) and hint.__module__ == model.__name__:
        # `admin:` with nothing under it is an empty section, as the parser reads it
        return {**section_schema(hint), "type": ["object", "null"]}
    return _scalar_schema(hint, name)


def _scalar_schema(hint: Any, name: str) -> Schema:
    if hint is URL:
        return {"type": "string", "format": "uri", "pattern": "^https?://"}
    if hint is ListenAddress:
        return {"type": ["string", "integer"], "pattern": r"^(\[[0-9A-Fa-f:.]+\]|[^:\[\]]*):\d+$"}
    if hint is Path:
        return {"type": "string", "minLength": 1}
    if hint is bool:
        return {"type": "boolean"}
    if hint is float:
        return {"type": ["number", "string"], "minimum": 0, "pattern": DURATION}
    if hint is int:
        if name in SIZE_FIELDS:
            return {"type": ["integer", "string"], "minimum": 1, "pattern": SIZE}
        return {"type": "integer", "minimum": 1}
    if hint is str:
        return {"type": "string"}
    if hint is RedirectUnsupported:
        redirect = {"type": "string", "format": "uri", "pattern": "^https?://"}
        return {
            "type": "object",
            "additionalProperties": False,
            "required": ["redirect"],
            "properties": {"redirect": redirect},
        }
    raise TypeError(f"no schema for {hint!r} ({name}): teach config.schema about it")


def _default(item: Field[Any]) -> Any:
    if item.default is not MISSING:
        return item.default
    if item.default_factory is not MISSING:
        return item.default_factory()
    return MISSING


def yaml_value(value: Any, name: str = "") -> Any:
    """A model value as the file writes it: URLs, addresses, paths and CIDRs as strings."""
    if isinstance(
        value, URL | ListenAddress | Path | ipaddress.IPv4Network | ipaddress.IPv6Network
    ):
        return str(value)
    if isinstance(value, RedirectUnsupported):
        return {"redirect": value.url}
    if isinstance(value, tuple | list):
        return [yaml_value(v, name) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        section: dict[str, Any] = {}
        for item in fields(value):
            field_value = getattr(value, item.name)
            if isinstance(field_value, ActionTable):
                section.update(table_yaml(field_value))
            else:
                section[item.name] = yaml_value(field_value, item.name)
        return section
    return value


def table_yaml(table: ActionTable) -> dict[str, Any]:
    """An action table as the file writes it: `dialect` (a name or a mapping) and `aliases`."""
    dialect = table.dialect
    builtin = BUILTIN_DIALECTS.get(dialect.name)
    written: Any = dialect.name if builtin == dialect else dict(dialect.portal_names)
    aliases = {
        name: stable
        for name, stable in table.to_stable_names.items()
        if name != stable
        and BUILTIN_ALIASES.get(name) != stable
        and dialect.portal_names.get(stable) != name
    }
    return {"dialect": written, "aliases": aliases}


def field_docs(cls: type[Any]) -> dict[str, str]:
    """The `#:` comment lines right above each field of `cls`, joined into one sentence."""
    try:
        lines, _ = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return {}
    tree = ast.parse(inspect.cleandoc("".join(lines)) if lines[0][0] == " " else "".join(lines))
    node = tree.body[0]
    assert isinstance(node, ast.ClassDef)
    docs = {}
    for statement in node.body:
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            comment: list[str] = []
            index = statement.lineno - 2
            while index >= 0 and lines[index].strip().startswith("#:"):
                comment.insert(0, lines[index].strip()[2:].strip())
                index -= 1
            if comment:
                docs[statement.target.id] = " ".join(comment)
    return docs
