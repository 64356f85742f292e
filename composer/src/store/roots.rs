//! GC roots: out-links, named roots, and the session temp roots.
//!
//! - Out-link (`imago build -o result`): [`Store::add_root`] makes `result`
//!   a symlink to the object's physical path and registers it as
//!   `.imago/roots/links/<first 32 hex of blake3(absolute link path)>`, a
//!   symlink to the out-link. GC follows the registration to the out-link
//!   and keeps the object the out-link *currently* points to; a deleted or
//!   retargeted out-link stops counting (and its registration is dropped).
//! - Named root (profiles, generations): `.imago/roots/named/<name>` is a
//!   symlink to the object's physical path ([`Store::set_named_root`]).
//! - Temporary roots: see `session.rs`.
//!
//! Symlinks are replaced atomically (new symlink under a temporary name,
//! then `rename`), so a root never disappears while being retargeted.

use super::error::{Result, StoreError};
use super::path::{StorePath, StorePathRef, validate_name};
use super::{Store, session};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// Creates or atomically replaces the symlink `link` → `target`. An existing
/// `link` that is not a symlink is refused, never overwritten.
fn replace_symlink(link: &Path, target: &Path) -> Result<()> {
    match fs::symlink_metadata(link) {
        Ok(m) if !m.file_type().is_symlink() => {
            return Err(StoreError::BadRoot {
                link: link.to_owned(),
                reason: "exists and is not a symlink; refusing to replace it".to_owned(),
            });
        }
        _ => {}
    }
    let file_name = link.file_name().ok_or_else(|| StoreError::BadRoot {
        link: link.to_owned(),
        reason: "has no file name".to_owned(),
    })?;
    let mut tmp_name = file_name.to_owned();
    tmp_name.push(format!(".imago-tmp-{}", std::process::id()));
    let tmp = link.with_file_name(tmp_name);
    let _ = fs::remove_file(&tmp);
    symlink(target, &tmp).map_err(StoreError::io("creating symlink", &tmp))?;
    fs::rename(&tmp, link).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        StoreError::io("replacing symlink", link)(e)
    })
}

fn absolute(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(StoreError::io("resolving", path))?;
    // Resolve the parent (it must exist) so the registration survives `cd`.
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = fs::canonicalize(parent).map_err(StoreError::io("resolving", parent))?;
            Ok(parent.join(name))
        }
        _ => Err(StoreError::BadRoot {
            link: path.to_owned(),
            reason: "is not a file path".to_owned(),
        }),
    }
}

impl Store {
    fn require_valid(&self, target: &StorePath) -> Result<()> {
        if self.is_valid(target)? {
            Ok(())
        } else {
            Err(StoreError::NotValid {
                path: target.clone(),
            })
        }
    }

    /// Makes `link` an out-link to `target` (a symlink to its physical path)
    /// and registers it as a GC root.
    pub fn add_root(&self, link: &Path, target: &StorePath) -> Result<()> {
        self.require_valid(target)?;
        let link = absolute(link)?;
        let reg_name = &blake3::hash(link.as_os_str().as_encoded_bytes()).to_hex()[..32];
        let reg = self.state.join("roots/links").join(reg_name);
        // Register first: a crash in between leaves a registration whose
        // out-link does not point into the store, which GC drops.
        replace_symlink(&reg, &link)?;
        replace_symlink(&link, &self.physical(target))
    }

    /// Points the named root `name` at `target` (creating or replacing it).
    pub fn set_named_root(&self, name: &str, target: &StorePath) -> Result<()> {
        self.check_root_name(name)?;
        self.require_valid(target)?;
        let link = self.state.join("roots/named").join(name);
        replace_symlink(&link, &self.physical(target))
    }

    /// Removes the named root `name` (missing is fine).
    pub fn remove_named_root(&self, name: &str) -> Result<()> {
        self.check_root_name(name)?;
        let link = self.state.join("roots/named").join(name);
        match fs::remove_file(&link) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StoreError::io("removing root", &link)(e))
            }
            _ => Ok(()),
        }
    }

    /// Every named root and what it points to.
    pub fn named_roots(&self) -> Result<Vec<(String, StorePath)>> {
        let dir = self.state.join("roots/named");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(StoreError::io("reading", &dir))? {
            let entry = entry.map_err(StoreError::io("reading", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains(".imago-tmp-") {
                continue;
            }
            if let Some(p) = self.object_of_link(&entry.path()) {
                out.push((name, p));
            }
        }
        out.sort();
        Ok(out)
    }

    fn check_root_name(&self, name: &str) -> Result<()> {
        validate_name(name).map_err(|reason| StoreError::BadRoot {
            link: PathBuf::from(name),
            reason: format!("is not a valid root name: {reason}"),
        })
    }

    /// The object a symlink points to, if it points to one in this store.
    fn object_of_link(&self, link: &Path) -> Option<StorePath> {
        let target = fs::read_link(link).ok()?;
        let parent = target.parent()?;
        let name = target.file_name()?.to_str()?;
        if parent != self.dir {
            return None;
        }
        StorePathRef::parse(name).ok().map(|p| p.to_owned())
    }

    /// Every root: named roots, live out-links, and live sessions' temporary
    /// roots. Stale out-link registrations and dead sessions are cleaned up.
    /// Call with the GC lock held exclusively.
    pub(crate) fn all_roots(&self) -> Result<BTreeSet<StorePath>> {
        let mut roots: BTreeSet<StorePath> =
            self.named_roots()?.into_iter().map(|(_, p)| p).collect();
        let links = self.state.join("roots/links");
        for entry in fs::read_dir(&links).map_err(StoreError::io("reading", &links))? {
            let entry = entry.map_err(StoreError::io("reading", &links))?;
            let reg = entry.path();
            let live = fs::read_link(&reg)
                .ok()
                .and_then(|out_link| self.object_of_link(&out_link));
            match live {
                Some(p) => {
                    roots.insert(p);
                }
                None => {
                    let _ = fs::remove_file(&reg);
                }
            }
        }
        roots.extend(session::scan(
            &self.sessions_dir(),
            &self.tmp_root(),
            self.session.id(),
        )?);
        // This process's own temporary roots count too.
        roots.extend(self.session.roots());
        Ok(roots)
    }
}
