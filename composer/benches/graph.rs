//! Build-graph benchmarks (run with `cargo bench -p imago --bench graph`).
//!
//! 1. A no-op rebuild: a graph of 300 text and tree steps, built once, then
//!    rebuilt with everything cached (evaluation excluded: the table is
//!    recorded once). Target: well under 100 ms.
//! 2. 1,000 independent small text steps into a fresh store, with 1 build
//!    thread confined to 1 core and with 2 threads on 2 cores (the whole
//!    process, the commit thread included, runs on the first N cores it
//!    may use). Target: at least 1.7x speed-up on two cores. Each line also
//!    gives the cores kept busy on average, by this process and by the whole
//!    machine (kernel threads — a journal, a loop device's workers — are not
//!    confined with the process).
//!
//! Each figure is the median of repeated runs. Arguments select benchmarks
//! by name (`noop`, `parallel`); none runs both:
//! `cargo bench -p imago --bench graph -- noop`. `IMAGO_BENCH_JOBS` (say
//! `2`) limits the parallel benchmark to those thread counts, for profiling
//! or counting system calls of one of them.

/// The allocator the `imago` binary uses, so that figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use imago::graph::{BuildOptions, Graph, Registry, StepTable, ValidatedGraph, build};
use imago::store::Store;
use imago_lang::hook::{StepRequest, StepValue, StoreHook};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

fn text_request(name: &str, text: String, context: BTreeSet<String>) -> StepRequest {
    StepRequest {
        builder: "text".into(),
        name: name.into(),
        params: BTreeMap::from([("text".to_owned(), StepValue::Str { text, context })]),
    }
}

/// 270 texts, 27 trees of ten texts each, 2 trees over the trees and one
/// top: 300 steps.
fn layered_graph() -> Result<ValidatedGraph, Box<dyn std::error::Error>> {
    let table = StepTable::new(None);
    let mut groups = Vec::new();
    for g in 0..27 {
        let mut entries = BTreeMap::new();
        for i in 0..10 {
            let p = table.add_step(text_request(
                &format!("t{g}-{i}"),
                format!("file {g} {i}\n"),
                BTreeSet::new(),
            ))?;
            entries.insert(
                format!("f{i}"),
                StepValue::Attrs(BTreeMap::from([(
                    "source".to_owned(),
                    StepValue::Str {
                        text: p.clone(),
                        context: BTreeSet::from([p]),
                    },
                )])),
            );
        }
        groups.push(table.add_step(tree_request(&format!("g{g}"), entries))?);
    }
    let mut halves = Vec::new();
    for (h, chunk) in groups.chunks(14).enumerate() {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("g{i}"), source(p)))
            .collect();
        halves.push(table.add_step(tree_request(&format!("half{h}"), entries))?);
    }
    let entries = halves
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("h{i}"), source(p)))
        .collect();
    let top = table.add_step(tree_request("top", entries))?;
    let graph = Graph::from_table(&table, &[top])?.validate()?;
    assert_eq!(graph.len(), 300);
    Ok(graph)
}

fn source(p: &str) -> StepValue {
    StepValue::Attrs(BTreeMap::from([(
        "source".to_owned(),
        StepValue::Str {
            text: p.to_owned(),
            context: BTreeSet::from([p.to_owned()]),
        },
    )]))
}

fn tree_request(name: &str, entries: BTreeMap<String, StepValue>) -> StepRequest {
    StepRequest {
        builder: "tree".into(),
        name: name.into(),
        params: BTreeMap::from([("entries".to_owned(), StepValue::Attrs(entries))]),
    }
}

