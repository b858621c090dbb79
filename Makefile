# MRKM: one command per gate (STYLE.md item 12). `make help` lists them.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp

SCENARIO ?= baseline
CAMPAIGN ?= example-loss
TOPO     ?=
PYTEST_ARGS ?=

.PHONY: help setup test test-fast check fmt run-scenario run-loopback campaign plots report regress fuzz bench-core bench bench-pim-ah bench-bringup clean clean-net

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: $(STAMP)  ## install Debian packages and the Python venv (idempotent, as root)

$(STAMP): scripts/setup.sh requirements.txt pyproject.toml
	bash scripts/setup.sh
	@touch $@

test: $(STAMP)  ## run every test; root-only tests (namespaces, strongSwan, tshark) run when root
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)  ## the quick subset while you work (no root, no slow tests)
	$(PY) -m pytest -q -m "not root and not slow" $(PYTEST_ARGS)

check: $(STAMP)  ## ruff (lint + format check) and mypy (strict on mrkm/)
	$(VENV)/bin/ruff check mrkm tests tools testbed topologies
	$(VENV)/bin/ruff format --check mrkm tests tools testbed topologies
	$(VENV)/bin/mypy

fmt: $(STAMP)  ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix mrkm tests tools testbed topologies
	$(VENV)/bin/ruff format mrkm tests tools testbed topologies

run-scenario: $(STAMP)  ## the main job (root): a scenario on a Mininet network (SCENARIO=, TOPO=, NO_PIM_AUTH=1, REGISTRATION=in-band)
	PYTHONPATH=. $(PY) -m testbed.run --scenario $(SCENARIO) $(if $(TOPO),--topo $(TOPO)) $(if $(NO_PIM_AUTH),--no-pim-auth) $(if $(REGISTRATION),--registration $(REGISTRATION))

campaign: $(STAMP)  ## a campaign (root): parameter grid x seeds x repetitions, resumable (CAMPAIGN=)
	PYTHONPATH=. $(PY) -m testbed.campaign --campaign $(CAMPAIGN)

plots: $(STAMP)  ## campaign figures (PNG + PDF) from results/ alone
	PYTHONPATH=. $(PY) -m testbed.campaign_plots

report: $(STAMP)  ## results/<campaign>/report.md and report.html (CAMPAIGN=)
	PYTHONPATH=. $(PY) -m testbed.report --campaign $(CAMPAIGN)

regress: $(STAMP)  ## the regression gate (root): scenarios checked against scenarios/regress/baseline.yaml
	PYTHONPATH=. $(PY) -m testbed.regress

run-loopback: $(STAMP)  ## a GCKS and GMs as processes on 127.0.0.1, no routers (no root)
	PYTHONPATH=. $(PY) -m testbed.loopback

bench-core: $(STAMP)  ## µs per encode/decode and crypto op, next to raw `cryptography` costs
	$(PY) tools/bench_core.py

bench: $(STAMP)  ## every benchmark in one run: results/bench/<UTC>/bench.json + plots (sinks need root)
	PYTHONPATH=. $(PY) tools/bench_all.py
	@if [ "$$(id -u)" = 0 ]; then PYTHONPATH=. $(PY) tools/bench_pim_ah.py; \
	else echo "bench-pim-ah skipped: needs root"; fi

bench-pim-ah: $(STAMP)  ## PIM AH shim: added latency per packet and packets/s vs NFQUEUE and bare kernel (root)
	PYTHONPATH=. $(PY) tools/bench_pim_ah.py

fuzz: $(STAMP)  ## fuzz every decoder and the GCKS/GM receive paths (BUDGET= s per target)
	PYTHONPATH=. $(PY) tools/fuzz.py --budget $(or $(BUDGET),60) --engine $(or $(ENGINE),hypothesis)

bench-bringup: $(STAMP)  ## testbed bring-up time and memory per router for 10, 50, 100 routers (root)
	PYTHONPATH=. $(PY) tools/bench_bringup.py $(if $(SIZES),--sizes $(SIZES))

clean-net: $(STAMP)  ## remove what crashed testbed runs left (namespaces, daemons by pid file; PREFIX=mk)
	PYTHONPATH=. $(PY) -m testbed.cleanup $(if $(PREFIX),--prefix $(PREFIX))

clean: ## remove caches (keeps .venv and results/)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis
