# The two commands: `make demo` and `make test`. Both create .venv when it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# torch must come from the CPU wheel on this disk, before anything that depends on it.
TORCH := torch==2.13.0

.PHONY: demo test lint format bench bench-% clean chromium wrk

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Reinstall only when the dependencies change.
$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PIP) install '$(TORCH)'
	$(PIP) install -e '.[dev]'
	touch $@

$(VENV)/.installed-demo: pyproject.toml | $(PY)
	$(PIP) install -e '.[ml,server]'
	touch $@

demo: $(VENV)/.installed-demo
	$(PY) examples/demo.py

# Browser tests drive Debian's chromium (never `playwright install`).
chromium:
	@command -v chromium >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

test: $(VENV)/.installed-dev chromium
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Peers live in their own virtualenv, never in the package's dependencies.
.venv-bench/.installed: bench/requirements.txt pyproject.toml
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip -q install --upgrade pip
	.venv-bench/bin/python -m pip -q install -e . -r bench/requirements.txt
	touch $@

# bench/serving drives the servers with wrk (Debian's package).
wrk:
	@command -v wrk >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; }

bench: .venv-bench/.installed wrk
	.venv-bench/bin/python bench/run.py

bench-%: .venv-bench/.installed wrk
	.venv-bench/bin/python bench/run.py $*

clean:
	rm -rf $(VENV) .venv-bench .pytest_cache .mypy_cache .ruff_cache
