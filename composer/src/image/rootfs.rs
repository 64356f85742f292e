//! The root file system: a staging tree of hard links to the closure's
//! store objects (no copies), turned into ext4 by `mkfs.ext4 -d`, written
//! directly at the root partition's offset inside the image.
//!
//! ```text
//! /imago/store/<object>...             the system's closure
//! /imago/var/profiles/system-1-link    -> /imago/store/<toplevel>
//! /imago/var/profiles/system           -> system-1-link
//! /bin /sbin /lib /lib64               -> usr/... (stage 1 binds /usr)
//! /usr /etc /var /boot /proc /sys /dev /run /tmp /root /home   empty
//! ```
//!
//! The image depends on the definition and the lock alone, never on who
//! builds it or with which umask:
//!
//! - Timestamps of everything staged are set to 1 s after the epoch, mkfs
//!   runs with a fixed clock, UUID and hash seed.
//! - Every directory staged gets an explicit mode (0755; `/root` 0700,
//!   `/tmp` 01777, store directories 0555); files are the store's own,
//!   0444 or 0555.
//! - **Every inode is owned by uid 0, gid 0.** mkfs copies each source's
//!   owner — the builder's uid for the skeleton, the store owner's for the
//!   closure — so an ordinary user's build would hand `/etc`, `/root` and
//!   every store object to that uid on the booted machine. No module's
//!   owner reaches the image: the store is root's on every machine, and
//!   the owners modules declare (home directories,
//!   `environment.etc.<name>.user`/`group`, tmpfiles rules) are applied by
//!   activation at boot, so "everything root" is the whole rule here.
//!
//! mkfs also copies each source's change time, which no program can set;
//! owners and change times are both fixed afterwards by one `debugfs` pass
//! over every inode ([`super::inodes`]). That pass was chosen over running
//! mkfs in a user namespace where the builder maps to root (`unshare
//! --map-root-user`, which Debian allows ordinary users by default): a
//! namespace maps one uid, so a store owned by anyone but the builder
//! (root building from a user's store, a shared store) would still leak
//! owners, as the overflow uid 65534; and it fails where user namespaces
//! are disabled (container seccomp profiles, hardened sysctls). The pass
//! costs ~0.1 ms per inode more than the change times alone: for
//! examples/minimal (3 216 inodes) 0.53–0.69 s instead of 0.27–0.35 s
//! (3 runs each, load average 7).
//!
//! Tests (reliability catalogue case 28, an image made by an ordinary
//! user): composer/tests/boot/image_owner.rs builds examples/minimal as root
//! and as uid 100001 with umask 077 and compares owners and bytes;
//! composer/tests/boot/image_build.rs does it for a store owned by uid 100001.

use super::gpt::Layout;
use super::ids::ImageIds;
use super::{ImageError, Result, inodes};
use crate::store::{Store, StorePath};
use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

/// The ext4 label of the root partition.
pub const ROOT_LABEL: &str = "imago-root";
/// The timestamp of every file in the image.
const FIXED_TIME: i64 = 1;

pub fn write(
    store: &Store,
    toplevel: &StorePath,
    closure: &BTreeSet<StorePath>,
    image: &Path,
    layout: &Layout,
    ids: &ImageIds,
) -> Result<()> {
    let tmp = store.temp_output()?;
    let stage = tmp.out();
    let result = stage_tree(store, toplevel, closure, &stage)
        .and_then(|()| mkfs(&stage, image, layout, ids))
        .and_then(|()| inodes::normalize(&stage, image, layout.root_offset, FIXED_TIME));
    make_removable(&stage);
    result
}

