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
    let mut ours = Vec::new();
    for run in 0..runs {
        let dir = work.path().join(format!("run{run}"));
        std::fs::create_dir(&dir)?;
        let t = Instant::now();
        unpack_all(&ctx, &entries, &dir)?;
        ours.push(t.elapsed());
        remove_tree(&dir)?;
    }
    println!(
        "imago unpack (parallel, {} threads, sha256 verified): median {:.2}s over {runs} runs",
        rayon::current_num_threads(),
        median(&mut ours).as_secs_f64()
    );

    if std::env::var("IMAGO_BENCH_MMDEBSTRAP").as_deref() == Ok("0") {
        return Ok(());
    }
    let sources = opts.apt_dir.join("etc/sources.list.d/imago.sources");
    let mut theirs = Vec::new();
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
    let theirs = median(&mut theirs);
    let ours = median(&mut ours);
    println!(
        "mmdebstrap --variant=extract (debs copied into its apt cache): median {:.2}s over {} runs",
        theirs.as_secs_f64(),
        runs.min(3)
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

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}
