# The two set-up commands: `make demo` (the main job on embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint check wordpress-plugin

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Keepwell needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/keepwell rules lint rules
	bash scripts/ensure-redis.sh
	$(VENV)/bin/keepwell demo

test: $(STAMP)
	eval "$$(bash scripts/services.sh)" && $(VENV)/bin/python -m pytest

lint: $(STAMP)
	$(VENV)/bin/keepwell rules lint rules

# The code's guardrails alone (make test runs them too, in tests/test_guardrails.py).
check: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(VENV)/bin/python bench/conditions.py
	$(VENV)/bin/python bench/simulate.py
	$(VENV)/bin/python bench/explain.py
	eval "$$(bash scripts/services.sh)" && $(VENV)/bin/python bench/worker.py
	eval "$$(bash scripts/services.sh)" && $(VENV)/bin/python bench/import.py
	eval "$$(bash scripts/services.sh)" && $(VENV)/bin/python bench/fork.py
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	eval "$$(bash scripts/services.sh)" && $(VENV)/bin/python bench/ingest.py

# The companion WordPress plugin for WooCommerce stores, as a zip to upload under Plugins → Add New.
WORDPRESS_PLUGIN_ZIP ?= dist/keepwell-for-woocommerce.zip
wordpress-plugin:
	mkdir -p $(dir $(WORDPRESS_PLUGIN_ZIP))
	rm -f $(WORDPRESS_PLUGIN_ZIP)
	cd connectors/woocommerce/wordpress-plugin && $(PYTHON) -m zipfile -c $(abspath $(WORDPRESS_PLUGIN_ZIP)) keepwell
	@echo "built $(WORDPRESS_PLUGIN_ZIP)"
