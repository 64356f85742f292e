//! Adding objects: temp build dirs, [`Store::add`], [`Store::add_then`] and
//! [`Store::add_path`].
//!
//! The protocol (nothing is registered before it is durable, so a crash at
//! any point leaves nothing half-valid):
//! 1. the builder writes its output at a fresh temporary path;
//! 2. one walk canonicalizes modes, hashes and scans references (fault
//!    point `after-hash`);
//! 3. the output is queued for the group commit (`commit.rs`); under the
//!    shared GC lock and the store's commit lock: if the path is already
//!    valid, the temporary output is dropped; a leftover at the final path
//!    that is not registered is removed; the output is renamed into place
//!    (fault point `after-rename`) and its top directory made read-only;
//!    one `syncfs` per batch makes the files and renames durable (fault
//!    point `after-fsync`);
//! 4. one transaction registers the batch's objects, their references and
//!    build-cache entries (fault points `before-commit`, `after-commit`),
//!    and the session records them as temporary roots.

use super::canon::{self, Mode};
use super::commit::Request;
use super::db::NewObject;
use super::digest::Blake3Digest;
use super::error::{Result, StoreError};
use super::path::{StorePath, validate_name};
use super::temp::TempOutput;
use super::{Store, canon::MAX_DEPTH};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::Path;

/// What [`Store::add_then`] adds: the object's name, the store paths it
/// may refer to, free text saying what built it, and the build-cache key
/// to record for it in the same transaction, with the step's inputs.
#[derive(Debug, Clone, Copy)]
pub struct AddSpec<'a> {
    pub name: &'a str,
    pub candidate_refs: &'a [StorePath],
    pub deriver: Option<&'a str>,
    pub cache_key: Option<Blake3Digest>,
    /// The outputs of the step's inputs (recorded with `cache_key`).
    pub step_inputs: &'a [StorePath],
}

/// What [`Store::commit_prepared`] calls once an output is registered or
/// has failed.
pub type AddDone = Box<dyn FnOnce(Result<StorePath>) + Send>;

/// An output canonicalized and hashed by [`Store::prepare`], waiting for
/// [`Store::commit_prepared`]. Dropping it removes the output.
#[derive(Debug)]
pub struct Prepared {
    tmp: TempOutput,
    object: NewObject,
    cache_key: Option<Blake3Digest>,
    step_inputs: Vec<StorePath>,
}

impl Store {
    /// A fresh temporary path inside the store for one build's output.
    pub fn temp_output(&self) -> Result<TempOutput> {
        Ok(TempOutput::at(self.session.new_temp_path()?))
    }

    /// Adds the output at `tmp.out()` as `<hash>-<name>` and returns its path.
    ///
    /// `candidate_refs` are the store paths the output may refer to (the
    /// step's inputs); those whose hash occurs in a file's contents or a
    /// symlink's target become its references, and must be valid. `deriver`
    /// is free text saying what built it. The result is a temporary root of
    /// this `Store` (GC keeps it while the `Store` is open).
    pub fn add(
        &self,
        tmp: TempOutput,
        name: &str,
        candidate_refs: &[StorePath],
        deriver: Option<&str>,
    ) -> Result<StorePath> {
        let spec = AddSpec {
            name,
            candidate_refs,
            deriver,
            cache_key: None,
            step_inputs: &[],
        };
        super::commit::wait_for(|done| self.add_then(tmp, &spec, done))
    }

    /// Adds like [`Store::add`], but hands the result to `done` instead of
    /// waiting for it: the output is hashed on this thread, then queued for
    /// the next group commit (see `commit.rs`), which registers it together
    /// with its build-cache entry `spec.cache_key`. `done` runs once the
    /// object is registered or has failed, on whichever thread commits it
    /// (possibly this one, before `add_then` returns); it must not wait for
    /// another add of this `Store`. Whatever must outlive the registration,
    /// such as a [`super::StepLock`], belongs in `done`.
    pub fn add_then(
        &self,
        tmp: TempOutput,
        spec: &AddSpec<'_>,
        done: impl FnOnce(Result<StorePath>) + Send + 'static,
    ) {
        match self.prepare(tmp, spec) {
            Ok(prepared) => self.commit_prepared(vec![(prepared, Box::new(done))]),
            Err(e) => done(Err(e)),
        }
    }

