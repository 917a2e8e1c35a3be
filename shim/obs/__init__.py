"""Observability: metrics, logs, and the redaction that keeps secrets out of both.

This `__init__` stays light (no prometheus-client): the `--workers` supervisor imports it.
"""

from typing import Final

#: the directory every `--workers` process shares its counts in (`obs/snapshots.py`); the
#: name prometheus-client's multiprocess mode reads, which the shim used before it wrote its own
#: files, kept so that deployments that set it keep working
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