fn stage_tree(
    store: &Store,
    toplevel: &StorePath,
    closure: &BTreeSet<StorePath>,
    stage: &Path,
) -> Result<()> {
    // Every directory is listed, parents first, and gets its mode here: the
    // builder's umask must not reach the image.
    for dir in [
        "",
        "imago",
        "imago/store",
        "imago/var",
        "imago/var/profiles",
        "usr",
        "etc",
        "var",
        "boot",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "root",
        "home",
        "mnt",
    ] {
        let path = stage.join(dir);
        fs::create_dir_all(&path)
            .map_err(ImageError::io(format!("creating {}", path.display())))?;
        set_mode(&path, 0o755)?;
    }
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        symlink(target, stage.join(link)).map_err(ImageError::io(format!("creating /{link}")))?;
    }
    let profiles = stage.join("imago/var/profiles");
    symlink(toplevel.to_absolute(), profiles.join("system-1-link"))
        .map_err(ImageError::io("creating the generation link"))?;
    symlink("system-1-link", profiles.join("system"))
        .map_err(ImageError::io("creating the system profile"))?;
    for path in closure {
        link_tree(
            &store.physical(path),
            &stage.join("imago/store").join(path.as_str()),
        )?;
    }
    set_mode(&stage.join("tmp"), 0o1777)?;
    set_mode(&stage.join("root"), 0o700)?;
    fix_times(stage)
}

/// Recreates `src` at `dst`: directories made, files hard-linked, symlinks
/// copied. Store objects are read-only, so their directories get mode 0555
/// once filled.
fn link_tree(src: &Path, dst: &Path) -> Result<()> {
    let meta =
        fs::symlink_metadata(src).map_err(ImageError::io(format!("reading {}", src.display())))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target =
            fs::read_link(src).map_err(ImageError::io(format!("reading {}", src.display())))?;
        symlink(target, dst).map_err(ImageError::io(format!("creating {}", dst.display())))
    } else if ft.is_dir() {
        fs::create_dir(dst).map_err(ImageError::io(format!("creating {}", dst.display())))?;
        let mut entries: Vec<_> = fs::read_dir(src)
            .map_err(ImageError::io(format!("listing {}", src.display())))?
            .collect::<std::io::Result<_>>()
            .map_err(ImageError::io(format!("listing {}", src.display())))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            link_tree(&e.path(), &dst.join(e.file_name()))?;
        }
        set_mode(dst, 0o555)
    } else if ft.is_file() {
        fs::hard_link(src, dst).map_err(ImageError::io(format!("linking {}", src.display())))
    } else {
        Err(ImageError::Invalid(format!(
            "{} is not a file, directory or symlink",
            src.display()
        )))
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(ImageError::io(format!(
        "setting the mode of {}",
        path.display()
    )))
}

/// Sets every timestamp below `root` (links not followed) to [`FIXED_TIME`].
fn fix_times(root: &Path) -> Result<()> {
    let t = Timespec {
        tv_sec: FIXED_TIME,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    for entry in walkdir::WalkDir::new(root).contents_first(true) {
        let entry =
            entry.map_err(|e| ImageError::Invalid(format!("walking the staging tree: {e}")))?;
        utimensat(CWD, entry.path(), &times, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| {
            ImageError::Io {
                context: format!("setting the times of {}", entry.path().display()),
                source: e.into(),
            }
        })?;
    }
    Ok(())
}

fn mkfs(stage: &Path, image: &Path, layout: &Layout, ids: &ImageIds) -> Result<()> {
    let mut cmd = Command::new("mkfs.ext4");
    cmd.env("E2FSPROGS_FAKE_TIME", FIXED_TIME.to_string())
        .env("MKE2FS_DETERMINISTIC", "1")
        .args(["-q", "-F", "-t", "ext4", "-L", ROOT_LABEL, "-U"])
        .arg(ids.root_fs_uuid.to_string())
        .arg("-E")
        .arg(format!(
            "root_owner=0:0,hash_seed={},offset={},lazy_itable_init=0,nodiscard",
            ids.root_hash_seed, layout.root_offset
        ))
        .arg("-d")
        .arg(stage)
        .arg(image)
        .arg(format!("{}k", layout.root_size / 1024));
    let out = cmd
        .output()
        .map_err(ImageError::io("running mkfs.ext4 (package e2fsprogs)"))?;
    if !out.status.success() {
        return Err(ImageError::Tool {
            command: "mkfs.ext4".to_owned(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// Makes the staging tree writable again so that the temporary directory
/// can be removed.
fn make_removable(stage: &Path) {
    for entry in walkdir::WalkDir::new(stage).into_iter().flatten() {
        if entry.file_type().is_dir() {
            // Best effort: a failure here only leaves the temporary directory
            // for the store's cleanup at its next start.
            let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o755));
        }
    }
}
