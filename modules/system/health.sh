#!@tools@/bin/sh
# shellcheck shell=sh
# check-health [--no-settle] — is this system healthy, in its own words?
#
# First waits for the system to settle (systemd: `systemctl
# is-system-running --wait`, at most @settle@ s; anything but `running` is
# a failure, with the failed units listed; busybox init: nothing to wait
# for), then runs each check of `system.healthChecks` with its time limit.
# Prints `ok NAME` or `FAILED NAME (…)` and the check's last output lines
# per check; exits 0 when every check passed, 1 otherwise. `imago deploy`
# runs it on the target after a switch and rolls back when it fails
# (docs/generations.md, "Health checks"). `--no-settle` skips the wait (for
# a run by hand on a system that has settled).
set -u
PATH=@tools@/bin:/run/wrappers/bin:/usr/bin:/usr/sbin
export PATH
settle=true
[ "${1:-}" = --no-settle ] && settle=false
init=@init@
failed=0
if $settle && [ "$init" = systemd ]; then
    state=$(timeout @settle@ systemctl is-system-running --wait 2>&1)
    if [ "$state" = running ]; then
        echo "ok settled: the system is running"
    else
        echo "FAILED settled: the system is ${state:-not running after @settle@ s}"
        systemctl list-units --failed --plain --no-legend 2>&1 | sed 's/^/  /'
        failed=1
    fi
fi
out=$(mktemp) || exit 1
trap 'rm -f "$out"' EXIT
# check NAME SECONDS COMMAND (called by the generated lines below)
# shellcheck disable=SC2317
check() {
    if timeout "$2" sh -c "$3" >"$out" 2>&1 </dev/null; then
        echo "ok $1"
    else
        echo "FAILED $1 (exit status $?, limit $2 s): $3"
        tail -n 20 "$out" | sed 's/^/  /'
        failed=1
    fi
}
@checks@
exit "$failed"
