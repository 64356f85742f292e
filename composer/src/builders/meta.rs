//! What the builders agree on about unpacked packages: the reserved
//! metadata directory the `deb` builder writes into every object, and the
//! setuid policy it and the `profile` builder both enforce. It lives here,
//! below `debian/`, so that the profile builder does not depend on the
//! Debian code (`debian::unpack` re-exports both).

/// The reserved directory inside every unpacked object.
pub const META_DIR: &str = ".imago/deb";

/// Files Debian installs setuid or setgid (paths after the merged-/usr
/// mapping). Any other setuid/setgid file is rejected.
pub const SETUID_ALLOW_LIST: &[&str] = &[
    "usr/bin/at",
    "usr/bin/bwrap",
    "usr/bin/chage",
    "usr/bin/chfn",
    "usr/bin/chsh",
    "usr/bin/crontab",
    "usr/bin/dotlockfile",
    "usr/bin/expiry",
    "usr/bin/fusermount",
    "usr/bin/fusermount3",
    "usr/bin/gpasswd",
    "usr/bin/mount",
    "usr/bin/newgidmap",
    "usr/bin/newgrp",
    "usr/bin/newuidmap",
    "usr/bin/passwd",
    "usr/bin/pkexec",
    "usr/bin/ssh-agent",
    "usr/bin/su",
    "usr/bin/sudo",
    "usr/bin/umount",
    "usr/bin/wall",
    "usr/bin/write.ul",
    "usr/lib/dbus-1.0/dbus-daemon-launch-helper",
    "usr/lib/openssh/ssh-keysign",
    "usr/lib/polkit-1/polkit-agent-helper-1",
    "usr/lib/x86_64-linux-gnu/utempter/utempter",
    "usr/sbin/pam_extrausers_chkpwd",
    "usr/sbin/unix_chkpwd",
];
