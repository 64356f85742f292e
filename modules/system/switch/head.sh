#!@tools@/bin/sh
# shellcheck shell=sh
# switch-to-configuration ACTION [SYSTEM] — make SYSTEM (a toplevel of the
# system this script was built for) the running system, the boot default,
# or both; or manage the machine's generations.
#
#   test    activate SYSTEM now and reload/restart services; the boot
#           default is unchanged (a reboot returns to it)
#   boot    add SYSTEM as a new generation: profile link, kernel and initrd
#           on the ESP, a boot entry with 3 tries, made the default
#   switch  boot, then test
#   rollback [switch|boot|test]
#           make the generation before the current one current again, with
#           that generation's own script (default: switch)
#   list-generations
#           one line per generation: number, current/booted marks, toplevel,
#           boot entry
#   delete-generations N...
#           delete generations (never the current, booted or running one):
#           profile links, boot entries, kernels/initrds no entry uses, and
#           the store objects no remaining generation, nor the booted or
#           running system, needs (read from each toplevel's `closure`)
#
# SYSTEM defaults to the toplevel this script belongs to (the directory above
# `bin/`). test, boot, switch and delete-generations run one at a time (a
# lock in /run); test, boot and switch first check that every store object
# SYSTEM's `closure` file lists is in the store. Runs under busybox with
# Imago's own tools: the target needs no imago binary. The algorithm and
# its failure handling are described in docs/generations.md.
#
# Environment (for tests and unusual layouts): IMAGO_PROFILES (default
# /imago/var/profiles), IMAGO_ESP (default /boot), IMAGO_CMDLINE (default
# /proc/cmdline), IMAGO_RUN (default /run: booted-system, current-system,
# the lock, the garbage collection's lists),
# IMAGO_CONSOLE (default /dev/console: output of services started by `test`),
# IMAGO_INIT_PID (default 1: the busybox init that `test` signals),
# IMAGO_MACHINE_STORE (default /imago/store: the store directory whose
# objects `delete-generations` collects and `boot`/`test` check),
# IMAGO_ESP_FREE_KIB (overrides the measured free space of the
# ESP, in KiB), IMAGO_GENERATION (set by `rollback`: `boot` makes the
# existing generation N the default instead of adding one),
# IMAGO_SWITCH_PAUSE_AFTER (a step name: stop there and wait forever, for
# power-cut tests; the steps are listed where `paused_after` is called).
set -eu
# Imago's tools first; systemctl comes from the system's /usr.
export PATH=@tools@/bin:/usr/bin:/usr/sbin
umask 022

name=@name@
kernel_src=@kernel@
initrd_src=@initrd@
kernel_params=@params@
limit=@limit@
init_system=@init@
store_prefix=/imago/store/
tries=3

profiles=${IMAGO_PROFILES:-/imago/var/profiles}
esp=${IMAGO_ESP:-/boot}
cmdline_file=${IMAGO_CMDLINE:-/proc/cmdline}
run=${IMAGO_RUN:-/run}
console=${IMAGO_CONSOLE:-/dev/console}
init_pid=${IMAGO_INIT_PID:-1}
store=${IMAGO_MACHINE_STORE:-/imago/store}
lock="$run/imago-switch.lock"
lock_guard="$run/imago-switch.lock.takeover"

die() {
    echo "switch-to-configuration: $*" >&2
    exit 1
}

# What an unfinished `boot` leaves to undo: the new generation's link and a
# temporary file. The old default entry and profile are never touched
# before the last steps, so removing these restores the old state. A
# garbage collection leaves its list files, and a store it remounted
# read-write; the lock goes last.
undo_link=""
undo_entry=""
undo_tmp=""
gc_work=""
store_remounted=false
lock_held=false
guard_held=false
cleanup() {
    status=$?
    set +e
    [ -n "$undo_tmp" ] && rm -f "$undo_tmp"
    [ -n "$undo_entry" ] && rm -f "$undo_entry"
    if [ -n "$undo_link" ]; then
        rm -f "$undo_link"
        echo "switch-to-configuration: the new generation was not added; the boot default is unchanged" >&2
    fi
    [ -n "$gc_work" ] && rm -rf "$gc_work"
    $store_remounted && mount -o remount,bind,ro "$store"
    $lock_held && rm -f "$lock"
    $guard_held && rmdir "$lock_guard"
    exit $status
}
trap cleanup EXIT

usage() {
    echo "usage: switch-to-configuration switch|boot|test [SYSTEM]" >&2
    echo "       switch-to-configuration rollback [switch|boot|test]" >&2
    echo "       switch-to-configuration list-generations" >&2
    echo "       switch-to-configuration delete-generations N..." >&2
    exit 2
}

# Test hook: with IMAGO_SWITCH_PAUSE_AFTER=$1, report and wait forever here
# (a VM test then cuts the power). Built in only for test systems
# (`testing.switchPauseHook`, on with the VM test backdoor); a production
# system's script ignores the variable.
pause_hook=@pauseHook@
paused_after() {
    [ "$pause_hook" = 1 ] || return 0
    [ "${IMAGO_SWITCH_PAUSE_AFTER:-}" = "$1" ] || return 0
    echo "switch-to-configuration: paused after $1 (IMAGO_SWITCH_PAUSE_AFTER)" >&2
    while :; do sleep 60; done
}
