//! Reading closure archives into a store, trusting nothing.
//!
//! Each entry's path is split into components and checked (no empty, `.`,
//! `..`, NUL; the first component must be the manifest's current or next
//! object, in order). Entries are created only inside a fresh temp dir, each
//! with `O_EXCL` (never overwriting), and only below a directory that this
//! same archive created — a symlink is never a parent, so nothing can be
//! written through one. Duplicates, hard links and special files are
//! refused. Caps on total data bytes and entry count (PAX sizes count)
//! stop decompression bombs.
//!
//! Names in one directory that differ only in Unicode normalization (NFC)
//! are refused: they collide on file systems that normalize names, as in
//! the .deb path. Names that differ only in case are *kept distinct*: real
//! objects need them (Linux ships `xt_TCPMSS.ko` beside `xt_tcpmss.ko`),
//! and on a case-folding file system `O_EXCL` turns the collision into an
//! error instead of an overwrite.

use super::tar::{Header, Kind, Reader};
use super::writer::{self, FileWriter};
use super::{ArchiveError, MANIFEST_NAME, MANIFEST_VERSION, Manifest, ManifestObject};
use crate::store::canon::{self, MAX_DEPTH, Mode};
use crate::store::db::NewObject;
use crate::store::error::{Result, StoreError};
use crate::store::path::StorePath;
use crate::store::{Blake3Digest, Store, TempOutput};
use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// Caps that bound what one import may unpack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportLimits {
    /// Total bytes of file data (the manifest included).
    pub max_bytes: u64,
    /// Number of tar entries.
    pub max_entries: u64,
    /// Size of the manifest.
    pub max_manifest_bytes: u64,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_bytes: 64 << 30,
            max_entries: 4_000_000,
            max_manifest_bytes: 64 << 20,
        }
    }
}

fn bad_entry(path: &[u8], reason: impl Into<String>) -> StoreError {
    StoreError::Archive(ArchiveError::BadEntry {
        path: String::from_utf8_lossy(path).into_owned(),
        reason: reason.into(),
    })
}

/// One object being unpacked.
struct Staged {
    root: PathBuf,
    /// Relative path (components joined by `/`; "" is the root) → kind.
    kinds: HashMap<Vec<u8>, Kind>,
    /// NFC form of each relative path (UTF-8 names only) → the path as
    /// written, to refuse names that differ only in normalization.
    normalized: HashMap<String, Vec<u8>>,
}

impl Store {
    /// Imports a closure archive with the default [`ImportLimits`]; returns
    /// the objects it holds, in dependency order.
    pub fn import(&self, input: impl Read) -> Result<Vec<StorePath>> {
        self.import_with_limits(input, ImportLimits::default())
    }

    /// Imports a closure archive. Nothing is registered unless every object
    /// verified against the manifest.
    pub fn import_with_limits(
        &self,
        input: impl Read,
        limits: ImportLimits,
    ) -> Result<Vec<StorePath>> {
        let verified = self.unpack_verified(input, limits, &BTreeSet::new())?;
        let paths = verified
            .objects
            .iter()
            .map(|(_, o)| o.path.clone())
            .collect();
        self.commit_wait(verified.objects, None, false)?;
        drop(verified.tmp);
        Ok(paths)
    }

    /// Unpacks every object of a closure archive into a temp dir and
    /// verifies it against the manifest (digest, size, hash part,
    /// references), then syncs the file system. Registers nothing: the
    /// caller moves the objects into place. A reference outside the archive
    /// must be valid in the store or among `pending` (objects staged by
    /// earlier archives of the same [`ImportBatch`]).
    pub(crate) fn unpack_verified(
        &self,
        input: impl Read,
        limits: ImportLimits,
        pending: &BTreeSet<StorePath>,
    ) -> Result<Verified> {
        let verified = self.unpack_unsynced(input, limits, pending)?;
        canon::sync_filesystem(&verified.tmp.out())?;
        Ok(verified)
    }

