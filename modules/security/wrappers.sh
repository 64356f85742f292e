#!@tools@/bin/sh
# update-wrappers: makes /run/wrappers/bin hold the setuid/setgid wrappers
# of a system (modules/security/wrappers.imago explains the design).
#
#   usage: update-wrappers SYSTEM DECLARED
#
# SYSTEM is the toplevel being activated; DECLARED its manifest of declared
# wrappers, one a line, tab-separated:
#   PROGRAM 1 SOURCE OWNER GROUP SETUID SETGID PERMISSIONS   a wrapper
#   PROGRAM 0                                                 none by that name
# Debian's setuid files are listed in SYSTEM/sw/.imago/setuid (`MODE
# USER:GROUP PATH` lines, written by the profile builder from the packages'
# `.imago/deb/setuid`); their wrappers are copies of SYSTEM/sw/PATH.
#
# A wrapper that cannot be made as asked (no such source, no such owner or
# group) is reported on stderr and left out; the others are made. Any other
# failure (the tmpfs is full, …) leaves the previous wrappers in place and
# exits 1. IMAGO_ROOT (default empty: /) is prepended to /run and /etc (tests
# run the script on a scratch directory; nothing is mounted then); sources
# are used as given.
set -eu
export PATH=@tools@/bin
system=${1:?usage: update-wrappers SYSTEM DECLARED}
declared=${2:?usage: update-wrappers SYSTEM DECLARED}
root=${IMAGO_ROOT:-}
top=$root/run/wrappers
umask 022

warn() { echo "update-wrappers: $*" >&2; }

# Whether something is mounted at $1 (read by the shell: under emulation,
# every process started costs tens of milliseconds at each boot).
mounted() {
    while read -r _ point _; do
        [ "$point" = "$1" ] && return 0
    done </proc/mounts
    return 1
}

mkdir -p "$top"
if [ -z "$root" ] && ! mounted /run/wrappers; then
    # Its own tmpfs: /run is mounted nosuid, which would void the bits.
    mount -t tmpfs -o mode=0755,nodev,size=50% wrappers /run/wrappers
fi
[ -n "$root" ] || chown 0:0 "$top"
chmod 0755 "$top"

new=$(mktemp -d "$top/wrappers.XXXXXX")
trap 'rm -rf "$new"' EXIT

# make NAME SOURCE OWNER GROUP MODE [BITS]: copies SOURCE to $new/NAME,
# created with mode 0000, gives it OWNER:GROUP, then MODE (chmod syntax)
# and BITS (`u+s,g-s`). Returns 1 for a wrapper that cannot be made as
# asked; exits for anything else.
make() {
    name=$1 src=$2 owner=$3 group=$4 mode=$5 bits=${6:-}
    if [ ! -f "$src" ]; then
        warn "$name: the source $src is not a file; no wrapper"
        return 1
    fi
    # Reads through symlinks (sudoedit -> sudo): the wrapper is a file,
    # mode 0000 from its creation until it has its owner.
    umask 0777
    cat "$src" >"$new/$name" || exit 1
    umask 022
    if ! chown "$owner:$group" "$new/$name"; then
        warn "$name: cannot give it to $owner:$group; no wrapper"
        rm -f "$new/$name"
        return 1
    fi
    chmod "$mode" "$new/$name" || exit 1
    if [ -n "$bits" ]; then chmod "$bits" "$new/$name" || exit 1; fi
}

tab='	'
nl='
'
# Every declared name, enabled or not, between newlines.
names=$nl
while IFS=$tab read -r name on src owner group setuid setgid perms; do
    [ -n "$name" ] || continue
    names=$names$name$nl
    [ "$on" = 1 ] || continue
    case $src in
    /usr/*) src=$system/sw$src ;;
    esac
    u=-
    g=-
    [ "$setuid" = 1 ] && u=+
    [ "$setgid" = 1 ] && g=+
    make "$name" "$src" "$owner" "$group" "$perms" "u${u}s,g${g}s" || true
done <"$declared"

# Debian's: the profile lists the setuid files it took from packages.
list=$system/sw/.imago/setuid
if [ -f "$list" ]; then
    while read -r mode owner path _; do
        case $mode in
        [0-7][0-7][0-7][0-7]) ;;
        *)
            warn "$list: bad mode '$mode'; line skipped"
            continue
            ;;
        esac
        case $owner in
        ?*:?*) ;;
        *)
            warn "$list: bad owner '$owner' (want USER:GROUP); line skipped"
            continue
            ;;
        esac
        case /$path/ in
        *[!A-Za-z0-9/._+-]* | */../* | */./* | //*)
            warn "$list: bad path '$path'; line skipped"
            continue
            ;;
        esac
        name=${path##*/}
        # A declared wrapper (or a disabled one) owns the name.
        case $names in
        *"$nl$name$nl"*) continue ;;
        esac
        if [ -e "$new/$name" ]; then
            warn "$name: $path has the name of another wrapper; skipped"
            continue
        fi
        make "$name" "$system/sw/$path" "${owner%%:*}" "${owner#*:}" "$mode" || true
    done <"$list"
fi

chmod 0755 "$new"
# Only this script makes /run/wrappers/bin, as a link; anything else there
# goes.
if [ -d "$top/bin" ] && [ ! -L "$top/bin" ]; then rm -rf "$top/bin"; fi
ln -sfn "${new##*/}" "$top/bin.tmp"
mv -Tf "$top/bin.tmp" "$top/bin"
trap - EXIT
for old in "$top"/wrappers.*; do
    [ "$old" = "$new" ] || rm -rf "$old"
done
