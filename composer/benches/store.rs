//! Store benchmarks: hashing throughput on one core (the canonical
//! serialization of a large file fed to BLAKE3, from the page cache), and
//! closure export / import throughput in MB/s of store data.
//!
//! Run with `cargo bench -p imago --bench store`. Prints the median of
//! `IMAGO_BENCH_RUNS` runs (default 5). `IMAGO_BENCH_MB` sets the data size
//! (default 256). Everything is written under `$TMPDIR`; which file system
//! that is matters more than anything imago does (docs/performance.md).

#![allow(clippy::unwrap_used)]

/// The allocator the `imago` binary uses, so that figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use imago::store::canon::serialize_into;
use imago::store::{Store, StorePath};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Data that compresses roughly like binaries do (about 2:1): bytes from a
/// xorshift generator restricted to 16 values.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        for b in x.to_le_bytes() {
            out.push(b & 0x0f | 0x40);
        }
    }
    out.truncate(len);
    out
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn bench_hash(dir: &Path, mb: usize, runs: usize) {
    let file = dir.join("big");
    fs::write(&file, data(mb << 20, 1)).unwrap();
    let bytes = (mb as u64) << 20;
    // Warm the page cache.
    serialize_into(&file, &mut blake3::Hasher::new()).unwrap();
    let samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let mut h = blake3::Hasher::new();
            serialize_into(&file, &mut h).unwrap();
            std::hint::black_box(h.finalize());
            start.elapsed()
        })
        .collect();
    let m = median(samples);
    println!(
        "hash (canonical serialization of a {mb} MiB file, one core): median {:.3} s, {:.0} MB/s",
        m.as_secs_f64(),
        mbps(bytes, m)
    );
    let buf = data(mb << 20, 2);
    let samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(blake3::hash(&buf));
            start.elapsed()
        })
        .collect();
    let m = median(samples);
    println!(
        "hash (plain BLAKE3 of {mb} MiB in memory, one core): median {:.3} s, {:.0} MB/s",
        m.as_secs_f64(),
        mbps(bytes, m)
    );
}

/// A closure of `mb` MiB: one large file plus 1,000 small files.
fn make_closure(store: &Store, mb: usize) -> (StorePath, u64) {
    let tmp = store.temp_output().unwrap();
    let out = tmp.out();
    fs::create_dir(&out).unwrap();
    let small = 4096;
    let n_small = 1000;
    let big = (mb << 20).saturating_sub(small * n_small);
    fs::write(out.join("big"), data(big, 3)).unwrap();
    fs::create_dir(out.join("small")).unwrap();
    for i in 0..n_small {
        fs::write(out.join(format!("small/{i}")), data(small, 10 + i as u64)).unwrap();
    }
    let p = store.add(tmp, "bench", &[], None).unwrap();
    (p, (big + small * n_small) as u64)
}

fn bench_archive(dir: &Path, mb: usize, runs: usize) {
    let src = Store::open(dir.join("src")).unwrap();
    let (p, bytes) = make_closure(&src, mb);
    let mut archive = Vec::new();
    let samples: Vec<Duration> = (0..runs)
        .map(|_| {
            archive.clear();
            let start = Instant::now();
            src.export(std::slice::from_ref(&p), &mut archive).unwrap();
            start.elapsed()
        })
        .collect();
    let m = median(samples);
    println!(
        "export ({mb} MiB of store data, zstd level 1): median {:.3} s, {:.0} MB/s; archive {:.0} MiB",
        m.as_secs_f64(),
        mbps(bytes, m),
        archive.len() as f64 / (1 << 20) as f64
    );
    // Each run imports into its own new store, and nothing is deleted until
    // the end: on ext4 without a journal, creating files among thousands
    // deleted in the last half minute costs several times the usual system
    // time (see docs/packages.md), which would measure the file system's
    // memory of the previous run rather than the import.
    settle();
    let samples: Vec<Duration> = (0..runs)
        .map(|i| {
            let dst = Store::open(dir.join(format!("dst{i}"))).unwrap();
            let start = Instant::now();
            dst.import(archive.as_slice()).unwrap();
            start.elapsed()
        })
        .collect();
    let m = median(samples);
    println!(
        "import ({mb} MiB of store data, verified, fsynced): median {:.3} s, {:.0} MB/s",
        m.as_secs_f64(),
        mbps(bytes, m)
    );
}

/// Waits until pages dirtied (and inodes freed) by earlier work have been
/// written back, as the Debian benchmark does.
fn settle() {
    let centisecs: u64 = fs::read_to_string("/proc/sys/vm/dirty_expire_centisecs")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(3000);
    std::thread::sleep(Duration::from_secs(centisecs / 100 + 6));
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let runs = env_or("IMAGO_BENCH_RUNS", 5);
    let mb = env_or("IMAGO_BENCH_MB", 256);
    let dir = tempfile::tempdir().unwrap();
    bench_hash(dir.path(), mb, runs);
    bench_archive(dir.path(), mb, runs);
    // Read-only objects need write bits back before the temp dir can go.
    let _ = std::process::Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(dir.path())
        .status();
}
