#!/usr/bin/env bash
# `make image`: builds the image from the top-level Dockerfile.
#
# Usage: docker/build-image.sh IMAGE_REF [BASE_IMAGE [LOCAL_BASE]]
#   IMAGE_REF   name:tag to build, e.g. sagemaker-text-classifier:latest
#   BASE_IMAGE  the base (default: PUBLIC_BASE_IMAGE from docker/base-image.env)
#   LOCAL_BASE  the tag `make base-image` builds; when BASE_IMAGE is that tag, it is built first if missing
# Environment:
#   WHEELHOUSE=0  let pip inside the build reach PyPI itself, instead of the wheels the host downloads to .whl/
#   PYTHON        host interpreter whose pip downloads the wheels (default python3)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
wheelhouse=$repo/.whl
# requirements/image.txt's packages that PyPI publishes without a wheel (a regular expression of their names).
source_only='sagemaker[-_]training|inotify[-_]simple'
readonly here repo wheelhouse source_only
# shellcheck source-path=SCRIPTDIR source=base-image.env
. "$here/base-image.env"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

# "3.11 36": the base's Python version and glibc minor version, which decide the wheels it can install.
base_platform() {
    docker run --rm --network none --entrypoint python3 "$1" -c '
import platform, sys
print("%d.%d" % sys.version_info[:2], platform.libc_ver()[1].split(".")[1])'
}

# Downloads requirements/image.txt's wheels on the host into .whl/ (inside the build context). Why: pip inside
# a build may not reach PyPI (here, TLS to PyPI goes through a proxy whose CA only the host trusts), and the
# host's pip cache makes the download near-instant. A stamp skips the work while the lock and base are unchanged.
prepare_wheelhouse() {
    local base=$1 platform stamp
    platform=$(base_platform "$base")
    stamp="$(sha256sum <"$repo/requirements/image.txt" | cut -c1-16) $platform"
    if [ "$(cat "$wheelhouse/.stamp" 2>/dev/null)" = "$stamp" ]; then return; fi
    log "downloading the wheels of requirements/image.txt for Python/glibc $platform into .whl/"
    rm -rf "$wheelhouse"
    mkdir -p "$wheelhouse"
    # Packages PyPI has only as source distributions (built in the Dockerfile's deps stage, the C extension of
    # sagemaker-training with a compiler there): fetched on their own, and left out of the binary-only download.
    grep -v -i -E "^($source_only)==" "$repo/requirements/image.txt" >"$wheelhouse/binary.txt"
    # shellcheck disable=SC2086  # $platform is two words: python version, glibc minor
    pip_download $platform "$wheelhouse" --requirement="$wheelhouse/binary.txt"
    grep -i -E "^($source_only)==" "$repo/requirements/image.txt" >"$wheelhouse/source.txt"
    "${PYTHON:-python3}" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary=:all: \
        --dest="$wheelhouse" --requirement="$wheelhouse/source.txt"
    rm "$wheelhouse/binary.txt" "$wheelhouse/source.txt"
    echo "$stamp" >"$wheelhouse/.stamp"
}

# The commit the image is built from; "-dirty" when tracked files differ from it.
revision() {
    local sha
    sha=$(git -C "$repo" rev-parse HEAD 2>/dev/null) || { echo unknown; return; }
    git -C "$repo" diff --quiet HEAD -- 2>/dev/null || sha="$sha-dirty"
    echo "$sha"
}

version() { sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml" | head -n 1; }

# build TAG DOCKER_BUILD_ARGS...: docker build of this repository, then removal of what TAG named before, if
# nothing else names or uses it.
build() {
    local tag=$1 old_id
    shift
    old_id=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
    # --force-rm: a failed step leaves no stopped container behind (the classic builder keeps it otherwise).
    docker build --force-rm "$@" --tag "$tag" "$repo"
    remove_if_dangling "$old_id"
}

main() {
    [ $# -ge 1 ] || die "usage: $0 IMAGE_REF [BASE_IMAGE [LOCAL_BASE]]"
    local ref=$1 base=${2:-$PUBLIC_BASE_IMAGE} local_base=${3:-} start=$SECONDS
    local -a build_args=(--build-arg "BASE_IMAGE=$base" --build-arg "VERSION=$(version)"
        --build-arg "REVISION=$(revision)")

    if [ -n "$local_base" ] && [ "$base" = "$local_base" ]; then
        "$here/build-base-image.sh" "$local_base" # a no-op when it exists and its recipe is unchanged
    fi
    if [ "${WHEELHOUSE:-1}" != 0 ]; then
        prepare_wheelhouse "$base"
        build_args+=(--build-arg PIP_NO_INDEX=1)
    else
        rm -rf "$wheelhouse" # an old wheelhouse would still be offered to pip
    fi

    log "building $ref on $base"
    # The deps stage gets a tag of its own, so that its previous build is found and removed like the image's:
    # otherwise every change of requirements/image.txt would leave an untagged copy of the venv behind.
    build "$ref-deps" --target deps "${build_args[@]}"
    build "$ref" "${build_args[@]}"
    log "built $ref in $((SECONDS - start)) s: $(docker image inspect --format '{{.Size}}' "$ref" |
        awk '{printf "%.2f GB", $1 / 1e9}')"
    if [ "$base" = "$PUBLIC_BASE_IMAGE" ]; then
        log "base: $base (the public CUDA base: this image is for SageMaker)"
    else
        log "base: $base, NOT the public base: for tests and laptops only; make push refuses it"
    fi
}

main "$@"
