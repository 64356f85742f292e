//! The canonical serialization of a file tree, and the walk that hashes it.
//!
//! An object's digest is the BLAKE3 digest of this byte stream, which is
//! never materialized: the walk feeds it straight into the hasher, reading
//! files in 1 MiB chunks. The format (also in docs/store.md) is
//! self-delimiting, in the spirit of Nix's NAR. `str(b)` is the byte string
//! `b` preceded by its length as a little-endian u64; `u64(n)` is `n` as a
//! little-endian u64.
//!
//! ```text
//! archive   = str("imago-canonical-v1") node
//! node      = str("regular") u64(executable: 0 or 1) u64(length) contents
//!           | str("symlink") str(target)
//!           | str("directory") u64(count) { str(name) node }*count
//! ```
//!
//! Directory entries are sorted by the bytes of their names. Nothing else is
//! recorded: no timestamps, owners, or mode bits other than "executable"
//! (any of the `x` bits of a regular file). Hard links are serialized as
//! separate files. Device nodes, sockets and FIFOs are refused.
//!
//! The same walk can also canonicalize the tree it hashes (used when adding
//! an object): it clears write, setuid, setgid and sticky bits (files become
//! 0444 or 0555, directories 0555); the caller then makes it durable with
//! [`sync_filesystem`] (one `syncfs`, cheaper than fsyncing each file). It
//! also scans file contents and symlink targets for the hash parts of
//! candidate references ([`refscan`](super::refscan)), chunk by chunk.

use super::digest::Blake3Digest;
use super::error::{Result, StoreError};
use super::path::StorePath;
use super::refscan::Scanner;
use std::collections::BTreeSet;
use std::fs::{self, File, Permissions};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// The magic string that starts every serialization.
pub const MAGIC: &[u8] = b"imago-canonical-v1";
/// Deepest directory nesting accepted (bounded recursion).
pub const MAX_DEPTH: usize = 256;
const CHUNK: usize = 1 << 20;

/// What the walk does besides hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Only read.
    ReadOnly,
    /// Strip write/setuid/setgid/sticky bits. The top
    /// directory (if the root is a directory) keeps its owner write bit so it
    /// can still be renamed; [`finish_top`] makes it read-only afterwards.
    Canonicalize,
}

/// The result of hashing a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    pub digest: Blake3Digest,
    /// Length of the canonical serialization in bytes.
    pub nar_size: u64,
    /// The candidate references found in the tree.
    pub references: BTreeSet<StorePath>,
}

/// Receives the serialization.
pub trait Sink {
    fn write(&mut self, bytes: &[u8]);
}

impl Sink for blake3::Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Sink for Vec<u8> {
    fn write(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

struct Counting<'a, S: Sink + ?Sized> {
    inner: &'a mut S,
    count: u64,
}

impl<S: Sink + ?Sized> Counting<'_, S> {
    fn bytes(&mut self, bytes: &[u8]) {
        self.count += bytes.len() as u64;
        self.inner.write(bytes);
    }
    fn u64(&mut self, n: u64) {
        self.bytes(&n.to_le_bytes());
    }
    fn str(&mut self, s: &[u8]) {
        self.u64(s.len() as u64);
        self.bytes(s);
    }
}

/// Hashes (and in [`Mode::Canonicalize`], canonicalizes) the tree at
/// `root`, scanning for `candidates`.
pub(crate) fn hash_tree(root: &Path, mode: Mode, candidates: &[StorePath]) -> Result<Hashed> {
    let mut hasher = blake3::Hasher::new();
    let mut scanner = Scanner::new(candidates);
    let nar_size = serialize(root, mode, &mut hasher, &mut scanner)?;
    Ok(Hashed {
        digest: hasher.finalize().into(),
        nar_size,
        references: scanner.into_found(),
    })
}

/// Writes the canonical serialization of `root` into `sink` (for tests and
/// for anyone reproducing digests).
pub fn serialize_into(root: &Path, sink: &mut dyn Sink) -> Result<u64> {
    serialize(root, Mode::ReadOnly, sink, &mut Scanner::new(&[]))
}

fn serialize<S: Sink + ?Sized>(
    root: &Path,
    mode: Mode,
    sink: &mut S,
    scanner: &mut Scanner,
) -> Result<u64> {
    let meta = fs::symlink_metadata(root).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            StoreError::MissingOutput {
                path: root.to_owned(),
            }
        } else {
            StoreError::io("reading metadata", root)(e)
        }
    })?;
    let mut out = Counting {
        inner: sink,
        count: 0,
    };
    out.str(MAGIC);
    let mut walk = Walk {
        mode,
        scanner,
        buf: Vec::new(),
    };
    walk.node(root, &meta, 0, &mut out)?;
    Ok(out.count)
}

