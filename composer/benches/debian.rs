//! Unpacking the Debian packages of examples/bookworm/server (their closure
//! in examples/bookworm/imago.lock) from a warm cache, versus `mmdebstrap
//! --variant=extract` on the same pinned packages, side by side.
//!
//! Three figures for imago, each over `IMAGO_BENCH_RUNS` runs (default 5):
//! - **store**: the real build path into an empty store — a graph of `deb`
//!   steps run by the scheduler (one job per core), every output
//!   canonicalized, hashed, synced and registered by `Store::add`;
//! - **unpack**: the `deb` builder alone into plain directories, in
//!   parallel with rayon, largest package first (SHA-256 verified);
//! - **serial**: `unpack::unpack_deb` in a plain loop on one thread, no
//!   verification (the floor for one core).
//!
//! Then `mmdebstrap --variant=extract` (3 runs) with the cached .debs copied
//! into its apt cache, so it downloads nothing.
//!
//! Run: `cargo bench -p imago --bench debian`. `IMAGO_BENCH_MMDEBSTRAP=0`
//! skips mmdebstrap; `IMAGO_BENCH_ONLY=store|unpack|serial` runs one series
//! of imago's alone (and no mmdebstrap), for profiling, and
//! `IMAGO_BENCH_ONLY=xz` compares liblzma's decoders on the set's data
//! members in memory; `IMAGO_BENCH_COLD=1` adds one cold run of each side
//! (imago with an empty download cache in the work directory, mmdebstrap
//! downloading itself). The work directory is a temporary directory under
//! `$TMPDIR`; mmdebstrap also works under `$TMPDIR`.
//!
//! ext4 without a journal skips inodes freed in the last
//! `dirty_expire_centisecs` (30 s) when it allocates new ones, checking each
//! one, so creating files right after deleting thousands in the same block
//! group costs many times more system time. Nothing is deleted between
//! imago's runs, and before each mmdebstrap run (mmdebstrap deletes its
//! chroot when it finishes) the bench waits out that window. Other
//! processes deleting files on the same file system still distort the
//! figures: compare CPU times, and repeat.

