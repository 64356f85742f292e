//! Safe extraction of a .deb into a fresh directory.
//!
//! How it stays inside `out`: every name is validated and mapped to a list of
//! plain components before anything touches the disk, and a table of what
//! this archive has created (directory, file or symlink, with the entry that
//! created it) decides what is allowed. The table is authoritative because
//! `out` starts empty and only this code writes into it. All file-system
//! calls are `*at` calls relative to a directory descriptor reached by
//! opening one component at a time with `O_NOFOLLOW | O_DIRECTORY` (see
//! [`DirWalker`]), so even a symlink planted behind our back is never
//! followed. Files are created with `O_EXCL`, so nothing is ever overwritten.
//!
//! Layout of the result: the data archive with merged /usr (`bin`, `sbin`,
//! `lib`, `lib32`, `lib64`, `libx32` land under `usr/`), and the control
//! archive's files (control, md5sums, conffiles, maintainer scripts — never
//! run) under `.imago/deb/`, plus `.imago/deb/setuid` listing the allowed
//! setuid/setgid files (`MODE USER:GROUP PATH`, see docs/packages.md).
//!
//! Rules (each rejection names the package, the entry and the rule): see
//! [`Rule`]. Limits on entries, bytes and depth are in [`Limits`]. Walking
//! is iterative, so deep trees cannot overflow the stack.
//!
//! Memory is bounded before it is spent: the `ar` framing (`deb.rs`) checks
//! each member's claimed size against these caps (and the file's length
//! when known) before reading it and reads members as streams; the tar
//! framing (`unpack/tar_stream.rs`) refuses a GNU long name/link or PAX header
//! claiming more than [`MAX_EXTENSION_BYTES`] from its size field, before
//! reading it, and never buffers entry data; names are at most
//! [`MAX_NAME_BYTES`] and all names together at most
//! [`Limits::max_name_bytes`] (they are kept to check duplicates and
//! collisions); control files are read into memory up to
//! [`Limits::max_control_bytes`], at most [`MAX_CONTROL_FILES`] of them.
//! Every byte of a decompressed stream is counted against a cap, so a
//! decompression bomb stops at the caps.

mod tar_stream;

use super::deb::{self, ContainerError, Member, WalkOptions};
use super::dirfd::{DirWalker, process_umask, write_new};
pub use super::names::{MAX_NAME_BYTES, merge_usr, validate_name};
use super::names::{MERGED_DIRS, is_merge_link, plain, relocate_target};
pub use super::rule::Rule;
pub use crate::builders::meta::{META_DIR, SETUID_ALLOW_LIST};
use rustix::fs::{AtFlags, Mode, OFlags};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use tar_stream::{EntryHead, TarStream, shown, stream_error};
pub use tar_stream::{MAX_EXTENSION_BYTES, MAX_TRAILING_BYTES, tar_stream_cap};
use unicode_normalization::UnicodeNormalization;

/// Caps that stop decompression bombs and absurd archives.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Total bytes of the data archive's entry data and extension records
    /// (PAX sizes count; checked before a byte is read).
    pub max_bytes: u64,
    /// Entries across the control and data archives.
    pub max_entries: u64,
    /// Path components of one entry.
    pub max_depth: usize,
    /// Bytes of the control archive's files together (their names and
    /// extension records count).
    pub max_control_bytes: u64,
    /// Bytes of the data archive's entry names together: every name is kept
    /// in memory (to refuse duplicates and collisions), so this bounds that
    /// memory. Real packages use a few MB at most.
    pub max_name_bytes: u64,
    /// Whether names that differ only in case may coexist. Names that
    /// differ only in Unicode normalization are always rejected. Debian's
    /// own packages need case-only pairs (the kernel ships both
    /// `xt_DSCP.ko` and `xt_dscp.ko`, terminfo has `E/` and `e/`), so the
    /// `deb` builder, whose input is authenticated by the lock, allows them;
    /// the default (used for imported .debs) rejects them.
    pub allow_case_only_collisions: bool,
    /// Whether xz's own integrity check (CRC64) of the decompressed data is
    /// verified. Only a caller that checks the whole file's digest itself
    /// may turn it off (the `deb` builder, against the lock's SHA-256); a
    /// corrupted stream still fails there, after unpacking.
    pub xz_check: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 4 << 30,
            max_entries: 200_000,
            max_depth: 256,
            max_control_bytes: 64 << 20,
            max_name_bytes: 64 << 20,
            allow_case_only_collisions: false,
            xz_check: true,
        }
    }
}

