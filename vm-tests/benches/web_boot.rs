//! Benchmark: examples/web.imago from its disk image to its page answering
//! on a forwarded port (target: < 25 s under TCG).
//!
//! Builds the example (as it is: no backdoor), makes its disk image, and
//! boots it ROUNDS times, each on a fresh copy-on-write overlay, through
//! OVMF and systemd-boot with QEMU's user network forwarding a free host
//! port to the guest's port 80. Each round is timed on the host from
//! spawning QEMU to the first `HTTP/1.1 200` answer to `GET /`.
//!
//!     cargo bench -p imago-vm-tests --bench web_boot [-- ROUNDS]

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use imago_vm_tests::Driver;
use support::outside::{free_port, http_get, user_net_args};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    let driver = Driver::new("bench_web_boot").expect("driver");
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/web.imago");
    let web = support::system_file(&driver, &file).expect("build examples/web.imago");
    let mut times = Vec::new();
    for round in 0..rounds {
        let port = free_port().expect("port");
        let mut config = web
            .uefi_disk(&driver, &format!("web{round}"))
            .expect("image");
        config.memory_mib = 1024;
        config.smp = 2;
        config.extra_args = user_net_args(&[(port, 80)]);
        let m = driver.machine(config).expect("machine");
        let start = Instant::now();
        m.start().expect("start");
        loop {
            if let Some(answer) = http_get(port, "/", Duration::from_secs(5))
                && answer.starts_with("HTTP/1.1 200")
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "no page after 300 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!("round {round}: the page answered after {secs:.2} s");
        times.push(secs);
        m.kill();
    }
    println!(
        "examples/web from its disk image (OVMF, systemd-boot, TCG) to its page on a forwarded port, {rounds} boots: median {:.2} s, min {:.2} s, max {:.2} s (target < 25 s)",
        median(times.clone()),
        times.iter().copied().fold(f64::INFINITY, f64::min),
        times.iter().copied().fold(0.0, f64::max)
    );
}
