//! Benchmark: the examples on each Debian release, from QEMU's start to
//! their boot marker on the console, by direct kernel boot under TCG
//! (targets: a trixie busybox system < 5 s, a trixie systemd system < 15 s).
//!
//! Builds examples/minimal.imago and examples/server.imago (trixie) and
//! their bookworm twins in examples/bookworm/, as they are (no backdoor), and
//! boots each ROUNDS times, the four interleaved in every round so that the
//! machine's load falls on all of them alike. Each machine is the one `imago
//! run` boots (1 GiB, 2 vCPUs, the store over virtiofs, the ESP's mounts
//! masked), or has VCPUS vCPUs. Each boot is timed on the host from spawning
//! QEMU to the marker (`IMAGO-HELLO-OK`, `IMAGO-SERVER-UP`).
//!
//!     cargo bench -p imago-vm-tests --bench release_boot [-- ROUNDS [VCPUS]]

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use imago_vm_tests::Driver;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// (example, marker)
const SYSTEMS: &[(&str, &str)] = &[
    ("bookworm/minimal.imago", "IMAGO-HELLO-OK"),
    ("minimal.imago", "IMAGO-HELLO-OK"),
    ("bookworm/server.imago", "IMAGO-SERVER-UP"),
    ("server.imago", "IMAGO-SERVER-UP"),
];

/// `imago run`'s machine: its default memory and vCPUs.
const MEMORY_MIB: u32 = 1024;
const VCPUS: u32 = 2;

fn main() {
    // The numbers among the arguments (cargo bench adds `--bench`).
    let numbers: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rounds = numbers.first().map_or(3, |&n| n as usize);
    let vcpus = numbers.get(1).copied().unwrap_or(VCPUS);
    let driver = Driver::new("bench_release_boot").expect("driver");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let built: Vec<_> = SYSTEMS
        .iter()
        .map(|(file, _)| {
            support::system_file(&driver, &examples.join(file))
                .unwrap_or_else(|e| panic!("build examples/{file}: {e}"))
        })
        .collect();
    let mut times = vec![Vec::new(); SYSTEMS.len()];
    for round in 0..rounds {
        for (i, ((file, marker), system)) in SYSTEMS.iter().zip(&built).enumerate() {
            let name = format!("boot{i}-{round}");
            let mut config = system.direct(&driver, &name).expect("machine config");
            config.memory_mib = MEMORY_MIB;
            config.smp = vcpus;
            let m = driver.machine(config).expect("machine");
            let start = Instant::now();
            m.start().expect("start");
            m.wait_for_console_text(marker, Duration::from_secs(300))
                .unwrap_or_else(|e| panic!("examples/{file}: no {marker}: {e}"));
            let secs = start.elapsed().as_secs_f64();
            eprintln!("round {round}: examples/{file} reached {marker} after {secs:.2} s");
            times[i].push(secs);
            m.kill();
        }
    }
    for ((file, marker), t) in SYSTEMS.iter().zip(times) {
        println!(
            "examples/{file}: QEMU start to {marker} (direct boot, TCG, vCPUs: {vcpus}), {rounds} boots: median {:.2} s, min {:.2} s, max {:.2} s",
            median(t.clone()),
            t.iter().copied().fold(f64::INFINITY, f64::min),
            t.iter().copied().fold(0.0, f64::max)
        );
    }
}
