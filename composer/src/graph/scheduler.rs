//! The scheduler: builds a [`ValidatedGraph`] in parallel into the store.
//!
//! The calling thread coordinates; a rayon pool of `jobs` threads runs the
//! steps. A step is started once all its inputs are built, and at most `jobs`
//! steps run at once; of the steps ready, the one with the heaviest chain of
//! work ahead of it starts first, by its builders' estimates
//! ([`Builder::weight`], see `scheduler/priority.rs`). Running a step:
//!
//! 1. every input placeholder in every string of the parameters (object keys
//!    included, recursively) is replaced by the input's real path
//!    `/imago/store/<hash>-<name>` → a [`ResolvedStep`]; a leftover
//!    `/imago/pending/` mention is an error;
//! 2. the cache key is BLAKE3 over the canonical JSON (sorted keys) of the
//!    builder name, the builder's version, the step name, the substituted
//!    parameters and the builder's key salt (the `path` builder's source
//!    digest). Keys are computed after substitution, so an input rebuilt to
//!    identical content leaves its dependents' keys — and outputs — unchanged
//!    (early cutoff);
//! 3. a cache hit is the output (checked once more after taking
//!    `store.lock_step(key)`, so that of two processes building the same
//!    step one builds and the other waits and reuses); otherwise the
//!    closure of the inputs is computed (once: it is handed to the builder
//!    as [`ResolvedStep::closure`] and is the output's candidate
//!    references), the builder writes into a fresh temporary build
//!    directory, and the worker hashes the output (`store.prepare`: those
//!    candidate references, the placeholder as deriver, the key as its
//!    build-cache entry) and hands it to the commit thread, which passes
//!    everything queued since its last commit to the store's group commit
//!    at once (`store.commit_prepared`), so no worker waits for a sync. The
//!    worker then takes the next step; the step is done, and its dependents
//!    can start, once the output is registered. The step lock is held until
//!    then.
//!
//! On a miss, still under the step lock, the [`Substituter`] is asked
//! first (`imago build --substituter CACHE`): a binary cache with a trusted
//! record of the key hands over the output's closure, registered with the
//! key's build-cache entry, and the step counts as substituted; each cache
//! that fails is a warning, and the step is built. Since the dependents'
//! keys are computed from the outputs, early cutoff holds for substituted
//! outputs too. A substituter that asks for it
//! ([`Substituter::lookups_in_flight`]) has steps looked up by loops on a
//! pool of their own, beside the `jobs` build slots: a lookup mostly waits
//! for a cache's answer; a step no source has is handed, with its key and
//! lock, to the build loops (`scheduler/worker.rs`).
//!
//! With `repair`, a cache hit is rehashed first; a broken output is rebuilt
//! under the step lock and exchanged into place ([`Store::repair_with`]).
//!
//! Outputs added or found in the cache stay temporary GC roots for as long as
//! the [`Store`] is open. The first failure stops new work (running steps
//! finish) unless `keep_going`, which builds everything not downstream of a
//! failure.

mod priority;
mod worker;

use priority::Priorities;
use worker::Resolved;

use super::dag::{StepId, ValidatedGraph};
use super::progress::{Progress, ProgressMode};
use super::registry;
use super::reply::{Done, Mailbox};
use super::report::{
    BuildSummary, Origin, RootOutput, ScheduleError, StepFailure, StepFailureCause,
};
use super::substitute::{NoSubstitutes, Refusing, Substituter, Substitution};
use crate::builders::{BuildContext, Builder, ResolvedStep};
use crate::store::{AddDone, Blake3Digest, Prepared, Store, StorePath};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::Instant;

/// The builders a build may use, by name.
pub trait BuilderSet: Sync {
    fn get(&self, name: &str) -> Option<&dyn Builder>;
}

/// The builders of [`registry`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Registry;

