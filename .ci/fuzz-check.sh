#!/bin/sh
# Compiles every fuzz target (composer/fuzz, lang/fuzz; every file in their
# fuzz_targets/ must be declared) on the stable
# toolchain, so that none rots between fuzzing sessions: `cargo check`
# needs neither nightly nor cargo-fuzz (libfuzzer-sys builds on stable;
# only running a target needs cargo-fuzz's sanitizer flags). Run by
# `make test`; see docs/fuzzing.md.
#
# The fuzz crates are workspaces of their own and their Cargo.lock is not
# committed: a missing one starts as a copy of the main workspace's, so
# the dependencies they share resolve to the versions the main build has
# locked. They are checked in the main target directory, where `make
# check` has just checked most of those dependencies: the first run adds
# about 40 s (libFuzzer's C++ sources, the two crates and a few
# dependencies with other features), later ones 0.2-2.5 s; see
# docs/fuzzing.md. (cargo-fuzz keeps its sanitizer builds in
# <crate>/target.)
set -eu
cd "$(dirname "$0")/.."
cargo=${CARGO:-cargo}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
start=$(date +%s)
for crate in composer/fuzz lang/fuzz; do
    # `--bins` checks the targets Cargo.toml declares; a target file it does
    # not declare would never be compiled, so that is an error too.
    for target in "$crate"/fuzz_targets/*.rs; do
        if ! grep -q "^path = \"fuzz_targets/${target##*/}\"" "$crate/Cargo.toml"; then
            echo "fuzz check: $target is not a [[bin]] of $crate/Cargo.toml" >&2
            exit 1
        fi
    done
    [ -f "$crate/Cargo.lock" ] || cp Cargo.lock "$crate/Cargo.lock"
    if ! "$cargo" check --quiet --manifest-path "$crate/Cargo.toml" --bins; then
        echo "fuzz check: a fuzz target in $crate does not compile" >&2
        exit 1
    fi
done
echo "fuzz check: every fuzz target compiles ($(( $(date +%s) - start ))s)" >&2
