# blogimages: `make demo` runs the example project on embedded defaults; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install demo test test-postgres bench lint check clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -e .
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) project/demo.py

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# The same suite on PostgreSQL (127.0.0.1:5432, database `test`, trust auth by default).
test-postgres: install
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} $(PY) -m pytest $(PYTEST_ARGS)

bench: install
	@for script in bench/bench_*.py; do $(PY) $$script || exit 1; done

lint: install
	$(VENV)/bin/ruff check .

check: install
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

clean:
	rm -rf var tests/artifacts .pytest_cache