fn independent_graph(n: usize) -> Result<ValidatedGraph, Box<dyn std::error::Error>> {
    let table = StepTable::new(None);
    let mut roots = Vec::new();
    for i in 0..n {
        roots.push(table.add_step(text_request(
            &format!("small-{i}"),
            format!("small text number {i}\n"),
            BTreeSet::new(),
        ))?);
    }
    Ok(Graph::from_table(&table, &roots)?.validate()?)
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn options(jobs: usize) -> BuildOptions {
    BuildOptions {
        jobs,
        ..BuildOptions::default()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = tempfile::tempdir()?;
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| args.is_empty() || args.iter().any(|a| a == name);

    if wanted("noop") {
        noop(base.path())?;
    }
    if wanted("parallel") {
        parallel(base.path())?;
    }
    Ok(())
}

/// 1. No-op rebuild.
fn noop(base: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let graph = layered_graph()?;
    let store = Store::open(base.join("noop"))?;
    let first = build(&graph, &store, &Registry, &options(0))?;
    assert_eq!(first.built, 300);
    let mut times = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        let s = build(&graph, &store, &Registry, &options(0))?;
        times.push(t.elapsed());
        assert_eq!(s.cached, 300);
    }
    println!(
        "no-op rebuild, 300 steps (all cached): median {:.1} ms over {} runs",
        median(times.clone()).as_secs_f64() * 1e3,
        times.len()
    );

    Ok(())
}

/// Runs this thread, and the threads it starts from now on, on the first
/// `n` of the cores in `all`.
fn confine(all: &rustix::thread::CpuSet, n: usize) -> std::io::Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    for cpu in (0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&c| all.is_set(c))
        .take(n)
    {
        set.set(cpu);
    }
    Ok(rustix::thread::sched_setaffinity(None, &set)?)
}

/// CPU time in clock ticks (`USER_HZ`, 100 per second on Linux).
#[derive(Default)]
struct CpuTicks(u64);

impl CpuTicks {
    /// User and system time of this process, all threads.
    fn process() -> std::io::Result<CpuTicks> {
        let stat = std::fs::read_to_string("/proc/self/stat")?;
        // Fields after the command name (which may hold spaces): utime and
        // stime are the 14th and 15th fields of the line.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<u64> = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|f| f.parse().ok())
            .collect();
        Ok(CpuTicks(fields.iter().sum()))
    }

    /// Non-idle time of every core of the machine: kernel threads too (a
    /// file system's journal, a loop device's workers), which the affinity
    /// of this process does not confine.
    fn machine() -> std::io::Result<CpuTicks> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let line = stat.lines().next().unwrap_or_default();
        let ticks: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is
        // already counted in user).
        let busy: u64 = ticks
            .iter()
            .take(8)
            .enumerate()
            .filter(|(i, _)| *i != 3 && *i != 4)
            .map(|(_, t)| t)
            .sum();
        Ok(CpuTicks(busy))
    }

    /// Average cores busy over `wall`.
    fn cores(&self, wall: Duration) -> f64 {
        self.0 as f64 / 100.0 / wall.as_secs_f64()
    }
}

/// 2. 1,000 independent text steps on 1 and 2 threads.
fn parallel(base: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let graph = independent_graph(1000)?;
    let mut medians = BTreeMap::new();
    let wanted: Vec<usize> = std::env::var("IMAGO_BENCH_JOBS")
        .ok()
        .map(|v| v.split(',').filter_map(|j| j.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2]);
    let all = rustix::thread::sched_getaffinity(None)?;
    for jobs in wanted {
        confine(&all, jobs)?;
        let mut times = Vec::new();
        let (mut process, mut machine) = (CpuTicks::default(), CpuTicks::default());
        for run in 0..5 {
            let store = Store::open(base.join(format!("indep-{jobs}-{run}")))?;
            let before = (CpuTicks::process()?, CpuTicks::machine()?);
            let t = Instant::now();
            let s = build(&graph, &store, &Registry, &options(jobs))?;
            times.push(t.elapsed());
            process.0 += CpuTicks::process()?.0 - before.0.0;
            machine.0 += CpuTicks::machine()?.0 - before.1.0;
            assert_eq!(s.built, 1000);
        }
        let wall: Duration = times.iter().sum();
        let m = median(times);
        println!(
            "1000 independent text steps, {jobs} thread(s) on {jobs} core(s): median {:.1} ms over 5 runs \
             (busy cores: this process {:.2}, the whole machine {:.2})",
            m.as_secs_f64() * 1e3,
            process.cores(wall),
            machine.cores(wall),
        );
        medians.insert(jobs, m);
    }
    rustix::thread::sched_setaffinity(None, &all)?;
    if let (Some(one), Some(two)) = (medians.get(&1), medians.get(&2)) {
        println!(
            "speed-up 1 -> 2 cores: {:.2}x",
            one.as_secs_f64() / two.as_secs_f64()
        );
    }
    Ok(())
}
