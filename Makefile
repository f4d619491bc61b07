# The front door: every task a user or CI runs is one target here, delegating to a script or tool.

PYTHON      ?= python3
# The virtual environment lives outside the clone, keyed by the lock files, so fresh clones (CI) reuse it.
LOCK_HASH   := $(shell cat requirements/image.txt requirements/dev.txt | sha256sum | cut -c1-12)
VENV        ?= $(HOME)/.cache/sm-textclf/venv-$(LOCK_HASH)
PY          := $(VENV)/bin/python
# The SageMaker Python SDK suite (tests/sdk) has a venv of its own: the SDK's pins conflict with the image's.
SDK_HASH    := $(shell cat requirements/sdk.txt | sha256sum | cut -c1-12)
SDK_VENV    ?= $(HOME)/.cache/sm-textclf/sdk-venv-$(SDK_HASH)
# The benchmark's baselines (the transformers Trainer) need packages the image never gets: a venv of their own
# that sees the dev venv's packages through a .pth file and adds requirements/bench.txt.
BENCH_HASH  := $(shell cat requirements/image.txt requirements/dev.txt requirements/bench.txt | sha256sum | cut -c1-12)
BENCH_VENV  ?= $(HOME)/.cache/sm-textclf/bench-$(BENCH_HASH)

IMAGE       ?= sagemaker-text-classifier
# The base for users: a pinned public PyTorch CUDA runtime image (docker/base-image.env holds the pin).
# For machines without a registry, `make base-image` builds LOCAL_BASE from Debian packages and PyPI.
LOCAL_BASE  ?= textclf-base:local
BASE_IMAGE  ?= $(LOCAL_BASE)
# The tag says which base: `local` on the local test base (never for SageMaker), `latest` on any other.
TAG         ?= $(if $(filter $(LOCAL_BASE),$(BASE_IMAGE)),local,latest)
PORT        ?= 8080
PYTEST_ARGS ?=
BENCH_ARGS  ?=

export PYTHONDONTWRITEBYTECODE := 1

.PHONY: venv sdk-venv bench-venv test test-sdk test-fast lint demo base-image image local-train local-serve \
        predict bench bench-prepare lock audit clean push sagemaker-train deploy transform cleanup

venv: $(VENV)/.installed

# No file prerequisites: the path already names the lock files' hash, and a fresh clone's newer files must not
# trigger a reinstall.
$(VENV)/.installed:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip==25.3
	$(VENV)/bin/pip install --quiet -r requirements/dev.txt
	touch $@

sdk-venv: $(SDK_VENV)/.installed

$(SDK_VENV)/.installed:
	$(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/pip install --quiet --upgrade pip==25.3
	$(SDK_VENV)/bin/pip install --quiet -r requirements/sdk.txt
	touch $@

bench-venv: $(BENCH_VENV)/.installed

$(BENCH_VENV)/.installed: $(VENV)/.installed
	$(PYTHON) -m venv $(BENCH_VENV)
	$(PY) -c 'import site; print(site.getsitepackages()[0])' > \
		"$$($(BENCH_VENV)/bin/python -c 'import site; print(site.getsitepackages()[0])')/textclf-dev.pth"
	$(BENCH_VENV)/bin/pip install --quiet -r requirements/bench.txt
	touch $@

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/shellcheck -x local_test/*.sh docker/*.sh docker/entrypoint .ci/run

test: venv lint
	$(PY) -m pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-sdk

# The image driven by the SageMaker Python SDK's local mode (docker-compose), as a user would; skipped loudly
# without Docker. TEXTCLF_TEST_IMAGE=name:tag tests an image that is already built.
test-sdk: sdk-venv
	$(SDK_VENV)/bin/python -m pytest tests/sdk $(PYTEST_ARGS)

# Unit, train and serve tests without the slow pretrained-model run and without Docker.
test-fast: venv
	$(PY) -m pytest -m "not slow and not container" $(PYTEST_ARGS)

demo: venv
	IMAGE=$(IMAGE) TAG=$(TAG) BASE_IMAGE=$(BASE_IMAGE) LOCAL_BASE=$(LOCAL_BASE) PORT=$(PORT) PY=$(PY) local_test/demo.sh

base-image:
	docker/build-base-image.sh $(LOCAL_BASE)

image:
	docker/build-image.sh $(IMAGE):$(TAG) $(BASE_IMAGE) $(LOCAL_BASE)

local-train:
	PY=$(PY) local_test/train_local.sh $(IMAGE):$(TAG)

local-serve:
	PORT=$(PORT) local_test/serve_local.sh $(IMAGE):$(TAG)

predict:
	PORT=$(PORT) local_test/predict.sh

# Shipping with boto3 (README "Ship it"): flags go in SHIP_ARGS, e.g. SHIP_ARGS="--train s3://bucket/train/ ...".
SHIP_ARGS   ?=

push: venv
	$(PY) -m shipping push $(IMAGE):$(TAG) $(SHIP_ARGS)

sagemaker-train: venv
	$(PY) -m shipping train $(SHIP_ARGS)

deploy: venv
	$(PY) -m shipping deploy $(SHIP_ARGS)

transform: venv
	$(PY) -m shipping transform $(SHIP_ARGS)

cleanup: venv
	$(PY) -m shipping cleanup $(SHIP_ARGS)

# This project against what users would otherwise run (the transformers Trainer; Flask + pipeline), training and
# serving, on real text. Quick by default; `make bench BENCH_ARGS=--full` for the full size. Targets are reported
# in bench/results/, never asserted.
bench: venv bench-venv
	$(PY) bench/run.py --trainer-python $(BENCH_VENV)/bin/python $(BENCH_ARGS)
	$(PY) bench/long_text_memory.py --mb 50

# `prepare` on every quotation of the benchmark's fortunes topics: the report of a run on real text.
bench-prepare: venv
	$(PY) bench/prepare_fortunes.py --out bench/results/prepare-fortunes

# Known vulnerabilities in the pinned packages (dev.txt includes image.txt), from PyPI's advisory data (the
# JSON API; AUDIT_SERVICE=osv asks api.osv.dev). Needs that service, so it is not part of `make test`. --strict
# fails when a package could not be checked, rather than reporting "no known vulnerabilities" for it.
AUDIT_VENV         ?= $(HOME)/.cache/sm-textclf/audit-$(shell sha256sum requirements/audit.txt | cut -c1-12)
AUDIT_SERVICE      ?= pypi
AUDIT_REQUIREMENTS ?= requirements/dev.txt
AUDIT_ARGS         ?=

$(AUDIT_VENV)/.installed: requirements/audit.txt
	$(PYTHON) -m venv $(AUDIT_VENV)
	$(AUDIT_VENV)/bin/pip install --quiet --no-deps -r requirements/audit.txt
	touch $@

audit: $(AUDIT_VENV)/.installed
	$(AUDIT_VENV)/bin/pip-audit --strict --no-deps --disable-pip --progress-spinner off \
		--vulnerability-service $(AUDIT_SERVICE) $(addprefix -r ,$(AUDIT_REQUIREMENTS)) $(AUDIT_ARGS)

# Regenerate requirements/image.txt from the top-level pins in a scratch environment.
lock:
	tools/lock.sh

clean:
	rm -rf .pytest_cache build *.egg-info
