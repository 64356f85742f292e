//! A session: one open [`Store`](super::Store) in one process.
//!
//! Each session owns a file `.imago/roots/sessions/<id>` that it holds
//! locked (exclusive `flock`) for its whole life, and a directory
//! `.imago/tmp/<id>/` for its build temp dirs. The session file lists, one
//! per line, the store paths the session uses (its *temporary roots*): GC
//! treats them as roots while the lock is held. When a process dies, its
//! lock goes with it; the next open (or GC) sees a session file it can lock,
//! and deletes that session's temp dirs and the file.
//!
//! The session file is created under a `.new` name, locked, then renamed into
//! place, so nobody can see an unlocked session file of a live process.

use super::error::{Result, StoreError};
use super::lock;
use super::path::StorePath;
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

#[derive(Debug)]
pub(crate) struct Session {
    id: String,
    file_path: PathBuf,
    /// The locked session file, and the roots already written to it.
    file: Mutex<(File, BTreeSet<StorePath>)>,
    tmp_dir: PathBuf,
    /// Whether `tmp_dir` has been created.
    tmp_ready: AtomicBool,
    counter: AtomicU64,
}

static SESSIONS: AtomicU64 = AtomicU64::new(0);

fn new_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!(
        "{}-{}-{}",
        std::process::id(),
        nanos,
        SESSIONS.fetch_add(1, Ordering::Relaxed)
    );
    format!(
        "{}-{}",
        std::process::id(),
        &blake3::hash(seed.as_bytes()).to_hex()[..12]
    )
}

impl Session {
    pub(crate) fn create(sessions_dir: &Path, tmp_root: &Path) -> Result<Session> {
        let id = new_id();
        let new_path = sessions_dir.join(format!("{id}.new"));
        let file_path = sessions_dir.join(&id);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&new_path)
            .map_err(StoreError::io("creating session file", &new_path))?;
        file.lock()
            .map_err(StoreError::io("locking session file", &new_path))?;
        fs::rename(&new_path, &file_path)
            .map_err(StoreError::io("creating session file", &file_path))?;
        Ok(Session {
            tmp_dir: tmp_root.join(&id),
            id,
            file_path,
            file: Mutex::new((file, BTreeSet::new())),
            counter: AtomicU64::new(0),
            tmp_ready: AtomicBool::new(false),
        })
    }

    /// A fresh path in this session's temporary directory, not created.
    pub(crate) fn new_temp_path(&self) -> Result<PathBuf> {
        if !self.tmp_ready.load(Ordering::Acquire) {
            fs::create_dir_all(&self.tmp_dir).map_err(StoreError::io(
                "creating temporary directory",
                &self.tmp_dir,
            ))?;
            self.tmp_ready.store(true, Ordering::Release);
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        Ok(self.tmp_dir.join(n.to_string()))
    }

    /// Records `path` as a temporary root of this session (durably enough
    /// for other processes to read: they read the file, not our memory).
    pub(crate) fn add_root(&self, path: &StorePath) -> Result<()> {
        self.add_roots([path])
    }

    /// Records `paths` as temporary roots, with one write.
    pub(crate) fn add_roots<'p>(
        &self,
        paths: impl IntoIterator<Item = &'p StorePath>,
    ) -> Result<()> {
        let mut guard = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (file, written) = &mut *guard;
        let mut lines = String::new();
        let mut new = Vec::new();
        for path in paths {
            if !written.contains(path) {
                lines.push_str(path.as_str());
                lines.push('\n');
                new.push(path);
            }
        }
        if lines.is_empty() {
            return Ok(());
        }
        file.write_all(lines.as_bytes())
            .map_err(StoreError::io("writing session file", &self.file_path))?;
        written.extend(new.into_iter().cloned());
        Ok(())
    }

    /// The temporary roots this session has recorded.
    pub(crate) fn roots(&self) -> BTreeSet<StorePath> {
        self.file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .1
            .clone()
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Best effort: a crash leaves these for the next open to collect.
        let _ = super::remove::remove_tree(&self.tmp_dir);
        let _ = fs::remove_file(&self.file_path);
    }
}

/// Temporary roots of every live session, and cleanup of dead ones (their
/// temp dirs and session files). `own` is never touched.
pub(crate) fn scan(sessions_dir: &Path, tmp_root: &Path, own: &str) -> Result<BTreeSet<StorePath>> {
    let mut roots = BTreeSet::new();
    let mut live = BTreeSet::new();
    live.insert(own.to_owned());
    let entries = fs::read_dir(sessions_dir).map_err(StoreError::io("reading", sessions_dir))?;
    for entry in entries {
        let entry = entry.map_err(StoreError::io("reading", sessions_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.ends_with(".new") {
            // A session being created, or one whose creator died in between.
            let old = entry
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(3600));
            if old {
                let _ = fs::remove_file(&path);
            }
            continue;
        }
        if name == own {
            continue;
        }
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::io("opening session file", &path)(e)),
        };
        if lock::try_lock_file(&file, &path)? {
            // Dead: nobody holds it. Collect its leftovers.
            super::remove::remove_tree(&tmp_root.join(&name))?;
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("removing session file", &path)(e)),
            }
        } else {
            live.insert(name);
            let text =
                fs::read_to_string(&path).map_err(StoreError::io("reading session file", &path))?;
            // A line being written may be incomplete: only whole lines count
            // (the path it names was also written by a locked add/cache hit).
            roots.extend(text.lines().filter_map(|l| l.parse::<StorePath>().ok()));
        }
    }
    // Temp dirs whose session file is gone belong to nobody.
    if let Ok(entries) = fs::read_dir(tmp_root) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !live.contains(&name) && !sessions_dir.join(&name).exists() {
                super::remove::remove_tree(&entry.path())?;
            }
        }
    }
    Ok(roots)
}
