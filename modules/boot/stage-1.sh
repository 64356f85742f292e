#!/bin/sh
# Imago stage 1: runs as /init in the initrd (busybox sh).
#
# Mounts the pseudo file systems, loads kernel modules, mounts the root and
# the store at /sysroot, sets up /usr from the system's profile and hands over
# to the system's stage 2 with switch_root. See docs/system-layout.md.
#
# Kernel command line:
#   imago.system=<store path>   the system toplevel (required)
#   root=LABEL=x|UUID=x|/dev/x  disk mode: the root file system
#   rootfstype=<type>           its type (default: let mount detect it)
#   imago.store=9p:<tag>        VM mode: tmpfs root, host store over 9p
#   imago.store=virtiofs:<tag>  VM mode: tmpfs root, host store over virtiofs
#   imago.debug1                on failure, start a shell instead of rebooting
#
# The initrd builder creates a /bin symlink for each applet listed here:
# imago-applets: sh mount umount mkdir ln chmod cat echo sleep modprobe
# imago-applets: switch_root findfs reboot poweroff setsid cttyhack ls dmesg

PATH=/bin
export PATH
debug=
system=
root=
rootfstype=
store=

say() {
	echo "imago stage 1: $*"
}

# Reports what failed, then starts a shell (imago.debug1) or reboots.
fail() {
	echo "stage 1: $*"
	if [ -n "$debug" ]; then
		echo "stage 1: starting a shell (imago.debug1); exit it to reboot"
		setsid cttyhack sh || sh
	else
		echo "stage 1: rebooting in 10 s (add imago.debug1 to the kernel command line for a shell)"
		sleep 10
	fi
	reboot -f
}

# Retries a command every 0.2 s for up to $1 seconds.
retry() {
	secs=$1
	shift
	tries=$((secs * 5))
	while ! "$@" 2>/dev/null; do
		tries=$((tries - 1))
		[ "$tries" -gt 0 ] || return 1
		sleep 0.2
	done
}

mkdir -p /proc /sys /dev /run /sysroot
mount -t proc proc /proc || fail "cannot mount /proc"
mount -t sysfs sysfs /sys || fail "cannot mount /sys"
mount -t devtmpfs -o mode=0755,nosuid devtmpfs /dev || fail "cannot mount /dev (devtmpfs)"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run || fail "cannot mount /run"

# Each program started costs tens of milliseconds on an emulated machine:
# what the shell can do itself (read a file, compare), it does.
read -r cmdline </proc/cmdline
set -f
for arg in $cmdline; do
	case "$arg" in
	imago.system=*) system=${arg#*=} ;;
	root=*) root=${arg#*=} ;;
	rootfstype=*) rootfstype=${arg#*=} ;;
	imago.store=*) store=${arg#*=} ;;
	imago.debug1) debug=1 ;;
	esac
done
set +f

# Always-load modules, in order (the builder put dependencies first): one
# modprobe for all of them; when it fails, one at a time, to name the
# module that does.
modules=
if [ -r /etc/initrd-modules ]; then
	while read -r module; do
		[ -n "$module" ] && modules="$modules $module"
	done </etc/initrd-modules
fi
set -f
# shellcheck disable=SC2086 # one word per module
if [ -n "$modules" ] && ! modprobe -a $modules; then
	for module in $modules; do
		modprobe "$module" || fail "cannot load kernel module $module (listed in /etc/initrd-modules)"
	done
fi
set +f

# The names of the loaded modules, into $loaded.
read_loaded() {
	loaded=
	while read -r name _; do
		loaded="$loaded $name"
	done </proc/modules
}

# Modules for the hardware that is present: a device's modalias matched
# against modules.alias. Loading a bus driver reveals new devices, so repeat
# until nothing new appears.
load_for_hardware() {
	round=0
	while [ "$round" -lt 4 ]; do
		round=$((round + 1))
		read_loaded
		before=$loaded
		aliases=
		for file in /sys/bus/*/devices/*/modalias; do
			[ -r "$file" ] && read -r alias <"$file" && aliases="$aliases $alias"
		done
		[ -n "$aliases" ] || break
		# One word per alias; no globbing of what the devices report.
		set -f
		# shellcheck disable=SC2086
		modprobe -q -a $aliases 2>/dev/null
		set +f
		read_loaded
		[ "$before" != "$loaded" ] || break
	done
}
load_for_hardware

