#!/bin/sh
# Imago VM test backdoor (guest side).
#
# Runs as root on the virtio-serial port named org.imago.backdoor (or on the
# device given as $1, e.g. a virtio console /dev/hvc0, or on stdin and stdout
# with $1 = -) and executes commands sent by the host test driver
# (vm-tests/src/backdoor.rs). POSIX sh only: it
# works with busybox sh, dash and bash; it needs base64, head, wc, mktemp,
# sleep, kill and cat (busybox or coreutils), and stty for a tty device.
#
# A virtio-serial port is not a tty: bytes pass unchanged and fast (a virtio
# console goes through the tty layer, ~15x slower for large outputs). On a
# tty the line is switched to raw mode so nothing is echoed or translated.
#
# Protocol (every line ends with \n):
#
#   host -> guest   run <id> <timeout-secs> <stdin-len> <base64 of the script>
#                   (<timeout-secs> may have decimals: 2.5)
#                   followed by exactly <stdin-len> bytes of base64 text
#                   (newlines allowed) that become the command's stdin;
#                   with <stdin-len> 0 the command reads /dev/null.
#
#   guest -> host   @imago-bd ready <pid>              once per start
#                   @imago-bd out <id> <bytes>         then stdout as base64 lines
#                   @imago-bd err <id> <bytes>         then stderr as base64 lines
#                   @imago-bd exit <id> <status> <timed-out 0|1>
#                   @imago-bd bad <id>                 malformed request
#
# The script is run with `sh <file>` in /, with its own stdout and stderr
# captured to files, so its output never reaches the user-visible console.
# A command running longer than <timeout-secs> is killed (SIGKILL) and
# reported with timed-out 1.

port=org.imago.backdoor
dev=${1:-}
if [ -z "$dev" ]; then
    # The virtio-serial port named $port: /dev/virtio-ports/$port with udev,
    # found through sysfs without it.
    dev=/dev/virtio-ports/$port
    for p in /sys/class/virtio-ports/*; do
        [ "$(cat "$p/name" 2>/dev/null)" = "$port" ] && dev=/dev/${p##*/}
    done
fi

PATH=/run/current-system/sw/bin:/run/wrappers/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
HOME=/root
export PATH HOME
umask 022

base=/run
[ -d "$base" ] && [ -w "$base" ] || base=/tmp
work=$(mktemp -d "$base/imago-backdoor.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
trap 'exit 1' HUP INT TERM

if [ "$dev" = - ]; then
    # The channel is stdin and stdout as they are (for testing on a host).
    exec 2>/dev/null
else
    # One read-write open: a virtio-serial port can only be opened once.
    exec <>"$dev" >&0 2>/dev/null
    stty raw -echo 2>/dev/null
fi

cr=$(printf '\r')

# send_file <kind> <id> <file>: a header line with the byte count, then the
# contents as base64 lines (nothing for an empty file).
send_file() {
    if [ -s "$3" ]; then
        printf '@imago-bd %s %s %s\n' "$1" "$2" "$(($(wc -c <"$3")))"
        base64 <"$3"
    else
        printf '@imago-bd %s %s 0\n' "$1" "$2"
    fi
}

printf '@imago-bd ready %s\n' "$$"

while IFS=' ' read -r verb id tmo len cmd; do
    cmd=${cmd%"$cr"}
    [ "$verb" = run ] || continue
    case "$id:$len" in
    *[!0-9:]* | :* | *:)
        printf '@imago-bd bad %s\n' "$id"
        continue
        ;;
    esac
    case "$tmo" in
    '' | .* | *[!0-9.]*)
        printf '@imago-bd bad %s\n' "$id"
        continue
        ;;
    esac

    # Fresh files: a background process of an earlier command may still
    # hold (and write to) the old ones.
    rm -f "$work/timedout" "$work/out" "$work/err" "$work/in" "$work/in.b64"
    printf '%s\n' "$cmd" | base64 -d >"$work/cmd" 2>/dev/null
    if [ "$len" -gt 0 ]; then
        head -c "$len" >"$work/in.b64"
        base64 -d <"$work/in.b64" >"$work/in" 2>/dev/null
        input=$work/in
    else
        input=/dev/null
    fi

    (cd / && exec sh "$work/cmd" <"$input" >"$work/out" 2>"$work/err") &
    pid=$!
    (
        sleep "$tmo"
        : >"$work/timedout"
        kill -9 "$pid"
    ) </dev/null >/dev/null 2>&1 &
    watchdog=$!
    wait "$pid"
    status=$?
    # SIGKILL: a TERM could run the inherited traps (and the cleanup) in the
    # watchdog subshell before it resets them.
    kill -9 "$watchdog" 2>/dev/null

    timedout=0
    [ -e "$work/timedout" ] && timedout=1
    send_file out "$id" "$work/out"
    send_file err "$id" "$work/err"
    printf '@imago-bd exit %s %s %s\n' "$id" "$status" "$timedout"
done
