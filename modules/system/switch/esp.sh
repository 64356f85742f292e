# shellcheck shell=sh
# The EFI system partition: durable writes, kernels and initrds under
# EFI/imago, boot entries (with their boot counter), loader.conf's default,
# adding a generation (`boot`) and pruning entries and files
# (composer/src/generations/esp.rs reads and writes the same layout).

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
    # shellcheck disable=SC2013 # the command line is split into words
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
    # shellcheck disable=SC2015 # die when either test fails
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