[ -n "$system" ] || fail "no imago.system=<toplevel> on the kernel command line"

mount_store_share() {
	kind=${store%%:*}
	tag=${store#*:}
	[ -n "$tag" ] && [ "$tag" != "$store" ] || fail "imago.store=$store: expected 9p:<tag> or virtiofs:<tag>"
	mount -t tmpfs -o mode=0755 root /sysroot || fail "cannot mount a tmpfs root at /sysroot"
	mkdir -p /sysroot/imago/store
	case "$kind" in
	9p)
		modprobe -q 9p
		modprobe -q 9pnet_virtio
		set -- -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro "$tag" /sysroot/imago/store
		retry 10 mount "$@" ||
			fail "cannot mount the store: 9p share '$tag' did not mount within 10 s: $(mount "$@" 2>&1)"
		;;
	virtiofs)
		modprobe -q virtiofs
		set -- -t virtiofs -o ro "$tag" /sysroot/imago/store
		retry 10 mount "$@" ||
			fail "cannot mount the store: virtiofs share '$tag' did not mount within 10 s: $(mount "$@" 2>&1)"
		;;
	*) fail "imago.store=$store: unknown share type '$kind' (expected 9p or virtiofs)" ;;
	esac
}

resolve_root() {
	case "$root" in
	LABEL=* | UUID=*) device=$(findfs "$root" 2>/dev/null) && [ -b "$device" ] ;;
	*) device=$root && [ -b "$device" ] ;;
	esac
}

mount_root_disk() {
	if ! resolve_root; then
		say "waiting for root device $root"
		retry 30 resolve_root || fail "root device $root did not appear within 30 s"
	fi
	fstype=${rootfstype:-auto}
	if command -v "fsck.$fstype" >/dev/null; then
		"fsck.$fstype" -p "$device" || [ $? -le 1 ] || fail "fsck.$fstype failed on $device ($root)"
	fi
	mount -t "$fstype" "$device" /sysroot ||
		fail "cannot mount root $device ($root) as $fstype: $(mount -t "$fstype" "$device" /sysroot 2>&1)"
	[ -d /sysroot/imago/store ] || fail "root $device ($root) has no /imago/store"
	mount --bind /sysroot/imago/store /sysroot/imago/store &&
		mount -o remount,bind,ro /sysroot/imago/store ||
		fail "cannot make /imago/store read-only on $device ($root)"
}

if [ -n "$store" ]; then
	mount_store_share
elif [ -n "$root" ]; then
	mount_root_disk
else
	fail "no root: set root=<device> or imago.store=<type>:<tag> on the kernel command line"
fi

# The toplevel's entries are absolute symlinks into /imago/store (sw ->
# /imago/store/...-sw): make the store visible at that path here too, so they
# resolve in the initrd as they will after switch_root.
mkdir -p /imago/store
mount --bind /sysroot/imago/store /imago/store || fail "cannot bind the store to /imago/store"
[ -x "$system/init" ] || fail "system $system has no executable init (looked at $system/init)"
[ -d "$system/sw/usr" ] || fail "system $system has no sw/usr profile"

dirs="usr etc var run tmp proc sys dev root"
paths=
for dir in $dirs; do paths="$paths /sysroot/$dir"; done
# shellcheck disable=SC2086 # one word per directory
if ! mkdir -p $paths; then
	for dir in $dirs; do
		mkdir -p "/sysroot/$dir" || fail "cannot create /sysroot/$dir"
	done
fi
chmod 1777 /sysroot/tmp
chmod 0700 /sysroot/root
mount --bind "$system/sw/usr" /sysroot/usr &&
	mount -o remount,bind,ro /sysroot/usr ||
	fail "cannot bind $system/sw/usr onto /usr"
for link in bin sbin lib lib64; do
	if [ ! -e "/sysroot/$link" ] && [ ! -L "/sysroot/$link" ]; then
		ln -s "usr/$link" "/sysroot/$link" || fail "cannot create /$link -> usr/$link"
	fi
done

umount /imago/store || fail "cannot unmount the initrd's view of the store"
read -r uptime _ </proc/uptime
for fs in proc sys dev run; do
	mount --move "/$fs" "/sysroot/$fs" || fail "cannot move /$fs into the new root"
done

say "switching to $system (uptime ${uptime} s)"
exec switch_root /sysroot "$system/init"
