#!/bin/bash
# Substituting examples/server from a file:// cache into an empty store vs
# building it from a warm package cache into an empty store, in alternated
# rounds (docs/performance.md, "Substitution"). IMAGO: the binary (default
# target/release/imago); ROUNDS: rounds (default 5); TMPDIR: where the stores go.
set -euo pipefail
IMAGO=$(realpath "${IMAGO:-target/release/imago}")
REPO=$(cd "$(dirname "$0")/.." && pwd)
B=$(mktemp -d "${TMPDIR:-/var/tmp}/subst-bench.XXXXXX")
echo "dir $B"
cd "$REPO"
export XDG_CONFIG_HOME=$B/config
mkdir -p "$XDG_CONFIG_HOME"
$IMAGO key generate bench-1 --dir "$B" >/dev/null 2>&1
$IMAGO --store "$B/src" build examples/server.imago -o "$B/result" >/dev/null 2>&1
$IMAGO --store "$B/src" copy --to "file://$B/cache" --sign "$B/bench-1.secret" "$B/result" --json > "$B/push.json" 2>/dev/null
python3 -c "import json;d=json.load(open('$B/push.json'));print('pushed', d['objects_copied'], 'objects', d['bytes_copied'], 'archive bytes', d['step_records'], 'records')"
wipe() { if [ -d "$1" ]; then chmod -R u+w "$1"; rm -rf "$1"; fi; }
t() { local s e; s=$(date +%s.%N); "$@" > "$B/last.json" 2>/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
build() { t $IMAGO --store "$B/s-build" build examples/server.imago --json; }
subst() { t $IMAGO --store "$B/s-subst" build examples/server.imago --json --substituter "file://$B/cache" --trusted-public-key "$B/bench-1.public"; }
for i in $(seq 1 ${ROUNDS:-5}); do
  wipe "$B/s-build"; wipe "$B/s-subst"; sync
  if [ $((i % 2)) -eq 1 ]; then
    a=$(build); cp "$B/last.json" "$B/build.json"; b=$(subst); cp "$B/last.json" "$B/subst.json"
  else
    b=$(subst); cp "$B/last.json" "$B/subst.json"; a=$(build); cp "$B/last.json" "$B/build.json"
  fi
  bytes=$(du -sb --exclude=.imago "$B/s-subst" | cut -f1)
  objs=$(find "$B/s-subst" -mindepth 1 -maxdepth 1 ! -name .imago | wc -l)
  echo "round $i build $a s subst $b s; subst store $objs objects $bytes bytes; $(python3 -c "import json;d=json.load(open('$B/subst.json'));b=json.load(open('$B/build.json'));print('subst: built',d['built'],'substituted',d['substituted'],'warnings',len(d['warnings']),'| build: built',b['built'],'cached',b['cached'])")"
done
# a no-op: the substituted store, again
c=$(subst); echo "again into the substituted store: $c s"
wipe "$B/s-build"; wipe "$B/s-subst"; wipe "$B/src"; rm -rf "$B"
