//! Garbage collection: delete every object no root reaches.
//!
//! Under the exclusive GC lock (so no add is between rename and registration
//! and no session is adding temporary roots): roots = named roots + live
//! out-links + temporary roots of live sessions (this one included); live =
//! their closure; everything else valid is dead. The dead set is closed under
//! referrers (a live object's references are live), so its rows can go in one
//! transaction, which also drops their build-cache entries. Files are deleted
//! after the commit: a crash in between leaves unregistered leftovers that
//! the next open removes, never a valid row for a missing object.

use super::db;
use super::error::Result;
use super::path::StorePath;
use super::remove::remove_tree;
use super::{Store, lock};
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// What a collection did (or, for a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    /// Objects deleted (or that would be).
    pub deleted: Vec<StorePath>,
    /// Bytes of file contents and symlink targets freed (or that would be).
    pub freed_bytes: u64,
    /// Valid objects kept.
    pub kept: usize,
    /// Unregistered leftovers of crashed builds removed.
    pub leftovers: Vec<StorePath>,
}

/// Bytes used by a tree: file lengths and symlink target lengths.
fn tree_bytes(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_owned()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        if !meta.is_dir() {
            total += meta.len();
        } else if let Ok(entries) = fs::read_dir(&p) {
            stack.extend(entries.flatten().map(|e| e.path()));
        }
    }
    total
}

impl Store {
    /// Deletes (or with `dry_run`, lists) every object that no root reaches.
    pub fn gc(&self, dry_run: bool) -> Result<GcReport> {
        let _gc = lock::exclusive(&self.gc_lock_path())?;
        let leftovers = if dry_run {
            Vec::new()
        } else {
            self.remove_unregistered()?
        };
        let roots = self.all_roots()?;
        let mut valid_roots = Vec::new();
        for r in roots {
            if self.is_valid(&r)? {
                valid_roots.push(r);
            }
        }
        let live = self.closure(&valid_roots)?;
        let all = db::all_objects(&self.conn()).map_err(db::db_err(&self.db_path))?;
        let dead: Vec<StorePath> = all
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| !live.contains(p))
            .collect();
        let freed_bytes = dead.iter().map(|p| tree_bytes(&self.physical(p))).sum();
        if !dry_run && !dead.is_empty() {
            {
                let mut conn = self.conn();
                let tx = db::write_tx(&mut conn).map_err(db::db_err(&self.db_path))?;
                db::delete(&tx, &dead).map_err(db::db_err(&self.db_path))?;
                tx.commit().map_err(db::db_err(&self.db_path))?;
            }
            for p in &dead {
                remove_tree(&self.physical(p))?;
            }
            super::canon::fsync_dir(&self.dir)?;
        }
        Ok(GcReport {
            dry_run,
            deleted: dead,
            freed_bytes,
            kept: live.len(),
            leftovers,
        })
    }

    /// Every root GC would keep (named roots, out-links, temporary roots).
    pub fn roots(&self) -> Result<BTreeSet<StorePath>> {
        let _gc = lock::exclusive(&self.gc_lock_path())?;
        self.all_roots()
    }
}
