#!/usr/bin/env bash
# Serves the model that train_local.sh left, as a SageMaker endpoint would: the model mounted at /opt/ml/model,
# `serve` as the argument, port 8080 published on the loopback address only. Waits until /ping answers 200.
#
# Usage: local_test/serve_local.sh IMAGE              serve in the foreground until Ctrl-C, then stop cleanly
#        local_test/serve_local.sh IMAGE --detach     return once /ping answers 200, leaving the server running
#                                                     (stop it with: docker stop textclf-local-serve-PORT)
# Environment: PORT (default 8080) on 127.0.0.1; LOCAL_TEST_DIR as for train_local.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

readonly image=${1:?usage: serve_local.sh IMAGE [--detach]}
readonly mode=${2:-}
readonly container=$serve_container

# docker stop sends SIGTERM, as SageMaker does on scale-in; the server must drain and exit 0 within 30 s.
stop_server() {
    trap - EXIT INT TERM
    log "stopping $container"
    docker stop --time 30 "$container" >/dev/null 2>&1 || true
    local status
    status=$(docker inspect --format '{{.State.ExitCode}}' "$container" 2>/dev/null || echo gone)
    remove_container "$container"
    [ "$status" = 0 ] || die "$container exited with $status after SIGTERM"
}

main() {
    require_image "$image"
    [ -f "$work_dir/model/config.json" ] || die "no model in $work_dir/model: run local_test/train_local.sh first"
    remove_container "$container"
    docker run --detach --name "$container" "${user_args[@]}" -p "127.0.0.1:$port:8080" \
        -v "$work_dir/model:/opt/ml/model:ro" "$image" serve >/dev/null
    trap 'remove_container "$container"' EXIT
    wait_for_ping "$container"
    if [ "$mode" = --detach ]; then
        trap - EXIT
        log "serving on http://127.0.0.1:$port (local_test/predict.sh asks it; docker stop $container ends it)"
        return
    fi
    trap stop_server EXIT INT TERM
    log "serving on http://127.0.0.1:$port; Ctrl-C stops it"
    # In the background, because bash runs a trap only once the foreground command returns, while `wait`
    # returns as soon as a signal arrives. The log stream ends by itself when the container stops.
    docker logs --follow "$container" &
    wait $! || true
}

main "$@"
