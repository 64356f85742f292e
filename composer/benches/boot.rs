//! Boot benchmark: the initrd's compression trade-off and the wall time from
//! starting QEMU (TCG) to the busybox toplevel's stage-2 marker.
//!
//! Run with `cargo bench -p imago --bench boot`. Downloads Debian's cloud
//! kernel and busybox-static once (cached under the target dir). Prints the
//! median of repeated runs; `IMAGO_BENCH_BOOTS` sets the number of boots
//! (default 5).

#![allow(clippy::unwrap_used)]

/// The allocator the `imago` binary uses, so that figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/support/boot.rs"]
mod boot_support;

use std::time::{Duration, Instant};

use boot_support::{MARKER, boot_until, build_system, launch};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let sys = build_system("boot-bench-store");
    let initrd = sys.store.join(sys.initrd.rsplit('/').next().unwrap());
    let archive = zstd::decode_all(&std::fs::read(&initrd).unwrap()[..]).unwrap();
    println!("initrd: {} KiB uncompressed cpio", archive.len() / 1024);
    for level in [3, 9, 15, 19] {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..3 {
            let started = Instant::now();
            size = zstd::bulk::compress(&archive, level).unwrap().len();
            times.push(started.elapsed());
        }
        println!(
            "initrd zstd -{level}: {} KiB, median {:.2} s over 3 runs",
            size / 1024,
            median(times).as_secs_f64()
        );
    }

    let boots: usize = std::env::var("IMAGO_BENCH_BOOTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let vm = launch(&sys, &[]);
    let mut times = Vec::new();
    for _ in 0..boots {
        let (console, elapsed) = boot_until(&vm, MARKER, Duration::from_secs(120));
        let uptime = console
            .lines()
            .find_map(|l| l.split("(uptime ").nth(1))
            .and_then(|r| r.split(' ').next())
            .unwrap_or("?")
            .to_owned();
        println!(
            "boot to marker: {:.2} s wall (guest uptime at switch_root {uptime} s)",
            elapsed.as_secs_f64()
        );
        times.push(elapsed);
    }
    println!(
        "boot to marker (TCG, virtiofs store): median {:.2} s over {boots} boots",
        median(times).as_secs_f64()
    );
}