impl BuilderSet for Registry {
    fn get(&self, name: &str) -> Option<&dyn Builder> {
        registry::builder(name)
    }
}

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Parallel steps; 0 means one per core.
    pub jobs: usize,
    /// Build everything not downstream of a failure instead of stopping.
    pub keep_going: bool,
    pub offline: bool,
    /// Rehash every output the build cache answers with, and rebuild each
    /// broken one in place (see [`Store::repair_with`]).
    pub repair: bool,
    /// The Debian package download cache handed to builders.
    pub deb_cache: PathBuf,
    pub progress: ProgressMode,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            jobs: 0,
            keep_going: false,
            offline: false,
            repair: false,
            deb_cache: PathBuf::new(),
            progress: ProgressMode::Quiet,
        }
    }
}

impl BuildOptions {
    fn effective_jobs(&self) -> usize {
        if self.jobs > 0 {
            self.jobs
        } else {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        }
    }
}

/// The cache key of a resolved step (see the module docs).
pub fn cache_key(
    builder: &dyn Builder,
    step: &ResolvedStep,
    salt: Option<blake3::Hash>,
) -> Blake3Digest {
    let doc = serde_json::json!({
        "imago-cache": 1,
        "builder": step.builder,
        "version": builder.version(),
        "name": step.name,
        "params": step.params,
        "salt": salt.map(|s| s.to_hex().to_string()),
    });
    let mut text = String::new();
    canonical_json(&doc, &mut text);
    Blake3Digest::of(text.as_bytes())
}

/// JSON with object keys sorted, whatever serde_json's map ordering.
fn canonical_json(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(k.as_str()).to_string());
                out.push(':');
                canonical_json(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Builds every step of `graph`; see the module docs.
pub fn build(
    graph: &ValidatedGraph,
    store: &Store,
    builders: &dyn BuilderSet,
    options: &BuildOptions,
) -> Result<BuildSummary, ScheduleError> {
    build_with(graph, store, builders, options, &NoSubstitutes)
}

/// [`build`], taking the output of every step the local build cache lacks
/// from `substituter` when it has it.
pub fn build_with(
    graph: &ValidatedGraph,
    store: &Store,
    builders: &dyn BuilderSet,
    options: &BuildOptions,
    substituter: &dyn Substituter,
) -> Result<BuildSummary, ScheduleError> {
    for &id in graph.topological() {
        let step = graph.step(id);
        if builders.get(&step.builder).is_none() {
            return Err(ScheduleError::UnknownBuilder {
                builder: step.builder.clone(),
                step: step.name.clone(),
            });
        }
    }
    let jobs = options.effective_jobs();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .thread_name(|i| format!("imago-build-{i}"))
        .build()
        .map_err(|source| ScheduleError::ThreadPool { jobs, source })?;
    // Lookups in flight apart from the build slots (see
    // `Substituter::lookups_in_flight`), on threads of their own.
    let lookups = substituter.lookups_in_flight();
    let lookup_pool = match lookups {
        0 => None,
        n => Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(|i| format!("imago-lookup-{i}"))
                .build()
                .map_err(|source| ScheduleError::ThreadPool { jobs: n, source })?,
        ),
    };
    let ctx = BuildContext {
        store_dir: store.dir().to_path_buf(),
        deb_cache: options.deb_cache.clone(),
        offline: options.offline,
    };
    let start = Instant::now();
    let mut refusing = Refusing {
        inner: substituter,
        refused: BTreeSet::new(),
    };
    // The origins of the steps of earlier runs that were not local, and
    // their warnings.
    let mut earlier: BTreeMap<String, (Origin, Option<String>)> = BTreeMap::new();
    let mut warnings = Vec::new();
    loop {
        let once = Once {
            graph,
            store,
            builders,
            options,
            ctx: &ctx,
            pool: &pool,
            lookup_pool: lookup_pool.as_ref().map(|p| (p, lookups)),
            jobs,
        };
        let (mut summary, failures) = match once.run(&refusing) {
            Ok(summary) => (summary, Vec::new()),
            Err(ScheduleError::Failed { failures, summary }) => (*summary, failures),
            Err(e) => return Err(e),
        };
        warnings.append(&mut summary.warnings);
        let unfetched: Vec<Blake3Digest> = failures
            .iter()
            .filter_map(|f| match &f.cause {
                StepFailureCause::Unfetched { key, .. } => Some(*key),
                _ => None,
            })
            .filter(|key| !refusing.refused.contains(key))
            .collect();
        if !unfetched.is_empty() {
            // Again, building what could not be fetched; everything
            // done so far is in the local build cache.
            for step in summary.steps.iter().filter(|s| s.origin != Origin::Local) {
                earlier.insert(step.key.clone(), (step.origin, step.substituter.clone()));
            }
            refusing.refused.extend(unfetched);
            continue;
        }
        for step in &mut summary.steps {
            if step.origin == Origin::Local
                && let Some((origin, substituter)) = earlier.get(&step.key)
            {
                step.origin = *origin;
                step.substituter.clone_from(substituter);
                step.cached = false;
            }
        }
        let count = |o: Origin| summary.steps.iter().filter(|s| s.origin == o).count();
        (summary.built, summary.cached, summary.substituted) = (
            count(Origin::Built),
            count(Origin::Local),
            count(Origin::Substituted),
        );
        summary.warnings = warnings;
        summary.elapsed_ms = ms(start.elapsed());
        return if failures.is_empty() {
            Ok(summary)
        } else {
            Err(ScheduleError::Failed {
                failures,
                summary: Box::new(summary),
            })
        };
    }
}

