# shellcheck shell=sh
# The profile directory: generations, the current one, the ones in use
# (booted or running), and rolling back, listing and deleting generations
# (what may be deleted is decided here; composer/src/generations/profile.rs
# applies the same rules on the host).

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

# Whether the toplevel $1 is the booted or the running system.
in_use() {
    [ "$1" = "$(readlink "$run/booted-system" 2>/dev/null || true)" ] ||
        [ "$1" = "$(readlink "$run/current-system" 2>/dev/null || true)" ]
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
