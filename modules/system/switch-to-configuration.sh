#!@tools@/bin/sh
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

[ $# -ge 1 ] || usage
action=$1
case $action in
    switch | boot | test) [ $# -le 2 ] || usage ;;
    rollback) [ $# -le 2 ] || usage ;;
    list-generations) [ $# -eq 1 ] || usage ;;
    delete-generations) [ $# -ge 2 ] || usage ;;
    *) usage ;;
esac

if [ $# -eq 2 ] && [ "$action" != rollback ] && [ "$action" != delete-generations ]; then
    system=$2
else
    # <toplevel>/bin/switch-to-configuration or <toplevel>/etc/imago/…
    case $0 in
        */bin/switch-to-configuration) system=${0%/bin/switch-to-configuration} ;;
        */etc/imago/switch-to-configuration) system=${0%/etc/imago/switch-to-configuration} ;;
        *) system="" ;;
    esac
    [ -n "$system" ] || die "cannot tell the system from $0; give it: switch-to-configuration $action SYSTEM"
fi
[ -d "$system" ] || die "system $system is not a directory"
system=$(cd "$system" && pwd -P)
[ -f "$system/boot.json" ] && [ -x "$system/activate" ] ||
    die "$system is not a system toplevel (no boot.json or activate)"
got_name=$(cat "$system/system-name" 2>/dev/null || true)
[ "$got_name" = "$name" ] ||
    die "$system is the system '$got_name', but this script belongs to '$name'"

# Write $2 (text) to the file $1 durably: temp file, fsync, rename, then
# sync the file system so the rename itself survives a power cut (FAT has
# no journal; the ESP is small).
write_file() {
    undo_tmp="$1.imago-tmp"
    printf '%s' "$2" >"$undo_tmp"
    sync "$undo_tmp"
    mv -f "$undo_tmp" "$1"
    undo_tmp=""
    sync -f "$1" 2>/dev/null || sync
}

# The ESP file name of a file in the store, as image building names it:
# /imago/store/<hash>-linux/bzImage -> <hash>-linux-bzImage.
esp_name() {
    printf '%s' "${1#"$store_prefix"}" | tr / -
}

# The generation numbers in the profile directory, one a line, ascending.
generations() {
    for link in "$profiles"/system-*-link; do
        [ -L "$link" ] || continue
        n=${link##*/system-}
        n=${n%-link}
        case $n in '' | *[!0-9]*) continue ;; esac
        echo "$n"
    done | sort -n
}

# The generation numbers of this system's boot entries, one a line.
entry_numbers() {
    for f in "$esp/loader/entries/imago-$name-"*.conf; do
        [ -f "$f" ] || continue
        n=${f##*/imago-"$name"-}
        n=${n%.conf}
        n=${n%%+*}
        case $n in '' | *[!0-9]*) continue ;; esac
        echo "$n"
    done
}

# The number of the current generation (`system` -> system-N-link), or
# nothing.
current_generation() {
    link=$(readlink "$profiles/system" 2>/dev/null || true)
    n=${link#system-}
    n=${n%-link}
    case $n in '' | *[!0-9]*) return 0 ;; esac
    [ "$link" = "system-$n-link" ] && echo "$n"
    return 0
}

# The boot entry file of generation $1 (with or without a boot counter),
# empty when there is none.
entry_of() {
    for f in "$esp/loader/entries/imago-$name-$1.conf" "$esp/loader/entries/imago-$name-$1+"*.conf; do
        [ -f "$f" ] && { echo "$f"; return 0; }
    done
    return 0
}

# The root device words of the kernel command line: from the system's own
# parameters when it names a root, else from the running kernel's.
root_words() {
    case " $kernel_params " in *" root="*) return 0 ;; esac
    [ -r "$cmdline_file" ] || die "cannot read $cmdline_file to find the root device"
    words=""
    for w in $(cat "$cmdline_file"); do
        case $w in root=* | rootfstype=*) words="$words $w" ;; esac
    done
    case $words in *root=*) ;; *) die "the system names no root device and $cmdline_file has no root=" ;; esac
    echo "$words"
}

