#!/bin/sh
# Builds the example systems the way a newcomer's first build runs: an
# empty package cache and an empty store, so a lock whose files no source
# serves any more, or a missing install step, fails here instead of on the
# next fresh machine.
#
#   usage: .ci/fresh-build.sh IMAGO_BINARY
set -eu

imago=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/imago-fresh.XXXXXX")
cleanup() {
    # Store objects are read-only: root removes them as they are, anyone
    # else makes them writable first.
    [ "$(id -u)" -eq 0 ] || chmod -R u+w "$tmp" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

export XDG_CACHE_HOME="$tmp/cache"
export IMAGO_STORE="$tmp/store"
start=$(date +%s)
for file in examples/minimal.imago examples/server.imago examples/web.imago \
    examples/bookworm/minimal.imago examples/bookworm/server.imago examples/arm64/minimal.imago \
    examples/arm64/server.imago; do
    if ! "$imago" build "$file" >/dev/null 2>"$tmp/log"; then
        cat "$tmp/log" >&2
        echo "fresh build: $file FAILED from an empty package cache and store" >&2
        exit 1
    fi
    echo "fresh build: $file ok ($(grep '^fetched' "$tmp/log" || echo 'nothing fetched'))" >&2
done
echo "fresh build: the examples from an empty cache and store in $(( $(date +%s) - start ))s" >&2
