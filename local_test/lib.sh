# shellcheck shell=bash disable=SC2034  # the variables are for the scripts that source this file
# Helpers shared by the local_test scripts (sourced, not run).

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

local_test=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$local_test")
readonly local_test repo
# The /opt/ml tree that train_local.sh fills and serve_local.sh serves from: a scratch copy of test_dir/, outside
# the repository, so runs never write into the clone.
readonly work_dir=${LOCAL_TEST_DIR:-${TMPDIR:-/tmp}/sm-textclf-local-test}
readonly port=${PORT:-8080}
# One server per port; the name says which, so a second checkout on another port keeps its own.
readonly serve_container=textclf-local-serve-$port
# Containers run as the caller, so the files they leave in work_dir belong to the caller and can be removed
# without root. (SageMaker runs the image as root; the image works under any uid.)
readonly user_args=(--user "$(id -u):$(id -g)")

require_image() {
    docker image inspect "$1" >/dev/null 2>&1 || die "no image $1: build it with 'make image'"
}

# Removes a container of ours by name, whatever its state (a leftover of an interrupted run included).
remove_container() { docker rm -f "$1" >/dev/null 2>&1 || true; }

http_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true; }

# Waits until GET /ping answers 200 (SageMaker allows a container 4 minutes), failing early if the container dies.
wait_for_ping() {
    local name=$1 timeout=${2:-240} start=$SECONDS
    until [ "$(http_status "http://127.0.0.1:$port/ping")" = 200 ]; do
        if [ "$(docker inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" != true ]; then
            docker logs --tail 30 "$name" >&2 || true
            die "$name stopped before /ping answered 200"
        fi
        [ $((SECONDS - start)) -lt "$timeout" ] || die "/ping did not answer 200 within $timeout s"
        sleep 1
    done
    log "/ping answered 200 after $((SECONDS - start)) s"
}