struct Walk<'a> {
    mode: Mode,
    scanner: &'a mut Scanner,
    /// Grown on demand up to [`CHUNK`]: most objects are small files, and
    /// zeroing a 1 MiB buffer for each cost more than hashing them.
    buf: Vec<u8>,
}

impl Walk<'_> {
    fn node<S: Sink + ?Sized>(
        &mut self,
        path: &Path,
        meta: &fs::Metadata,
        depth: usize,
        out: &mut Counting<'_, S>,
    ) -> Result<()> {
        let ft = meta.file_type();
        if ft.is_file() {
            self.file(path, meta, out)
        } else if ft.is_symlink() {
            let target = fs::read_link(path).map_err(StoreError::io("reading symlink", path))?;
            let bytes = target.as_os_str().as_bytes();
            out.str(b"symlink");
            out.str(bytes);
            self.scanner.reset();
            self.scanner.feed(bytes);
            Ok(())
        } else if ft.is_dir() {
            self.dir(path, meta, depth, out)
        } else {
            let kind = if ft.is_block_device() {
                "block device"
            } else if ft.is_char_device() {
                "character device"
            } else if ft.is_fifo() {
                "FIFO"
            } else if ft.is_socket() {
                "socket"
            } else {
                "unknown"
            };
            Err(StoreError::UnsupportedFileType {
                path: path.to_owned(),
                kind,
            })
        }
    }

    fn file<S: Sink + ?Sized>(
        &mut self,
        path: &Path,
        meta: &fs::Metadata,
        out: &mut Counting<'_, S>,
    ) -> Result<()> {
        let executable = meta.mode() & 0o111 != 0;
        let mut file = File::open(path).map_err(StoreError::io("opening file", path))?;
        // Re-check on the open handle: the path could have been swapped.
        let fmeta = file
            .metadata()
            .map_err(StoreError::io("reading metadata", path))?;
        if !fmeta.is_file() || fmeta.ino() != meta.ino() {
            return Err(StoreError::UnsupportedFileType {
                path: path.to_owned(),
                kind: "file replaced during the walk",
            });
        }
        let len = fmeta.len();
        out.str(b"regular");
        out.u64(u64::from(executable));
        out.u64(len);
        self.scanner.reset();
        // One byte more than the file, so that one read returns it all and
        // the next one reports the end.
        let want = usize::try_from(len.saturating_add(1)).map_or(CHUNK, |n| n.min(CHUNK));
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        let mut seen: u64 = 0;
        loop {
            let n = match file.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::io("reading file", path)(e)),
            };
            seen += n as u64;
            if seen > len {
                break;
            }
            let chunk = &self.buf[..n];
            out.bytes(chunk);
            self.scanner.feed(chunk);
        }
        if seen != len {
            return Err(StoreError::io("reading file", path)(std::io::Error::other(
                format!("the file changed size while being hashed ({len} → {seen} bytes)"),
            )));
        }
        if self.mode == Mode::Canonicalize {
            let perm = if executable { 0o555 } else { 0o444 };
            if fmeta.mode() & 0o7777 != perm {
                file.set_permissions(Permissions::from_mode(perm))
                    .map_err(StoreError::io("making file read-only", path))?;
            }
        }
        Ok(())
    }

    fn dir<S: Sink + ?Sized>(
        &mut self,
        path: &Path,
        meta: &fs::Metadata,
        depth: usize,
        out: &mut Counting<'_, S>,
    ) -> Result<()> {
        if depth >= MAX_DEPTH {
            return Err(StoreError::TooDeep {
                path: path.to_owned(),
                limit: MAX_DEPTH,
            });
        }
        let mut entries = Vec::new();
        for entry in fs::read_dir(path).map_err(StoreError::io("reading directory", path))? {
            let entry = entry.map_err(StoreError::io("reading directory", path))?;
            entries.push(entry.file_name());
        }
        entries.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        out.str(b"directory");
        out.u64(entries.len() as u64);
        for name in entries {
            check_name(path, name.as_bytes())?;
            let child = path.join(&name);
            let cmeta =
                fs::symlink_metadata(&child).map_err(StoreError::io("reading metadata", &child))?;
            out.str(name.as_bytes());
            self.node(&child, &cmeta, depth + 1, out)?;
        }
        if self.mode == Mode::Canonicalize {
            // The top directory stays owner-writable until renamed into place.
            let perm = if depth == 0 { 0o755 } else { 0o555 };
            if meta.mode() & 0o7777 != perm {
                fs::set_permissions(path, Permissions::from_mode(perm))
                    .map_err(StoreError::io("making directory read-only", path))?;
            }
        }
        Ok(())
    }
}