    /// The first half of [`Store::add_then`]: canonicalizes, hashes and
    /// scans the output on this thread. The temp dir goes on failure.
    pub fn prepare(&self, tmp: TempOutput, spec: &AddSpec<'_>) -> Result<Prepared> {
        let object = self.hash_output(&tmp, spec)?;
        Ok(Prepared {
            tmp,
            object,
            cache_key: spec.cache_key,
            step_inputs: spec.step_inputs.to_vec(),
        })
    }

    /// The second half of [`Store::add_then`]: queues prepared outputs
    /// together for the group commit, committing on this thread if no other
    /// is. A caller that must not wait for syncs (the scheduler's workers)
    /// hands its outputs to one thread that calls this.
    pub fn commit_prepared(&self, items: Vec<(Prepared, AddDone)>) {
        let requests = items
            .into_iter()
            .map(|(prepared, done)| {
                let Prepared {
                    tmp,
                    object,
                    cache_key,
                    step_inputs,
                } = prepared;
                let path = object.path.clone();
                Request {
                    objects: vec![(tmp.out(), object)],
                    cache_key,
                    step_inputs,
                    needs_sync: true,
                    staged: Some(tmp),
                    done: Box::new(move |r| done(r.map(|()| path))),
                }
            })
            .collect();
        self.submit_all(requests);
    }

    /// Canonicalizes, hashes and scans the output (fault point `after-hash`).
    fn hash_output(&self, tmp: &TempOutput, spec: &AddSpec<'_>) -> Result<NewObject> {
        validate_name(spec.name).map_err(|reason| {
            StoreError::InvalidPath(super::path::StorePathError {
                text: spec.name.chars().take(300).collect(),
                reason,
            })
        })?;
        let hashed = canon::hash_tree(&tmp.out(), Mode::Canonicalize, spec.candidate_refs)?;
        self.fault.hit("after-hash")?;
        Ok(NewObject {
            path: StorePath::from_digest(&hashed.digest, spec.name)?,
            digest: hashed.digest,
            size: hashed.nar_size,
            references: hashed.references,
            deriver: spec.deriver.map(str::to_owned),
        })
    }

    /// Copies a local file, symlink or directory tree into the store as
    /// `<hash>-<name>`. Symlinks are copied as symlinks, never followed;
    /// only the executable bit of files is kept.
    pub fn add_path(&self, src: &Path, name: &str) -> Result<StorePath> {
        let tmp = self.temp_output()?;
        copy_tree(src, &tmp.out(), 0)?;
        let deriver = format!("local path {}", src.display());
        self.add(tmp, name, &[], Some(&deriver))
    }
}

/// Copies `src` to `dst` without following symlinks.
fn copy_tree(src: &Path, dst: &Path, depth: usize) -> Result<()> {
    if depth >= MAX_DEPTH {
        return Err(StoreError::TooDeep {
            path: src.to_owned(),
            limit: MAX_DEPTH,
        });
    }
    let meta = fs::symlink_metadata(src).map_err(StoreError::io("reading metadata", src))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(src).map_err(StoreError::io("reading symlink", src))?;
        symlink(&target, dst).map_err(StoreError::io("creating symlink", dst))?;
    } else if ft.is_dir() {
        fs::create_dir(dst).map_err(StoreError::io("creating directory", dst))?;
        for entry in fs::read_dir(src).map_err(StoreError::io("reading directory", src))? {
            let entry = entry.map_err(StoreError::io("reading directory", src))?;
            canon::check_name(src, entry.file_name().as_encoded_bytes())?;
            copy_tree(&entry.path(), &dst.join(entry.file_name()), depth + 1)?;
        }
    } else if ft.is_file() {
        let mut from = OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(src)
            .map_err(StoreError::io("opening file", src))?;
        let fmeta = from
            .metadata()
            .map_err(StoreError::io("reading metadata", src))?;
        if fmeta.ino() != meta.ino() || !fmeta.is_file() {
            return Err(StoreError::io("copying", src)(io::Error::other(
                "the file was replaced while being copied",
            )));
        }
        let mode = if meta.mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        let mut to = File::create_new(dst).map_err(StoreError::io("creating file", dst))?;
        io::copy(&mut from, &mut to).map_err(StoreError::io("copying", src))?;
        to.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(StoreError::io("setting mode", dst))?;
    } else {
        // The hashing walk names the file type precisely.
        return canon::hash_tree(src, Mode::ReadOnly, &[]).map(|_| ());
    }
    Ok(())
}
