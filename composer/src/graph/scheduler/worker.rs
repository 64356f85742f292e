//! The scheduler's worker loops: what runs a step, on the build pool's
//! threads and, when the substituter asks for it, on lookup threads.
//!
//! A step runs in two parts. Its *resolution* substitutes its inputs'
//! paths into its parameters, computes its key, and finds its output in
//! the local build cache or through the substituter; its *build* fetches
//! the inputs a substituter named, runs the builder and hands the output
//! to the commit thread. A build loop does both. A lookup loop (see
//! [`Substituter::lookups_in_flight`]) only resolves: a step that no
//! source has is handed to the build loops, still under its step lock, so
//! that lookups, which mostly wait for a cache's answer, never hold a
//! build slot.

use super::{Run, ms};
use crate::builders::ResolvedStep;
use crate::graph::dag::StepId;
use crate::graph::reply::{How, Reply, StepInfo};
use crate::graph::report::StepFailureCause;
use crate::graph::step::{find_pending, substitute};
use crate::graph::substitute::Substitution;
use crate::store::{AddDone, AddSpec, Blake3Digest, StepLock, StorePath, TempOutput};
use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, mpsc};

/// A step taken from the ready queue, with what it needs of its inputs.
pub(super) struct Start {
    id: StepId,
    substitutions: BTreeMap<String, String>,
    input_paths: Vec<StorePath>,
    /// The inputs to fetch before the step is built: key, record, name.
    to_fetch: Vec<(Blake3Digest, Substitution, String)>,
    info: StepInfo,
}

/// A step a lookup loop resolved and no source had: to build.
pub(super) struct Resolved {
    start: Start,
    pending: Pending,
    reply: Reply,
}

impl Resolved {
    /// Drops the step unbuilt (the build stopped): its lock is released
    /// and the coordinator counts it as skipped.
    pub(super) fn skip(self) {
        self.reply.skipped();
    }
}

/// What a build loop takes.
enum Job {
    Start(Start),
    Resolved(Box<Resolved>),
}

/// A resolved step to build: its key, held under its lock.
struct Pending {
    resolved: ResolvedStep,
    key: Blake3Digest,
    lock: StepLock,
    /// The broken cached output to replace (`--repair`).
    broken: Option<StorePath>,
}

/// What resolving a step found.
enum Resolution {
    Known(Outcome),
    ToBuild(Pending),
}

/// How a step's worker ended: the output is known, or it is queued for the
/// store's group commit (with the step lock, held until it is registered).
enum Outcome {
    Cached(StorePath, Blake3Digest),
    /// A broken cached output was rebuilt and put back (`--repair`).
    Repaired(StorePath, Blake3Digest),
    /// A substituter named it: the output, the record, and whether it is
    /// in the store already.
    Substituted(StorePath, Blake3Digest, Substitution, bool),
    Built {
        tmp: TempOutput,
        key: Blake3Digest,
        lock: StepLock,
        candidates: Vec<StorePath>,
    },
}

/// Runs `f` with the step's reply; a panic in it fails the step (unless
/// the reply was sent or handed on).
fn guarded(reply: Reply, f: impl FnOnce(&mut Option<Reply>)) {
    let mut reply = Some(reply);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut reply)));
    if let (Err(panic), Some(reply)) = (result, reply.take()) {
        let text = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        reply.failed(StepFailureCause::Panicked(text), String::new());
    }
}

