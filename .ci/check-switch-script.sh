#!/bin/sh
# Checks switch-to-configuration as modules/system/switch.imago assembles it
# from its parts (in the order of its `parts = [ ... ];` list), and
# check-health (modules/system/health.sh): shellcheck for POSIX sh, and
# busybox sh's own parser (the target runs them with busybox).
#
#   usage: .ci/check-switch-script.sh
set -eu

dir=modules/system
parts=$(sed -n '/parts = \[/,/\];/p' "$dir/switch.imago" | tr ' ' '\n' | sed -n 's|^\./switch/|switch/|p')
[ -n "$parts" ] || {
    echo "check-switch-script: no \`parts = [ ... ];\` list in $dir/switch.imago" >&2
    exit 1
}
script=$(mktemp)
trap 'rm -f "$script"' EXIT
# Which lines of the assembled script come from which part, for the
# messages below.
map=""
first=1
for p in $parts; do
    cat "$dir/$p" >>"$script"
    last=$(wc -l <"$script")
    map="$map  lines $first-$last: $dir/$p
"
    first=$((last + 1))
done

for tool in shellcheck busybox; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "check-switch-script: $tool is missing (.ci/host-tools.sh test installs it)" >&2
        exit 1
    }
done
if ! shellcheck --shell=sh "$script" || ! busybox sh -n "$script"; then
    printf 'check-switch-script: the line numbers above are those of the assembled script:\n%s' "$map" >&2
    exit 1
fi
echo "check-switch-script: switch-to-configuration ($(echo $parts | wc -w) parts) passes shellcheck and busybox sh -n"
# The health check script (modules/system/health.imago) likewise.
if ! shellcheck --shell=sh "$dir/health.sh" || ! busybox sh -n "$dir/health.sh"; then
    echo "check-switch-script: $dir/health.sh fails the checks above" >&2
    exit 1
fi
echo "check-switch-script: check-health passes shellcheck and busybox sh -n"
