# The two quick-start commands (README): `make demo` and `make test`. Each sets up what it needs.
.PHONY: setup demo test lint bench bench-guard
PY := .venv/bin/python

setup:
	scripts/setup.sh

demo: setup
	$(PY) -m demo

test:
	scripts/setup.sh --test
	$(PY) -m ruff check msc4191_shim demo tests bench
	$(PY) -m ruff format --check msc4191_shim demo tests bench
	$(PY) -m mypy
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint:
	$(PY) -m ruff check msc4191_shim demo tests bench
	$(PY) -m ruff format --check msc4191_shim demo tests bench
	$(PY) -m mypy

bench:
	scripts/setup.sh --test
	$(PY) bench/run.py
	$(PY) bench/edges.py

# CI's performance regression guard: fails when passthrough CPU per request, relative to nginx's,
# falls below 0.7x the ratio in bench/guard.json (about 30 s)
bench-guard:
	scripts/setup.sh --test
	$(PY) bench/guard.py
