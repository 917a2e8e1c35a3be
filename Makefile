# The two quick-start commands (README): `make demo` and `make test`. Each sets up what it needs.
.PHONY: setup demo test test-pure native pure lint bench bench-guard
PY := .venv/bin/python

setup:
	scripts/setup.sh

demo: setup
	$(PY) -m demo

test:
	scripts/setup.sh --test
	$(PY) -m ruff check msc4191_shim demo tests bench scripts setup.py
	$(PY) -m ruff format --check msc4191_shim demo tests bench scripts setup.py
	$(PY) -m mypy
	$(PY) -m pytest -q $(PYTEST_ARGS)

# after `make test`: the same suite on plain Python (what `pip install` runs without
# MSC4191_SHIM_COMPILE=1); the next `make test` compiles again
test-pure: pure
	$(PY) -m pytest -q $(PYTEST_ARGS)

# compile the hot path in place with mypyc (setup.py), or go back to plain Python
native:
	$(PY) scripts/native.py build

pure:
	$(PY) scripts/native.py clean

lint:
	$(PY) -m ruff check msc4191_shim demo tests bench scripts setup.py
	$(PY) -m ruff format --check msc4191_shim demo tests bench scripts setup.py
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
