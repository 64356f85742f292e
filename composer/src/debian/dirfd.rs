//! Directory-descriptor file-system access for unpacking: every path is
//! reached by opening one component at a time with `O_NOFOLLOW |
//! O_DIRECTORY` below the output's root descriptor, so no symlink is ever
//! followed, and new files are created with `O_EXCL`.

use rustix::fs::{Mode, OFlags};
use std::io::{self, Write};
use std::os::fd::OwnedFd;

/// The process umask, read once from /proc/self/status (reading it with
/// umask(2) would briefly change it for every thread). Unknown means "assume
/// everything is masked", which makes every file get an explicit chmod.
pub(super) fn process_umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o777)
    })
}

pub(super) fn write_new(dir: &OwnedFd, name: &str, data: &[u8]) -> io::Result<()> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )?;
    std::fs::File::from(fd).write_all(data)
}

/// Opens directories under the root one component at a time, never
/// following symlinks, creating missing ones, and caching the last one.
pub(super) struct DirWalker {
    root: OwnedFd,
    /// Descriptors of the directories along the last path asked for, so
    /// moving to a sibling or a child reopens only what changed.
    stack: Vec<(String, OwnedFd)>,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl DirWalker {
    pub(super) fn new(root: OwnedFd) -> Self {
        DirWalker {
            root,
            stack: Vec::new(),
        }
    }

    /// The directory at `comps` (created if missing), cached.
    pub(super) fn dir(&mut self, comps: &[String]) -> io::Result<&OwnedFd> {
        let common = self
            .stack
            .iter()
            .zip(comps)
            .take_while(|((name, _), comp)| name == *comp)
            .count();
        self.stack.truncate(common);
        for comp in &comps[common..] {
            let parent = self.stack.last().map_or(&self.root, |(_, fd)| fd);
            let fd = open_dir(parent, comp, true)?;
            self.stack.push((comp.clone(), fd));
        }
        Ok(self.stack.last().map_or(&self.root, |(_, fd)| fd))
    }

    /// The existing directory at `comps`, not cached.
    pub(super) fn open_path(&self, comps: &[String]) -> io::Result<OwnedFd> {
        let mut current = rustix::fs::openat(&self.root, ".", DIR_FLAGS, Mode::empty())?;
        for comp in comps {
            current = open_dir(&current, comp, false)?;
        }
        Ok(current)
    }
}

/// Opens one directory below `parent` without following a symlink,
/// creating it (0755) first if `create` and it is missing.
fn open_dir(parent: &OwnedFd, name: &str, create: bool) -> io::Result<OwnedFd> {
    match rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(rustix::io::Errno::NOENT) if create => {
            rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755))?;
            Ok(rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty())?)
        }
        Err(e) => Err(e.into()),
    }
}
