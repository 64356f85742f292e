//! A deterministic cpio "newc" archive writer, the format the kernel unpacks
//! as an initramfs.
//!
//! Entries are collected into an [`Archive`] (a sorted map, so insertion
//! order never matters), validated (relative normalized paths, no duplicates,
//! every parent present as a directory) and written in byte order of their
//! paths, which puts every directory before its contents. Every header has
//! mtime 0, uid/gid 0, sequential inode numbers from 1 and the mode given by
//! the entry kind, so the same entries always give the same bytes.
//!
//! Written here rather than with the `cpio` crate because that crate's
//! builder leaves inode numbers, link counts and padding to the caller and
//! adds no validation; the format itself is 13 hex fields and padding.

use std::collections::BTreeMap;
use std::io::{self, Write};

/// What goes wrong assembling an archive.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpioError {
    #[error("invalid archive path `{path}`: {reason}")]
    BadPath { path: String, reason: &'static str },
    #[error("archive path `{0}` added twice")]
    Duplicate(String),
    #[error("archive path `{path}` has no parent directory `{parent}` in the archive")]
    NoParent { path: String, parent: String },
    #[error("archive entry `{0}` is larger than 4 GiB, which newc cannot hold")]
    TooLarge(String),
}

impl CpioError {
    /// The stable code of this error (docs/errors.md, E08xx).
    pub fn code(&self) -> crate::codes::Code {
        crate::codes::INITRD
    }
}

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir,
    File {
        data: Vec<u8>,
        executable: bool,
    },
    Symlink {
        target: String,
    },
    /// A character device node (mode 0600), e.g. `dev/console`.
    CharDev {
        major: u32,
        minor: u32,
    },
}

impl Entry {
    fn mode(&self) -> u32 {
        match self {
            Entry::Dir => 0o040_755,
            Entry::File {
                executable: true, ..
            } => 0o100_755,
            Entry::File { .. } => 0o100_644,
            Entry::Symlink { .. } => 0o120_777,
            Entry::CharDev { .. } => 0o020_600,
        }
    }

    fn body(&self) -> &[u8] {
        match self {
            Entry::Dir | Entry::CharDev { .. } => &[],
            Entry::File { data, .. } => data,
            Entry::Symlink { target } => target.as_bytes(),
        }
    }
}

/// A set of entries keyed by relative path (`bin/busybox`, no leading `/`).
#[derive(Debug, Default, Clone)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

impl Archive {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry; the path must be relative, without `.`/`..`/empty
    /// components, and not already present.
    pub fn add(&mut self, path: &str, entry: Entry) -> Result<(), CpioError> {
        validate(path)?;
        if let Entry::File { data, .. } = &entry
            && u32::try_from(data.len()).is_err()
        {
            return Err(CpioError::TooLarge(path.to_owned()));
        }
        if self.entries.contains_key(path) {
            return Err(CpioError::Duplicate(path.to_owned()));
        }
        self.entries.insert(path.to_owned(), entry);
        Ok(())
    }

