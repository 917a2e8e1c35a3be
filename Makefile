# The two quick-start commands (README): `make demo` and `make test`. Each sets up what it needs.
.PHONY: setup demo test test-pure fuzz native pure lint bench bench-guard
PY := .venv/bin/python

setup:
	scripts/setup.sh

# `make demo PORT=8090` when 8080 is taken
demo: setup
	$(PY) -m demo $(if $(PORT),--port $(PORT))

test:
	scripts/setup.sh --test
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

# after `make test`: the request path's tests again on plain Python (what `pip install` runs
# without MSC4191_SHIM_COMPILE=1): unit, in-process and whole-process; not the image (which always
# compiles), the browser, Synapse or deployment files. The next `make test` compiles again.
test-pure: pure
	$(PY) -m pytest -q tests/unit tests/proxy tests/process \
		--ignore=tests/process/test_image_entrypoint.py $(PYTEST_ARGS)

# issue 21's differential fuzzer with a long, random budget (`make test` runs 200 fixed examples):
# request streams through a real shim, judged by h11; FUZZ_EXAMPLES=N to change the budget
fuzz:
	scripts/setup.sh --test
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-20000} $(PY) -m pytest -q -p no:cacheprovider \
		tests/process/test_fuzz_smuggling.py $(PYTEST_ARGS)

# compile the hot path in place with mypyc (setup.py), or go back to plain Python
native:
	$(PY) scripts/native.py build

pure:
	$(PY) scripts/native.py clean

lint:
	$(PY) -m ruff check shim demo tests bench scripts setup.py build_backend
	$(PY) -m ruff format --check shim demo tests bench scripts setup.py build_backend
	$(PY) -m mypy

bench:
	scripts/setup.sh --test
	$(PY) bench/run.py
	$(PY) bench/edges.py
	$(PY) bench/edges.py --cases latency --one-cpu

# CI's performance regression guard: fails when passthrough CPU per request, relative to nginx's,
# falls below 0.7x the ratio in bench/guard.json (about 20 s)
bench-guard:
	scripts/setup.sh --test
	$(PY) bench/guard.py
