#!/usr/bin/env bash
# `make demo`: the whole path a new user takes, on the bundled sample data. Builds the base image if it is
# missing and the image, trains a classifier in the container, serves it, classifies a few texts, stops the
# server, and prints the predictions. Needs Docker, curl and python3; no registry, hub or AWS account.
#
# Environment (the Makefile passes them): IMAGE, TAG, BASE_IMAGE, LOCAL_BASE, PORT, PY (python for the checks).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

readonly image=${IMAGE:-sagemaker-text-classifier}:${TAG:-local}
readonly local_base=${LOCAL_BASE:-textclf-base:local}
readonly base=${BASE_IMAGE:-$local_base}
readonly payload=$local_test/payload.json

step() { printf '\n=== %s\n' "$*" >&2; }

# Prints one line per text: the label and score the server gave it. Fails unless the answer has the contract's
# shape: one {"label", "score"} per input, in order, with a label that training saw.
show_predictions() {
    "${PY:-python3}" - "$payload" "$1" "$work_dir/model/config.json" <<'PYTHON'
import json, sys

texts = json.load(open(sys.argv[1]))["inputs"]
answer = json.load(open(sys.argv[2]))
labels = set(json.load(open(sys.argv[3]))["id2label"].values())
assert isinstance(answer, list) and len(answer) == len(texts), f"expected {len(texts)} predictions: {answer}"
for text, prediction in zip(texts, answer):
    assert prediction["label"] in labels and 0.0 <= prediction["score"] <= 1.0, prediction
    print(f"  {prediction['label']:>8}  {prediction['score']:.3f}  {text}")
PYTHON
}

main() {
    local start=$SECONDS answer
    step "1/4 image $image on $base"
    "$repo/docker/build-image.sh" "$image" "$base" "$local_base"

    step "2/4 train in the container on the sample data (local_test/test_dir)"
    "$local_test/train_local.sh" "$image"

    step "3/4 serve the trained model on 127.0.0.1:$port"
    "$local_test/serve_local.sh" "$image" --detach
    trap 'docker stop --time 30 "$serve_container" >/dev/null 2>&1; remove_container "$serve_container"' EXIT

    step "4/4 classify a few texts (local_test/payload.json)"
    answer=$(mktemp)
    "$local_test/predict.sh" "$payload" application/json >"$answer"
    show_predictions "$answer"
    rm -f "$answer"

    log "done in $((SECONDS - start)) s; the server stops now"
}

main "$@"
