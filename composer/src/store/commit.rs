//! Group commit: finished outputs are moved into place and registered in
//! batches, so that parallel builds share their syncs.
//!
//! A caller queues a [`Request`] (one added output, or every object of an
//! import) once its files are complete. If no thread of this `Store` is
//! committing, the caller becomes the *leader*: it takes everything queued
//! and, for the whole batch,
//!
//! 1. takes the shared GC lock and checks each request's references (a
//!    request whose reference is not valid fails alone);
//! 2. takes the store's commit lock (so that no other process moves the
//!    same object at once) and renames each object into place unless its
//!    name is taken (fault point `after-rename`), then makes its top
//!    directory read-only. A taken name is either the valid object (nothing
//!    to do) or a crashed add's leftover (removed, then renamed over); only
//!    then is the database asked, so the common case costs one rename;
//! 3. makes the batch durable with one sync: `syncfs(2)` if any request's
//!    files still need it (it covers their data and the renames at once),
//!    otherwise an fsync of the store directory (fault point `after-fsync`);
//! 4. records every object as a temporary root of the session, and
//!    registers every object, its references and its build-cache entry in
//!    one transaction (fault points `before-commit`, `after-commit`);
//! 5. reports to each request, then takes the next batch, until the queue is
//!    empty. Meanwhile other threads go on building and queueing, so a batch
//!    grows while the one before it syncs.
//!
//! Nothing is registered before it is durable: a crash anywhere leaves
//! renamed but unregistered objects (removed at the next open, whatever
//! their files hold) or a batch registered entirely. Renaming before the
//! sync saves a device round trip per batch (the directory's fsync) and is
//! safe because an unregistered object is never trusted: other processes
//! wait for the commit lock, and GC for the shared GC lock, until the batch
//! is registered. A failure before the commit removes
//! everything the batch renamed and fails every request in it.
//!
//! Callbacks run on the leader's thread, without any store lock held; they
//! must not wait for another add of the same `Store`.

use super::db::{self, NewObject};
use super::digest::Blake3Digest;
use super::error::{Result, StoreError};
use super::lock;
use super::path::StorePath;
use super::remove::{remove_tree, rename_if_free};
use super::temp::TempOutput;
use super::{Store, canon};
use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::SystemTime;

/// What is told to the one who queued a request.
pub(crate) type Done = Box<dyn FnOnce(Result<()>) + Send>;

/// Objects to move into place and register together.
pub(crate) struct Request {
    /// Each object with the staged file or directory that becomes it.
    pub objects: Vec<(PathBuf, NewObject)>,
    /// A build-cache entry for the first object.
    pub cache_key: Option<Blake3Digest>,
    /// The inputs of the step `cache_key` (recorded with it).
    pub step_inputs: Vec<StorePath>,
    /// Whether the staged files still need a sync before the rename.
    pub needs_sync: bool,
    /// The temporary output the (single) object is staged at, if it is
    /// one: forgotten without a look once renamed into place, removed
    /// otherwise (the object was there already, or the commit failed).
    pub staged: Option<TempOutput>,
    pub done: Done,
}

/// The queue and whether a leader is draining it. Invariant: a non-empty
/// queue always has a leader.
#[derive(Default)]
pub(crate) struct Committer {
    state: Mutex<(Vec<Request>, bool)>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Committer")
            .field("queued", &state.0.len())
            .field("leading", &state.1)
            .finish()
    }
}

/// Gives up leadership if the leader's loop ends by a panic. The requests it
/// held, and those queued since, are dropped with their callbacks, so that
/// nobody waits for them (a dropped callback is how a waiter learns).
struct Leading<'a>(&'a Committer);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let orphans = {
            let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.1 = false;
            std::mem::take(&mut state.0)
        };
        drop(orphans);
    }
}

impl Store {
    /// Queues `request`; commits it (and whatever else is queued) on this
    /// thread if no other thread is committing.
    pub(crate) fn submit(&self, request: Request) {
        self.submit_all(vec![request]);
    }

    /// Queues `requests` together; commits them (and whatever else is
    /// queued) on this thread if no other thread is committing.
    pub(crate) fn submit_all(&self, requests: Vec<Request>) {
        {
            let mut state = self
                .committer
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            state.0.extend(requests);
            if state.1 || state.0.is_empty() {
                return;
            }
            state.1 = true;
        }
        let guard = Leading(&self.committer);
        loop {
            let batch = {
                let mut state = self
                    .committer
                    .state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if state.0.is_empty() {
                    state.1 = false;
                    std::mem::forget(guard);
                    return;
                }
                std::mem::take(&mut state.0)
            };
            self.commit_batch(batch);
        }
    }

    /// Queues the objects and waits until they are registered (or failed).
    pub(crate) fn commit_wait(
        &self,
        objects: Vec<(PathBuf, NewObject)>,
        cache_key: Option<Blake3Digest>,
        needs_sync: bool,
    ) -> Result<()> {
        wait_for(|done| {
            self.submit(Request {
                objects,
                cache_key,
                step_inputs: Vec::new(),
                needs_sync,
                staged: None,
                done,
            });
        })
    }