# Copy the store file $1 to the ESP as $2 unless it is there (names carry the
# content hash): temp file, fsync, rename.
copy_to_esp() {
    dest="$esp/EFI/imago/$2"
    [ -f "$dest" ] && return 0
    undo_tmp="$dest.imago-tmp"
    cp "$1" "$undo_tmp" || die "copying $1 to $dest failed"
    sync "$undo_tmp"
    mv -f "$undo_tmp" "$dest"
    undo_tmp=""
    sync -f "$dest" 2>/dev/null || sync
}

# Size in KiB of the file $1, rounded up, plus one 4 KiB cluster.
kib() {
    echo $(( ($(stat -L -c %s "$1") + 1023) / 1024 + 4 ))
}

do_boot() {
    [ -d "$esp/loader" ] ||
        die "the EFI system partition is not mounted at $esp (no $esp/loader); nothing was changed"
    [ -f "$system/kernel" ] && [ -f "$system/initrd" ] ||
        die "$system has no kernel or initrd file; nothing was changed"
    mkdir -p "$profiles"
    kernel_file=$(esp_name "$kernel_src")
    initrd_file=$(esp_name "$initrd_src")

    # The generation: the one `rollback` names, else the current one when it
    # already is this system, else a new one.
    gen=""
    if [ -n "${IMAGO_GENERATION:-}" ]; then
        gen=$IMAGO_GENERATION
        [ "$(readlink "$profiles/system-$gen-link" 2>/dev/null || true)" = "$system" ] ||
            die "generation $gen is not $system; nothing was changed"
    else
        current=$(current_generation)
        if [ -n "$current" ] && [ "$(readlink "$profiles/system-$current-link")" = "$system" ]; then
            gen=$current
        fi
    fi
    new_generation=false
    if [ -z "$gen" ]; then
        # Never reuse a number that still has a boot entry.
        last=$( (generations; entry_numbers) | sort -n | tail -n 1)
        gen=$(( ${last:-0} + 1 ))
        new_generation=true
    fi
    entry=$(entry_of "$gen")
    options="$kernel_params imago.system=$system imago.generation=$gen$(root_words) rw"

    # Room on the ESP, before anything is written.
    need=8
    [ -f "$esp/EFI/imago/$kernel_file" ] || need=$(( need + $(kib "$system/kernel") ))
    [ -f "$esp/EFI/imago/$initrd_file" ] || need=$(( need + $(kib "$system/initrd") ))
    if [ -n "${IMAGO_ESP_FREE_KIB:-}" ]; then
        free=$IMAGO_ESP_FREE_KIB
    else
        free=$(df -P -k "$esp" | awk 'NR == 2 { print $4 }') || free=""
    fi
    case $free in
        '' | *[!0-9]*) die "cannot tell the free space of the EFI system partition at $esp (got '$free'); nothing was changed" ;;
    esac
    [ "$free" -ge "$need" ] ||
        die "the EFI system partition at $esp has $free KiB free but generation $gen needs $need KiB; nothing was changed (delete old generations with 'imago generations delete' or lower boot.loader.configurationLimit)"

    # The profile link first: it keeps the system alive for garbage
    # collection while the ESP refers to it.
    if $new_generation; then
        undo_link="$profiles/system-$gen-link"
        ln -sfn "$system" "$profiles/system-$gen-link.imago-tmp"
        mv -Tf "$profiles/system-$gen-link.imago-tmp" "$profiles/system-$gen-link"
        sync -f "$profiles" 2>/dev/null || sync
    fi

    paused_after profile-link

    mkdir -p "$esp/EFI/imago" "$esp/loader/entries"
    copy_to_esp "$system/kernel" "$kernel_file"
    paused_after kernel
    copy_to_esp "$system/initrd" "$initrd_file"
    paused_after initrd
    if [ -z "$entry" ]; then
        entry="$esp/loader/entries/imago-$name-$gen+$tries.conf"
        undo_entry=$entry
        write_file "$entry" "title $name (generation $gen, $(date -u +%Y-%m-%d))
