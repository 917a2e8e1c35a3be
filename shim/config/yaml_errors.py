"""A YAML syntax error as a configuration problem: the file, the line and column, what is wrong.

PyYAML's own text names `<unicode string>` and spreads over several lines; an operator wants
`config.yaml, line 7, column 3: mapping values are not allowed here`.
"""

from __future__ import annotations

import yaml

from shim.config.errors import ConfigProblem


def yaml_problem(exc: yaml.YAMLError, path: str) -> ConfigProblem:
    """`PATH, line L, column C: not valid YAML: problem (context)`; L and C count from 1."""
    mark = getattr(exc, "problem_mark", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    detail = f"{problem} ({context})" if context else str(problem)
    return ConfigProblem("", f"{path}{where}: not valid YAML: {detail}")
