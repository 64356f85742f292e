# shellcheck shell=sh
# The machine's store: which names are objects, the closure files, the
# completeness check before a switch, and the collection after
# delete-generations.

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
