//! What a direct kernel boot (`imago run`: QEMU loads the kernel and
//! initrd itself, no disk) tells the system: that its EFI system partition
//! is not there.
//!
//! A system mounts its ESP from /etc/fstab with `nofail` (the label
//! `IMAGO-ESP` that `imago image` gives it). Booted directly there is no such
//! device, and systemd waits for it for its device timeout (90 s) before it
//! gives the mount up: the boot counts as finished only then, so
//! `systemctl is-system-running --wait` (and the health checks that wait
//! for it) and the ESP's users (`imago-bless-boot`) wait with it. The
//! direct boot therefore masks the ESP's mount units on the kernel command
//! line (`systemd.mask=`, read by systemd-debug-generator); a busybox init
//! ignores the parameter and its `mount -a` skips a missing `nofail`
//! device at once anyway.

use std::path::{Path, PathBuf};

use crate::store::StorePath;

/// The file system label of the ESP `imago image` makes.
pub const ESP_LABEL: &str = "IMAGO-ESP";

/// `systemd.mask=UNIT` for the mount unit of every file system that
/// `toplevel`'s /etc/fstab mounts from the ESP's label; none if it has no
/// fstab. `toplevel` is the toplevel's directory in the store at
/// `store_dir`.
pub fn esp_masks(toplevel: &Path, store_dir: &Path) -> Vec<String> {
    match std::fs::read_to_string(fstab_of(toplevel, store_dir)) {
        Ok(fstab) => masks_for(&fstab),
        Err(_) => Vec::new(),
    }
}

/// Where `toplevel`'s etc/fstab is on this host. The toplevel's `etc` links
/// to its /etc by the store path's name inside the system (under
/// `/imago/store`), which is only where the store is on this host when the
/// store is at its default place: the link is followed in `store_dir`.
fn fstab_of(toplevel: &Path, store_dir: &Path) -> PathBuf {
    let etc = toplevel.join("etc");
    let Ok(target) = std::fs::read_link(&etc) else {
        return etc.join("fstab");
    };
    match target
        .to_str()
        .map(|t| StorePath::physical_in(store_dir, t))
    {
        Some(Ok(path)) => path.join("fstab"),
        _ => etc.join("fstab"),
    }
}

fn masks_for(fstab: &str) -> Vec<String> {
    let device = format!("LABEL={ESP_LABEL}");
    fstab
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (source, target) = (fields.next()?, fields.next()?);
            (source == device && target.starts_with('/'))
                .then(|| format!("systemd.mask={}", mount_unit(target)))
        })
        .collect()
}

/// The name of the mount unit of `path`, as `systemd-escape --path
/// --suffix=mount` gives it: without the outer slashes, `/` as `-`, and
/// every byte but ASCII letters, digits, `:`, `_` and a `.` that does not
/// lead written `\xNN`. The root is `-.mount`.
fn mount_unit(path: &str) -> String {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return "-.mount".to_owned();
    }
    let mut name = String::new();
    for (i, byte) in trimmed.bytes().enumerate() {
        match byte {
            b'/' => name.push('-'),
            b'.' if i > 0 => name.push('.'),
            b if b.is_ascii_alphanumeric() || b == b':' || b == b'_' => name.push(b as char),
            b => name.push_str(&format!("\\x{b:02x}")),
        }
    }
    name + ".mount"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_units_are_named_as_systemd_escape_names_them() {
        assert_eq!(mount_unit("/boot"), "boot.mount");
        assert_eq!(mount_unit("/boot/efi"), "boot-efi.mount");
        assert_eq!(mount_unit("/efi-sys/"), "efi\\x2dsys.mount");
        assert_eq!(mount_unit("/.esp"), "\\x2eesp.mount");
        assert_eq!(mount_unit("/a.b c"), "a.b\\x20c.mount");
        assert_eq!(mount_unit("/"), "-.mount");
    }

    #[test]
    fn only_the_esps_mounts_are_masked() {
        let fstab = "# a comment\n\
                     LABEL=IMAGO-ESP /boot vfat nofail,umask=0077 0 0\n\
                     LABEL=data /srv ext4 defaults 0 2\n\
                     \n\
                     LABEL=IMAGO-ESP /boot/efi-x vfat nofail 0 0\n\
                     LABEL=IMAGO-ESP\n";
        assert_eq!(
            masks_for(fstab),
            [
                "systemd.mask=boot.mount",
                "systemd.mask=boot-efi\\x2dx.mount"
            ]
        );
        assert!(masks_for("").is_empty());
        assert!(
            esp_masks(
                Path::new("/nonexistent/toplevel"),
                Path::new("/nonexistent")
            )
            .is_empty()
        );
    }

    /// The toplevel's `etc` names its /etc store path as the system sees
    /// it; in a store somewhere else (an ordinary user's, a test's) the
    /// masks come from the fstab in that store.
    #[test]
    fn the_fstab_is_found_in_a_store_elsewhere() {
        let store = tempfile::tempdir().expect("tempdir");
        let etc_name = "0123456789abcdfghijklmnpqrsvwxyz-etc";
        let etc = store.path().join(etc_name);
        std::fs::create_dir(&etc).expect("etc");
        std::fs::write(etc.join("fstab"), "LABEL=IMAGO-ESP /boot vfat nofail 0 0\n")
            .expect("fstab");
        let toplevel = store.path().join("0123456789abcdfghijklmnpqrsvwxyz-system");
        std::fs::create_dir(&toplevel).expect("toplevel");
        std::os::unix::fs::symlink(
            format!("{}/{etc_name}", crate::store::STORE_PREFIX),
            toplevel.join("etc"),
        )
        .expect("etc link");
        assert_eq!(
            esp_masks(&toplevel, store.path()),
            ["systemd.mask=boot.mount"]
        );
        // A toplevel with a real etc directory is read as it is.
        let plain = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(plain.path().join("etc")).expect("etc");
        std::fs::write(
            plain.path().join("etc/fstab"),
            "LABEL=IMAGO-ESP /efi vfat nofail 0 0\n",
        )
        .expect("fstab");
        assert_eq!(
            esp_masks(plain.path(), store.path()),
            ["systemd.mask=efi.mount"]
        );
    }
}