version $gen
linux /EFI/imago/$kernel_file
initrd /EFI/imago/$initrd_file
options $options
"
    fi
    paused_after entry

    # The default: the newest good entry of this system when this is the
    # newest generation (so that a failing one falls back by itself), else
    # (after a rollback) this generation's entry; systemd-boot compares the
    # entry's name without its boot counter.
    loader="$esp/loader/loader.conf"
    if [ "$gen" = "$(generations | tail -n 1)" ]; then
        want="default imago-$name-*"
    else
        want="default imago-$name-$gen.conf"
    fi
    if ! grep -qxF "$want" "$loader" 2>/dev/null; then
        if [ -f "$loader" ]; then
            rest=$(grep -v '^default[[:space:]]' "$loader" || true)
        else
            rest="timeout 0
console-mode keep
editor no"
        fi
        write_file "$loader" "$want
$rest
"
    fi
    paused_after loader

    ln -sfn "system-$gen-link" "$profiles/system.imago-tmp"
    mv -Tf "$profiles/system.imago-tmp" "$profiles/system"
    undo_link=""
    undo_entry=""
    sync -f "$profiles" 2>/dev/null || sync
    paused_after profile

    prune "$gen"
    paused_after prune
    echo "switch-to-configuration: generation $gen ($system) is the boot default"
}

# Whether the toplevel $1 is the booted or the running system.
in_use() {
    [ "$1" = "$(readlink "$run/booted-system" 2>/dev/null || true)" ] ||
        [ "$1" = "$(readlink "$run/current-system" 2>/dev/null || true)" ]
}

# Keep at most $limit entries of this system: never the new one ($1), the
# booted one, or one of the running system. Remove the entries of deleted
# generations (no profile link), then kernels and initrds no entry uses.
prune() {
    count=0
    for n in $(generations | sort -rn); do
        f=$(entry_of "$n")
        [ -n "$f" ] || continue
        count=$(( count + 1 ))
        [ "$count" -gt "$limit" ] || continue
        [ "$n" = "$1" ] && continue
        target=$(readlink "$profiles/system-$n-link" 2>/dev/null || true)
        [ -n "$target" ] && in_use "$target" && continue
        rm -f "$f"
        echo "switch-to-configuration: removed the boot entry of generation $n (limit $limit)"
    done
    for n in $(entry_numbers); do
        [ -L "$profiles/system-$n-link" ] && continue
        f=$(entry_of "$n")
        target=$(sed -n 's/^options.* imago\.system=\([^ ]*\).*/\1/p' "$f")
        [ -n "$target" ] && in_use "$target" && continue
        rm -f "$f"
        echo "switch-to-configuration: removed the boot entry of deleted generation $n"
    done
    sync -f "$esp/loader/entries" 2>/dev/null || true
    for f in "$esp/EFI/imago"/*; do
        [ -f "$f" ] || continue
        case $f in *.imago-tmp) rm -f "$f"; continue ;; esac
        used=false
        for e in "$esp/loader/entries"/*.conf; do
            [ -f "$e" ] || continue
            if grep -qE "^(linux|initrd)[[:space:]]+/EFI/imago/${f##*/}\$" "$e"; then
                used=true
                break
            fi
        done
        $used || rm -f "$f"
    done
}

# The unit kinds switching manages in /etc/systemd/system: the triggers
# (timers, sockets, path units) first, then services.
unit_globs='*.timer *.socket *.path *.service'

# The units that some target of the units directory $1 wants, one a line,
# each once.
wanted_units() {
    for w in "$1"/*.target.wants/*; do
        [ -e "$w" ] || [ -L "$w" ] || continue
        echo "${w##*/}"
    done | sort -u
}

