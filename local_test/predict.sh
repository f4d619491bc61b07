#!/usr/bin/env bash
# Posts a payload to the local server's /invocations and prints the answer; fails unless it is HTTP 200.
#
# Usage: local_test/predict.sh [FILE [CONTENT_TYPE]]
#   FILE          default local_test/payload.json
#   CONTENT_TYPE  default application/json; text/csv, application/jsonlines and text/plain work too
# Environment: PORT (default 8080) on 127.0.0.1.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

readonly payload=${1:-$local_test/payload.json}
readonly content_type=${2:-application/json}
readonly url=http://127.0.0.1:$port/invocations

main() {
    [ -f "$payload" ] || die "no such file: $payload"
    local body status
    body=$(mktemp)
    # shellcheck disable=SC2064  # expand $body now: it is local to main
    trap "rm -f '$body'" EXIT
    status=$(curl -sS -o "$body" -w '%{http_code}' --max-time 60 -H "Content-Type: $content_type" \
        --data-binary "@$payload" "$url") || die "no answer from $url: is local_test/serve_local.sh running?"
    cat "$body"
    echo
    [ "$status" = 200 ] || die "HTTP $status from $url"
}

main "$@"
