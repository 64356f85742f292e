#!/bin/bash
# Substituting examples/server from a file:// cache and from an OCI registry
# (Debian's docker-registry on 127.0.0.1) into an empty store vs building it
# from a warm package cache into an empty store, in alternated rounds; then a
# no-op copy to each cache (docs/performance.md, "Substitution"). Every
# round has stores of its own, removed at the end: on a file system without
# a journal, ext4 skips inodes freed in the last minutes when it allocates,
# so stores wiped just before a round slow every column of it. IMAGO: the
# binary (default target/release/imago); BEFORE: another binary (the code
# before a change) that substitutes from the same caches in the same rounds,
# for side-by-side figures; ROUNDS: rounds (default 5); TMPDIR: where the
# stores go. The registry comes from `.ci/host-tools.sh test`.
set -euo pipefail
IMAGO=$(realpath "${IMAGO:-target/release/imago}")
REPO=$(cd "$(dirname "$0")/.." && pwd)
REGISTRY=/usr/bin/docker-registry
[ -x "$REGISTRY" ] || { echo "$REGISTRY is missing: run .ci/host-tools.sh test" >&2; exit 1; }
B=$(mktemp -d "${TMPDIR:-/var/tmp}/subst-bench.XXXXXX")
echo "dir $B"
cd "$REPO"
export XDG_CONFIG_HOME=$B/config
mkdir -p "$XDG_CONFIG_HOME"
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
# Storage as Debian's packaged /etc/docker/registry/config.yml has it:
# blob descriptors cached in memory.
cat > "$B/registry.yml" <<YML
version: 0.1
log:
  level: error
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $B/registry
http:
  addr: 127.0.0.1:$port
YML
"$REGISTRY" serve "$B/registry.yml" > "$B/registry.log" 2>&1 &
registry_pid=$!
trap 'kill $registry_pid 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$port/v2/" >/dev/null; do sleep 0.1; done
OCI="oci://127.0.0.1:$port/bench/cache"
"$IMAGO" key generate bench-1 --dir "$B" >/dev/null 2>&1
"$IMAGO" --store "$B/src" build examples/server.imago -o "$B/result" >/dev/null 2>&1
summary() { python3 -c "import json;d=json.load(open('$1'));print('$2', d['objects_copied'], 'objects', d['bytes_copied'], 'archive bytes', d['step_records'], 'records', d['objects_already_there'], 'already there')"; }
t() { local s e; s=$(date +%s.%N); "$@" > "$B/last.json" 2>/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
push() { "$IMAGO" --store "$B/src" copy --to "$1" --sign "$B/bench-1.secret" "$B/result" --json; }
a=$(t push "file://$B/cache"); summary "$B/last.json" "pushed to file:// in $a s:"
a=$(t push "$OCI"); summary "$B/last.json" "pushed to the registry in $a s:"
wipe() { if [ -d "$1" ]; then chmod -R u+w "$1"; rm -rf "$1"; fi; }
build() { t "$IMAGO" --store "$B/s-build-$i" build examples/server.imago --json; }
subst() { t "${3:-$IMAGO}" --store "$B/s-$1-$i" build examples/server.imago --json --substituter "$2" --trusted-public-key "$B/bench-1.public"; }
before() {
  [ -n "${BEFORE:-}" ] || return 0
  local f o
  f=$(subst before-file "file://$B/cache" "$(realpath "$BEFORE")")
  o=$(subst before-oci "$OCI" "$(realpath "$BEFORE")")
  echo "round $i before: file $f s registry $o s; registry: $(counts "$B/last.json")"
}
counts() { python3 -c "import json;d=json.load(open('$1'));print('built',d['built'],'substituted',d['substituted'],'cached',d['cached'],'warnings',len(d['warnings']))"; }
for i in $(seq 1 "${ROUNDS:-5}"); do
  sync
  if [ $((i % 2)) -eq 1 ]; then
    a=$(build); cp "$B/last.json" "$B/build.json"
    b=$(subst file "file://$B/cache"); cp "$B/last.json" "$B/file.json"
    c=$(subst oci "$OCI"); cp "$B/last.json" "$B/oci.json"
    before
  else
    before
    c=$(subst oci "$OCI"); cp "$B/last.json" "$B/oci.json"
    b=$(subst file "file://$B/cache"); cp "$B/last.json" "$B/file.json"
    a=$(build); cp "$B/last.json" "$B/build.json"
  fi
  bytes=$(du -sb --exclude=.imago "$B/s-oci-$i" | cut -f1)
  objs=$(find "$B/s-oci-$i" -mindepth 1 -maxdepth 1 ! -name .imago | wc -l)
  echo "round $i build $a s file $b s registry $c s; registry store $objs objects $bytes bytes; build: $(counts "$B/build.json") | file: $(counts "$B/file.json") | registry: $(counts "$B/oci.json")"
done
# no-ops: the substituted stores again, and the closure copied again
echo "again into the substituted store: file $(subst file "file://$B/cache") s, registry $(subst oci "$OCI") s"
for i in 1 2 3; do
  a=$(t push "file://$B/cache"); b=$(t push "$OCI"); summary "$B/last.json" "no-op copy: file $a s, registry $b s;"
done
kill $registry_pid; wait $registry_pid 2>/dev/null || true
for s in "$B"/s-* "$B/src"; do wipe "$s"; done
rm -rf "$B"