# Stop the units of the running system that the new one lacks, before
# activation: their unit files and the /etc they read are still there
# (systemd). Triggers go first, so that none starts a service being
# stopped.
systemd_stop_removed() {
    old=$1
    new_units="$system/etc/systemd/system"
    old_units="$old/etc/systemd/system"
    status=0
    [ -n "$old" ] && [ -d "$old_units" ] || return 0
    for glob in $unit_globs; do
        for u in "$old_units"/$glob; do
            [ -e "$u" ] || continue
            unit=${u##*/}
            [ -e "$new_units/$unit" ] && continue
            systemctl is-active --quiet "$unit" || continue
            echo "switch-to-configuration: stopping $unit"
            systemctl stop "$unit" || status=1
        done
    done
    return $status
}

# Start and restart units after activation (systemd), as NixOS does:
# - a unit a target wants that the old system's targets did not want is
#   started (services, timers, sockets, path units alike);
# - a changed service or timer is restarted when a target wants it or it is
#   active (a socket- or timer-started service that is running);
# - a changed path unit is left alone: the daemon-reload applies its new
#   paths;
# - a changed socket is left alone too (restarting it would take the
#   listening socket from a running service): it takes effect when it is
#   restarted by hand or at the next boot, which is said.
systemd_services() {
    old=$1
    new_units="$system/etc/systemd/system"
    old_units="$old/etc/systemd/system"
    systemctl daemon-reload || echo "switch-to-configuration: systemctl daemon-reload failed" >&2
    status=0
    new_wanted=$(wanted_units "$new_units")
    old_wanted=""
    [ -n "$old" ] && old_wanted=$(wanted_units "$old_units")
    # Services first, then the triggers that start them. Unit names have
    # no white space (systemd escapes it).
    for glob in '*.service' '*.socket' '*.path' '*.timer'; do
        names=$(
            for u in $new_wanted; do
                case $u in $glob) echo "$u" ;; esac
            done
            for u in "$new_units"/$glob; do
                [ -f "$u" ] && echo "${u##*/}"
            done
        )
        for unit in $(printf '%s\n' "$names" | sort -u); do
            systemd_unit "$unit" || status=1
        done
    done
    return $status
}

# What switching does to one unit of the new system (see above).
systemd_unit() {
    unit=$1
    wanted=false
    was_wanted=false
    printf '%s\n' "$new_wanted" | grep -qxF -- "$unit" && wanted=true
    printf '%s\n' "$old_wanted" | grep -qxF -- "$unit" && was_wanted=true
    if $wanted && ! $was_wanted; then
        echo "switch-to-configuration: starting $unit"
        systemctl start "$unit"
        return
    fi
    [ -n "$old" ] && [ -e "$old_units/$unit" ] && [ -e "$new_units/$unit" ] || return 0
    cmp -s "$old_units/$unit" "$new_units/$unit" && return 0
    case $unit in
        *.path) return 0 ;;
        *.socket)
            echo "switch-to-configuration: $unit changed: it is not restarted (its service may hold the socket); run 'systemctl restart $unit' or reboot to apply it"
            return 0
            ;;
    esac
    $wanted || systemctl is-active --quiet "$unit" || return 0
    # reloadIfChanged: the new ExecReload replaces what runs (the
    # firewall's ruleset, in one transaction).
    if grep -qx 'X-ReloadIfChanged=true' "$new_units/$unit"; then
        echo "switch-to-configuration: reloading $unit"
        systemctl reload-or-restart "$unit"
        return
    fi
    echo "switch-to-configuration: restarting $unit"
    systemctl restart "$unit"
}

