# The SageMaker text-classifier image: `docker run IMAGE train` fine-tunes, `docker run IMAGE serve` serves.
#
#   BASE_IMAGE: python3 with venv + pip, and torch (see docker/README.md: "What a base must provide")
#     ├── deps   /opt/venv: requirements/image.txt on top of the base's torch (system site packages visible); a C
#     │          compiler builds sagemaker-training's extension here, and stays here
#     └── final  base + nginx + /opt/venv + /opt/program (entrypoint, train, serve, container/), source copied last
#
# Build with docker/build-image.sh (`make image`), which passes the build arguments below. A plain
# `docker build .` also works where the build can reach PyPI. Works with the classic builder and with BuildKit.

# Keep this default equal to PUBLIC_BASE_IMAGE in docker/base-image.env (tests/container checks it).
ARG BASE_IMAGE=pytorch/pytorch:2.14.1-cuda13.2-cudnn9-runtime@sha256:c4ab67f95221a342dff0e8ca4543a7b8885f79f7a0029c0e2e39685d5eaf1722

FROM ${BASE_IMAGE} AS deps
# sagemaker-training (script mode) is published only as a source distribution with a C extension: this stage,
# and only this one, gets a C compiler (and Python's headers where the base lacks them) to build it. The final
# stage copies /opt/venv alone, so no compiler reaches the image.
RUN set -eu; export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; \
    packages="gcc libc6-dev"; \
    python3 -c 'import os, sys, sysconfig; sys.exit(os.path.exists(sysconfig.get_path("include") + "/Python.h"))' \
        && packages="$packages python3-dev"; \
    apt-get install -y -qq --no-install-recommends $packages >/dev/null
# docker/build-image.sh downloads the wheels (and that one source distribution) on the host into .whl/ and sets
# PIP_NO_INDEX=1 (pip reads it from the environment), so the build needs no network. Without .whl/ and
# PIP_NO_INDEX, pip installs from PyPI.
ARG PIP_NO_INDEX
COPY requirements/image.txt .whl* /tmp/deps/
# A virtual environment rather than the base's own site-packages: it leaves the base's Python untouched (PEP 668
# bases refuse pip), and the final stage copies it whole, so no wheel file ever lands in a layer of the image.
# It sees the base's packages (torch) and uses the base's pip, so it holds exactly the lock file's packages and
# no older pip or setuptools of its own to shadow the base's (torch requires a recent setuptools).
# --no-build-isolation: the source distribution builds with the base's setuptools, so the offline build needs
# no setuptools wheel. The toolkit's console script `train` is removed: `train` is ours (/opt/program/train), and
# script mode calls the toolkit as a module.
RUN python3 -m venv --system-site-packages --without-pip /opt/venv \
 && /opt/venv/bin/python -m pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore \
        --no-build-isolation --find-links=/tmp/deps --requirement=/tmp/deps/image.txt \
 && rm /opt/venv/bin/train

FROM ${BASE_IMAGE}
# nginx, the HTTP front of `serve` (container/textclf/serving/front.py), from the base's own distribution: the
# lightest build it offers. First in this stage, so neither a lock change nor a code change rebuilds it.
RUN set -eu; export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; \
    for package in nginx-light nginx-core nginx; do \
        if apt-cache show "$package" >/dev/null 2>&1; then break; fi; \
    done; \
    apt-get install -y -qq --no-install-recommends "$package" >/dev/null; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log /usr/share/doc/nginx*; \
    nginx -v
COPY --from=deps /opt/venv /opt/venv

# train and serve first on PATH; the venv's python3 before the base's. Hugging Face stays offline: the image
# holds no weights and a training job gets its base model through the `model` channel. Caches and config
# directories go to /tmp, so any uid can run the image (docker run --user 12345:12345), and so can a read-only
# root filesystem. Python never writes bytecode at run time: pip's .pyc files hold their source's modification
# time to the second, and the build moves a few sources a second later (seen in numpy and transformers, a
# different few each build), so an import would rewrite those beside the packages, in the image's own layers.
ENV PATH=/opt/program:/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    HF_HOME=/tmp/huggingface \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/.cache

# The program lives outside /opt/ml, which belongs to SageMaker (it mounts input, model and output there).
WORKDIR /opt/program
ENTRYPOINT ["/opt/program/entrypoint"]

# The source last: a code change rebuilds only these three layers and the labels below. Compiled here, so that no
# run writes __pycache__ beside it: everything a job writes goes to /opt/ml or /tmp, and the root filesystem may
# be read-only (docker run --read-only --tmpfs /tmp).
COPY docker/entrypoint train serve prepare /opt/program/
COPY container/ /opt/program/container/
RUN python3 -m compileall -q /opt/program/container

# Labels last: the revision changes with every commit, and metadata-only layers cost nothing to rebuild.
ARG BASE_IMAGE VERSION=dev REVISION=unknown
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true \
      org.opencontainers.image.title="sagemaker-text-classifier" \
      org.opencontainers.image.description="Fine-tunes (train) and serves (serve) text classifiers on SageMaker" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