/// The allocator the `imago` binary uses, so that figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use imago::builders::{BuildContext, Builder, ResolvedStep};
use imago::debian::apt::{AptEnv, default_apt_dir};
use imago::debian::builder::{DEB, remove_tree};
use imago::debian::fetch::{Background, FetchOptions, Http, check as check_sources, ensure_cached};
use imago::debian::lock::{Lock, LockEntry};
use imago::debian::platform::Platform;
use imago::debian::unpack::{Limits, unpack_deb};
use imago::dirs::cache_root as default_cache_root;
use imago::graph::{BuildOptions, Graph, Registry, Step};
use imago::pipeline;
use imago::settings::configured_sources;
use imago::store::Store;
use imago_lang::hook::{StepRequest, StepValue};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::var("IMAGO_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bookworm");
    let entries = server_packages(&examples)?;
    let root = default_cache_root();
    // The release and architecture of the lock the packages come from.
    let platform = Lock::read(&examples.join("imago.lock"))?.platform;
    let apt_dir = default_apt_dir(platform);
    let opts = FetchOptions::new(root.join("debs"), configured_sources(&[])?);
    let paths = ensure_cached(&entries, &opts)?;
    let total: u64 = entries.iter().map(|e| e.size).sum();
    println!(
        "set: the {} packages of examples/bookworm/server, {:.1} MB of .debs",
        entries.len(),
        total as f64 / 1e6
    );
    println!("load average at the start: {}", loadavg());

    let only = std::env::var("IMAGO_BENCH_ONLY").unwrap_or_default();
    let wanted = |series: &str| only.is_empty() || only == series;
    if only == "xz" {
        return xz_decoders(&paths);
    }
    if only == "cold" {
        return cold(&entries, &opts, &apt_dir, platform, runs);
    }
    if only == "check" {
        return check(&examples, &opts, runs);
    }
    // A previous run may just have deleted its work directory.
    settle();
    let work = tempfile::tempdir()?;
    let mut store = Series::default();
    let mut unpack = Series::default();
    let mut serial = Series::default();
    // One series after the other, so that each runs on the file system
    // its own earlier runs left, not on the other series' trees.
    for run in 0..runs {
        if wanted("store") {
            let dir = work.path().join(format!("store{run}"));
            store.time(|| into_store(&entries, &opts.cache_dir, &dir))?;
        }
    }
    for run in 0..runs {
        if wanted("unpack") {
            let dir = work.path().join(format!("unpack{run}"));
            std::fs::create_dir(&dir)?;
            unpack.time(|| unpack_all(&opts.cache_dir, &entries, &dir))?;
        }
    }
    for run in 0..runs {
        if wanted("serial") {
            let dir = work.path().join(format!("serial{run}"));
            std::fs::create_dir(&dir)?;
            serial.time(|| unpack_serial(&entries, &paths, &dir))?;
        }
    }
    store.print("imago into an empty store (scheduler, Store::add)");
    unpack.print(&format!(
        "imago deb builder into directories ({} threads, sha256 verified)",
        rayon::current_num_threads()
    ));
    serial.print("imago unpack_deb, serial on one thread");
    println!("load average after imago's runs: {}", loadavg());

    if only.is_empty() && std::env::var("IMAGO_BENCH_MMDEBSTRAP").as_deref() != Ok("0") {
        let sources = apt_dir.join("etc/sources.list.d/imago.sources");
        let mut theirs = Series::default();
        for run in 0..runs.min(3) {
            settle();
            let out = work.path().join(format!("mmdebstrap{run}.tar"));
            theirs.time_children(|| mmdebstrap(&entries, Some(&paths), &sources, &out))?;
        }
        theirs.print("mmdebstrap --variant=extract (debs copied into its apt cache)");
        println!(
            "ratio: into the store {:.1}% of mmdebstrap's wall time ({:.1}% of its CPU); builder alone {:.1}%",
            100.0 * store.median() / theirs.median(),
            100.0 * store.cpu() / theirs.cpu(),
            100.0 * unpack.median() / theirs.median(),
        );
        if std::env::var("IMAGO_BENCH_COLD").as_deref() == Ok("1") {
            settle();
            let cold = FetchOptions {
                cache_dir: work.path().join("cold-debs"),
                ..opts.clone()
            };
            let mut ours = Series::default();
            ours.time_all(|| {
                ensure_cached(&entries, &cold)?;
                into_store(&entries, &cold.cache_dir, &work.path().join("cold-store"))
            })?;
            ours.print("cold: imago download + into an empty store");
            settle();
            let mut theirs = Series::default();
            let out = work.path().join("cold.tar");
            theirs.time_children(|| mmdebstrap(&entries, None, &sources, &out))?;
            theirs.print("cold: mmdebstrap --variant=extract, downloading");
        }
    }
    println!("load average at the end: {}", loadavg());
    remove_tree(work.path())?;
    Ok(())
}

/// The cold path, alternated run by run: imago fetching the set by hash
/// into an empty cache while building it into an empty store, against
/// `apt-get download` of the same pinned set (the way imago fetched before)
/// followed by the same build.
fn cold(
    entries: &[LockEntry],
    opts: &FetchOptions,
    apt_dir: &Path,
    platform: Platform,
    runs: usize,
) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let apt = AptEnv::open(apt_dir, platform, &Default::default())?;
    apt.ensure_lists()?;
    let refs: Vec<&LockEntry> = entries.iter().collect();
    let mut ours = Series::default();
    let mut theirs = Series::default();
    let mut floor = Series::default();
    for run in 0..runs {
        settle();
        let cache = work.path().join(format!("ours-debs{run}"));
        let fetch = FetchOptions {
            cache_dir: cache.clone(),
            ..opts.clone()
        };
        let store = work.path().join(format!("ours-store{run}"));
        // As `imago build` does it: the fetch runs in the background and
        // each deb step waits for its own file.
        ours.time_all(|| {
            let background = Background::start(entries, &fetch)?;
            let built = into_store(entries, &cache, &store);
            background.finish()?;
            built
        })?;
        settle();
        let cache = work.path().join(format!("apt-debs{run}"));
        std::fs::create_dir(&cache)?;
        let store = work.path().join(format!("apt-store{run}"));
        theirs.time_all(|| {
            for batch in refs.chunks(64) {
                apt.download(batch, &cache)?;
            }
            into_store(entries, &cache, &store)
        })?;
        // The floor for any fetcher: the same build from a warm cache.
        settle();
        let store = work.path().join(format!("warm-store{run}"));
        floor.time_all(|| into_store(entries, &opts.cache_dir, &store))?;
        println!(
            "run {run}: imago {:.2} s, apt-get download + build {:.2} s, build from a warm cache {:.2} s",
            ours.wall.last().map_or(0.0, Duration::as_secs_f64),
            theirs.wall.last().map_or(0.0, Duration::as_secs_f64),
            floor.wall.last().map_or(0.0, Duration::as_secs_f64)
        );
    }
    ours.print("cold: imago fetch by hash (parallel, in the background) while building into an empty store");
    theirs.print("cold: apt-get download (64 per call) + into an empty store");
    floor.print("warm: into an empty store from a warm cache (no download at all)");
    println!(
        "ratio: {:.1}% of the apt-get download path's wall time; a fetcher that took no time at all would give {:.1}%",
        100.0 * ours.median() / theirs.median(),
        100.0 * floor.median() / theirs.median()
    );
    remove_tree(work.path())?;
    Ok(())
}

