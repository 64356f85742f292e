//! `imago run` of the arm64 example from the outside, on this amd64 host:
//! built without emulation, booted under `qemu-system-aarch64` (always
//! TCG) to its hello service's marker; and, on a PATH without
//! `qemu-system-aarch64`, refused with the package to install; killed with
//! SIGKILL, it leaves no QEMU or virtiofsd behind.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::group::{group_alive, spawn_logged};

fn imago(store: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_imago"));
    command.arg("--store").arg(store);
    command
}

#[test]
fn the_arm64_example_runs_under_qemu_system_aarch64() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/arm64/minimal.imago");
    let built = imago(&store).arg("build").arg(&file).output().unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    // `imago build` prints the logical path, then the physical one.
    let stdout = String::from_utf8_lossy(&built.stdout);
    let toplevel = stdout.lines().last().unwrap().to_owned();
    let boot_json = std::fs::read_to_string(Path::new(&toplevel).join("boot.json")).unwrap();
    assert!(
        boot_json.contains("\"architecture\":\"arm64\""),
        "{boot_json}"
    );

    // Without qemu-system-aarch64 on PATH: the error names the package.
    let empty = dir.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let refused = imago(&store)
        .args(["run", "--toplevel", &toplevel])
        .env("PATH", &empty)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "this arm64 system runs on qemu-system-aarch64, which is not installed (Debian package qemu-system-arm)"
        ) && stderr.contains("E0809"),
        "{stderr}"
    );
    // Nothing of that run is left: the virtiofsd started for it serving
    // this test's store is gone.
    let left = Command::new("pgrep")
        .args(["-f", &format!("virtiofsd .*source={}", store.display())])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "virtiofsd left running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    // Asking for KVM for a foreign architecture is refused too.
    let kvm = imago(&store)
        .args(["run", "--toplevel", &toplevel])
        .env("IMAGO_ACCEL", "kvm")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&kvm.stderr);
    assert!(
        stderr.contains("IMAGO_ACCEL=kvm cannot run this arm64 system: an arm64 system on an amd64 host is emulated (TCG)"),
        "{stderr}"
    );

    let log_path = dir.path().join("console.log");
    let (mut child, _group) = spawn_logged(
        imago(&store)
            .args(["run", "--memory", "512M", "--toplevel", &toplevel])
            // The kernel's informational messages too (boot.consoleLogLevel
            // shows errors only): the machine model is one.
            .args(["--kernel-param", "loglevel=7"])
            .env_remove("IMAGO_ACCEL"),
        &log_path,
    );
    let started = Instant::now();
    let console = || std::fs::read_to_string(&log_path).unwrap_or_default();
    while !console().contains("hello from minimal: IMAGO-HELLO-OK") {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no marker after {:?}:\n{}",
            started.elapsed(),
            console()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("marker after {:?}", started.elapsed());
    let text = console();
    assert!(
        text.contains("with tcg: an arm64 system on an amd64 host is emulated (TCG)"),
        "{text}"
    );
    assert!(text.contains("Machine model: linux,dummy-virt"), "{text}");
    // Killed with SIGKILL, imago run cannot stop its VM itself; QEMU and
    // virtiofsd die with it all the same (the SIGTERM path is in
    // run_forward.rs). They are in its process group.
    let pgid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-KILL", &pgid])
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait().unwrap();
    let stopped = Instant::now();
    while group_alive(child.id()) {
        let left = Command::new("pgrep")
            .args(["-a", "-g", &pgid])
            .output()
            .unwrap();
        assert!(
            stopped.elapsed() < Duration::from_secs(15),
            "QEMU (or virtiofsd) outlived `imago run` killed with SIGKILL: {}",
            String::from_utf8_lossy(&left.stdout)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
