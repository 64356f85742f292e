//! Benchmark: rolling a one-file change out to three busybox machines at
//! once (`--parallel 3`) against deploying one to a single machine (target:
//! three take less than 1.5× the time of one).
//!
//! Boots the three machines of vm-tests/tests/fleet.rs (Debian trixie's
//! busybox system with sshd, each from its own overlay of one disk image,
//! OVMF, TCG, ssh through a user-network port forward), then in every
//! round deploys, over real ssh, a system that differs from what the
//! machines run by one file in /etc: once to the first machine alone, once
//! to all three (which run the same system by then), in turns (the order
//! alternates between rounds so that neither always goes first). Each
//! deploy is `imago deploy --toplevel … --switch` of an already built
//! system, timed on the host from its start to its exit: the copy of the
//! missing objects, the switch, and the health-check settle.
//!
//! Beside each deploy's wall time it reports the CPU time it cost: the
//! three QEMU processes' (the emulated machines' work, idle ones included)
//! and the deployer's (imago and the ssh clients it waited for), from
//! /proc. On a host of two cores, three machines' deploy cannot take less
//! than that CPU time over two: the bound the ratio is printed beside.
//!
//!     cargo bench -p imago-vm-tests --bench rollout [-- ROUNDS]

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use imago_vm_tests::Driver;
use support::System;
use support::outside::{free_port, ssh, ssh_wrapper, user_net_args, write_key};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Writes the fleet's system with `/etc/imago-fleet` holding `n`, beside a
/// copy of its lock, and builds it.
fn variant(driver: &Driver, dir: &Path, n: usize) -> System {
    let systems = Path::new(env!("CARGO_MANIFEST_DIR")).join("systems/trixie");
    let fleet = systems.join("fleet.imago").canonicalize().unwrap();
    let file = dir.join(format!("v{n}.imago"));
    std::fs::write(
        &file,
        format!(
            "{{ ... }}:\n{{\n  imports = [ {} ];\n  environment.etc.\"imago-fleet\".text = \"{n}\\n\";\n}}\n",
            fleet.display()
        ),
    )
    .unwrap();
    support::system_file(driver, &file).expect("build a variant")
}

/// Seconds of CPU (user and system) in fields `from` and `from + 1` of a
/// /proc stat line.
fn stat_cpu(stat: &str, from: usize) -> f64 {
    // The fields after the command's name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field n of the whole line is rest's n - 3 (pid and comm before).
    let ticks: u64 =
        fields[from - 3].parse::<u64>().unwrap() + fields[from - 2].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// CPU seconds used so far by the QEMU processes whose command line holds
/// `needle` (the machines').
fn cpu_of(needle: &str) -> f64 {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.starts_with("qemu-system") && c.contains(needle)
            })
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .map(|stat| stat_cpu(&stat, 14))
        .sum()
}

/// CPU seconds used so far by this process's waited-for children.
fn children_cpu() -> f64 {
    stat_cpu(&std::fs::read_to_string("/proc/self/stat").unwrap(), 16)
}

/// One deploy: its wall time, the machines' CPU time, the deployer's.
struct Timed {
    wall: f64,
    guests: f64,
    deployer: f64,
}

/// `imago deploy --toplevel SYSTEM --switch` to the machines on `ports`,
/// all at once, timed; `machines` is in the command line of every QEMU.
fn deploy(system: &System, ports: &[u16], wrapper: &Path, machines: &str) -> Timed {
    let (guests0, deployer0) = (cpu_of(machines), children_cpu());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imago-cli"));
    cmd.arg("--store").arg(&system.store).args([
        "deploy",
        "--toplevel",
        &system.toplevel.to_absolute(),
        "--switch",
        "--parallel",
        "3",
        "--allow-test-backdoor",
    ]);
    for port in ports {
        cmd.arg("--target")
            .arg(format!("ssh://root@127.0.0.1:{port}"));
    }
    cmd.env("IMAGO_SSH", wrapper);
    let start = Instant::now();
    let out = cmd.output().expect("run imago-cli deploy");
    let wall = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "deploy failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Timed {
        wall,
        guests: cpu_of(machines) - guests0,
        deployer: children_cpu() - deployer0,
    }
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    let driver = Driver::new("bench_rollout").expect("driver");
    let dir: PathBuf = driver.dir().join("systems");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("systems/trixie/imago.lock"),
        dir.join("imago.lock"),
    )
    .unwrap();
    // Every deploy gets a system none of its machines runs yet.
    let first = variant(&driver, &dir, 0);
    let variants: Vec<System> = (1..=2 * rounds)
        .map(|n| variant(&driver, &dir, n))
        .collect();
    let key = write_key(driver.dir(), None).expect("key");
    let wrapper = ssh_wrapper(driver.dir(), &key).expect("ssh wrapper");

    let mut machines = Vec::new();
    let mut ports = Vec::new();
    for n in 1..=3 {
        let port = free_port().expect("port");
        let mut config = first
            .uefi_disk(&driver, &format!("fleet{n}"))
            .expect("disk image");
        config.extra_args = user_net_args(&[(port, 22)]);
        let m = driver.machine(config).expect("machine");
        m.start().expect("start");
        machines.push(m);
        ports.push(port);
    }
    for port in &ports {
        ssh(
            &driver,
            &key,
            *port,
            "root",
            "true",
            Duration::from_secs(120),
        )
        .expect("ssh up");
    }

    // Every machine's QEMU runs with a file under the driver's directory.
    let needle = driver.dir().to_string_lossy().into_owned();
    let (mut one, mut three) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let (a, b) = (&variants[2 * round], &variants[2 * round + 1]);
        // Each deploy changes one file of what its machines run.
        if round % 2 == 0 {
            one.push(deploy(a, &ports[..1], &wrapper, &needle));
            three.push(deploy(b, &ports, &wrapper, &needle));
        } else {
            three.push(deploy(a, &ports, &wrapper, &needle));
            one.push(deploy(b, &ports[..1], &wrapper, &needle));
        }
        let (o, t) = (&one[round], &three[round]);
        eprintln!(
            "round {round}: one machine {:.2} s (CPU: machines {:.2} s, deployer {:.2} s), three machines {:.2} s (CPU: machines {:.2} s, deployer {:.2} s)",
            o.wall, o.guests, o.deployer, t.wall, t.guests, t.deployer
        );
    }
    let m = |v: &[Timed], f: fn(&Timed) -> f64| median(v.iter().map(f).collect());
    let (m1, m3) = (m(&one, |t| t.wall), m(&three, |t| t.wall));
    let bound = m(&three, |t| (t.guests + t.deployer) / 2.0);
    println!(
        "a one-file change by imago deploy --switch over ssh, busybox machines (trixie, OVMF, TCG), {rounds} rounds: one machine median {m1:.2} s, three with --parallel 3 median {m3:.2} s, ratio {:.2} (target < 1.5)",
        m3 / m1
    );
    println!(
        "CPU medians: one machine's deploy {:.2} s of the machines' and {:.2} s of the deployer's; three machines' {:.2} s and {:.2} s: on two cores three take at least {bound:.2} s, {:.2}× one's wall time",
        m(&one, |t| t.guests),
        m(&one, |t| t.deployer),
        m(&three, |t| t.guests),
        m(&three, |t| t.deployer),
        bound / m1
    );
    for m in machines {
        m.kill();
    }
}