impl Run<'_> {
    /// A build loop: takes a resolved step to build, else the heaviest
    /// ready step, and runs it, until there is none (or the build
    /// stopped).
    pub(super) fn work(&self) {
        while let Some(job) = self.next_job() {
            match job {
                Job::Start(start) => {
                    let reply = self.reply(&start);
                    guarded(reply, |reply| match self.resolve(&start) {
                        Ok(Resolution::ToBuild(pending)) => {
                            self.build_and_finish(&start, pending, reply);
                        }
                        Ok(Resolution::Known(outcome)) => self.settle(&start, Ok(outcome), reply),
                        Err(cause) => self.settle(&start, Err(cause), reply),
                    });
                }
                Job::Resolved(resolved) => {
                    let Resolved {
                        start,
                        pending,
                        reply,
                    } = *resolved;
                    guarded(reply, |reply| self.build_and_finish(&start, pending, reply));
                }
            }
        }
    }

    /// A lookup loop: resolves ready steps, and hands those no source has
    /// to the build loops, until none is ready (or the build stopped).
    pub(super) fn look_up(&self) {
        while let Some(start) = self.next_lookup() {
            let reply = self.reply(&start);
            guarded(reply, |reply| match self.resolve(&start) {
                Ok(Resolution::ToBuild(pending)) => {
                    if let Some(reply) = reply.take() {
                        self.hand_over(Resolved {
                            start,
                            pending,
                            reply,
                        });
                    }
                }
                Ok(Resolution::Known(outcome)) => self.settle(&start, Ok(outcome), reply),
                Err(cause) => self.settle(&start, Err(cause), reply),
            });
        }
    }

    /// Builds a resolved step and sends its reply.
    fn build_and_finish(&self, start: &Start, pending: Pending, reply: &mut Option<Reply>) {
        let mut log = Vec::new();
        let result = self.build(start, pending, &mut log);
        if let Some(reply) = reply.take() {
            let step = self.graph.step(start.id);
            self.finish(step, &start.input_paths, result, &log, reply);
        }
    }

    /// Sends the reply of a step its resolution ended: its output was
    /// found, or it failed.
    fn settle(
        &self,
        start: &Start,
        result: Result<Outcome, StepFailureCause>,
        reply: &mut Option<Reply>,
    ) {
        if let Some(reply) = reply.take() {
            let step = self.graph.step(start.id);
            self.finish(step, &start.input_paths, result, &[], reply);
        }
    }

    fn reply(&self, start: &Start) -> Reply {
        Reply::new(Arc::clone(&self.mailbox), start.id, start.info.clone())
    }

    /// Queues a resolved step for the build loops, and wakes the
    /// coordinator to start one; skips it if the build stopped.
    fn hand_over(&self, resolved: Resolved) {
        let mut queue = self.queue();
        if queue.stopped {
            drop(queue);
            resolved.skip();
            return;
        }
        let id = resolved.start.id;
        let priority = self.priorities.of(id);
        queue.to_build.push(id, priority);
        queue.resolved.insert(id, resolved);
        drop(queue);
        self.mailbox.nudge();
    }

    /// The next job of a build loop, or `None`, which ends the loop.
    fn next_job(&self) -> Option<Job> {
        let mut queue = self.queue();
        if !queue.stopped {
            if let Some(id) = queue.to_build.pop()
                && let Some(resolved) = queue.resolved.remove(&id)
            {
                return Some(Job::Resolved(Box::new(resolved)));
            }
            if let Some(id) = queue.ready.pop() {
                return Some(Job::Start(self.start(&mut queue, id)));
            }
        }
        queue.loops -= 1;
        None
    }

    /// The next step of a lookup loop, or `None`, which ends the loop.
    fn next_lookup(&self) -> Option<Start> {
        let mut queue = self.queue();
        let id = if queue.stopped {
            None
        } else {
            queue.ready.pop()
        };
        let Some(id) = id else {
            queue.lookups -= 1;
            return None;
        };
        Some(self.start(&mut queue, id))
    }

    /// Starts the ready step `id` with what it needs of its inputs.
    fn start(&self, queue: &mut super::Queue, id: StepId) -> Start {
        let graph = self.graph;
        queue.outstanding += 1;
        let substitutions: BTreeMap<String, String> = graph
            .inputs(id)
            .filter_map(|i| {
                queue
                    .outputs
                    .get(&i)
                    .map(|p| (graph.step(i).placeholder.clone(), p.to_absolute()))
            })
            .collect();
        let mut input_paths: Vec<StorePath> = graph
            .inputs(id)
            .filter_map(|i| queue.outputs.get(&i).cloned())
            .collect();
        let to_fetch = graph
            .inputs(id)
            .filter_map(|i| {
                queue
                    .unfetched
                    .get(&i)
                    .map(|(key, found)| (*key, found.clone(), graph.step(i).name.clone()))
            })
            .collect();
        input_paths.sort();
        input_paths.dedup();
        let step = graph.step(id);
        self.progress.started(&step.name);
        Start {
            id,
            substitutions,
            input_paths,
            to_fetch,
            info: StepInfo {
                name: step.name.clone(),
                builder: step.builder.clone(),
                placeholder: step.placeholder.clone(),
                build_start: self.start,
                start_ms: ms(self.start.elapsed()),
            },
        }
    }

    /// Sends the step's reply now, or once the store has registered its
    /// output.
    fn finish(
        &self,
        step: &crate::graph::Step,
        input_paths: &[StorePath],
        result: Result<Outcome, StepFailureCause>,
        log: &[u8],
        reply: Reply,
    ) {
        let log = String::from_utf8_lossy(log).into_owned();
        match result {
            Ok(Outcome::Cached(path, key)) => reply.ok(path, &key, How::Cached),
            Ok(Outcome::Repaired(path, key)) => reply.ok(path, &key, How::Repaired),
            Ok(Outcome::Substituted(path, key, found, fetched)) => {
                reply.ok(path, &key, How::Substituted(found, fetched));
            }
            Ok(Outcome::Built {
                tmp,
                key,
                lock,
                candidates,
            }) => {
                let spec = AddSpec {
                    name: &step.name,
                    candidate_refs: &candidates,
                    deriver: Some(&step.placeholder),
                    cache_key: Some(key),
                    step_inputs: input_paths,
                };
                let prepared = match self.store.prepare(tmp, &spec) {
                    Ok(p) => p,
                    Err(e) => return reply.failed(e.into(), log),
                };
                // Posted quietly; the coordinator is woken once per batch
                // (see `commit_loop`).
                let reply = reply.quiet();
                let done: AddDone = Box::new(move |result| {
                    // Registered with its cache entry: others may reuse it.
                    drop(lock);
                    match result {
                        Ok(path) => reply.ok(path, &key, How::Built),
                        Err(e) => reply.failed(e.into(), log),
                    }
                });
                // The commit thread outlives every worker; if it is gone
                // (it panicked), committing here is the fallback.
                if let Err(mpsc::SendError(item)) = self.commits.send((prepared, done)) {
                    self.store
                        .commit_prepared(super::waking(vec![item], &self.mailbox));
                }
            }
            Err(cause) => reply.failed(cause, log),
        }
    }

    /// The step's key, and its output if the local build cache or a
    /// substituter has it; otherwise the step to build, under its lock.
    fn resolve(&self, start: &Start) -> Result<Resolution, StepFailureCause> {
        let step = self.graph.step(start.id);
        let params = substitute(&step.params_json(), &start.substitutions);
        if let Some(text) = find_pending(&params) {
            return Err(StepFailureCause::UnresolvedPlaceholder(text.to_owned()));
        }
        let resolved = ResolvedStep {
            builder: step.builder.clone(),
            name: step.name.clone(),
            params,
            inputs: start
                .input_paths
                .iter()
                .map(StorePath::to_absolute)
                .collect(),
            // Filled in by `build`: a cached step never pays for it.
            closure: Vec::new(),
        };
        let builder = self.builder(&step.builder)?;
        let salt = builder.key_salt(self.ctx, &resolved)?;
        let key = super::cache_key(builder, &resolved, salt);
        // Fast path: a cached step needs no lock (the cache only names valid
        // objects, and `cache_get` roots what it returns). With `repair`, a
        // cached output that no longer hashes right is rebuilt instead.
        let broken = match self.store.cache_get(&key)? {
            Some(path) if self.repair && self.store.check_object(&path)?.is_some() => Some(path),
            Some(path) => return Ok(Resolution::Known(Outcome::Cached(path, key))),
            None => None,
        };
        let lock = self.store.lock_step(&key)?;
        // Another process may have built it while we waited for the lock.
        if broken.is_none()
            && let Some(path) = self.store.cache_get(&key)?
        {
            return Ok(Resolution::Known(Outcome::Cached(path, key)));
        }
        // A broken output is rebuilt, never taken again from elsewhere.
        if broken.is_none() {
            let mut warn = |text: String| self.warn(text);
            if let Some(found) = self.substituter.lookup(&key, &step.name, &mut warn) {
                // Fetched only when needed (see `Substituter`); an object
                // the store has already just gains the cache entry.
                let here = self.store.is_valid(&found.output)?;
                if here {
                    self.store.add_temp_root(&found.output)?;
                    self.store.cache_put(&key, &found.output)?;
                }
                drop(lock);
                return Ok(Resolution::Known(Outcome::Substituted(
                    found.output.clone(),
                    key,
                    found,
                    here,
                )));
            }
        }
        Ok(Resolution::ToBuild(Pending {
            resolved,
            key,
            lock,
            broken,
        }))
    }

    /// Builds a resolved step: fetches the inputs a substituter named, runs
    /// the builder, and puts a repaired output back in place.
    fn build(
        &self,
        start: &Start,
        pending: Pending,
        log: &mut Vec<u8>,
    ) -> Result<Outcome, StepFailureCause> {
        let Pending {
            mut resolved,
            key,
            lock,
            broken,
        } = pending;
        let builder = self.builder(&resolved.builder)?;
        for (input_key, found, name) in &start.to_fetch {
            self.fetch(input_key, found, name)?;
        }
        // An output may mention any object its inputs refer to (a tree that
        // copies a unit file naming a script, say), not only the inputs
        // themselves: every object of the inputs' closure is a candidate
        // reference, so closures, images and GC never miss one. The builder
        // gets the same list (the `tree` builder's `closure` entry writes
        // it out).
        let candidates: Vec<StorePath> = self
            .store
            .closure(&start.input_paths)?
            .into_iter()
            .collect();
        resolved.closure = candidates.iter().map(StorePath::to_absolute).collect();
        let tmp = self.store.temp_output()?;
        builder.build(self.ctx, &resolved, &tmp.out(), log)?;
        if let Some(path) = broken {
            self.store.repair_with(tmp, &path, &candidates)?;
            drop(lock);
            return Ok(Outcome::Repaired(path, key));
        }
        Ok(Outcome::Built {
            tmp,
            key,
            lock,
            candidates,
        })
    }

    fn builder(&self, name: &str) -> Result<&dyn crate::builders::Builder, StepFailureCause> {
        self.builders.get(name).ok_or_else(|| {
            crate::builders::BuildError::Failed(format!("no builder `{name}`")).into()
        })
    }

    /// Fetches the output a substituter named for the step `key` (`name`),
    /// unless the store has it by now.
    pub(super) fn fetch(
        &self,
        key: &Blake3Digest,
        found: &Substitution,
        name: &str,
    ) -> Result<(), StepFailureCause> {
        let _lock = self.store.lock_step(key)?;
        if self.store.cache_get(key)?.as_ref() == Some(&found.output) {
            return Ok(());
        }
        let mut warn = |text: String| self.warn(text);
        let Err(object) = self
            .substituter
            .fetch(self.store, key, found, name, &mut warn)
        else {
            return Ok(());
        };
        // The object that failed may be the output of another step named
        // by a record (an input's, say): that step is the one to build, so
        // that the next run fetches this one with it in the store.
        let culprit = object.and_then(|object| {
            let queue = self.queue();
            queue
                .unfetched
                .iter()
                .find(|(_, (_, f))| f.output == object)
                .map(|(id, (k, _))| (*k, self.graph.step(*id).name.clone()))
        });
        let (key, step) = culprit.unwrap_or_else(|| (*key, name.to_owned()));
        Err(StepFailureCause::Unfetched {
            step,
            key,
            source_url: found.source.clone(),
        })
    }

    /// Shows a substituter's failure now and keeps it for the summary.
    fn warn(&self, text: String) {
        self.progress.warn(&text);
        self.warnings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(text);
    }
}