/// Refuses names a store object may not contain. (The file system already
/// forbids `/` and NUL; archives are checked with the same rules.)
pub(crate) fn check_name(parent: &Path, name: &[u8]) -> Result<()> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name == b"." || name == b".." {
        Some("`.` and `..` are not file names")
    } else if name.contains(&b'/') {
        Some("contains `/`")
    } else if name.contains(&0) {
        Some("contains NUL")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::BadFileName {
            path: parent.to_owned(),
            name: String::from_utf8_lossy(name).into_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Makes the top directory of a registered object read-only (0555).
pub(crate) fn finish_top(path: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(path).map_err(StoreError::io("reading metadata", path))?;
    if meta.is_dir() {
        fs::set_permissions(path, Permissions::from_mode(0o555))
            .map_err(StoreError::io("making directory read-only", path))?;
    }
    Ok(())
}

/// Makes everything written under `path` durable with one `syncfs(2)` of
/// its file system. One call instead of an fsync per file and directory:
/// an object of a thousand small files took seconds to fsync one by one
/// on ext4 (a journal commit each), and the guarantee is the same.
pub(crate) fn sync_filesystem(path: &Path) -> Result<()> {
    // Open the directory holding `path` (a symlink cannot be opened).
    let dir = path.parent().unwrap_or(path);
    let handle = File::open(dir).map_err(StoreError::io("opening for sync", dir))?;
    rustix::fs::syncfs(&handle)
        .map_err(|e| StoreError::io("syncing the file system", dir)(e.into()))
}

/// fsyncs a directory (its entries become durable).
pub(crate) fn fsync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io("syncing directory", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn hash(root: &Path) -> Blake3Digest {
        hash_tree(root, Mode::ReadOnly, &[]).unwrap().digest
    }

    #[test]
    fn serialization_layout_of_a_small_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, b"hi").unwrap();
        let mut bytes = Vec::new();
        let n = serialize_into(&f, &mut bytes).unwrap();
        let mut want = Vec::new();
        for s in [&b"imago-canonical-v1"[..], b"regular"] {
            want.extend_from_slice(&(s.len() as u64).to_le_bytes());
            want.extend_from_slice(s);
        }
        want.extend_from_slice(&0u64.to_le_bytes());
        want.extend_from_slice(&2u64.to_le_bytes());
        want.extend_from_slice(b"hi");
        assert_eq!(bytes, want);
        assert_eq!(n, want.len() as u64);
    }

    #[test]
    fn modes_other_than_executable_and_times_do_not_matter() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        fs::write(&a, b"x").unwrap();
        fs::set_permissions(&a, Permissions::from_mode(0o600)).unwrap();
        let h1 = hash(&a);
        fs::set_permissions(&a, Permissions::from_mode(0o444)).unwrap();
        assert_eq!(hash(&a), h1);
        fs::set_permissions(&a, Permissions::from_mode(0o700)).unwrap();
        assert_ne!(hash(&a), h1, "the executable bit counts");
    }

    #[test]
    fn finds_references_across_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let r1: StorePath = "0123456789abcdfghijklmnpqrsvwxyz-one".parse().unwrap();
        let r2: StorePath = "zyxwvsrqpnmlkjihgfdcba9876543210-two".parse().unwrap();
        let r3: StorePath = "11111111111111111111111111111111-three".parse().unwrap();
        let mut content = vec![b'.'; CHUNK - 10];
        content.extend_from_slice(r1.hash_part().as_bytes());
        content.extend_from_slice(b"tail");
        fs::write(dir.path().join("big"), &content).unwrap();
        symlink(format!("/imago/store/{r2}/bin"), dir.path().join("link")).unwrap();
        let found = hash_tree(dir.path(), Mode::ReadOnly, &[r1.clone(), r2.clone(), r3])
            .unwrap()
            .references;
        assert_eq!(found, BTreeSet::from([r1, r2]));
    }

    #[test]
    fn refuses_fifos() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("p");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let err = hash_tree(dir.path(), Mode::ReadOnly, &[]).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
        assert!(err.to_string().contains("/p"), "{err}");
    }

    #[test]
    fn canonicalize_strips_write_and_setuid_bits() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("out");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("sub/x"), b"x").unwrap();
        fs::set_permissions(root.join("sub/x"), Permissions::from_mode(0o4775)).unwrap();
        fs::write(root.join("y"), b"y").unwrap();
        hash_tree(&root, Mode::Canonicalize, &[]).unwrap();
        let mode = |p: &str| fs::symlink_metadata(root.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode("sub/x"), 0o555);
        assert_eq!(mode("y"), 0o444);
        assert_eq!(mode("sub"), 0o555);
        finish_top(&root).unwrap();
        assert_eq!(mode(""), 0o555);
        fs::set_permissions(root.join("sub"), Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&root, Permissions::from_mode(0o755)).unwrap();
    }
}
