//! The scheduler: builds a [`ValidatedGraph`] in parallel into the store.
//!
//! The calling thread coordinates; a rayon pool of `jobs` threads runs the
//! steps. A step is started once all its inputs are built, and at most `jobs`
//! steps run at once; of the steps ready, the heaviest by its builder's
//! estimate ([`Builder::weight`]: a package's size) starts first, so a large
//! package does not unpack alone at the end. Running a step:
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
//! outputs too.
//!
//! With `repair`, a cache hit is rehashed first; a broken output is rebuilt
//! under the step lock and exchanged into place ([`Store::repair_with`]).
//!
//! Outputs added or found in the cache stay temporary GC roots for as long as
//! the [`Store`] is open. The first failure stops new work (running steps
//! finish) unless `keep_going`, which builds everything not downstream of a
//! failure.

use super::dag::{StepId, ValidatedGraph};
use super::progress::{Progress, ProgressMode};
use super::registry;
use super::reply::{Done, How, Mailbox, Reply, StepInfo};
use super::report::{
    BuildSummary, Origin, RootOutput, ScheduleError, StepFailure, StepFailureCause,
};
use super::step::{find_pending, substitute};
use super::substitute::{NoSubstitutes, Refusing, Substituter, Substitution};
use crate::builders::{BuildContext, Builder, ResolvedStep};
use crate::store::{
    AddDone, AddSpec, Blake3Digest, Prepared, StepLock, Store, StorePath, TempOutput,
};
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
                start: Instant::now(),
                progress: Progress::new(options.progress, graph.len()),
                repair: options.repair,
                commits,
                mailbox,
                queue: Mutex::default(),
                warnings: Mutex::default(),
            };
            let result =
                pool.in_place_scope(|scope| run.coordinate(scope, jobs, options.keep_going));
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
    /// The output of every step done.
    outputs: BTreeMap<StepId, StorePath>,
    /// Of those, the outputs a substituter named that are not fetched yet,
    /// with the step's key and the record.
    unfetched: BTreeMap<StepId, (Blake3Digest, Substitution)>,
    /// Worker loops running (each runs one step at a time).
    loops: usize,
    /// Steps started and not done (an output may be waiting for the commit).
    outstanding: usize,
    /// No step starts any more (a failure, without `keep_going`).
    stopped: bool,
}

/// A step a worker takes, with what it needs of its inputs.
struct Start {
    id: StepId,
    substitutions: BTreeMap<String, String>,
    input_paths: Vec<StorePath>,
    /// The inputs to fetch before the step is built: key, record, name.
    to_fetch: Vec<(Blake3Digest, Substitution, String)>,
    info: StepInfo,
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

impl<'a> Run<'a> {
    fn coordinate<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
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
                    queue.ready.push(id, self.weight(id));
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
                // Each loop takes ready steps until none is left.
                let idle = jobs.saturating_sub(queue.loops);
                let startable = if queue.stopped { 0 } else { queue.ready.len() };
                for _ in 0..idle.min(startable) {
                    queue.loops += 1;
                    scope.spawn(move |_| self.work());
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
                }
            }
            let mut queue = self.queue();
            queue.outstanding -= finished;
            queue.stopped |= stop;
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
                            queue.ready.push(dependent, self.weight(dependent));
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

