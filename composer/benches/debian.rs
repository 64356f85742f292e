//! Unpacking a server-like package set from a warm cache, in parallel,
//! through the real `deb` builder (SHA-256 verification included), versus
//! `mmdebstrap --variant=extract` on the same packages.
//!
//! Run: `cargo bench -p imago --bench debian` (network on the first run,
//! to fill `$XDG_CACHE_HOME/imago`). Set `IMAGO_BENCH_RUNS` for the number
//! of repetitions (default 5) and `IMAGO_BENCH_MMDEBSTRAP=0` to skip the
//! comparison. Prints the median of the runs for each side.

use imago::builders::{BuildContext, Builder, ResolvedStep};
use imago::debian::apt::{AptEnv, Request, default_cache_root};
use imago::debian::builder::{DEB, remove_tree};
use imago::debian::fetch::{FetchOptions, ensure_cached};
use imago::debian::lock::LockEntry;
use rayon::prelude::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const SET: &[&str] = &[
    "systemd",
    "openssh-server",
    "busybox-static",
    "linux-image-cloud-amd64",
    "lighttpd",
];

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::var("IMAGO_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let root = default_cache_root();
    let opts = FetchOptions {
        cache_dir: root.join("debs"),
        apt_dir: root.join("apt"),
        offline: false,
    };
    let entries = {
        let apt = AptEnv::open(&opts.apt_dir)?;
        apt.ensure_lists()?;
        let requests: Vec<Request> = SET
            .iter()
            .map(|n| Request {
                name: n.to_string(),
                version: None,
            })
            .collect();
        let t = Instant::now();
        let entries = apt.resolve(&requests)?;
        println!(
            "resolve: {} packages in {:.2}s (apt-get --simulate + apt-cache show)",
            entries.len(),
            t.elapsed().as_secs_f64()
        );
        entries
    };
    let paths = ensure_cached(&entries, &opts)?;
    let total: u64 = entries.iter().map(|e| e.size).sum();
    println!(
        "set: {} packages, {:.1} MB of .debs",
        entries.len(),
        total as f64 / 1e6
    );

    let work = tempfile::tempdir()?;
    let ctx = BuildContext {
        store_dir: work.path().join("store"),
        deb_cache: opts.cache_dir.clone(),
        offline: true,
    };
    // Largest first, so the big kernel package does not start last.
    let mut order = entries.clone();
    order.sort_by_key(|e| std::cmp::Reverse(e.size));
    let mut ours = Vec::new();
    let mut ours_cpu = 0.0;
    for run in 0..runs {
        let dir = work.path().join(format!("run{run}"));
        std::fs::create_dir(&dir)?;
        let cpu = cpu_seconds().0;
        let t = Instant::now();
        unpack_all(&ctx, &order, &dir)?;
        ours.push(t.elapsed());
        ours_cpu += cpu_seconds().0 - cpu;
        remove_tree(&dir)?;
    }
    let ours_cpu = ours_cpu / runs as f64;
    println!(
        "imago unpack (parallel, {} threads, sha256 verified): median {:.2}s over {runs} runs, {ours_cpu:.2}s CPU per run",
        rayon::current_num_threads(),
        median(&mut ours).as_secs_f64()
    );

    if std::env::var("IMAGO_BENCH_MMDEBSTRAP").as_deref() == Ok("0") {
        return Ok(());
    }
    let sources = opts.apt_dir.join("etc/sources.list.d/imago.sources");
    let mut theirs = Vec::new();
    let children_before = cpu_seconds().1;
    for _ in 0..runs.min(3) {
        let out = work.path().join("out.tar");
        let t = Instant::now();
        let status = mmdebstrap(&paths, &sources, &out)?;
        theirs.push(t.elapsed());
        if !status {
            anyhow::bail!("mmdebstrap failed");
        }
        std::fs::remove_file(&out)?;
    }
    let theirs_cpu = (cpu_seconds().1 - children_before) / runs.min(3) as f64;
    let theirs = median(&mut theirs);
    let ours = median(&mut ours);
    println!(
        "mmdebstrap --variant=extract (debs copied into its apt cache): median {:.2}s over {} runs, {theirs_cpu:.2}s CPU per run",
        theirs.as_secs_f64(),
        runs.min(3)
    );
    println!(
        "load average at the end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "ratio: imago takes {:.1}% of mmdebstrap's time",
        100.0 * ours.as_secs_f64() / theirs.as_secs_f64()
    );
    Ok(())
}

fn unpack_all(ctx: &BuildContext, entries: &[LockEntry], dir: &Path) -> anyhow::Result<()> {
    entries.par_iter().try_for_each(|e| {
        let step = ResolvedStep {
            builder: "deb".into(),
            name: e.name.clone(),
            params: serde_json::json!({
                "package": e.name,
                "version": e.version,
                "architecture": e.architecture,
                "size": e.size,
                "sha256": e.sha256,
            }),
            inputs: vec![],
        };
        let mut log = Vec::new();
        DEB.build(ctx, &step, &dir.join(&e.name), &mut log)
            .map_err(|err| anyhow::anyhow!("{}: {err}", e.name))
    })
}

/// `mmdebstrap --variant=extract --include=SET bookworm OUT SOURCES`, with
/// our cached .debs synced into its apt cache first so it downloads none.
fn mmdebstrap(debs: &[std::path::PathBuf], sources: &Path, out: &Path) -> anyhow::Result<bool> {
    let cache = out.with_extension("debs");
    std::fs::create_dir_all(&cache)?;
    for d in debs {
        let name = d.file_name().unwrap_or_default();
        let dest = cache.join(name);
        if !dest.exists() {
            std::fs::hard_link(d, &dest).or_else(|_| std::fs::copy(d, &dest).map(|_| ()))?;
        }
    }
    let status = Command::new("mmdebstrap")
        .arg("--quiet")
        .arg("--variant=extract")
        .arg(format!("--include={}", SET.join(",")))
        .arg("--skip=download/empty")
        .arg(format!(
            "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/ && cp {}/*.deb \"$1\"/var/cache/apt/archives/",
            cache.display()
        ))
        .arg("bookworm")
        .arg(out)
        .arg(sources)
        .status()?;
    Ok(status.success())
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

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}