/// `lock --check`'s work for the examples' lock: HEAD requests for every
/// package against the configured sources.
fn check(examples: &Path, opts: &FetchOptions, runs: usize) -> anyhow::Result<()> {
    let lock = Lock::read(&examples.join("imago.lock"))?;
    let entries: Vec<LockEntry> = lock.packages.into_values().collect();
    let mut series = Series::default();
    for _ in 0..runs {
        series.time(|| {
            let http = Http::new(opts.http.clone()).map_err(anyhow::Error::msg)?;
            let reports = check_sources(&entries, &opts.sources, &http);
            anyhow::ensure!(reports.len() == entries.len());
            Ok(())
        })?;
    }
    series.print(&format!(
        "lock --check: {} packages, HEAD requests",
        entries.len()
    ));
    Ok(())
}

/// The lock entries of everything examples/bookworm/server.imago uses: the
/// packages its evaluation asks for and their closure in its lock, largest
/// first.
fn server_packages(examples: &Path) -> anyhow::Result<Vec<LockEntry>> {
    let file = examples.join("server.imago");
    let roots = pipeline::requested_packages(
        &pipeline::Settings::default(),
        &file,
        pipeline::DEFAULT_ATTR,
        None,
    )?
    .map_err(|failure| anyhow::anyhow!("evaluating {} failed:\n{failure}", file.display()))?
    .packages;
    let lock = Lock::read(&examples.join("imago.lock"))?;
    let names = lock
        .closure(roots.iter().map(String::as_str))
        .map_err(|missing| anyhow::anyhow!("not in the lock: {}", missing.join(", ")))?;
    let mut entries: Vec<LockEntry> = names
        .iter()
        .filter_map(|n| lock.packages.get(n).cloned())
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.size));
    Ok(entries)
}

fn deb_params(e: &LockEntry) -> BTreeMap<String, StepValue> {
    let text = |s: &str| StepValue::Str {
        text: s.to_owned(),
        context: Default::default(),
    };
    BTreeMap::from([
        ("package".to_owned(), text(&e.name)),
        ("version".to_owned(), text(&e.version)),
        ("architecture".to_owned(), text(&e.architecture)),
        (
            "size".to_owned(),
            StepValue::Int(i64::try_from(e.size).unwrap_or(i64::MAX)),
        ),
        ("sha256".to_owned(), text(&e.sha256)),
    ])
}

/// Builds one `deb` step per package into a new store at `dir`, the way
/// `imago build` does after its batch pre-fetch.
fn into_store(entries: &[LockEntry], cache: &Path, dir: &Path) -> anyhow::Result<()> {
    let mut steps = BTreeMap::new();
    let mut roots = Vec::new();
    for e in entries {
        let step = Step::new(StepRequest {
            builder: "deb".into(),
            name: e.name.clone(),
            params: deb_params(e),
        })?;
        roots.push(step.placeholder.clone());
        steps.insert(step.placeholder.clone(), step);
    }
    let graph = Graph::from_steps(&steps, &roots)?.validate()?;
    let store = Store::open(dir)?;
    let options = BuildOptions {
        offline: true,
        deb_cache: cache.to_path_buf(),
        ..BuildOptions::default()
    };
    let summary = imago::graph::build(&graph, &store, &Registry, &options)?;
    anyhow::ensure!(
        summary.built == entries.len(),
        "built {} of {}",
        summary.built,
        entries.len()
    );
    if let Some(big) = summary.steps.iter().find(|s| s.name == entries[0].name) {
        println!(
            "  (largest package {}: built from {:.0} to {:.0} ms of {:.0} ms)",
            big.name, big.start_ms, big.end_ms, summary.elapsed_ms
        );
    }
    Ok(())
}