    /// A worker's loop: takes the heaviest ready step and runs it, until no
    /// step is ready (or the build stopped).
    fn work(&self) {
        while let Some(start) = self.next_step() {
            let Start {
                id,
                substitutions,
                input_paths,
                to_fetch,
                info,
            } = start;
            let mut reply = Some(Reply::new(Arc::clone(&self.mailbox), id, info));
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.run_step(id, &substitutions, &input_paths, &to_fetch, &mut reply);
            }));
            if let (Err(panic), Some(reply)) = (result, reply.take()) {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                reply.failed(StepFailureCause::Panicked(text), String::new());
            }
        }
    }

    /// Takes the next ready step with what it needs of its inputs, or ends
    /// the calling loop.
    fn next_step(&self) -> Option<Start> {
        let graph = self.graph;
        let mut queue = self.queue();
        let id = if queue.stopped {
            None
        } else {
            queue.ready.pop()
        };
        let Some(id) = id else {
            queue.loops -= 1;
            return None;
        };
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
        drop(queue);
        input_paths.sort();
        input_paths.dedup();
        let step = graph.step(id);
        self.progress.started(&step.name);
        Some(Start {
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
        })
    }

    /// Fetches the output a substituter named for the step `key` (`name`),
    /// unless the store has it by now.
    fn fetch(
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

    /// What the step's builder estimates its work to be.
    fn weight(&self, id: StepId) -> u64 {
        let step = self.graph.step(id);
        self.builders
            .get(&step.builder)
            .map_or(0, |b| b.weight(&step.params))
    }

    /// Runs one step on a worker thread; the step's [`Reply`] is sent now,
    /// or once the store has registered its output.
    fn run_step(
        &self,
        id: StepId,
        substitutions: &BTreeMap<String, String>,
        input_paths: &[StorePath],
        to_fetch: &[(Blake3Digest, Substitution, String)],
        reply: &mut Option<Reply>,
    ) {
        let step = self.graph.step(id);
        let mut log: Vec<u8> = Vec::new();
        let result = self.resolve_and_build(step, substitutions, input_paths, to_fetch, &mut log);
        let log = String::from_utf8_lossy(&log).into_owned();
        let Some(reply) = reply.take() else { return };
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
                        .commit_prepared(waking(vec![item], &self.mailbox));
                }
            }
            Err(cause) => reply.failed(cause, log),
        }
    }

    fn resolve_and_build(
        &self,
        step: &super::Step,
        substitutions: &BTreeMap<String, String>,
        input_paths: &[StorePath],
        to_fetch: &[(Blake3Digest, Substitution, String)],
        log: &mut Vec<u8>,
    ) -> Result<Outcome, StepFailureCause> {
        let params = substitute(&step.params_json(), substitutions);
        if let Some(text) = find_pending(&params) {
            return Err(StepFailureCause::UnresolvedPlaceholder(text.to_owned()));
        }
        let mut resolved = ResolvedStep {
            builder: step.builder.clone(),
            name: step.name.clone(),
            params,
            inputs: input_paths.iter().map(StorePath::to_absolute).collect(),
            // Filled in below once the cache misses: a cached step never
            // pays for it.
            closure: Vec::new(),
        };
        let builder = self.builders.get(&step.builder).ok_or_else(|| {
            crate::builders::BuildError::Failed(format!("no builder `{}`", step.builder))
        })?;
        let salt = builder.key_salt(self.ctx, &resolved)?;
        let key = cache_key(builder, &resolved, salt);
        // Fast path: a cached step needs no lock (the cache only names valid
        // objects, and `cache_get` roots what it returns). With `repair`, a
        // cached output that no longer hashes right is rebuilt instead.
        let broken = match self.store.cache_get(&key)? {
            Some(path) if self.repair && self.store.check_object(&path)?.is_some() => Some(path),
            Some(path) => return Ok(Outcome::Cached(path, key)),
            None => None,
        };
        let lock = self.store.lock_step(&key)?;
        // Another process may have built it while we waited for the lock.
        if broken.is_none()
            && let Some(path) = self.store.cache_get(&key)?
        {
            return Ok(Outcome::Cached(path, key));
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
                return Ok(Outcome::Substituted(found.output.clone(), key, found, here));
            }
        }
        for (input_key, found, name) in to_fetch {
            self.fetch(input_key, found, name)?;
        }
        // An output may mention any object its inputs refer to (a tree that
        // copies a unit file naming a script, say), not only the inputs
        // themselves: every object of the inputs' closure is a candidate
        // reference, so closures, images and GC never miss one. The builder
        // gets the same list (the `tree` builder's `closure` entry writes
        // it out).
        let candidates: Vec<StorePath> = self.store.closure(input_paths)?.into_iter().collect();
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
}

/// Steps whose inputs are all built: the heaviest first (see
/// [`Builder::weight`]), and among equals the first to become ready.
#[derive(Default)]
struct Ready {
    heap: BinaryHeap<(u64, Reverse<u64>, StepId)>,
    pushed: u64,
}

impl Ready {
    fn push(&mut self, id: StepId, weight: u64) {
        self.heap.push((weight, Reverse(self.pushed), id));
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
