//! The content-addressed store: `/imago/store/<hash>-<name>`.
//!
//! An object is a file, symlink or directory tree named after the BLAKE3
//! digest of its canonical serialization ([`canon`]) and a name. Once
//! registered it is read-only and never written again. See docs/store.md for
//! the full specification (serialization, digests, layout, protocols).
//!
//! Physical layout under the store directory (`Store::open(dir)`):
//!
//! ```text
//! <dir>/<hash>-<name>                    objects (read-only)
//! <dir>/.imago/db.sqlite                 valid objects, references, build cache
//! <dir>/.imago/tmp/<session>/<n>         build outputs before they are added
//! <dir>/.imago/locks/{gc,steps,commit}.lock
//! <dir>/.imago/roots/named/<name>        -> <dir>/<hash>-<name>  (profiles, generations)
//! <dir>/.imago/roots/links/<hex>         -> /abs/path/of/out-link (imago build -o)
//! <dir>/.imago/roots/sessions/<session>  temporary roots of a running process
//! ```
//!
//! Adding ([`Store::add`]): canonicalize + hash + scan references in one walk
//! of the output, then a group commit (`commit.rs`) renames each output of a
//! batch under the commit lock to `<dir>/<hash>-<name>`, syncs the file
//! system once for the batch and registers it (with build-cache entries) in
//! one SQLite transaction. A crash anywhere leaves either a temporary output
//! (removed at the next open) or an unregistered object at its final path
//! (removed at the next open that can take the GC lock), never a valid
//! half-written object.

pub mod archive;
pub mod canon;
pub mod db;
pub mod digest;
pub mod error;
pub mod fault;
pub mod lock;
pub mod path;

mod add;
mod commit;
mod gc;
mod readers;
mod refscan;
mod remove;
mod repair;
mod roots;
mod session;
mod temp;
mod verify;
mod writeback;

pub use add::{AddDone, AddSpec, Prepared};
pub use archive::{ArchiveError, ImportBatch, ImportLimits, UnpackedArchive};
pub use db::ObjectInfo;
pub use digest::Blake3Digest;
pub use error::{Result, StoreError};
pub use gc::GcReport;
pub use lock::StepLock;
pub use path::{STORE_PREFIX, StorePath, StorePathError, StorePathRef};
pub use temp::TempOutput;
pub use verify::{Problem, VerifyProblem, VerifyReport};
pub use writeback::Writeback;

use rusqlite::Connection;
use session::Session;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// An open store. `Sync`: one `Store` may be shared by a parallel scheduler.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    state: PathBuf,
    db_path: PathBuf,
    /// Writes (registrations, cache entries, GC) go through `db`; lookups
    /// through `readers`, so that builders looking up the cache do not wait
    /// while a group commit holds `db` for its transaction, nor for each
    /// other (WAL readers do not block the writer, and see every committed
    /// transaction).
    db: Mutex<Connection>,
    readers: readers::Readers,
    session: Session,
    fault: fault::Fault,
    committer: commit::Committer,
}

