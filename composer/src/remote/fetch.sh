trap 'status=$?; [ $status = 0 ] || rm -rf "$fetch"; restore' EXIT
PATH="$PATH:/run/current-system/tools/bin:/run/current-system/sw/bin"
# A busybox for the applets the system's tools do not link (wget,
# sha256sum): the tools' own, else one on PATH.
bb=$(readlink /run/current-system/tools/bin/sh 2>/dev/null) || bb=
[ -n "$bb" ] && [ -x "$bb" ] || bb=$(command -v busybox 2>/dev/null) || bb=
has() { [ -n "$bb" ] && "$bb" --list 2>/dev/null | grep -qx "$1"; }
missing=
if command -v curl >/dev/null 2>&1; then get() { curl -fsS -o "$2" "$1" </dev/null; }
elif command -v wget >/dev/null 2>&1; then get() { wget -q -O "$2" "$1" </dev/null; }
elif has wget; then get() { "$bb" wget -q -O "$2" "$1" </dev/null; }
else missing="wget or curl"; fi
if command -v sha256sum >/dev/null 2>&1; then sha256() { sha256sum "$1"; }
elif has sha256sum; then sha256() { "$bb" sha256sum "$1"; }
else missing="${missing:+$missing, }sha256sum"; fi
for t in zstd "$tar"; do
  command -v "$t" >/dev/null 2>&1 || missing="${missing:+$missing, }$t"
done
if [ -n "$missing" ]; then echo "unavailable no $missing on this machine"; exit 0; fi
mkdir "$fetch" || exit 1
while read -r name url sha size; do
  [ -n "$name" ] || continue
  f="$fetch/$name.tar.zst"; d="$fetch/$name.d"
  if ! err=$(get "$url" "$f" 2>&1); then
    echo "failed $name fetching $url: $(printf '%s\n' "$err" | tail -n 1)"; rm -f "$f"; continue
  fi
  n=$(($(wc -c < "$f")))
  if [ "$n" != "$size" ]; then
    echo "failed $name $url has $n bytes, not $size"; rm -f "$f"; continue
  fi
  sum=$(sha256 "$f"); sum=${sum%% *}
  if [ "$sum" != "$sha" ]; then
    echo "failed $name $url has SHA-256 $sum, not $sha"; rm -f "$f"; continue
  fi
  if ! err=$(mkdir "$d" 2>&1 && zstd -q -d -c "$f" 2>&1 > "$fetch/$name.tar" && "$tar" --no-same-owner -x -f "$fetch/$name.tar" -C "$d" 2>&1); then
    echo "failed $name unpacking $url: $(printf '%s\n' "$err" | tail -n 1)"; rm -rf "$d" "$f" "$fetch/$name.tar"; continue
  fi
  if [ -e "$d/$name" ] || [ -L "$d/$name" ]; then
    mv "$d/$name" "$fetch/$name" && echo "ok $name" || echo "failed $name moving it out of the archive's directory"
  else
    echo "failed $name $url does not hold it"
  fi
  rm -rf "$d" "$f" "$fetch/$name.tar"
done
sync
