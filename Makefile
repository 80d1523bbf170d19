# blogimages: `make demo` runs the example project on embedded defaults; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install demo demo-wagtail demo-djangocms test test-postgres test-django61 python313 bench soak lint check clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -e .
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) project/demo.py

# The same, as a Wagtail site (its own database and Redis in var/wagtail/).
demo-wagtail: install
	$(PY) project/demo_wagtail.py

# The same, as a django CMS 5.1 site with djangocms-stories (its own database and Redis in var/djangocms/).
demo-djangocms: install
	$(PY) project/demo_djangocms.py

# The django CMS integration's tests run in a second invocation with their own settings
# (django CMS's middleware would change the other tests' pages and query counts).
test: install
	$(PY) -m pytest $(PYTEST_ARGS)
	$(PY) -m pytest --ds=tests.settings_djangocms tests/contrib/djangocms $(PYTEST_ARGS)

# The same suite on the current Django release (6.1, which needs Python 3.12+), in its own
# virtualenv; PYTHON313 is any Python 3.12 or 3.13 (pyenv's by default).
PYTHON313 ?= $(shell PYENV_VERSION=3.13.0 pyenv which python3.13 2>/dev/null || ls $(HOME)/.pyenv/versions/3.13*/bin/python3.13 2>/dev/null | head -n1 || command -v python3.13 || command -v python3.12)
VENV61 ?= .venv-django61

$(VENV61)/.installed: requirements.txt pyproject.toml
	$(PYTHON313) -m venv $(VENV61)
	$(VENV61)/bin/python -m pip install --quiet --upgrade pip
	$(VENV61)/bin/python -m pip install --quiet -r requirements.txt -e . "Django>=6.1,<6.2"
	touch $@

test-django61: $(VENV61)/.installed
	$(VENV61)/bin/python -m pytest $(PYTEST_ARGS)
	$(VENV61)/bin/python -m pytest --ds=tests.settings_djangocms tests/contrib/djangocms $(PYTEST_ARGS)

$(VENV61)/.installed: | python313

python313:
	@test -n "$(PYTHON313)" || { echo "make test-django61 needs Python 3.12 or 3.13 (set PYTHON313=/path/to/python3.13)"; exit 2; }

# The same suite on PostgreSQL (127.0.0.1:5432, database `test`, trust auth by default).
test-postgres: install
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} $(PY) -m pytest $(PYTEST_ARGS)
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} \
		$(PY) -m pytest --ds=tests.settings_djangocms tests/contrib/djangocms $(PYTEST_ARGS)

bench: install
	@for script in bench/bench_*.py; do $(PY) $$script || exit 1; done

# Not in CI: SOAK_JOBS jobs (default 2000) through two workers under random faults (worker
# SIGKILL, provider 5xx/stall/drop, Redis restarted empty, storage refused/stalled), then
# the books: one JSON line per figure. SOAK_JOBS=200 make soak takes about a minute.
soak: install
	$(PY) bench/soak.py

lint: install
	$(VENV)/bin/ruff check .

check: install
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

clean:
	rm -rf var tests/artifacts .pytest_cache
