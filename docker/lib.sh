# shellcheck shell=bash
# Helpers shared by docker/build-base-image.sh and docker/build-image.sh (sourced, not run).

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Removes image ID if it is dangling (no tag names it any more) and no container uses it: what a rebuild of a
# tag leaves behind. An image that another tag still names is left alone.
remove_if_dangling() {
    local id=$1
    [ -n "$id" ] || return 0
    [ "$(docker image inspect --format '{{len .RepoTags}}' "$id" 2>/dev/null)" = 0 ] || return 0
    docker image rm "$id" >/dev/null 2>&1 || log "kept the untagged $id: an image built on it or a container still uses it"
}

# The --platform options for every manylinux tag that glibc 2.MAX_MINOR can run, newest first: given
# --platform, pip considers exactly the tags named, so the older ones must be listed too.
manylinux_platforms() {
    local max_minor=$1 minor
    for minor in $(seq "$max_minor" -1 5); do printf -- '--platform=manylinux_2_%s_x86_64\n' "$minor"; done
    printf -- '--platform=%s\n' manylinux2014_x86_64 manylinux2010_x86_64 manylinux1_x86_64 linux_x86_64
}

# pip_download PYTHON_VERSION GLIBC_MINOR DEST PIP_ARGS...: binary wheels for a CPython PYTHON_VERSION on
# x86_64 Linux with glibc 2.GLIBC_MINOR, fetched by the host's pip. The host's pip already knows the way to
# PyPI (proxy, certificates, cache); builds and chroots then install offline from DEST.
pip_download() {
    local python_version=$1 glibc_minor=$2 dest=$3
    shift 3
    local platforms
    mapfile -t platforms < <(manylinux_platforms "$glibc_minor")
    "${PYTHON:-python3}" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
        --implementation=cp --python-version="$python_version" "${platforms[@]}" --dest="$dest" "$@"
}
