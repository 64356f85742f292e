//! Benchmark: the busybox example of each architecture side by side,
//! examples/minimal.imago (amd64, trixie) and examples/arm64/minimal.imago,
//! one after the other in each round, each first in every other round.
//!
//! - build: the system from the warm package cache (the packages already
//!   downloaded) into an empty store, evaluation included, as
//!   `imago build` does it (the build pipeline, every core).
//! - boot: the built system as `imago run` boots it (its defaults: 1 GiB,
//!   2 vCPUs, the store over virtiofs, the accelerator probe: TCG here,
//!   and always for arm64 on an amd64 host), timed from starting QEMU to
//!   the hello service's marker on the console.
//!
//!     cargo bench -p imago --bench architectures [-- ROUNDS]
//!
//! Prints every round and the medians. Target (issue 21): the arm64 boot
//! under 15 s, and the arm64 build no slower than the amd64 one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The allocator the `imago` binary uses, so that figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use imago::boot::run::{RunOptions, VmLaunch};
use imago::debian::apt::default_deb_cache;
use imago::graph::BuildOptions;
use imago::graph::progress::ProgressMode;
use imago::pipeline::{BuildRequest, DEFAULT_ATTR, Outcome, Settings, build_file};
use imago::store::Store;

const MARKER: &str = "hello from minimal: IMAGO-HELLO-OK";
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Builds `file` into an empty store under `dir`; the build's wall time,
/// the store and the toplevel's logical and physical paths.
fn build(file: &Path, dir: &Path) -> (f64, Store, String, PathBuf) {
    let store = Store::open(dir.join("store")).unwrap();
    let request = BuildRequest {
        file: file.to_owned(),
        attr: DEFAULT_ATTR.to_owned(),
        modules: None,
        options: BuildOptions {
            jobs: 0,
            keep_going: false,
            offline: false,
            repair: false,
            deb_cache: default_deb_cache(),
            progress: ProgressMode::Quiet,
        },
    };
    let started = Instant::now();
    let outcome = build_file(&store, &Settings::default(), &request, &|_: &str| {});
    let secs = started.elapsed().as_secs_f64();
    let built = match outcome {
        Ok(Outcome::Built(built)) => built,
        Ok(Outcome::Failed(failure)) => panic!("{}: {failure}", file.display()),
        Err(e) => panic!("{}: {e:#}", file.display()),
    };
    let physical = store.physical(&built.path);
    (secs, store, built.path.to_absolute(), physical)
}

/// Boots the toplevel as `imago run` does; seconds from starting QEMU to
/// the marker on the console.
fn boot(store: &Store, logical: &str, physical: &Path) -> f64 {
    let launch = VmLaunch::prepare(physical, logical, store.dir(), &RunOptions::default())
        .expect("prepare the VM");
    let started = Instant::now();
    let mut vm = launch
        .spawn(Stdio::null(), Stdio::piped(), Stdio::null())
        .expect("start QEMU");
    let stdout = vm.qemu.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains(MARKER) {
                let _ = tx.send(());
                break;
            }
        }
    });
    rx.recv_timeout(BOOT_TIMEOUT)
        .unwrap_or_else(|_| panic!("no marker within {BOOT_TIMEOUT:?}"));
    let secs = started.elapsed().as_secs_f64();
    drop(vm); // kills QEMU and virtiofsd
    secs
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let systems = [
        ("amd64", examples.join("minimal.imago")),
        ("arm64", examples.join("arm64/minimal.imago")),
    ];
    // Warm the package cache (and check both build) before timing.
    for (_, file) in &systems {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        build(file, dir.path());
    }
    let mut builds = vec![Vec::new(); systems.len()];
    let mut boots = vec![Vec::new(); systems.len()];
    for round in 1..=rounds {
        // Each goes first in every other round: a build right after the
        // other's store was removed runs slower on this kind of disk.
        let order: Vec<usize> = if round % 2 == 1 {
            vec![0, 1]
        } else {
            vec![1, 0]
        };
        for i in order {
            let (arch, file) = &systems[i];
            let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
            let (build_secs, store, logical, physical) = build(file, dir.path());
            let boot_secs = boot(&store, &logical, &physical);
            println!(
                "round {round} {arch}: build {build_secs:.2} s, boot to marker {boot_secs:.2} s"
            );
            builds[i].push(build_secs);
            boots[i].push(boot_secs);
            // Store objects are read-only: make them writable to remove them.
            let _ = std::process::Command::new("chmod")
                .args(["-R", "u+w"])
                .arg(dir.path())
                .status();
        }
    }
    for (i, (arch, file)) in systems.iter().enumerate() {
        println!(
            "{arch} ({}): build from a warm package cache median {:.2} s, boot to marker median {:.2} s ({rounds} rounds)",
            file.strip_prefix(&examples).unwrap_or(file).display(),
            median(builds[i].clone()),
            median(boots[i].clone())
        );
    }
}