    /// Adds a directory and any missing parents; existing directories are fine.
    pub fn mkdir_p(&mut self, path: &str) -> Result<(), CpioError> {
        validate(path)?;
        let mut prefix = String::new();
        for component in path.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(component);
            match self.entries.get(&prefix) {
                Some(Entry::Dir) => {}
                Some(_) => return Err(CpioError::Duplicate(prefix)),
                None => {
                    self.entries.insert(prefix.clone(), Entry::Dir);
                }
            }
        }
        Ok(())
    }

    /// Whether `path` is present.
    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(path)
    }

    /// Writes the archive (with its `TRAILER!!!`) and returns the writer.
    pub fn write<W: Write>(&self, mut out: W) -> Result<W, WriteError> {
        for path in self.entries.keys() {
            if let Some((parent, _)) = path.rsplit_once('/')
                && !matches!(self.entries.get(parent), Some(Entry::Dir))
            {
                return Err(CpioError::NoParent {
                    path: path.clone(),
                    parent: parent.to_owned(),
                }
                .into());
            }
        }
        let mut written = 0u64;
        for (ino, (path, entry)) in self.entries.iter().enumerate() {
            let nlink = if matches!(entry, Entry::Dir) { 2 } else { 1 };
            // Inode numbers start at 1 (0 marks the trailer).
            let ino = u32::try_from(ino + 1).map_err(|_| CpioError::TooLarge(path.clone()))?;
            let rdev = match entry {
                Entry::CharDev { major, minor } => (*major, *minor),
                _ => (0, 0),
            };
            let header = Header {
                ino,
                mode: entry.mode(),
                nlink,
                rdev,
            };
            write_member(&mut out, &mut written, &header, path, entry.body())?;
        }
        let trailer = Header {
            ino: 0,
            mode: 0,
            nlink: 1,
            rdev: (0, 0),
        };
        write_member(&mut out, &mut written, &trailer, "TRAILER!!!", &[])?;
        Ok(out)
    }
}

/// An archive that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Archive(#[from] CpioError),
    #[error("cannot write cpio archive")]
    Io(#[from] io::Error),
}

impl WriteError {
    /// The stable code of this error (docs/errors.md, E08xx).
    pub fn code(&self) -> crate::codes::Code {
        crate::codes::INITRD
    }
}

