//! Benchmark: switching between two generations that differ only in /etc,
//! inside a running guest (the target of issue "generations": < 1 s).
//!
//! Boots the disk image of vm-tests/systems/minimal.imago under OVMF and
//! systemd-boot (so `switch` writes real boot entries on a real ESP), copies
//! in minimal-motd.imago (another motd, nothing else), then switches back
//! and forth. Each switch is timed inside the guest from /proc/uptime around
//! `switch-to-configuration switch` (boot entry, loader.conf, profile, /etc,
//! users, services), and on the host around the backdoor call.
//!
//!     cargo bench -p imago-vm-tests --bench switch [-- ROUNDS]

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use imago::remote;
use imago_vm_tests::Driver;
use support::GuestRemote;

const SEC: Duration = Duration::from_secs(1);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(9);
    let driver = Driver::new("bench_switch").expect("driver");
    let a = support::system(&driver, "minimal").expect("build minimal");
    let b = support::system(&driver, "minimal-motd").expect("build minimal-motd");
    let mut config = a.uefi_disk(&driver, "machine").expect("image");
    config.memory_mib = 512;
    let m = driver.machine(config).expect("machine");
    m.start().expect("start");
    m.wait_for_console_text("IMAGO-HELLO-OK", 60 * SEC)
        .expect("boot");
    let store = imago::store::Store::open(&a.store).expect("store");
    let guest = GuestRemote {
        machine: &m,
        timeout: 60 * SEC,
    };
    let copied = remote::copy_closure(&store, &b.toplevel, &guest, "/imago/store").expect("copy");
    eprintln!("copied {copied} objects for the /etc-only generation");

    let mut inside = Vec::new();
    let mut outside = Vec::new();
    for round in 0..rounds {
        let to = if round % 2 == 0 { &b } else { &a };
        let script = format!(
            "read s _ < /proc/uptime; {}/bin/switch-to-configuration switch >/dev/null 2>&1 || exit 1; read e _ < /proc/uptime; echo $s $e",
            to.toplevel.to_absolute()
        );
        let start = Instant::now();
        let out = m.succeed(script, 30 * SEC).expect("switch");
        outside.push(start.elapsed().as_secs_f64());
        let mut words = out.split_whitespace().map(|w| w.parse::<f64>().unwrap());
        let (s, e) = (words.next().unwrap(), words.next().unwrap());
        inside.push(e - s);
    }
    let entries = m
        .succeed("ls /boot/loader/entries | wc -l", 5 * SEC)
        .expect("entries");
    println!(
        "switch between generations differing only in /etc, {rounds} switches (busybox system, OVMF, TCG):"
    );
    println!(
        "  inside the guest (/proc/uptime): median {:.2} s, min {:.2} s, max {:.2} s",
        median(inside.clone()),
        inside.iter().copied().fold(f64::INFINITY, f64::min),
        inside.iter().copied().fold(0.0, f64::max)
    );
    println!(
        "  host, backdoor call included: median {:.3} s",
        median(outside)
    );
    println!("  boot entries afterwards: {}", entries.trim());
}