# Reload inittab and run the `once` services that are new (busybox init).
busybox_services() {
    old=$1
    kill -HUP "$init_pid" || echo "switch-to-configuration: could not signal init" >&2
    grep '^[^#]*::once:' "$system/etc/inittab" | while IFS= read -r line; do
        if [ -n "$old" ] && [ -f "$old/etc/inittab" ] && grep -qxF "$line" "$old/etc/inittab"; then
            continue
        fi
        cmd=${line#*::once:}
        echo "switch-to-configuration: starting $cmd"
        (sh -c "$cmd" </dev/null >"$console" 2>&1 &)
    done
}

do_test() {
    old=$(readlink "$run/current-system" 2>/dev/null || true)
    stopped=0
    if [ "$init_system" = systemd ]; then
        systemd_stop_removed "$old" || stopped=1
    fi
    if ! "$system/activate" "$system"; then
        die "activation of $system failed; the running system ${old:-(unknown)} is still current"
    fi
    paused_after activation
    if [ "$init_system" = systemd ]; then
        systemd_services "$old" && [ $stopped = 0 ] ||
            die "some services of $system failed to start or stop"
    else
        busybox_services "$old"
    fi
    echo "switch-to-configuration: $system is the running system"
}

# Make the generation before the current one current again, by running its
# own script with IMAGO_GENERATION (no new generation is added).
do_rollback() {
    mode=${1:-switch}
    case $mode in switch | boot | test) ;; *) usage ;; esac
    current=$(current_generation)
    [ -n "$current" ] || die "$profiles has no current generation; nothing to roll back from"
    prev=""
    for n in $(generations); do
        [ "$n" -lt "$current" ] && prev=$n
    done
    [ -n "$prev" ] || die "generation $current is the oldest; there is nothing to roll back to"
    target=$(readlink "$profiles/system-$prev-link")
    script="$target/bin/switch-to-configuration"
    [ -x "$script" ] || die "generation $prev ($target) has no bin/switch-to-configuration; nothing was changed"
    echo "switch-to-configuration: rolling back from generation $current to generation $prev"
    trap - EXIT
    IMAGO_GENERATION=$prev exec "$script" "$mode"
}

do_list() {
    current=$(current_generation)
    booted=$(readlink "$run/booted-system" 2>/dev/null || true)
    for n in $(generations); do
        target=$(readlink "$profiles/system-$n-link")
        marks=""
        [ "$n" = "$current" ] && marks="$marks current"
        [ "$target" = "$booted" ] && marks="$marks booted"
        f=$(entry_of "$n")
        printf '%s\t%s\t%s\t%s\n' "$n" "${marks# }" "$target" "${f##*/}"
    done
}

# Delete generations $@: all are checked before any is deleted.
do_delete() {
    current=$(current_generation)
    for n in "$@"; do
        case $n in '' | *[!0-9]*) die "'$n' is not a generation number; nothing was deleted" ;; esac
        [ -L "$profiles/system-$n-link" ] || die "there is no generation $n; nothing was deleted"
        [ "$n" != "$current" ] || die "generation $n is the current one; nothing was deleted"
        target=$(readlink "$profiles/system-$n-link")
        ! in_use "$target" || die "generation $n is booted or running; nothing was deleted"
    done
    for n in "$@"; do
        f=$(entry_of "$n")
        [ -n "$f" ] && rm -f "$f"
        rm -f "$profiles/system-$n-link"
        echo "switch-to-configuration: deleted generation $n"
    done
    sync -f "$profiles" 2>/dev/null || sync
    if [ -d "$esp/loader" ]; then
        prune "$current"
    fi
    collect_store
}

# One run at a time changes generations or the store: a garbage collection
# must not delete what a switch running meanwhile has checked and is about
# to root. The lock is a symlink in $run (a tmpfs: a reboot clears it)
# naming the holder's pid. The lock of a holder that died is taken over, by
# one run only: the one that creates the takeover guard (mkdir is atomic).
# Under the guard no other run removes the lock, so the holder it names is
# checked again there, and two runs that find the same stale lock cannot
# both end up holding it.
take_lock() {
    attempt=0
    while ! ln -s "$$" "$lock" 2>/dev/null; do
        if [ -L "$lock" ]; then
            refuse_if_held
            if mkdir "$lock_guard" 2>/dev/null; then
                guard_held=true
                take_over_lock
                break
            fi
        elif [ -e "$lock" ]; then
            die "$lock is not a lock (a symlink); nothing was changed"
        fi
        # Another run is taking over the lock, or the lock changed hands
        # between two commands here: look again in a moment.
        attempt=$((attempt + 1))
        if [ "$attempt" -ge 20 ]; then
            [ ! -d "$lock_guard" ] ||
                die "another switch-to-configuration is taking over the stale lock $lock; nothing was changed, try again (if none is running, $lock_guard was left by one that was killed: remove it)"
            die "cannot create the lock $lock; nothing was changed"
        fi
        sleep 0.05
    done
    lock_held=true
    paused_after lock
}