fn validate(path: &str) -> Result<(), CpioError> {
    let bad = |reason| {
        Err(CpioError::BadPath {
            path: path.to_owned(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("empty path");
    }
    if path.starts_with('/') {
        return bad("absolute path");
    }
    if path.contains('\0') {
        return bad("contains NUL");
    }
    for component in path.split('/') {
        match component {
            "" => return bad("empty component"),
            "." | ".." => return bad("`.` or `..` component"),
            _ => {}
        }
    }
    Ok(())
}

/// The header fields that vary between members.
struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
}

fn write_member<W: Write>(
    out: &mut W,
    written: &mut u64,
    header: &Header,
    name: &str,
    body: &[u8],
) -> io::Result<()> {
    let namesize = name.len() + 1;
    let Header {
        ino,
        mode,
        nlink,
        rdev,
    } = *header;
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime
        body.len() as u32,
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        namesize as u32,
        0, // check
    ];
    let mut text = String::with_capacity(110 + namesize);
    text.push_str("070701");
    for field in fields {
        text.push_str(&format!("{field:08X}"));
    }
    text.push_str(name);
    text.push('\0');
    out.write_all(text.as_bytes())?;
    *written += text.len() as u64;
    pad(out, written)?;
    out.write_all(body)?;
    *written += body.len() as u64;
    pad(out, written)
}

fn pad<W: Write>(out: &mut W, written: &mut u64) -> io::Result<()> {
    let fill = (4 - (*written % 4) as usize) % 4;
    out.write_all(&[0; 3][..fill])?;
    *written += fill as u64;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn sample() -> Archive {
        let mut a = Archive::new();
        a.mkdir_p("bin").unwrap();
        a.add(
            "bin/busybox",
            Entry::File {
                data: b"\x7fELF fake".to_vec(),
                executable: true,
            },
        )
        .unwrap();
        a.add(
            "bin/sh",
            Entry::Symlink {
                target: "busybox".into(),
            },
        )
        .unwrap();
        a.add(
            "init",
            Entry::File {
                data: b"#!/bin/sh\necho hi\n".to_vec(),
                executable: true,
            },
        )
        .unwrap();
        a.mkdir_p("etc").unwrap();
        a.add(
            "etc/x",
            Entry::File {
                data: b"abc".to_vec(),
                executable: false,
            },
        )
        .unwrap();
        a.mkdir_p("dev").unwrap();
        a.add("dev/console", Entry::CharDev { major: 5, minor: 1 })
            .unwrap();
        a
    }

    #[test]
    fn same_entries_in_any_order_give_identical_bytes() {
        let a = sample().write(Vec::new()).unwrap();
        let mut b = Archive::new();
        b.mkdir_p("dev").unwrap();
        b.add("dev/console", Entry::CharDev { major: 5, minor: 1 })
            .unwrap();
        b.mkdir_p("etc").unwrap();
        b.add(
            "etc/x",
            Entry::File {
                data: b"abc".to_vec(),
                executable: false,
            },
        )
        .unwrap();
        b.add(
            "init",
            Entry::File {
                data: b"#!/bin/sh\necho hi\n".to_vec(),
                executable: true,
            },
        )
        .unwrap();
        b.mkdir_p("bin").unwrap();
        b.add(
            "bin/sh",
            Entry::Symlink {
                target: "busybox".into(),
            },
        )
        .unwrap();
        b.add(
            "bin/busybox",
            Entry::File {
                data: b"\x7fELF fake".to_vec(),
                executable: true,
            },
        )
        .unwrap();
        assert_eq!(a, b.write(Vec::new()).unwrap());
        assert_eq!(a.len() % 4, 0);
    }

    #[test]
    fn system_cpio_lists_and_extracts_it() {
        let bytes = sample().write(Vec::new()).unwrap();
        let run = |args: &[&str], dir: &std::path::Path| {
            let mut child = Command::new("cpio")
                .args(args)
                .current_dir(dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("the system `cpio` tool is installed");
            child.stdin.take().unwrap().write_all(&bytes).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let listing = run(&["-t", "--quiet"], dir.path());
        assert_eq!(
            listing,
            "bin\nbin/busybox\nbin/sh\ndev\ndev/console\netc\netc/x\ninit\n"
        );
        let verbose = run(&["-tv", "--quiet"], dir.path());
        assert!(verbose.contains("lrwxrwxrwx"), "{verbose}");
        assert!(verbose.contains("bin/sh -> busybox"), "{verbose}");
        assert!(verbose.contains("-rwxr-xr-x"), "{verbose}");
        assert!(verbose.contains("crw-------"), "{verbose}");
        assert!(verbose.contains("5,   1"), "{verbose}");

        // Device nodes need privileges; everything else is extracted.
        let extract = [
            "-i",
            "--quiet",
            "--make-directories",
            "--nonmatching",
            "dev/console",
        ];
        run(&extract, dir.path());
        let root = dir.path();
        assert_eq!(std::fs::read(root.join("etc/x")).unwrap(), b"abc");
        assert_eq!(
            std::fs::read_link(root.join("bin/sh")).unwrap().to_str(),
            Some("busybox")
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.join("init"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    #[test]
    fn bad_paths_are_rejected() {
        let mut a = Archive::new();
        for (path, reason) in [
            ("", "empty path"),
            ("/etc/passwd", "absolute path"),
            ("a/../b", "`.` or `..` component"),
            ("./a", "`.` or `..` component"),
            ("a//b", "empty component"),
            ("a\0b", "contains NUL"),
        ] {
            let err = a.add(path, Entry::Dir).unwrap_err();
            assert_eq!(
                err,
                CpioError::BadPath {
                    path: path.into(),
                    reason
                }
            );
        }
    }

    #[test]
    fn duplicates_and_orphans_are_rejected() {
        let mut a = Archive::new();
        a.add("x", Entry::Dir).unwrap();
        assert_eq!(
            a.add("x", Entry::Dir),
            Err(CpioError::Duplicate("x".into()))
        );
        a.add("y", Entry::Symlink { target: "x".into() }).unwrap();
        assert_eq!(a.mkdir_p("y/z"), Err(CpioError::Duplicate("y".into())));
        a.add(
            "missing/file",
            Entry::File {
                data: vec![],
                executable: false,
            },
        )
        .unwrap();
        let err = a.write(Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "archive path `missing/file` has no parent directory `missing` in the archive"
        );
    }
}