/// A user or group name as Debian's adduser allows them by default
/// (`[a-z_][a-z0-9_-]*`, at most 32 bytes, optionally ending in `$`).
fn is_account_name(name: &str) -> bool {
    let body = name.strip_suffix('$').unwrap_or(name);
    let mut chars = body.chars();
    name.len() <= 32
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// The most files a control archive may hold (dpkg writes about ten).
pub const MAX_CONTROL_FILES: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("package `{package}`: entry `{entry}`: {rule}")]
    Rejected {
        package: String,
        entry: String,
        rule: Rule,
    },
    #[error("package `{package}`: {source}")]
    Container {
        package: String,
        #[source]
        source: ContainerError,
    },
    #[error("package `{package}`: {what}")]
    Io {
        package: String,
        what: String,
        #[source]
        source: io::Error,
    },
}

impl UnpackError {
    /// The stable code of this error (docs/errors.md, E06xx).
    pub fn code(&self) -> crate::codes::Code {
        use crate::codes::*;
        match self {
            UnpackError::Rejected { .. } => UNPACK_REFUSED,
            UnpackError::Container { source, .. } => source.code(),
            UnpackError::Io { .. } => DEB_IO,
        }
    }
}

impl UnpackError {
    /// The rule an entry broke, when this is a rejection.
    pub fn rule(&self) -> Option<&Rule> {
        match self {
            UnpackError::Rejected { rule, .. } => Some(rule),
            _ => None,
        }
    }
}

/// Internal error before the package name is attached.
enum Fail {
    Rule(String, Rule),
    Container(ContainerError),
    Io(String, io::Error),
}

impl From<ContainerError> for Fail {
    fn from(e: ContainerError) -> Self {
        Fail::Container(e)
    }
}

fn io_fail(what: impl Into<String>) -> impl FnOnce(io::Error) -> Fail {
    let what = what.into();
    move |e| Fail::Io(what, e)
}

/// What an unpack produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub entries: u64,
    pub bytes: u64,
    /// The control file's text, if the package had one.
    pub control: Option<String>,
    /// `(mode, "user:group", path)` of allowed setuid/setgid files.
    pub setuid: Vec<(u32, String, String)>,
}

/// Unpacks the .deb read from `reader` into `out`, which must not exist yet
/// (its parent must). On error, `out` may hold a partial tree: the caller
/// removes it (the store never registers a failed build).
pub fn unpack_deb(
    reader: impl Read,
    package: &str,
    out: &Path,
    limits: &Limits,
) -> Result<Summary, UnpackError> {
    unpack_deb_sized(reader, None, package, out, limits)
}

/// [`unpack_deb`] for a .deb whose length is known (a file's size, the
/// lock's `size`): an `ar` member claiming more than what is left of the
/// file is then refused at its header.
pub fn unpack_deb_sized(
    reader: impl Read,
    file_len: Option<u64>,
    package: &str,
    out: &Path,
    limits: &Limits,
) -> Result<Summary, UnpackError> {
    let attach = |f: Fail| match f {
        Fail::Rule(entry, rule) => UnpackError::Rejected {
            package: package.to_string(),
            entry,
            rule,
        },
        Fail::Container(source) => UnpackError::Container {
            package: package.to_string(),
            source,
        },
        Fail::Io(what, source) => UnpackError::Io {
            package: package.to_string(),
            what,
            source,
        },
    };
    std::fs::create_dir(out)
        .map_err(io_fail(format!("creating {}", out.display())))
        .map_err(attach)?;
    let root = rustix::fs::open(
        out,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Fail::Io(format!("opening {}", out.display()), e.into()))
    .map_err(attach)?;
    let mut state = State::new(root, *limits);
    let mut control_files: Vec<(String, Vec<u8>)> = Vec::new();
    let opts = WalkOptions {
        xz_check: limits.xz_check,
        file_len,
        max_control_member: tar_stream_cap(limits.max_control_bytes, MAX_CONTROL_FILES as u64),
        max_data_member: tar_stream_cap(limits.max_bytes, limits.max_entries),
    };
    deb::walk(reader, &opts, |member, stream| match member {
        Member::Control => {
            control_files = state.read_control(stream)?;
            Ok(())
        }
        Member::Data => state.extract_data(stream),
    })
    .map_err(attach)?;
    state.finish(control_files).map_err(attach)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
}