    fn commit_batch(&self, batch: Vec<Request>) {
        let _gc = match lock::shared(&self.gc_lock_path()) {
            Ok(l) => l,
            Err(e) => return fail_all(batch, e),
        };
        let mut ok = Vec::with_capacity(batch.len());
        for request in batch {
            match self.check_references(&request) {
                Ok(()) => ok.push(request),
                Err(e) => fail_all(vec![request], e),
            }
        }
        if ok.is_empty() {
            return;
        }
        let mut placed = Vec::new();
        let result = self.place_and_register(&ok, &mut placed);
        match result {
            Ok(()) => {
                let moved: BTreeSet<usize> = placed.iter().map(|(i, _)| *i).collect();
                for (i, request) in ok.into_iter().enumerate() {
                    // Before the callback: whoever waits for it may look.
                    match request.staged {
                        Some(staged) if moved.contains(&i) => staged.moved(),
                        staged => drop(staged),
                    }
                    (request.done)(Ok(()));
                }
            }
            Err((e, committed)) => {
                if !committed {
                    // Nothing half-done stays behind: unregistered objects go.
                    for (_, dest) in &placed {
                        let _ = remove_tree(dest);
                    }
                }
                fail_all(ok, e);
            }
        }
    }

    /// Every reference must be valid or among the request's own objects.
    fn check_references(&self, request: &Request) -> Result<()> {
        let conn = self.reader()?;
        let own: BTreeSet<&StorePath> = request.objects.iter().map(|(_, o)| &o.path).collect();
        for (_, o) in &request.objects {
            for r in &o.references {
                if !own.contains(r) && !db::is_valid(&conn, r).map_err(db::db_err(&self.db_path))? {
                    return Err(StoreError::NotValid { path: r.clone() });
                }
            }
        }
        Ok(())
    }

    /// Steps 2–4 of the module docs; `placed` gets each object renamed into
    /// place, with the index of its request. The error says whether the
    /// commit happened (then nothing may be removed).
    fn place_and_register(
        &self,
        batch: &[Request],
        placed: &mut Vec<(usize, PathBuf)>,
    ) -> Result<(), (StoreError, bool)> {
        let before = |e| (e, false);
        let commit_lock = lock::exclusive(&self.commit_lock_path()).map_err(before)?;
        let mut to_register: Vec<&NewObject> = Vec::new();
        let mut seen: BTreeSet<&StorePath> = BTreeSet::new();
        let objects = batch
            .iter()
            .enumerate()
            .flat_map(|(i, r)| r.objects.iter().map(move |o| (i, o)));
        for (i, (src, o)) in objects {
            if !seen.insert(&o.path) {
                continue;
            }
            let dest = self.physical(&o.path);
            if !rename_if_free(src, &dest).map_err(before)? {
                // Something is there: the valid object, or a leftover of a
                // crashed add (the commit lock is held, so no other add is
                // placing it now), which is removed, never followed.
                let valid = db::is_valid(&*self.reader().map_err(before)?, &o.path)
                    .map_err(db::db_err(&self.db_path))
                    .map_err(before)?;
                if valid {
                    continue;
                }
                remove_tree(&dest).map_err(before)?;
                fs::rename(src, &dest)
                    .map_err(StoreError::io("moving object into the store", &dest))
                    .map_err(before)?;
            }
            placed.push((i, dest.clone()));
            self.fault.hit("after-rename").map_err(before)?;
            canon::finish_top(&dest).map_err(before)?;
            to_register.push(o);
        }
        if batch.iter().any(|r| r.needs_sync) {
            canon::sync_filesystem(&self.tmp_root()).map_err(before)?;
            self.fault.hit("after-fsync").map_err(before)?;
        } else if !placed.is_empty() {
            canon::fsync_dir(&self.dir).map_err(before)?;
            self.fault.hit("after-fsync").map_err(before)?;
        }
        self.session
            .add_roots(seen.iter().copied())
            .map_err(before)?;
        self.fault.hit("before-commit").map_err(before)?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        {
            let db_err = |e| {
                (
                    StoreError::Db {
                        path: self.db_path.clone(),
                        source: e,
                    },
                    false,
                )
            };
            let mut conn = self.conn();
            let tx = db::write_tx(&mut conn).map_err(db_err)?;
            db::register(&tx, &to_register, now).map_err(db_err)?;
            for r in batch {
                if let (Some(key), Some((_, o))) = (&r.cache_key, r.objects.first()) {
                    db::cache_put(&tx, key, &o.path).map_err(db_err)?;
                    db::add_step_inputs(&tx, key, &r.step_inputs).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
        }
        drop(commit_lock);
        self.fault.hit("after-commit").map_err(|e| (e, true))?;
        Ok(())
    }
}

/// Starts something with a callback and waits for the callback's result;
/// a callback dropped uncalled (the committing thread died) is an error.
pub(crate) fn wait_for<T: Send + 'static>(
    start: impl FnOnce(Box<dyn FnOnce(Result<T>) + Send>),
) -> Result<T> {
    let (tx, rx) = mpsc::channel();
    start(Box::new(move |r| {
        let _ = tx.send(r);
    }));
    rx.recv().unwrap_or_else(|_| {
        Err(StoreError::Batch {
            path: None,
            cause: "the committing thread stopped".to_owned(),
        })
    })
}

/// Fails every request: the first gets the error itself, the others a
/// description of it.
fn fail_all(batch: Vec<Request>, error: StoreError) {
    let cause = with_sources(&error);
    let mut error = Some(error);
    for request in batch {
        drop(request.staged);
        let e = error.take().unwrap_or_else(|| StoreError::Batch {
            path: request.objects.first().map(|(_, o)| o.path.clone()),
            cause: cause.clone(),
        });
        (request.done)(Err(e));
    }
}

/// The error and its sources, joined by ": ".
fn with_sources(error: &StoreError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
