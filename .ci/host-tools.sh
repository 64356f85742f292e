#!/bin/sh
# Installs the host tools Imago and its tests call, with apt-get, when they are
# missing. Prints what it installs. Safe to run repeatedly.
#
#   usage: .ci/host-tools.sh [run|test]
#
# `run` needs what building and booting a system needs; `test` adds what the
# test suite uses on top (Nix's parser for the flake check, reference tools,
# an OCI registry for the binary cache's tests).
set -eu

purpose=${1:-run}

# command -> Debian package
need() {
    command -v "$1" >/dev/null 2>&1 || missing="$missing $2"
}
need_file() {
    [ -e "$1" ] || missing="$missing $2"
}

missing=""
need qemu-system-x86_64 qemu-system-x86
need qemu-img qemu-utils
need_file /usr/share/OVMF/OVMF_CODE.fd ovmf
need_file /usr/lib/systemd/boot/efi/systemd-bootx64.efi systemd-boot-efi
need mkfs.ext4 e2fsprogs
need mkfs.vfat dosfstools
need mcopy mtools
need zstd zstd
need apt-get apt
need dpkg-deb dpkg
need gpgv gpgv
need_file /usr/share/keyrings/debian-archive-keyring.gpg debian-archive-keyring
if [ "$purpose" = test ]; then
    need nix-instantiate nix-bin
    need cpio cpio
    # switch-to-configuration's tests run the script under the host's busybox.
    need busybox busybox-static
    # `make check` lints switch-to-configuration.
    need shellcheck shellcheck
    need modprobe kmod
    # A certificate for Debian's nginx to test a generated configuration.
    need openssl openssl
    # arm64 systems boot under qemu-system-aarch64 (TCG on an amd64 host),
    # their disk images through AAVMF, the UEFI firmware of QEMU's virt
    # machine (docs/releases.md).
    need qemu-system-aarch64 qemu-system-arm
    need_file /usr/share/AAVMF/AAVMF_CODE.fd qemu-efi-aarch64
    # The binary cache's registry tests run Debian's registry themselves
    # (`docker-registry serve CONFIG` on 127.0.0.1, a random port, a
    # temporary storage directory); the package's own service is not
    # used, and where no init runs (containers) it does not start.
    need_file /usr/bin/docker-registry docker-registry
fi

if [ -z "$missing" ]; then
    exit 0
fi

echo "imago: installing host tools:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "imago: need root (or sudo) to install:$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086 # word splitting of the package list is intended
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "imago: host tools installed" >&2