fn unpack_all(cache: &Path, entries: &[LockEntry], dir: &Path) -> anyhow::Result<()> {
    let ctx = BuildContext {
        store_dir: dir.join("store"),
        deb_cache: cache.to_path_buf(),
        offline: true,
    };
    entries.par_iter().try_for_each(|e| {
        let params: serde_json::Map<String, serde_json::Value> = [
            ("package", serde_json::json!(e.name)),
            ("version", serde_json::json!(e.version)),
            ("architecture", serde_json::json!(e.architecture)),
            ("size", serde_json::json!(e.size)),
            ("sha256", serde_json::json!(e.sha256)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let step = ResolvedStep {
            builder: "deb".into(),
            name: e.name.clone(),
            params: serde_json::Value::Object(params),
            inputs: vec![],
            closure: vec![],
        };
        let mut log = Vec::new();
        DEB.build(&ctx, &step, &dir.join(&e.name), &mut log)
            .map_err(|err| anyhow::anyhow!("{}: {err}", e.name))
    })
}

fn unpack_serial(entries: &[LockEntry], paths: &[PathBuf], dir: &Path) -> anyhow::Result<()> {
    let limits = Limits {
        allow_case_only_collisions: true,
        ..Limits::default()
    };
    for (e, path) in entries.iter().zip(paths) {
        let file = std::io::BufReader::with_capacity(256 * 1024, std::fs::File::open(path)?);
        unpack_deb(file, &e.name, &dir.join(&e.name), &limits)?;
    }
    Ok(())
}

/// `mmdebstrap --quiet --variant=extract --include=NAME=VERSION,…
/// --skip=download/empty bookworm OUT SOURCES`, with `debs` (when given)
/// copied into its apt cache by a setup hook so it downloads none.
fn mmdebstrap(
    entries: &[LockEntry],
    debs: Option<&[PathBuf]>,
    sources: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    let include: Vec<String> = entries
        .iter()
        .map(|e| format!("{}={}", e.name, e.version))
        .collect();
    let mut cmd = Command::new("mmdebstrap");
    cmd.arg("--quiet")
        .arg("--variant=extract")
        .arg(format!("--include={}", include.join(",")));
    if let Some(debs) = debs {
        let cache = out.with_extension("debs");
        std::fs::create_dir_all(&cache)?;
        for d in debs {
            let dest = cache.join(d.file_name().unwrap_or_default());
            if !dest.exists() {
                std::fs::hard_link(d, &dest).or_else(|_| std::fs::copy(d, &dest).map(|_| ()))?;
            }
        }
        cmd.arg("--skip=download/empty").arg(format!(
            "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/ && cp {}/*.deb \"$1\"/var/cache/apt/archives/",
            cache.display()
        ));
    }
    let status = cmd.arg("bookworm").arg(out).arg(sources).status()?;
    anyhow::ensure!(status.success(), "mmdebstrap failed: {status}");
    std::fs::remove_file(out)?;
    Ok(())
}

/// Waits until inodes freed by earlier runs are no longer skipped by ext4's
/// allocator (`dirty_expire_centisecs`, plus its 5 s margin for dirty
/// inode tables).
fn settle() {
    let centisecs: u64 = std::fs::read_to_string("/proc/sys/vm/dirty_expire_centisecs")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(3000);
    std::thread::sleep(Duration::from_secs(centisecs / 100 + 6));
}

/// Wall-clock times and CPU seconds of repeated runs.
#[derive(Default)]
struct Series {
    wall: Vec<Duration>,
    cpu: Vec<f64>,
}

impl Series {
    /// Times `f`, counting this process's CPU time.
    fn time(&mut self, f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
        self.measure(f, |(own, _)| own)
    }

    /// Times `f`, counting the CPU time of the children it waited for.
    fn time_children(&mut self, f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
        self.measure(f, |(_, children)| children)
    }

    /// Times `f`, counting this process's and its children's CPU time.
    fn time_all(&mut self, f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
        self.measure(f, |(own, children)| own + children)
    }

    fn measure(
        &mut self,
        f: impl FnOnce() -> anyhow::Result<()>,
        pick: impl Fn((f64, f64)) -> f64,
    ) -> anyhow::Result<()> {
        // Every run starts with nothing dirty: the builder-only and serial
        // series never sync, and a store run after them would otherwise
        // write their hundreds of MB back in its own syncs.
        rustix::fs::sync();
        let cpu = pick(cpu_seconds());
        let t = Instant::now();
        f()?;
        self.wall.push(t.elapsed());
        self.cpu.push(pick(cpu_seconds()) - cpu);
        Ok(())
    }

    fn median(&self) -> f64 {
        if self.wall.is_empty() {
            return f64::NAN;
        }
        let mut w: Vec<f64> = self.wall.iter().map(Duration::as_secs_f64).collect();
        w.sort_by(f64::total_cmp);
        w[w.len() / 2]
    }

    fn cpu(&self) -> f64 {
        if self.cpu.is_empty() {
            return f64::NAN;
        }
        let mut c = self.cpu.clone();
        c.sort_by(f64::total_cmp);
        c[c.len() / 2]
    }

    fn print(&self, what: &str) {
        if self.wall.is_empty() {
            return;
        }
        let all: Vec<String> = self
            .wall
            .iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect();
        println!(
            "{what}: median {:.2}s wall, {:.2}s CPU over {} runs (wall: {})",
            self.median(),
            self.cpu(),
            self.wall.len(),
            all.join(" ")
        );
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// (own user+system seconds, waited-for children's user+system seconds),
/// from /proc/self/stat (clock ticks of 1/100 s).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // After the command name: state is field 3; utime 14, stime 15, cutime 16, cstime 17.
    let get = |i: usize| f.get(i - 3).copied().unwrap_or(0.0) / 100.0;
    (get(14) + get(15), get(16) + get(17))
}

/// Decodes every `data.tar.xz` member of the set in memory with each of
/// liblzma's decoders, three rounds, and prints the median CPU time of each.
fn xz_decoders(paths: &[PathBuf]) -> anyhow::Result<()> {
    use std::io::Read;
    let mut members = Vec::new();
    for p in paths {
        let mut archive = ar::Archive::new(std::fs::File::open(p)?);
        while let Some(entry) = archive.next_entry() {
            let mut entry = entry?;
            if entry.header().identifier() == b"data.tar.xz" {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes)?;
                members.push(bytes);
            }
        }
    }
    let compressed: usize = members.iter().map(Vec::len).sum();
    println!(
        "{} data.tar.xz members, {:.1} MB",
        members.len(),
        compressed as f64 / 1e6
    );
    let decoders: [(&str, u32, u32); 3] = [
        ("multi-threaded (2 threads)", 2, 0),
        ("single-threaded", 0, 0),
        (
            "single-threaded, CRC64 not checked",
            0,
            liblzma::stream::IGNORE_CHECK,
        ),
    ];
    let mut series: Vec<Series> = decoders.iter().map(|_| Series::default()).collect();
    let mut buf = vec![0u8; 256 * 1024];
    for _ in 0..3 {
        for ((_, threads, flags), s) in decoders.iter().zip(&mut series) {
            s.time(|| {
                for m in &members {
                    let stream = if *threads > 0 {
                        liblzma::stream::MtStreamBuilder::new()
                            .threads(*threads)
                            .memlimit_stop(1 << 30)
                            .decoder()?
                    } else {
                        liblzma::stream::Stream::new_stream_decoder(1 << 30, *flags)?
                    };
                    let mut d = liblzma::bufread::XzDecoder::new_stream(&m[..], stream);
                    while d.read(&mut buf)? > 0 {}
                }
                Ok(())
            })?;
        }
    }
    for ((label, _, _), s) in decoders.iter().zip(&series) {
        s.print(&format!("xz, {label}"));
    }
    Ok(())
}
