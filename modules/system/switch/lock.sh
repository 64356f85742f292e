# shellcheck shell=sh
# The machine's lock, $run/imago-switch.lock (composer/src/generations/run.rs
# takes the same lock on the host).

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
