"""The wheel's build, with an optional compiled hot path.

Everything about the project is in pyproject.toml. This file exists for one thing: with
`MSC4191_SHIM_COMPILE=1` in the environment, the modules a request passes through are compiled to
C extensions with mypyc (the code is mypy --strict clean, which is what mypyc needs), which takes
about 40 % off the CPU a passthrough request costs (2026-11-27, bench/README.md). Without it, the
same modules run as plain Python; behaviour is identical. Compiling needs a C compiler and
Python's headers; build_backend/backend.py asks pip for mypy only then.
"""

import os

from setuptools import setup

#: the request path: the protocol layer, the HTTP helpers it calls, the access line and the
#: request counts (obs/tally.py; obs/metrics.py, prometheus-client's side, stays Python). Not
#: obs/log_setup.py: its logging.Handler subclass, compiled, crashed the process after many
#: reloads (a weak reference to a freed handler; tests/process/test_edge_process.py's SIGHUP
#: storm), so the logging subclasses live there, uncompiled.
COMPILED = [
    "shim/proxy",
    "shim/http",
    "shim/obs/logs.py",
    "shim/obs/tally.py",
    "shim/obs/clients.py",
    "shim/memo.py",
]

ext_modules = []
if os.environ.get("MSC4191_SHIM_COMPILE") == "1":
    from mypyc.build import mypycify

    ext_modules = mypycify(COMPILED, opt_level="3")

setup(ext_modules=ext_modules)
