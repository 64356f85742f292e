//! Repair: restoring broken objects from a closure archive
//! (`imago store verify --repair --from ARCHIVE`) or from a rebuild
//! (`imago build --repair`, [`Store::repair_with`]).
//!
//! The archive is unpacked and verified exactly as an import is (nothing
//! from a failing stream is used). Each broken object that the archive holds
//! with the digest the database recorded is then put back, under the shared
//! GC lock and the commit lock: the good copy (already synced by the
//! unpacking) is exchanged
//! atomically with whatever is at the object's path (`renameat2` with
//! `RENAME_EXCHANGE`, or a plain rename when the object is missing), its top
//! made read-only, and the store directory fsynced. The object's path thus
//! always holds either the old broken copy or the complete new one, and the
//! database, which was right all along, is not touched. The broken copy ends
//! up in the temp dir and is deleted with it.

use super::archive::{ImportLimits, Verified};
use super::canon;
use super::digest::Blake3Digest;
use super::error::{Result, StoreError};
use super::lock;
use super::verify::VerifyReport;
use super::{Store, StorePath, TempOutput};
use rustix::fs::{CWD, RenameFlags, renameat_with};
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

impl Store {
    /// Verifies every object, and restores each broken one that the closure
    /// archive `input` holds. The archive is read only if something is
    /// broken; a hostile or corrupt archive is an error and restores nothing.
    pub fn repair_from(&self, input: impl Read) -> Result<VerifyReport> {
        let mut report = self.verify(false)?;
        if report.problems.is_empty() {
            return Ok(report);
        }
        let verified = self.unpack_verified(input, ImportLimits::default(), &Default::default())?;
        for problem in &mut report.problems {
            let note = match self.restore_one(&verified, &problem.path) {
                Ok(true) => {
                    problem.repaired = true;
                    "restored from the archive".to_owned()
                }
                Ok(false) => "not in the archive".to_owned(),
                Err(e) => format!("restoring failed: {e}"),
            };
            problem.note = Some(note);
        }
        Ok(report)
    }

    /// Puts the archive's copy of `path` in place; false if it has none.
    fn restore_one(&self, verified: &Verified, path: &StorePath) -> Result<bool> {
        let Some((src, object)) = verified.objects.iter().find(|(_, o)| &o.path == path) else {
            return Ok(false);
        };
        self.swap_in(src, path, object.digest)
    }

    /// Puts a rebuilt copy of the valid object `path` in place (`imago
    /// build --repair`): the output at `tmp.out()` is canonicalized and
    /// hashed, and must have exactly the digest recorded for `path` — a
    /// builder that gives different bytes this time repairs nothing (the
    /// error names both digests). The copy is synced before it replaces
    /// the broken one, as in [`Store::repair_from`].
    pub fn repair_with(
        &self,
        tmp: TempOutput,
        path: &StorePath,
        candidate_refs: &[StorePath],
    ) -> Result<()> {
        let info = self
            .info(path)?
            .ok_or_else(|| StoreError::NotValid { path: path.clone() })?;
        let out = tmp.out();
        let hashed = canon::hash_tree(&out, canon::Mode::Canonicalize, candidate_refs)?;
        if hashed.digest != info.digest {
            return Err(StoreError::RebuildDiffers {
                path: path.clone(),
                expected: info.digest,
                found: hashed.digest,
            });
        }
        canon::sync_filesystem(&out)?;
        if !self.swap_in(&out, path, info.digest)? {
            return Err(StoreError::NotValid { path: path.clone() });
        }
        Ok(())
    }

    /// Exchanges the verified copy at `src` (digest `digest`) with whatever
    /// is at `path`'s location; false if `path` stopped being valid.
    fn swap_in(&self, src: &Path, path: &StorePath, digest: Blake3Digest) -> Result<bool> {
        let _gc = lock::shared(&self.gc_lock_path())?;
        let _lock = lock::exclusive(&self.commit_lock_path())?;
        let Some(info) = self.info(path)? else {
            // Deleted meanwhile (GC): nothing to restore.
            return Ok(false);
        };
        if info.digest != digest {
            return Err(StoreError::HashMismatch {
                path: path.clone(),
                expected: info.digest,
                found: digest,
            });
        }
        let dest = self.physical(path);
        let present = fs::symlink_metadata(&dest).is_ok();
        if present {
            // Moving a directory to another parent needs write permission
            // on it; the broken copy is about to be deleted anyway.
            make_top_writable(&dest)?;
        }
        let flags = if present {
            RenameFlags::EXCHANGE
        } else {
            RenameFlags::empty()
        };
        renameat_with(CWD, src, CWD, dest.as_path(), flags)
            .map_err(|e| StoreError::io("putting the repaired object in place", &dest)(e.into()))?;
        canon::finish_top(&dest)?;
        canon::fsync_dir(&self.dir)?;
        Ok(true)
    }
}

fn make_top_writable(path: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(path).map_err(StoreError::io("reading metadata", path))?;
    if meta.is_dir() {
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))
            .map_err(StoreError::io("making writable", path))?;
    }
    Ok(())
}