# Under the guard: replaces a stale lock (its holder is gone) with this
# run's own. Only a guard holder removes a lock it does not hold.
take_over_lock() {
    refuse_if_held
    rm -f "$lock"
    if ! ln -s "$$" "$lock" 2>/dev/null; then
        # A run that started meanwhile found no lock and took it.
        refuse_if_held
        die "another switch-to-configuration took the lock $lock meanwhile; nothing was changed"
    fi
    lock_held=true
    rmdir "$lock_guard"
    guard_held=false
}

# Stops if the lock names a live process other than this one.
refuse_if_held() {
    holder=$(readlink "$lock" 2>/dev/null || true)
    case $holder in
        '' | *[!0-9]* | "$$") ;;
        *)
            ! kill -0 "$holder" 2>/dev/null ||
                die "another switch-to-configuration (pid $holder) is running; nothing was changed, try again when it has finished"
            ;;
    esac
}

# Whether $1 is the name of a store object: 32 characters of the store's
# base-32 alphabet, `-`, then 1 to 200 of [A-Za-z0-9+._?=-], not starting
# with `.` (composer/src/store/path.rs). Nothing else in the store is ever
# deleted, and no other line of a closure file is trusted.
is_object_name() {
    hash_part=${1%"${1#????????????????????????????????}"}
    name_part=${1#"$hash_part"}
    [ ${#hash_part} -eq 32 ] || return 1
    case $hash_part in *[!0123456789abcdfghijklmnpqrsvwxyz]*) return 1 ;; esac
    case $name_part in - | -.*) return 1 ;; -*) ;; *) return 1 ;; esac
    name_part=${name_part#-}
    case $name_part in
        *[!ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+._?=-]*) return 1 ;;
    esac
    [ ${#name_part} -le 200 ]
}

# The object names that the toplevel $1's `closure` file lists, one a line.
# A line that is not /imago/store/<object name>, or a last line without
# its newline (a truncated file), makes it fail with the reason on stderr:
# the file decides what is kept, so a doubtful one decides nothing.
closure_names() {
    line=""
    i=0
    while IFS= read -r line; do
        i=$(( i + 1 ))
        obj=${line#"$store_prefix"}
        if [ "$obj" = "$line" ] || ! is_object_name "$obj"; then
            echo "switch-to-configuration: line $i of $1/closure is not a store path: $line" >&2
            return 1
        fi
        printf '%s\n' "$obj"
    done <"$1/closure"
    if [ -n "$line" ]; then
        echo "switch-to-configuration: $1/closure does not end with a newline (truncated?)" >&2
        return 1
    fi
}

# Every object of $system's closure is in the store: a garbage collection
# between the copy of `imago deploy` and this run may have deleted objects
# nothing rooted yet. Checked before anything changes; a system without a
# closure file (built by an older Imago) is not checked.
check_complete() {
    [ -f "$system/closure" ] || return 0
    names=$(closure_names "$system") ||
        die "the closure file of $system cannot be trusted; nothing was changed"
    while IFS= read -r n; do
        [ -z "$n" ] || [ -e "$store/$n" ] || [ -L "$store/$n" ] ||
            die "$system needs the store object $store_prefix$n, which is not in $store (deleted by a garbage collection after it was copied?); nothing was changed: copy the system again ('imago deploy' does) and retry"
    done <<EOF
$names
EOF
}

# Adds the toplevel the link $1 names, and its closure, to the objects to
# keep ($gc_work/keep). A missing link roots nothing; status 1 (with a
# message) when the toplevel has no closure file, so that nothing may be
# deleted.
keep_root() {
    [ -e "$1" ] || [ -L "$1" ] || return 0
    top=$(readlink -f "$1" 2>/dev/null || true)
    if [ -z "$top" ] || [ ! -f "$top/closure" ]; then
        echo "switch-to-configuration: $1 (${top:-unresolvable}) has no closure file (built by an older Imago?); store objects were not collected"
        return 1
    fi
    printf '%s\n' "${top##*/}" >>"$gc_work/keep"
    closure_names "$top" >>"$gc_work/keep" ||
        die "the closure file of $top cannot be trusted; the generations were deleted, store objects were not collected"
}

# Deletes the store objects nothing needs any more. The roots are every
# remaining generation, the running and the booted system, and the system
# this script belongs to (its tools run it); each toplevel's `closure` file
# lists the objects it needs. Only entries of $store named like an object
# are candidates: anything else there (the temporary directory of an
# interrupted deploy, whatever else) stays. Objects are first moved into
# $store/.imago-gc, so that an interrupted run never leaves a half-deleted
# object under its name (`imago deploy` would take it for complete); the
# next run removes that directory.
collect_store() {
    if [ -e "$store/.imago/db.sqlite" ]; then
        echo "switch-to-configuration: $store has a store database: its objects are collected by 'imago gc', not here"
        return 0
    fi
    # Under the lock, so the lists of a run that was killed are stale.
    gc_work="$run/imago-gc"
    rm -rf "$gc_work"
    mkdir -p "$gc_work"
    : >"$gc_work/keep"
    for n in $(generations); do
        keep_root "$profiles/system-$n-link" || return 0
    done
    keep_root "$run/current-system" || return 0
    keep_root "$run/booted-system" || return 0
    keep_root "$system" || return 0
    for p in "$store"/*; do
        if is_object_name "${p##*/}"; then
            printf '%s\n' "${p##*/}"
        fi
    done >"$gc_work/all"
    awk 'FILENAME == ARGV[1] { keep[$0] = 1; next } !($0 in keep)' \
        "$gc_work/keep" "$gc_work/all" >"$gc_work/dead"
    total=$(( $(wc -l <"$gc_work/all") ))
    dead=$(( $(wc -l <"$gc_work/dead") ))
    kib=0
    trash="$store/.imago-gc"
    if [ "$dead" -gt 0 ] || [ -e "$trash" ] || [ -L "$trash" ]; then
        # Stage 1 bind-mounts the store read-only, as `imago deploy` knows.
        if grep -q "^[^ ]* $store [^ ]* ro[, ]" /proc/mounts; then
            mount -o remount,bind,rw "$store" ||
                die "cannot remount $store read-write; the generations were deleted, store objects were not collected"
            store_remounted=true
        fi
        rm -rf "$trash"
        mkdir "$trash"
        while IFS= read -r n; do
            mv "$store/$n" "$trash/$n"
            echo "switch-to-configuration: deleted $store_prefix$n"
        done <"$gc_work/dead"
        sync -f "$store" 2>/dev/null || sync
        paused_after store-moved
        kib=$(du -sk "$trash" | awk '{ print $1 }')
        rm -rf "$trash"
        sync -f "$store" 2>/dev/null || sync
        if $store_remounted; then
            mount -o remount,bind,ro "$store"
            store_remounted=false
        fi
    fi
    rm -rf "$gc_work"
    gc_work=""
    echo "switch-to-configuration: deleted $dead store objects, $kib KiB freed; $(( total - dead )) kept"
}

case $action in
    boot | test | switch)
        take_lock
        check_complete
        ;;
    delete-generations) take_lock ;;
esac
case $action in
    boot) do_boot ;;
    test) do_test ;;
    switch)
        do_boot
        do_test
        ;;
    rollback) do_rollback "${2:-}" ;;
    list-generations) do_list ;;
    delete-generations)
        shift
        do_delete "$@"
        ;;
esac