struct Node {
    kind: Kind,
    /// The archive entry that created it; `None` for implied parents.
    entry: Option<String>,
}

struct State {
    limits: Limits,
    walker: DirWalker,
    nodes: HashMap<String, Node>,
    /// Case-folded NFC form → the path that claimed it.
    folded: HashMap<String, String>,
    dir_modes: Vec<(String, u32)>,
    entries: u64,
    /// Bytes of regular files' contents (reported in the summary).
    bytes: u64,
    /// Other bytes of the data archive: extension records and the data of
    /// entries that are not regular files. Count against `max_bytes` too.
    other_bytes: u64,
    name_bytes: u64,
    setuid: Vec<(u32, String, String)>,
    buf: Vec<u8>,
}

impl State {
    fn new(root: OwnedFd, limits: Limits) -> Self {
        State {
            limits,
            walker: DirWalker::new(root),
            nodes: HashMap::new(),
            folded: HashMap::new(),
            dir_modes: Vec::new(),
            entries: 0,
            bytes: 0,
            other_bytes: 0,
            name_bytes: 0,
            setuid: Vec::new(),
            buf: vec![0; 256 * 1024],
        }
    }

    fn count_entry(&mut self, name: &str) -> Result<(), Fail> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(Fail::Rule(
                name.into(),
                Rule::EntryCount(self.limits.max_entries),
            ));
        }
        Ok(())
    }

    /// Counts an entry's data (`file` bytes if it is a regular file) and
    /// extension records before any of its data is read.
    fn count_bytes(&mut self, name: &str, file: u64, other: u64) -> Result<(), Fail> {
        self.bytes = self.bytes.saturating_add(file);
        self.other_bytes = self.other_bytes.saturating_add(other);
        if self.bytes.saturating_add(self.other_bytes) > self.limits.max_bytes {
            return Err(Fail::Rule(
                name.into(),
                Rule::TotalBytes(self.limits.max_bytes),
            ));
        }
        Ok(())
    }

    /// Reads the control archive into memory: plain files with simple names.
    fn read_control(&mut self, stream: &mut dyn Read) -> Result<Vec<(String, Vec<u8>)>, Fail> {
        let mut tar = TarStream::new(stream, "control archive");
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut total = 0u64;
        while let Some(head) = tar.next_entry()? {
            let raw = shown(&head.path);
            self.count_entry(&raw)?;
            // Names, data and extension records all count, before a byte of
            // the data is read.
            total = total
                .saturating_add(head.path.len() as u64)
                .saturating_add(head.size)
                .saturating_add(head.extension_bytes);
            if total > self.limits.max_control_bytes {
                return Err(Fail::Rule(
                    raw,
                    Rule::TotalBytes(self.limits.max_control_bytes),
                ));
            }
            let name = raw.trim_start_matches("./").trim_end_matches('/');
            let kind = head.header.entry_type();
            if name.is_empty() || name == "." {
                if kind.is_dir() {
                    continue;
                }
                return Err(Fail::Rule(raw, Rule::BadControlMember));
            }
            let simple = name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
                && !name.starts_with('.');
            if !simple || !(kind.is_file() || kind == tar::EntryType::Continuous) {
                return Err(Fail::Rule(raw, Rule::BadControlMember));
            }
            if files.iter().any(|(n, _)| n == name) {
                return Err(Fail::Rule(raw, Rule::Duplicate));
            }
            if files.len() >= MAX_CONTROL_FILES {
                return Err(Fail::Rule(raw, Rule::ControlFiles(MAX_CONTROL_FILES)));
            }
            // At most `max_control_bytes`, checked above.
            let mut data = Vec::with_capacity(usize::try_from(head.size).unwrap_or(0));
            let got = read_entry_data(&mut tar, &raw, &mut self.buf, |chunk| {
                data.extend_from_slice(chunk);
                Ok(())
            })?;
            if got != head.size {
                return Err(Fail::Rule(raw, Rule::Truncated));
            }
            files.push((name.to_string(), data));
        }
        tar.finish()?;
        Ok(files)
    }

    fn extract_data(&mut self, stream: &mut dyn Read) -> Result<(), Fail> {
        let mut tar = TarStream::new(stream, "data archive");
        while let Some(head) = tar.next_entry()? {
            self.extract_entry(head, &mut tar)?;
        }
        tar.finish()
    }

    fn extract_entry(&mut self, head: EntryHead, tar: &mut TarStream<'_>) -> Result<(), Fail> {
        let EntryHead {
            header,
            path: raw_bytes,
            link,
            size,
            extension_bytes,
        } = head;
        if raw_bytes.len() > MAX_NAME_BYTES {
            return Err(Fail::Rule(
                shown(&raw_bytes),
                Rule::NameTooLong(MAX_NAME_BYTES),
            ));
        }
        let raw = String::from_utf8_lossy(&raw_bytes).into_owned();
        self.count_entry(&raw)?;
        let kind = header.entry_type();
        use tar::EntryType as T;
        // Everything this entry brings is counted before any of it is read:
        // a regular file's data as contents, the rest (extension records,
        // data of other entry types, skipped unread) as other bytes.
        if matches!(kind, T::Regular | T::Continuous) {
            self.count_bytes(&raw, size, extension_bytes)?;
        } else {
            self.count_bytes(&raw, 0, size.saturating_add(extension_bytes))?;
        }
        self.name_bytes = self.name_bytes.saturating_add(raw_bytes.len() as u64);
        if self.name_bytes > self.limits.max_name_bytes {
            return Err(Fail::Rule(raw, Rule::NameBytes(self.limits.max_name_bytes)));
        }
        let comps = validate_name(&raw_bytes, self.limits.max_depth)
            .map_err(|r| Fail::Rule(raw.clone(), r))?;
        if comps.is_empty() {
            // The archive's root (`./`).
            return if kind.is_dir() {
                Ok(())
            } else {
                Err(Fail::Rule(
                    raw,
                    Rule::BadName("the root must be a directory"),
                ))
            };
        }
        let relocated = MERGED_DIRS.contains(&comps[0].as_str());
        if relocated && kind == T::Symlink && is_merge_link(&comps, link.as_deref()) {
            // trixie's base-files ships the merge itself (`bin -> usr/bin`):
            // the unpacked tree is already merged, so the link says nothing
            // more. Any other link in place of a merged directory still
            // collides below.
            return Ok(());
        }
        let comps = merge_usr(comps);
        let path = comps.join("/");
        let mode = header
            .mode()
            .map_err(|_| Fail::Rule(raw.clone(), Rule::BadHeader("bad mode field")))?;
        let new_kind = match kind {
            T::Directory => Kind::Dir,
            T::Regular | T::Continuous => Kind::File,
            T::Symlink => Kind::Symlink,
            T::Link => Kind::File,
            T::Char => return Err(Fail::Rule(raw, Rule::SpecialFile("character device"))),
            T::Block => return Err(Fail::Rule(raw, Rule::SpecialFile("block device"))),
            T::Fifo => return Err(Fail::Rule(raw, Rule::SpecialFile("fifo"))),
            other => return Err(Fail::Rule(raw, Rule::UnsupportedType(other.as_byte()))),
        };
        self.check_parents(&raw, &comps)?;
        if let Some(existing) = self.nodes.get_mut(&path) {
            // Only directories may meet again, and only when one of them was
            // implied or came from the other side of the /usr merge.
            let same_entry = existing.entry.as_deref() == Some(raw.as_str());
            if existing.kind == Kind::Dir && new_kind == Kind::Dir && !same_entry {
                existing.entry.get_or_insert(raw.clone());
                self.dir_modes.push((path, mode & 0o1777));
                return Ok(());
            }
            let rule = match &existing.entry {
                Some(other) if plain(other) != plain(&raw) => {
                    Rule::UsrMergeCollision(other.clone())
                }
                _ => Rule::Duplicate,
            };
            return Err(Fail::Rule(raw, rule));
        }
        self.claim_folded(&raw, &path)?;
        let (parent, name) = comps.split_at(comps.len() - 1);
        let name = name[0].as_str();
        match kind {
            T::Directory => {
                let dir = self
                    .walker
                    .dir(parent)
                    .map_err(io_fail(format!("opening the parent of `{raw}`")))?;
                // Created with its final mode when the owner keeps full
                // access and the umask keeps every bit; otherwise owner-only
                // now and the real mode at the end.
                let wanted = mode & 0o1777;
                let direct = wanted & 0o700 == 0o700 && wanted & process_umask() == 0;
                let initial = if direct { wanted } else { 0o700 };
                rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(initial))
                    .map_err(|e| Fail::Io(format!("creating directory `{raw}`"), e.into()))?;
                if !direct {
                    self.dir_modes.push((path.clone(), wanted));
                }
            }
            T::Regular | T::Continuous => {
                if mode & 0o6000 != 0 {
                    if !SETUID_ALLOW_LIST.contains(&path.as_str()) {
                        return Err(Fail::Rule(raw, Rule::Setuid(mode)));
                    }
                    let user = header
                        .username()
                        .ok()
                        .flatten()
                        .unwrap_or("root")
                        .to_string();
                    let group = header
                        .groupname()
                        .ok()
                        .flatten()
                        .unwrap_or("root")
                        .to_string();
                    // They become a line of `.imago/deb/setuid` and, on the
                    // machine, the owner of a setuid wrapper.
                    for name in [&user, &group] {
                        if !is_account_name(name) {
                            return Err(Fail::Rule(raw, Rule::SetuidOwner(name.clone())));
                        }
                    }
                    self.setuid
                        .push((mode & 0o7777, format!("{user}:{group}"), path.clone()));
                }
                let dir = self
                    .walker
                    .dir(parent)
                    .map_err(io_fail(format!("opening the parent of `{raw}`")))?;
                let fd = rustix::fs::openat(
                    dir,
                    name,
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(mode & 0o777),
                )
                .map_err(|e| Fail::Io(format!("creating `{raw}`"), e.into()))?;
                let mut file = std::fs::File::from(fd);
                let written = read_entry_data(tar, &raw, &mut self.buf, |chunk| {
                    file.write_all(chunk)
                        .map_err(io_fail(format!("writing `{raw}`")))
                })?;
                if written != size {
                    return Err(Fail::Rule(raw, Rule::Truncated));
                }
                // Created with its final mode; only bits the umask removed
                // need a second call.
                let wanted = mode & 0o777;
                if wanted & process_umask() != 0 {
                    rustix::fs::fchmod(&file, Mode::from_raw_mode(wanted))
                        .map_err(|e| Fail::Io(format!("setting the mode of `{raw}`"), e.into()))?;
                }
            }
            T::Symlink => {
                let target = link.ok_or_else(|| Fail::Rule(raw.clone(), Rule::BadSymlinkTarget))?;
                if target.is_empty() || target.contains(&0) {
                    return Err(Fail::Rule(raw, Rule::BadSymlinkTarget));
                }
                if target.len() > MAX_NAME_BYTES {
                    return Err(Fail::Rule(raw, Rule::NameTooLong(MAX_NAME_BYTES)));
                }
                let target = if relocated {
                    relocate_target(&target, &comps)
                } else {
                    target
                };
                let dir = self
                    .walker
                    .dir(parent)
                    .map_err(io_fail(format!("opening the parent of `{raw}`")))?;
                rustix::fs::symlinkat(target.as_slice(), dir, name)
                    .map_err(|e| Fail::Io(format!("creating symlink `{raw}`"), e.into()))?;
            }
            T::Link => {
                let target_raw = link
                    .ok_or_else(|| Fail::Rule(raw.clone(), Rule::HardLinkTarget(String::new())))?;
                let shown = shown(&target_raw);
                let target = validate_name(&target_raw, self.limits.max_depth)
                    .map(merge_usr)
                    .map_err(|_| Fail::Rule(raw.clone(), Rule::HardLinkTarget(shown.clone())))?;
                let target_path = target.join("/");
                let ok = !target.is_empty()
                    && self
                        .nodes
                        .get(&target_path)
                        .is_some_and(|n| n.kind == Kind::File && n.entry.is_some());
                if !ok {
                    return Err(Fail::Rule(raw, Rule::HardLinkTarget(shown)));
                }
                let (tparent, tname) = target.split_at(target.len() - 1);
                let tdir = self
                    .walker
                    .open_path(tparent)
                    .map_err(io_fail(format!("opening the parent of `{shown}`")))?;
                let dir = self
                    .walker
                    .dir(parent)
                    .map_err(io_fail(format!("opening the parent of `{raw}`")))?;
                rustix::fs::linkat(&tdir, tname[0].as_str(), dir, name, AtFlags::empty()).map_err(
                    |e| Fail::Io(format!("hard-linking `{raw}` to `{shown}`"), e.into()),
                )?;
            }
            _ => unreachable!("filtered above"),
        }
        self.nodes.insert(
            path,
            Node {
                kind: new_kind,
                entry: Some(raw),
            },
        );
        Ok(())
    }

    /// Every ancestor must be a directory of ours (or not exist yet, in which
    /// case it is implied and created as 0755).
    fn check_parents(&mut self, raw: &str, comps: &[String]) -> Result<(), Fail> {
        let mut prefix = String::new();
        for comp in &comps[..comps.len() - 1] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(comp);
            match self.nodes.get(&prefix) {
                Some(Node {
                    kind: Kind::Dir, ..
                }) => {}
                Some(Node {
                    kind: Kind::Symlink,
                    ..
                }) => {
                    return Err(Fail::Rule(raw.into(), Rule::UnderSymlink(prefix)));
                }
                Some(Node {
                    kind: Kind::File, ..
                }) => {
                    return Err(Fail::Rule(raw.into(), Rule::UnderNonDirectory(prefix)));
                }
                None => {
                    self.claim_folded(raw, &prefix)?;
                    self.nodes.insert(
                        prefix.clone(),
                        Node {
                            kind: Kind::Dir,
                            entry: None,
                        },
                    );
                    if 0o755 & process_umask() != 0 {
                        self.dir_modes.push((prefix.clone(), 0o755));
                    }
                }
            }
        }
        Ok(())
    }

    fn claim_folded(&mut self, raw: &str, path: &str) -> Result<(), Fail> {
        let key: String = if self.limits.allow_case_only_collisions {
            path.nfc().collect()
        } else {
            path.nfc().flat_map(char::to_lowercase).collect()
        };
        match self.folded.get(&key) {
            Some(other) if other != path => {
                Err(Fail::Rule(raw.into(), Rule::NameCollision(other.clone())))
            }
            Some(_) => Ok(()),
            None => {
                self.folded.insert(key, path.to_string());
                Ok(())
            }
        }
    }

    /// Writes the metadata and applies directory modes (deepest first, so a
    /// read-only directory never blocks its children).
    fn finish(mut self, control: Vec<(String, Vec<u8>)>) -> Result<Summary, Fail> {
        let meta: Vec<String> = META_DIR.split('/').map(str::to_string).collect();
        let dir = self
            .walker
            .dir(&meta)
            .map_err(io_fail(format!("creating {META_DIR}")))?;
        let mut control_text = None;
        for (name, data) in &control {
            write_new(dir, name, data).map_err(io_fail(format!("writing {META_DIR}/{name}")))?;
            if name == "control" {
                control_text = Some(String::from_utf8_lossy(data).into_owned());
            }
        }
        if !self.setuid.is_empty() {
            let text: String = self
                .setuid
                .iter()
                .map(|(mode, owner, path)| format!("{mode:04o} {owner} {path}\n"))
                .collect();
            write_new(dir, "setuid", text.as_bytes())
                .map_err(io_fail(format!("writing {META_DIR}/setuid")))?;
        }
        let mut modes = std::mem::take(&mut self.dir_modes);
        modes.sort_by_key(|(p, _)| std::cmp::Reverse(p.matches('/').count()));
        for (path, mode) in modes {
            let comps: Vec<String> = path.split('/').map(str::to_string).collect();
            let fd = self
                .walker
                .open_path(&comps)
                .map_err(io_fail(format!("opening `{path}`")))?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                .map_err(|e| Fail::Io(format!("setting the mode of `{path}`"), e.into()))?;
        }
        Ok(Summary {
            entries: self.entries,
            bytes: self.bytes,
            control: control_text,
            setuid: self.setuid,
        })
    }
}

/// Reads the current entry's data to its end, handing each chunk to
/// `sink`; returns how many bytes there were.
fn read_entry_data(
    tar: &mut TarStream<'_>,
    raw: &str,
    buf: &mut [u8],
    mut sink: impl FnMut(&[u8]) -> Result<(), Fail>,
) -> Result<u64, Fail> {
    let mut total = 0u64;
    loop {
        let n = match tar.read_data(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(stream_error(raw, e)),
        };
        sink(&buf[..n])?;
        total += n as u64;
    }
}