/// One run of a build (a build runs again when an output a substituter
/// named cannot be fetched).
struct Once<'a> {
    graph: &'a ValidatedGraph,
    store: &'a Store,
    builders: &'a dyn BuilderSet,
    options: &'a BuildOptions,
    ctx: &'a BuildContext,
    pool: &'a rayon::ThreadPool,
    /// The pool of the lookup loops and how many may run, when the
    /// substituter asks for them.
    lookup_pool: Option<(&'a rayon::ThreadPool, usize)>,
    jobs: usize,
}

impl Once<'_> {
    fn run(&self, substituter: &dyn Substituter) -> Result<BuildSummary, ScheduleError> {
        let Once {
            graph,
            store,
            builders,
            options,
            ctx,
            pool,
            lookup_pool,
            jobs,
        } = *self;
        std::thread::scope(|threads| {
            let (commits, queued) = mpsc::channel::<(Prepared, AddDone)>();
            let mailbox = Arc::new(Mailbox::default());
            let woken = Arc::clone(&mailbox);
            let committer = std::thread::Builder::new()
                .name("imago-commit".to_owned())
                .spawn_scoped(threads, move || commit_loop(store, &queued, &woken));
            if let Err(source) = committer {
                return Err(ScheduleError::CommitThread { source });
            }
            let run = Run {
                graph,
                store,
                builders,
                substituter,
                ctx,
                priorities: Priorities::new(graph, |id, inputs| {
                    let step = graph.step(id);
                    builders
                        .get(&step.builder)
                        .map_or(0, |b| b.weight(&step.params, inputs))
                }),
                start: Instant::now(),
                progress: Progress::new(options.progress, graph.len()),
                repair: options.repair,
                commits,
                mailbox,
                queue: Mutex::default(),
                warnings: Mutex::default(),
            };
            let keep_going = options.keep_going;
            let result = match lookup_pool {
                Some((lookup_pool, most)) => lookup_pool.in_place_scope(|lookup| {
                    pool.in_place_scope(|scope| {
                        run.coordinate(scope, Some((lookup, most)), jobs, keep_going)
                    })
                }),
                None => pool.in_place_scope(|scope| run.coordinate(scope, None, jobs, keep_going)),
            };
            run.progress.done();
            // Dropping `run` closes the channel, which ends the commit thread.
            result
        })
    }
}

/// The commit thread: hands every output the workers queued since its last
/// commit to the store's group commit at once, so that the workers never
/// wait for a sync and the batches are as large as the syncs are slow. The
/// steps' replies are posted quietly; the coordinator is woken once per
/// batch, by whichever thread runs the batch's last callback.
fn commit_loop(
    store: &Store,
    queued: &mpsc::Receiver<(Prepared, AddDone)>,
    mailbox: &Arc<Mailbox>,
) {
    while let Ok(first) = queued.recv() {
        let mut batch = vec![first];
        batch.extend(queued.try_iter());
        store.commit_prepared(waking(batch, mailbox));
    }
}

