#!/usr/bin/env bash
# `make base-image`: builds a local stand-in for the public PyTorch base, for machines that cannot pull from a
# registry. A minimal Debian root filesystem (debootstrap, Debian's own packages) gets python3, venv and pip from
# Debian and torch from PyPI, and becomes an image through `docker import`. It provides exactly what
# docker/README.md says a base must provide, and nothing else.
#
# Usage: docker/build-base-image.sh [TAG]          TAG defaults to textclf-base:local
# Environment:
#   FORCE=1           rebuild even when TAG exists and was built by this same recipe
#   SM_TEXTCLF_CACHE  cache directory (default ~/.cache/sm-textclf): Debian packages, scratch root filesystem
#   PYTHON            host interpreter whose pip downloads the torch wheels (default python3)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
tag=${1:-textclf-base:local}
cache=${SM_TEXTCLF_CACHE:-$HOME/.cache/sm-textclf}
recipe_label=textclf.base.recipe
readonly here repo tag cache recipe_label
# shellcheck source-path=SCRIPTDIR source=base-image.env
. "$here/base-image.env"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

# debootstrap, chroot and the root-owned files they leave need root; use sudo when we are not.
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# torch comes at the version the unit tests run against, so that the container suite tests the same torch.
torch_version() {
    local version
    version=$(sed -n 's/^torch==\([^ ;#]*\).*/\1/p' "$repo/requirements/dev.txt")
    [ -n "$version" ] || die "no 'torch==' pin in requirements/dev.txt"
    echo "$version"
}

# A fingerprint of everything that decides the image's content (this script and its settings without their
# comments, the wheel platforms, the torch version). It is stored as a label, so a warm machine reuses the image
# only while the recipe is unchanged (CI keeps the tag between runs); an edited comment costs no rebuild.
recipe_id() {
    {
        grep -hv '^[[:space:]]*#' "$0" "$here/base-image.env"
        manylinux_platforms "$LOCAL_BASE_GLIBC_MINOR"
        echo "torch==$1"
    } | sha256sum | cut -c1-16
}

image_recipe() {
    docker image inspect --format "{{ index .Config.Labels \"$recipe_label\" }}" "$tag" 2>/dev/null || true
}

ensure_debootstrap() {
    if command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ]; then return; fi
    log "installing debootstrap from Debian's archive"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

# The wheels are fetched on the host, where pip already trusts the network path to PyPI (and has its cache),
# then installed offline inside the chroot: the chroot needs no network, proxy or certificate configuration.
download_torch_wheels() {
    local version=$1 dest=$2
    log "downloading torch==$version and its dependencies (cp${LOCAL_BASE_PYTHON/./}, manylinux x86_64)"
    pip_download "$LOCAL_BASE_PYTHON" "$LOCAL_BASE_GLIBC_MINOR" "$dest" "torch==$version"
}

bootstrap_debian() {
    local rootfs=$1
    log "debootstrap $LOCAL_BASE_SUITE (minbase + python3, python3-venv, python3-pip) from $LOCAL_BASE_MIRROR"
    mkdir -p "$cache/debs"
    as_root debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        --cache-dir="$cache/debs" "$LOCAL_BASE_SUITE" "$rootfs" "$LOCAL_BASE_MIRROR" >/dev/null
}

install_torch() {
    local rootfs=$1 version=$2
    log "installing torch==$version into the system Python (offline, from the downloaded wheels)"
    # Debian marks its Python externally managed (PEP 668), as PyTorch's recent images do; a base image is the
    # one place where installing into it is right. pip byte-compiles everything: every container start imports
    # torch, so the .pyc files are kept.
    as_root chroot "$rootfs" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        python3 -m pip install --quiet --no-index --find-links=/tmp/wheels --no-cache-dir \
        --break-system-packages --root-user-action=ignore --disable-pip-version-check "torch==$version"
}

# Drop what an image never needs: package lists and archives, docs, logs, and the host's identity that
# debootstrap copies in (Docker provides resolv.conf and hostname at run time).
slim_rootfs() {
    local rootfs=$1
    as_root rm -rf "$rootfs"/tmp/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
        "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/root/.cache
    as_root sh -c ": > '$rootfs/etc/resolv.conf'; echo localhost > '$rootfs/etc/hostname'"
}

import_image() {
    local rootfs=$1 version=$2 recipe=$3
    log "importing the root filesystem as $tag"
    as_root tar -C "$rootfs" --numeric-owner '--exclude=./dev/*' '--exclude=./proc/*' '--exclude=./sys/*' -c . |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' \
            --change 'CMD ["python3"]' \
            --change "LABEL $recipe_label=$recipe" \
            --change "LABEL org.opencontainers.image.description=\"Debian $LOCAL_BASE_SUITE + Python $LOCAL_BASE_PYTHON + torch $version (local stand-in for $PUBLIC_BASE_IMAGE)\"" \
            --message "build-base-image.sh: debootstrap $LOCAL_BASE_SUITE, torch==$version" \
            - "$tag" >/dev/null
}

# The image must do what the Dockerfile relies on: python3 with venv + pip, and torch importable.
check_image() {
    docker run --rm --network none "$tag" python3 -W ignore -c '
import ensurepip, venv, torch
print("base-image: python", __import__("sys").version.split()[0], "torch", torch.__version__)'
}

main() {
    local version recipe work old_id start=$SECONDS
    version=$(torch_version)
    recipe=$(recipe_id "$version")
    if [ "${FORCE:-0}" != 1 ] && [ "$(image_recipe)" = "$recipe" ]; then
        log "$tag is up to date (recipe $recipe); FORCE=1 rebuilds it"
        return
    fi
    old_id=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)

    ensure_debootstrap
    mkdir -p "$cache"
    work=$(mktemp -d "$cache/base-build.XXXXXX")
    # shellcheck disable=SC2064  # expand $work now: it is local to main
    trap "as_root rm -rf '$work'" EXIT
    bootstrap_debian "$work/rootfs"
    as_root mkdir -p "$work/rootfs/tmp/wheels"
    as_root chown "$(id -u)" "$work/rootfs/tmp/wheels"
    download_torch_wheels "$version" "$work/rootfs/tmp/wheels"
    install_torch "$work/rootfs" "$version"
    slim_rootfs "$work/rootfs"
    import_image "$work/rootfs" "$version" "$recipe"
    check_image

    # The replaced base is untagged now; images built on it keep it alive until they are rebuilt.
    remove_if_dangling "$old_id"
    log "built $tag in $((SECONDS - start)) s: $(docker image inspect --format '{{.Size}}' "$tag" |
        awk '{printf "%.2f GB", $1 / 1e9}')"
}

main "$@"