    /// [`Store::unpack_verified`] without the sync, which the caller owes
    /// before anything of it is registered.
    fn unpack_unsynced(
        &self,
        input: impl Read,
        limits: ImportLimits,
        pending: &BTreeSet<StorePath>,
    ) -> Result<Verified> {
        let read_err = |e| StoreError::Archive(ArchiveError::Read { source: e });
        let decoder = zstd::Decoder::new(input).map_err(read_err)?;
        let mut tar = Reader::new(decoder);
        let manifest = read_manifest(&mut tar, &limits)?;
        let tmp = self.temp_output()?;
        let staging = tmp.out();
        fs::create_dir(&staging).map_err(StoreError::io("creating staging directory", &staging))?;
        // Dropped before `tmp` on every early return: nothing is written
        // into the directory once it is being removed.
        let files = FileWriter::start();
        let mut staged: Vec<Staged> = Vec::with_capacity(manifest.objects.len());
        let mut entries: u64 = 0;
        let mut bytes: u64 = 0;
        while let Some(h) = tar.next_entry().map_err(StoreError::Archive)? {
            entries += 1;
            if entries > limits.max_entries {
                return Err(StoreError::Archive(ArchiveError::LimitExceeded {
                    what: "entries",
                    limit: limits.max_entries,
                }));
            }
            bytes = bytes.saturating_add(h.size);
            if bytes > limits.max_bytes {
                return Err(StoreError::Archive(ArchiveError::LimitExceeded {
                    what: "bytes",
                    limit: limits.max_bytes,
                }));
            }
            unpack_entry(&mut tar, &h, &manifest, &mut staged, &staging, &files)?;
        }
        files.finish()?;
        if staged.len() != manifest.objects.len() {
            let missing = &manifest.objects[staged.len()].path;
            return Err(StoreError::Archive(ArchiveError::BadObject {
                path: missing.clone(),
                reason: "listed in the manifest but missing from the archive".to_owned(),
            }));
        }
        // Verify everything before registering anything.
        let in_archive: BTreeSet<StorePath> =
            manifest.objects.iter().map(|o| o.path.clone()).collect();
        let mut hashed = Vec::with_capacity(staged.len());
        for (obj, st) in manifest.objects.iter().zip(&staged) {
            let mut candidates: Vec<StorePath> = in_archive.iter().cloned().collect();
            candidates.extend(obj.references.iter().cloned());
            candidates.retain(|c| c != &obj.path);
            let h = canon::hash_tree(&st.root, Mode::Canonicalize, &candidates).map_err(|e| {
                StoreError::Archive(ArchiveError::BadObject {
                    path: obj.path.clone(),
                    reason: format!("{e}"),
                })
            })?;
            if h.digest != obj.digest {
                return Err(StoreError::Archive(ArchiveError::HashMismatch {
                    path: obj.path.clone(),
                    expected: obj.digest,
                    found: h.digest,
                }));
            }
            if StorePath::from_digest(&h.digest, obj.path.name())? != obj.path {
                return Err(StoreError::Archive(ArchiveError::BadObject {
                    path: obj.path.clone(),
                    reason: format!("its hash part does not match its digest {}", h.digest),
                }));
            }
            if h.references != obj.references {
                let list = |s: &BTreeSet<StorePath>| {
                    s.iter()
                        .map(StorePath::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(StoreError::Archive(ArchiveError::LyingReferences {
                    path: obj.path.clone(),
                    claimed: list(&obj.references),
                    found: list(&h.references),
                }));
            }
            if h.nar_size != obj.size {
                return Err(StoreError::Archive(ArchiveError::BadObject {
                    path: obj.path.clone(),
                    reason: format!(
                        "size {} differs from the manifest's {}",
                        h.nar_size, obj.size
                    ),
                }));
            }
            for r in &obj.references {
                if !in_archive.contains(r) && !pending.contains(r) && !self.is_valid(r)? {
                    return Err(StoreError::Archive(ArchiveError::BadObject {
                        path: obj.path.clone(),
                        reason: format!(
                            "refers to {r}, which is neither in the archive nor in this store"
                        ),
                    }));
                }
            }
            hashed.push(h);
        }
        let objects = manifest
            .objects
            .into_iter()
            .zip(staged)
            .map(|(o, st)| {
                (
                    st.root,
                    NewObject {
                        path: o.path,
                        digest: o.digest,
                        size: o.size,
                        references: o.references,
                        deriver: o.deriver,
                    },
                )
            })
            .collect();
        Ok(Verified { tmp, objects })
    }
}

/// Several closure archives imported as one: each is unpacked and verified
/// as [`Store::import`] does (an archive may refer to objects of the
/// archives staged before it), and all their objects are made durable by
/// one sync and registered in one transaction by [`Store::commit_import`],
/// or none is.
#[derive(Default)]
pub struct ImportBatch {
    parts: Vec<Verified>,
    staged: BTreeSet<StorePath>,
}

impl ImportBatch {
    pub fn new() -> ImportBatch {
        ImportBatch::default()
    }

    /// Whether `path` is staged in this batch.
    pub fn contains(&self, path: &StorePath) -> bool {
        self.staged.contains(path)
    }
}

/// One archive unpacked and verified for an [`ImportBatch`]
/// ([`Store::unpack_archive`]), not in it yet; removed when dropped.
pub struct UnpackedArchive(Verified);

impl UnpackedArchive {
    /// The manifest entries of the objects it holds.
    pub fn objects(&self) -> Vec<ManifestObject> {
        self.0
            .objects
            .iter()
            .map(|(_, o)| ManifestObject {
                path: o.path.clone(),
                digest: o.digest,
                size: o.size,
                references: o.references.clone(),
                deriver: o.deriver.clone(),
            })
            .collect()
    }
}

impl ImportBatch {
    /// Adds an archive unpacked for it; refuses an object staged twice.
    pub fn add(&mut self, part: UnpackedArchive) -> Result<()> {
        let objects = &part.0.objects;
        if let Some((_, o)) = objects.iter().find(|(_, o)| self.staged.contains(&o.path)) {
            return Err(StoreError::Archive(ArchiveError::BadObject {
                path: o.path.clone(),
                reason: "staged twice in one import".to_owned(),
            }));
        }
        self.staged
            .extend(objects.iter().map(|(_, o)| o.path.clone()));
        self.parts.push(part.0);
        Ok(())
    }
}

impl Store {
    /// Unpacks and verifies one archive as [`Store::import`] does, for an
    /// [`ImportBatch`] to [add](ImportBatch::add), changing no batch (so
    /// that several archives can be unpacked at once). A reference outside
    /// the archive must be valid in the store or among `pending`: objects
    /// of other archives of the same batch, which is then registered only
    /// if they all verify.
    pub fn unpack_archive(
        &self,
        input: impl Read,
        limits: ImportLimits,
        pending: &BTreeSet<StorePath>,
    ) -> Result<UnpackedArchive> {
        self.unpack_unsynced(input, limits, pending)
            .map(UnpackedArchive)
    }

    /// Registers every object of `batch` in one transaction; returns them in
    /// the order they were staged.
    pub fn commit_import(&self, batch: ImportBatch) -> Result<Vec<StorePath>> {
        self.commit_import_as(batch, None)
    }

    /// [`Store::commit_import`], recording in the same transaction that the
    /// step `key` built `output` (an object of `batch`, or one valid
    /// already: then the build-cache entry is recorded alone). `output` is
    /// protected from GC for the life of this `Store`.
    pub fn commit_import_step(
        &self,
        batch: ImportBatch,
        key: &Blake3Digest,
        output: &StorePath,
    ) -> Result<Vec<StorePath>> {
        if batch.contains(output) {
            return self.commit_import_as(batch, Some((key, output)));
        }
        let paths = self.commit_import_as(batch, None)?;
        self.add_temp_root(output)?;
        self.cache_put(key, output)?;
        Ok(paths)
    }

    fn commit_import_as(
        &self,
        batch: ImportBatch,
        step: Option<(&Blake3Digest, &StorePath)>,
    ) -> Result<Vec<StorePath>> {
        let mut objects = Vec::new();
        let mut guards = Vec::with_capacity(batch.parts.len());
        for part in batch.parts {
            objects.extend(part.objects);
            guards.push(part.tmp);
        }
        let paths = objects.iter().map(|(_, o)| o.path.clone()).collect();
        // One sync for every archive of the batch (`syncfs` writes the
        // whole file system back, whichever staging directory names it).
        if let Some(guard) = guards.first() {
            canon::sync_filesystem(&guard.out())?;
        }
        // The build-cache entry goes to a request's first object.
        let cache_key = step.map(|(key, output)| {
            if let Some(i) = objects.iter().position(|(_, o)| &o.path == output) {
                let first = objects.remove(i);
                objects.insert(0, first);
            }
            *key
        });
        if !objects.is_empty() {
            self.commit_wait(objects, cache_key, false)?;
        }
        drop(guards);
        Ok(paths)
    }
}

/// The verified objects of an archive, staged in `tmp` (removed on drop),
/// in dependency order.
pub(crate) struct Verified {
    pub tmp: TempOutput,
    pub objects: Vec<(PathBuf, NewObject)>,
}

fn read_manifest<R: Read>(tar: &mut Reader<R>, limits: &ImportLimits) -> Result<Manifest> {
    let bad = |reason: String| StoreError::Archive(ArchiveError::BadManifest { reason });
    let h = tar
        .next_entry()
        .map_err(StoreError::Archive)?
        .ok_or_else(|| bad("the archive is empty".to_owned()))?;
    if h.path != MANIFEST_NAME.as_bytes() || !matches!(h.kind, Kind::File { .. }) {
        return Err(bad(format!(
            "the first entry is `{}`, expected the file `{MANIFEST_NAME}`",
            String::from_utf8_lossy(&h.path)
        )));
    }
    if h.size > limits.max_manifest_bytes {
        return Err(StoreError::Archive(ArchiveError::LimitExceeded {
            what: "manifest bytes",
            limit: limits.max_manifest_bytes,
        }));
    }
    let mut json = Vec::with_capacity(h.size as usize);
    tar.copy_data(&mut json).map_err(StoreError::Archive)?;
    let manifest: Manifest = serde_json::from_slice(&json).map_err(|e| bad(format!("{e}")))?;
    if manifest.version != MANIFEST_VERSION {
        return Err(bad(format!(
            "version {} (this imago reads version {MANIFEST_VERSION})",
            manifest.version
        )));
    }
    let mut seen = BTreeSet::new();
    for o in &manifest.objects {
        if o.references.contains(&o.path) {
            return Err(bad(format!("{} lists itself as a reference", o.path)));
        }
        if !seen.insert(o.path.clone()) {
            return Err(bad(format!("{} is listed twice", o.path)));
        }
    }
    // References to objects later in the archive break dependency order.
    let all: BTreeSet<&StorePath> = manifest.objects.iter().map(|o| &o.path).collect();
    let mut before = BTreeSet::new();
    for o in &manifest.objects {
        for r in &o.references {
            if all.contains(r) && !before.contains(r) {
                return Err(bad(format!(
                    "{} is listed before its reference {r} (not in dependency order)",
                    o.path
                )));
            }
        }
        before.insert(&o.path);
    }
    Ok(manifest)
}

fn unpack_entry<R: Read>(
    tar: &mut Reader<R>,
    h: &Header,
    manifest: &Manifest,
    staged: &mut Vec<Staged>,
    tmp: &Path,
    files: &FileWriter,
) -> Result<()> {
    let mut path: &[u8] = &h.path;
    if h.kind == Kind::Dir {
        path = path.strip_suffix(b"/").unwrap_or(path);
    }
    if path.first() == Some(&b'/') {
        return Err(bad_entry(&h.path, "absolute paths are not allowed"));
    }
    let components: Vec<&[u8]> = path.split(|b| *b == b'/').collect();
    for c in &components {
        let reason = if c.is_empty() {
            Some("empty path component")
        } else if *c == b"." || *c == b".." {
            Some("`.` and `..` components are not allowed")
        } else if c.contains(&0) {
            Some("NUL in a name")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(bad_entry(&h.path, reason));
        }
    }
    if components.len() > MAX_DEPTH {
        return Err(bad_entry(
            &h.path,
            format!("nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    let object = components[0];
    let is_current = staged
        .last()
        .is_some_and(|_| manifest.objects[staged.len() - 1].path.as_str().as_bytes() == object);
    if !is_current {
        // The start of the next object: its root entry.
        let Some(next) = manifest.objects.get(staged.len()) else {
            return Err(bad_entry(&h.path, "not part of any object in the manifest"));
        };
        if next.path.as_str().as_bytes() != object {
            return Err(bad_entry(
                &h.path,
                format!("expected the next object in manifest order, {}", next.path),
            ));
        }
        if components.len() != 1 {
            return Err(bad_entry(&h.path, "appears before its object's root entry"));
        }
        let root = tmp.join(staged.len().to_string());
        create(tar, h, &root, files)?;
        staged.push(Staged {
            root,
            kinds: HashMap::from([(Vec::new(), h.kind)]),
            normalized: HashMap::new(),
        });
        return Ok(());
    }
    let st = staged
        .last_mut()
        .ok_or_else(|| bad_entry(&h.path, "not part of any object"))?;
    if components.len() == 1 {
        return Err(bad_entry(
            &h.path,
            "duplicate entry (the object's root appears twice)",
        ));
    }
    let rel = components[1..].join(&b'/');
    let parent_rel = components[1..components.len() - 1].join(&b'/');
    match st.kinds.get(&parent_rel) {
        Some(Kind::Dir) => {}
        Some(_) => {
            return Err(bad_entry(
                &h.path,
                "its parent is not a directory (a symlink or file is never a parent)",
            ));
        }
        None => {
            return Err(bad_entry(
                &h.path,
                "its parent directory does not precede it",
            ));
        }
    }
    if st.kinds.contains_key(&rel) {
        return Err(bad_entry(&h.path, "duplicate entry"));
    }
    if let Ok(text) = std::str::from_utf8(&rel) {
        use unicode_normalization::UnicodeNormalization;
        let key: String = text.nfc().collect();
        if let Some(first) = st.normalized.get(&key) {
            return Err(bad_entry(
                &h.path,
                format!(
                    "differs from `{}` only in Unicode normalization (the names collide on file systems that normalize)",
                    String::from_utf8_lossy(first)
                ),
            ));
        }
        st.normalized.insert(key, rel.clone());
    }
    let target = st.root.join(OsStr::from_bytes(&rel));
    create(tar, h, &target, files)?;
    st.kinds.insert(rel, h.kind);
    Ok(())
}

/// Creates one entry at `target` (whose parent is a directory this import
/// created), never overwriting.
fn create<R: Read>(
    tar: &mut Reader<R>,
    h: &Header,
    target: &Path,
    files: &FileWriter,
) -> Result<()> {
    match h.kind {
        Kind::Dir => fs::create_dir(target).map_err(StoreError::io("creating directory", target)),
        Kind::Symlink => {
            if h.link.is_empty() || h.link.contains(&0) {
                return Err(bad_entry(&h.path, "empty or NUL-containing symlink target"));
            }
            symlink(OsStr::from_bytes(&h.link), target)
                .map_err(StoreError::io("creating symlink", target))
        }
        Kind::File { executable } if h.size <= writer::HANDED_OVER => {
            let mut data = files.buffer();
            tar.read_data(&mut data).map_err(StoreError::Archive)?;
            files.write(target, executable, data)
        }
        Kind::File { executable } => {
            let mut f = writer::create_file(target, executable)?;
            tar.copy_data(&mut f).map_err(|e| match e {
                ArchiveError::Write { source } => StoreError::io("writing file", target)(source),
                other => StoreError::Archive(other),
            })?;
            Ok(())
        }
    }
}