/// `items` with callbacks that wake the coordinator after the last of them.
fn waking(items: Vec<(Prepared, AddDone)>, mailbox: &Arc<Mailbox>) -> Vec<(Prepared, AddDone)> {
    let left = Arc::new(AtomicUsize::new(items.len()));
    items
        .into_iter()
        .map(|(prepared, done)| {
            let left = Arc::clone(&left);
            let mailbox = Arc::clone(mailbox);
            let done: AddDone = Box::new(move |result| {
                done(result);
                if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    mailbox.wake();
                }
            });
            (prepared, done)
        })
        .collect()
}

struct Run<'a> {
    graph: &'a ValidatedGraph,
    store: &'a Store,
    builders: &'a dyn BuilderSet,
    substituter: &'a dyn Substituter,
    ctx: &'a BuildContext,
    /// Which ready step starts first.
    priorities: Priorities,
    start: Instant,
    progress: Progress,
    repair: bool,
    /// To the commit thread.
    commits: mpsc::Sender<(Prepared, AddDone)>,
    /// From every step, to the coordinator.
    mailbox: Arc<Mailbox>,
    queue: Mutex<Queue>,
    /// Why substituters failed, in the order they did.
    warnings: Mutex<Vec<String>>,
}

/// What the coordinator and the workers share.
#[derive(Default)]
struct Queue {
    ready: Ready,
    /// Steps a lookup loop resolved and no source had, to build (heaviest
    /// first), with what the loop resolved.
    to_build: Ready,
    resolved: BTreeMap<StepId, Resolved>,
    /// The output of every step done.
    outputs: BTreeMap<StepId, StorePath>,
    /// Of those, the outputs a substituter named that are not fetched yet,
    /// with the step's key and the record.
    unfetched: BTreeMap<StepId, (Blake3Digest, Substitution)>,
    /// Build loops running (each runs one step at a time).
    loops: usize,
    /// Lookup loops running.
    lookups: usize,
    /// Steps started and not done (an output may be waiting for the commit).
    outstanding: usize,
    /// No step starts any more (a failure, without `keep_going`).
    stopped: bool,
}

