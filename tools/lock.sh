#!/usr/bin/env bash
# `make lock`: regenerate requirements/image.txt, every transitive version pinned, from the top-level pins below.
# torch is left out on purpose: the base image provides it (docker/README.md, "What a base must provide").
set -euo pipefail
cd "$(dirname "$0")/.."
top_level=(sagemaker-training==5.1.4 transformers==5.23.0 tokenizers==0.23.3 safetensors==0.8.0 flask==3.1.3 gunicorn==27.0.1
           matplotlib==3.11.2 numpy==2.4.6 python-dateutil==2.9.0.post0)  # dateutil: botocore (dev) needs <3
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python3 -m venv "$scratch/venv"
"$scratch/venv/bin/pip" install --quiet --disable-pip-version-check "${top_level[@]}"
{
    echo "# Runtime dependencies of the image, every version pinned (transitive ones too)."
    echo "# torch is not here: the base image provides it (see docker/README.md). Regenerate with 'make lock'."
    "$scratch/venv/bin/pip" freeze --disable-pip-version-check | grep -v -i '^pip=='
} > requirements/image.txt
echo "requirements/image.txt: $(grep -vc '^#' requirements/image.txt) pinned packages"
