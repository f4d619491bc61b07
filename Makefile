# The front door: every task a user or CI runs is one target here, delegating to a script or tool.

PYTHON      ?= python3
# The virtual environment lives outside the clone, keyed by the lock files, so fresh clones (CI) reuse it.
LOCK_HASH   := $(shell cat requirements/image.txt requirements/dev.txt | sha256sum | cut -c1-12)
VENV        ?= $(HOME)/.cache/sm-textclf/venv-$(LOCK_HASH)
PY          := $(VENV)/bin/python
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

.PHONY: venv bench-venv test test-fast lint demo base-image image local-train local-serve predict push bench lock clean

venv: $(VENV)/.installed

# No file prerequisites: the path already names the lock files' hash, and a fresh clone's newer files must not
# trigger a reinstall.
$(VENV)/.installed:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip==25.3
	$(VENV)/bin/pip install --quiet -r requirements/dev.txt
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

push:
	@echo "push: not built yet (shipping to ECR is a later issue)"; exit 2

# This project against what users would otherwise run (the transformers Trainer; Flask + pipeline), training and
# serving, on real text. Quick by default; `make bench BENCH_ARGS=--full` for the full size. Targets are reported
# in bench/results/, never asserted.
bench: venv bench-venv
	$(PY) bench/run.py --trainer-python $(BENCH_VENV)/bin/python $(BENCH_ARGS)

# Regenerate requirements/image.txt from the top-level pins in a scratch environment.
lock:
	tools/lock.sh

clean:
	rm -rf .pytest_cache build *.egg-info
