# ragbot: `make demo` shows it working on embedded defaults; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The demo runs on embedded defaults whatever the shell has configured.
DEMO_ENV := env -u REDIS_URL -u QDRANT_URL -u OPENAI_API_KEY -u OPENAI_BASE_URL \
	RAGBOT_DATA_DIR=.ragbot-demo FILES_PATH=samples/handbook RAGBOT_ORG_DOMAINS=acme.com

.PHONY: install install-test demo test lint typecheck helm-lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

DEMO_QUESTIONS := "How many days of annual leave do I get after 4 years?" \
	"연차 이월 한도는 며칠인가요?" "How do I roll back a production deploy?" \
	"What is the salary range for a Staff Engineer?"

demo: install
	@echo '$$ ragbot sync files'
	@$(DEMO_ENV) $(BIN)/ragbot sync files
	@for question in $(DEMO_QUESTIONS); do \
		echo; echo "\$$ ragbot ask \"$$question\""; \
		$(DEMO_ENV) $(BIN)/ragbot ask "$$question" || exit 1; \
	done
	@echo; echo '$$ ragbot ask --as dana@acme.com "What is the salary range for a Staff Engineer?"'
	@$(DEMO_ENV) $(BIN)/ragbot ask --as dana@acme.com "What is the salary range for a Staff Engineer?"
	@echo; echo '$$ ragbot status'
	@$(DEMO_ENV) $(BIN)/ragbot status

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile
	$(BIN)/lint-imports --no-cache

typecheck: install-test
	$(BIN)/mypy

# The chart: strict lint, rendered with the default and every ci/ value set, each manifest
# validated against the Kubernetes schemas (offline; see tests/chart.py).
helm-lint: install-test
	$(BIN)/python -m tests.chart

# Tests use Redis at REDIS_URL or 127.0.0.1:6379, or start a private one (tests/conftest.py).
test: lint typecheck helm-lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .ragbot-demo .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
