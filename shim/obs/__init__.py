"""Observability: metrics, logs, and the redaction that keeps secrets out of both.

This `__init__` stays light (no prometheus-client): the `--workers` supervisor imports it.
"""

from typing import Final

#: prometheus-client's multiprocess directory, shared by every `--workers` process
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