impl<'a> Run<'a> {
    fn coordinate<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        lookup: Option<(&rayon::Scope<'s>, usize)>,
        jobs: usize,
        keep_going: bool,
    ) -> Result<BuildSummary, ScheduleError>
    where
        'a: 's,
    {
        let graph = self.graph;
        let mut waiting: BTreeMap<StepId, usize> = BTreeMap::new();
        {
            let mut queue = self.queue();
            for &id in graph.topological() {
                let n = graph.inputs(id).count();
                if n == 0 {
                    queue.ready.push(id, self.priorities.of(id));
                } else {
                    waiting.insert(id, n);
                }
            }
        }
        let mut summary = BuildSummary::default();
        let mut failures: Vec<StepFailure> = Vec::new();
        loop {
            {
                let mut queue = self.queue();
                // Done when nothing is pending and nothing more can start.
                if queue.outstanding == 0 && (queue.stopped || queue.ready.is_empty()) {
                    break;
                }
                // Each loop takes steps until none is left.
                let (ready, to_build) = if queue.stopped {
                    (0, 0)
                } else {
                    (queue.ready.len(), queue.to_build.len())
                };
                let idle = jobs.saturating_sub(queue.loops);
                for _ in 0..idle.min(ready + to_build) {
                    queue.loops += 1;
                    scope.spawn(move |_| self.work());
                }
                if let Some((lookup, most)) = lookup {
                    let idle = most.saturating_sub(queue.lookups);
                    for _ in 0..idle.min(ready) {
                        queue.lookups += 1;
                        lookup.spawn(move |_| self.look_up());
                    }
                }
            }
            // Everything that finished meanwhile; the queue is locked once,
            // and not while progress is printed.
            let batch = self.mailbox.take();
            let finished = batch.len();
            let mut built = Vec::with_capacity(finished);
            let mut stop = false;
            for (id, done) in batch {
                let step = graph.step(id);
                match done {
                    Done::Ok(report, path, unfetched) => {
                        self.progress.finished(&report);
                        match report.origin {
                            Origin::Built => summary.built += 1,
                            Origin::Local => summary.cached += 1,
                            Origin::Substituted => summary.substituted += 1,
                        }
                        if report.repaired {
                            summary.repaired += 1;
                        }
                        summary.steps.push(report);
                        built.push((id, path, unfetched));
                    }
                    Done::Failed(cause, log) => {
                        self.progress.failed(&step.name);
                        failures.push(StepFailure {
                            name: step.name.clone(),
                            builder: step.builder.clone(),
                            placeholder: step.placeholder.clone(),
                            cause,
                            log,
                            chain: graph
                                .chain_to(id)
                                .into_iter()
                                .map(|i| graph.step(i).name.clone())
                                .collect(),
                        });
                        stop |= !keep_going;
                    }
                    Done::Skipped => self.progress.abandoned(&step.name),
                }
            }
            let mut queue = self.queue();
            queue.outstanding -= finished;
            queue.stopped |= stop;
            if queue.stopped {
                // Resolved steps not built yet are skipped (and their
                // locks released).
                queue.to_build = Ready::default();
                for (_, resolved) in std::mem::take(&mut queue.resolved) {
                    resolved.skip();
                }
            }
            for (id, path, unfetched) in built {
                queue.outputs.insert(id, path);
                if let Some(record) = unfetched {
                    queue.unfetched.insert(id, record);
                }
                for dependent in graph.dependents(id) {
                    if let Some(n) = waiting.get_mut(&dependent) {
                        *n -= 1;
                        if *n == 0 {
                            waiting.remove(&dependent);
                            queue.ready.push(dependent, self.priorities.of(dependent));
                        }
                    }
                }
            }
        }
        let outputs = std::mem::take(&mut self.queue().outputs);
        summary.skipped =
            graph.len() - summary.built - summary.cached - summary.substituted - failures.len();
        // The wanted outputs are fetched last: those a substituter named
        // (a failure makes the build run again, building it).
        if failures.is_empty() {
            for root in graph.roots() {
                let record = self.queue().unfetched.get(root).cloned();
                if let Some((key, found)) = record {
                    let step = graph.step(*root);
                    if let Err(cause) = self.fetch(&key, &found, &step.name) {
                        failures.push(StepFailure {
                            name: step.name.clone(),
                            builder: step.builder.clone(),
                            placeholder: step.placeholder.clone(),
                            cause,
                            log: String::new(),
                            chain: vec![step.name.clone()],
                        });
                    }
                }
            }
        }
        summary.warnings =
            std::mem::take(&mut *self.warnings.lock().unwrap_or_else(PoisonError::into_inner));
        summary.outputs = graph
            .roots()
            .iter()
            .filter_map(|r| {
                outputs.get(r).map(|p| RootOutput {
                    placeholder: graph.step(*r).placeholder.clone(),
                    path: p.to_absolute(),
                    physical: self.store.physical(p).display().to_string(),
                })
            })
            .collect();
        summary.elapsed_ms = ms(self.start.elapsed());
        if failures.is_empty() {
            Ok(summary)
        } else {
            Err(ScheduleError::Failed {
                failures,
                summary: Box::new(summary),
            })
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Steps whose inputs are all built: the highest priority first (see
/// `scheduler/priority.rs`), and among equals the first to become ready.
#[derive(Default)]
struct Ready {
    heap: BinaryHeap<(u64, Reverse<u64>, StepId)>,
    pushed: u64,
}

impl Ready {
    fn push(&mut self, id: StepId, priority: u64) {
        self.heap.push((priority, Reverse(self.pushed), id));
        self.pushed += 1;
    }

    fn pop(&mut self) -> Option<StepId> {
        self.heap.pop().map(|(_, _, id)| id)
    }

    fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    fn len(&self) -> usize {
        self.heap.len()
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
