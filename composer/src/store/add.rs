//! Adding objects: temp build dirs, [`Store::add`] and [`Store::add_path`].
//!
//! The protocol (each step durable before the next, so a crash at any point
//! leaves nothing half-valid):
//! 1. the builder writes `<tmp>/out`;
//! 2. one walk canonicalizes modes, hashes and scans references (fault
//!    point `after-hash`); one `syncfs` makes the output durable (fault
//!    point `after-fsync`);
//! 3. under the shared GC lock and the object's exclusive lock: if the path
//!    is already valid, the temp dir is dropped; a leftover at the final path
//!    that is not registered is removed; `out` is renamed into place (fault
//!    point `after-rename`), its top directory made read-only, the store
//!    directory fsynced;
//! 4. one transaction registers the object and its references (fault points
//!    `before-commit`, `after-commit`), and the session records it as a
//!    temporary root.

use super::canon::{self, Mode};
use super::db::{self, NewObject};
use super::error::{Result, StoreError};
use super::lock;
use super::path::{StorePath, validate_name};
use super::remove::remove_tree;
use super::{Store, canon::MAX_DEPTH};
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A fresh directory under `.imago/tmp/` for one build, removed on drop.
/// The builder writes its output at [`TempBuildDir::out`].
#[derive(Debug)]
pub struct TempBuildDir {
    dir: PathBuf,
}

impl TempBuildDir {
    /// Where the builder writes its single output (does not exist yet).
    pub fn out(&self) -> PathBuf {
        self.dir.join("out")
    }

    /// The temp directory itself (the builder may use it for scratch files).
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TempBuildDir {
    fn drop(&mut self) {
        // Best effort; a failure here is collected at the next open.
        let _ = remove_tree(&self.dir);
    }
}

impl Store {
    /// A fresh temporary directory inside the store for one build.
    pub fn temp_build_dir(&self) -> Result<TempBuildDir> {
        Ok(TempBuildDir {
            dir: self.session.new_temp_dir()?,
        })
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
        tmp: TempBuildDir,
        name: &str,
        candidate_refs: &[StorePath],
        deriver: Option<&str>,
    ) -> Result<StorePath> {
        validate_name(name).map_err(|reason| {
            StoreError::InvalidPath(super::path::StorePathError {
                text: name.chars().take(300).collect(),
                reason,
            })
        })?;
        let out = tmp.out();
        let hashed = canon::hash_tree(&out, Mode::Canonicalize, candidate_refs)?;
        self.fault.hit("after-hash")?;
        canon::sync_filesystem(&out)?;
        self.fault.hit("after-fsync")?;
        let path = StorePath::from_digest(&hashed.digest, name)?;
        let obj = NewObject {
            path: &path,
            digest: hashed.digest,
            size: hashed.nar_size,
            references: &hashed.references,
            deriver,
        };
        self.move_into_place(&out, &[obj])?;
        drop(tmp);
        Ok(path)
    }

    /// Renames each staged object to its final path and registers them all
    /// in one transaction (used by [`Store::add`] and closure import). Every
    /// reference must be valid or among `objects`.
    pub(crate) fn move_into_place_many(&self, staged: &[(PathBuf, NewObject<'_>)]) -> Result<()> {
        let _gc = lock::shared(&self.gc_lock_path())?;
        {
            let conn = self.conn();
            let new: BTreeSet<&StorePath> = staged.iter().map(|(_, o)| o.path).collect();
            for (_, o) in staged {
                for r in o.references {
                    if !new.contains(r)
                        && !db::is_valid(&conn, r).map_err(db::db_err(&self.db_path))?
                    {
                        return Err(StoreError::NotValid { path: r.clone() });
                    }
                }
            }
        }
        // Object locks in path order, so concurrent imports cannot deadlock.
        let mut lock_order: Vec<&StorePath> = staged.iter().map(|(_, o)| o.path).collect();
        lock_order.sort();
        lock_order.dedup();
        let mut locks = Vec::with_capacity(lock_order.len());
        for p in lock_order {
            let lock_path = self.state.join("locks/objects").join(format!("{p}.lock"));
            locks.push(lock::exclusive(&lock_path)?);
        }
        let mut placed = Vec::new();
        let mut committed = false;
        let result = self.place_and_register(staged, &mut placed, &mut committed);
        if result.is_err() && !committed {
            // Nothing half-done stays behind: unregistered objects go.
            for dest in &placed {
                let _ = remove_tree(dest);
            }
        }
        drop(locks);
        result
    }

    fn place_and_register(
        &self,
        staged: &[(PathBuf, NewObject<'_>)],
        placed: &mut Vec<PathBuf>,
        committed: &mut bool,
    ) -> Result<()> {
        let mut to_register = Vec::new();
        for (src, o) in staged {
            let valid = db::is_valid(&self.conn(), o.path).map_err(db::db_err(&self.db_path))?;
            if valid {
                continue;
            }
            let dest = self.physical(o.path);
            // A leftover of a crashed add (never a valid object: checked
            // above, under the object's lock). Removed, never followed.
            remove_tree(&dest)?;
            fs::rename(src, &dest)
                .map_err(StoreError::io("moving object into the store", &dest))?;
            placed.push(dest.clone());
            self.fault.hit("after-rename")?;
            canon::finish_top(&dest)?;
            to_register.push(o.clone());
        }
        canon::fsync_dir(&self.dir)?;
        for (_, o) in staged {
            self.session.add_root(o.path)?;
        }
        self.fault.hit("before-commit")?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        {
            let mut conn = self.conn();
            let tx = db::write_tx(&mut conn).map_err(db::db_err(&self.db_path))?;
            db::register(&tx, &to_register, now).map_err(db::db_err(&self.db_path))?;
            tx.commit().map_err(db::db_err(&self.db_path))?;
        }
        *committed = true;
        self.fault.hit("after-commit")?;
        Ok(())
    }

    fn move_into_place(&self, out: &Path, objects: &[NewObject<'_>]) -> Result<()> {
        let staged: Vec<(PathBuf, NewObject<'_>)> = objects
            .iter()
            .map(|o| (out.to_owned(), o.clone()))
            .collect();
        self.move_into_place_many(&staged)
    }

    /// Copies a local file, symlink or directory tree into the store as
    /// `<hash>-<name>`. Symlinks are copied as symlinks, never followed;
    /// only the executable bit of files is kept.
    pub fn add_path(&self, src: &Path, name: &str) -> Result<StorePath> {
        let tmp = self.temp_build_dir()?;
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