impl Store {
    /// The default store directory: `/imago/store` for root, otherwise
    /// `$XDG_DATA_HOME/imago/store` or `~/.local/share/imago/store`.
    pub fn default_dir() -> Result<PathBuf> {
        if rustix::process::getuid().is_root() {
            return Ok(PathBuf::from(STORE_PREFIX));
        }
        if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(xdg).join("imago/store"));
        }
        match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => Ok(PathBuf::from(home).join(".local/share/imago/store")),
            None => Err(StoreError::NoDefaultDir),
        }
    }

    /// Opens `dir` (or the default directory), as `--store DIR` / `IMAGO_STORE` asks.
    pub fn open_or_default(dir: Option<&Path>) -> Result<Store> {
        match dir {
            Some(d) => Store::open(d),
            None => Store::open(Self::default_dir()?),
        }
    }

    /// Opens (creating if needed) the store at `dir`, and recovers from any
    /// crash of an earlier process: dead sessions' temp dirs are removed, and
    /// objects at final paths that were never registered are deleted.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(StoreError::io("creating store directory", dir))?;
        let dir =
            fs::canonicalize(dir).map_err(StoreError::io("resolving store directory", dir))?;
        let state = dir.join(".imago");
        let db_path = state.join("db.sqlite");
        if !db_path.exists() {
            refuse_unmanaged(&dir)?;
        }
        for sub in [
            "tmp",
            "locks",
            "roots/named",
            "roots/links",
            "roots/sessions",
        ] {
            let p = state.join(sub);
            fs::create_dir_all(&p).map_err(StoreError::io("creating store state directory", &p))?;
        }
        let conn = db::open(&db_path)?;
        let readers = readers::Readers::open(db_path.clone())?;
        let session = Session::create(&state.join("roots/sessions"), &state.join("tmp"))?;
        let store = Store {
            dir,
            state,
            db_path,
            db: Mutex::new(conn),
            readers,
            session,
            fault: fault::Fault::from_env(),
            committer: commit::Committer::default(),
        };
        store.recover()?;
        Ok(store)
    }

    /// The physical store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where an object lives on this machine.
    pub fn physical(&self, path: &StorePath) -> PathBuf {
        self.dir.join(path.as_str())
    }

    /// Whether `path` is registered (complete, durable, read-only).
    pub fn is_valid(&self, path: &StorePath) -> Result<bool> {
        db::is_valid(&*self.reader()?, path).map_err(db::db_err(&self.db_path))
    }

    /// What the database knows about `path`; `None` if it is not valid.
    pub fn info(&self, path: &StorePath) -> Result<Option<ObjectInfo>> {
        db::info(&*self.reader()?, path).map_err(db::db_err(&self.db_path))
    }

    /// The objects `path` refers to (an error if `path` is not valid).
    pub fn references(&self, path: &StorePath) -> Result<BTreeSet<StorePath>> {
        let conn = self.reader()?;
        if !db::is_valid(&conn, path).map_err(db::db_err(&self.db_path))? {
            return Err(StoreError::NotValid { path: path.clone() });
        }
        db::references(&conn, path).map_err(db::db_err(&self.db_path))
    }

    /// The reflexive transitive closure of `paths` under references. Every
    /// path must be valid.
    pub fn closure(&self, paths: &[StorePath]) -> Result<BTreeSet<StorePath>> {
        let conn = self.reader()?;
        let mut seen = BTreeSet::new();
        let mut todo: Vec<StorePath> = paths.to_vec();
        while let Some(p) = todo.pop() {
            if seen.contains(&p) {
                continue;
            }
            if !db::is_valid(&conn, &p).map_err(db::db_err(&self.db_path))? {
                return Err(StoreError::NotValid { path: p });
            }
            let refs = db::references(&conn, &p).map_err(db::db_err(&self.db_path))?;
            todo.extend(refs.into_iter().filter(|r| !seen.contains(r)));
            seen.insert(p);
        }
        Ok(seen)
    }

    /// Takes the exclusive lock for building the step `key`, waiting while
    /// another process holds it. Check [`Store::cache_get`] after locking.
    pub fn lock_step(&self, key: &Blake3Digest) -> Result<StepLock> {
        lock::step_lock(&self.state.join("locks"), key)
    }

    /// The cached output of step `key`, if it is still valid. The result is
    /// protected from GC for the life of this `Store`.
    pub fn cache_get(&self, key: &Blake3Digest) -> Result<Option<StorePath>> {
        let _gc = lock::shared(&self.gc_lock_path())?;
        let found = db::cache_get(&*self.reader()?, key).map_err(db::db_err(&self.db_path))?;
        if let Some(p) = &found {
            self.session.add_root(p)?;
        }
        Ok(found)
    }

    /// The keys of the steps the build cache names `output` the output of.
    pub fn cache_keys_of(&self, output: &StorePath) -> Result<Vec<Blake3Digest>> {
        db::cache_keys_of(&*self.reader()?, output).map_err(db::db_err(&self.db_path))
    }

    /// The outputs of the inputs of the step `key`, as recorded when it
    /// was built here (none for a step found elsewhere).
    pub fn step_inputs(&self, key: &Blake3Digest) -> Result<Vec<StorePath>> {
        db::step_inputs(&*self.reader()?, key).map_err(db::db_err(&self.db_path))
    }

    /// Records that step `key` produced `output` (which must be valid).
    pub fn cache_put(&self, key: &Blake3Digest, output: &StorePath) -> Result<()> {
        let ok = db::cache_put(&self.conn(), key, output).map_err(db::db_err(&self.db_path))?;
        if ok {
            Ok(())
        } else {
            Err(StoreError::NotValid {
                path: output.clone(),
            })
        }
    }

    /// Protects `path` from GC for the life of this `Store` (e.g. an input a
    /// running build reads). `path` must be valid.
    pub fn add_temp_root(&self, path: &StorePath) -> Result<()> {
        let _gc = lock::shared(&self.gc_lock_path())?;
        if !self.is_valid(path)? {
            return Err(StoreError::NotValid { path: path.clone() });
        }
        self.session.add_root(path)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn reader(&self) -> Result<readers::Reader<'_>> {
        self.readers.get()
    }

    fn gc_lock_path(&self) -> PathBuf {
        self.state.join("locks/gc.lock")
    }

    fn commit_lock_path(&self) -> PathBuf {
        self.state.join("locks/commit.lock")
    }

    fn sessions_dir(&self) -> PathBuf {
        self.state.join("roots/sessions")
    }

    fn tmp_root(&self) -> PathBuf {
        self.state.join("tmp")
    }

    /// Crash recovery, run at open.
    fn recover(&self) -> Result<()> {
        session::scan(&self.sessions_dir(), &self.tmp_root(), self.session.id())?;
        // Unregistered objects can only be removed when no add is between
        // its rename and its commit: that is what the GC lock guarantees.
        let Some(_gc) = lock::try_exclusive(&self.gc_lock_path())? else {
            return Ok(());
        };
        self.remove_unregistered()?;
        Ok(())
    }

    /// Deletes entries of the store directory that look like objects but are
    /// not registered (crash leftovers). Call with the GC lock held.
    fn remove_unregistered(&self) -> Result<Vec<StorePath>> {
        let valid: BTreeSet<StorePath> = db::all_objects(&self.conn())
            .map_err(db::db_err(&self.db_path))?
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        let mut removed = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(StoreError::io("reading", &self.dir))?;
        for entry in entries {
            let entry = entry.map_err(StoreError::io("reading", &self.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(p) = StorePathRef::parse(name) else {
                continue;
            };
            if !valid.contains(&p.to_owned()) {
                remove::remove_tree(&entry.path())?;
                removed.push(p.to_owned());
            }
        }
        if !removed.is_empty() {
            canon::fsync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}

/// A directory without a store database may become a store only if it
/// holds no objects: a machine's `/imago/store` (images carry no database)
/// or a copied store would otherwise lose every object to the recovery of
/// unregistered leftovers.
fn refuse_unmanaged(dir: &Path) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(StoreError::io("reading", dir))?;
    for entry in entries {
        let entry = entry.map_err(StoreError::io("reading", dir))?;
        let name = entry.file_name();
        if let Some(name) = name.to_str().filter(|n| StorePathRef::parse(n).is_ok()) {
            return Err(StoreError::Unmanaged {
                dir: dir.to_owned(),
                example: name.to_owned(),
            });
        }
    }
    Ok(())
}
