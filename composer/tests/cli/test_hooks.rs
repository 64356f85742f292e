//! Test hooks stay out of production (reliability catalogue, case 30): a
//! system with the VM test backdoor, or with the switch pause hook alone, is
//! refused by `imago image` and `imago deploy` unless the user passes
//! --allow-test-backdoor, and a system without them carries no marker.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn imago(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imago"))
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_test_system_is_refused_by_image_and_deploy_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let system = repo().join("vm-tests/systems/minimal.imago");
    let image = dir.path().join("m.raw");
    let out = imago(
        &store,
        &[
            "image",
            system.to_str().unwrap(),
            "-o",
            image.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("testing.backdoor.enable") && stderr.contains("--allow-test-backdoor"),
        "{stderr}"
    );
    assert!(!image.exists(), "nothing written");

    let out = imago(
        &store,
        &[
            "deploy",
            system.to_str().unwrap(),
            "--target",
            "ssh://nobody@127.0.0.1:9",
            "--ssh",
            "/bin/false",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refusing to deploy") && stderr.contains("--allow-test-backdoor"),
        "{stderr}"
    );

    let out = imago(
        &store,
        &[
            "image",
            system.to_str().unwrap(),
            "-o",
            image.to_str().unwrap(),
            "--allow-test-backdoor",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(image.exists());
}

#[test]
fn the_switch_pause_hook_alone_makes_a_test_system() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let system = dir.path().join("paused.imago");
    std::fs::write(
        &system,
        format!(
            "{{ ... }}: {{\n  imports = [ {} ];\n  testing.switchPauseHook = true;\n}}\n",
            repo()
                .join("examples/minimal.imago")
                .canonicalize()
                .unwrap()
                .display()
        ),
    )
    .unwrap();
    std::fs::copy(
        repo().join("examples/imago.lock"),
        dir.path().join("imago.lock"),
    )
    .unwrap();
    let image = dir.path().join("m.raw");
    let out = imago(
        &store,
        &[
            "image",
            system.to_str().unwrap(),
            "-o",
            image.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is a test system, with the switch pause hook (testing.switchPauseHook)")
            && !stderr.contains("testing.backdoor.enable")
            && stderr.contains("--allow-test-backdoor"),
        "{stderr}"
    );
    assert!(!image.exists(), "nothing written");
}

#[test]
fn a_production_system_has_no_backdoor_marker() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = imago(
        &store,
        &[
            "build",
            repo().join("examples/minimal.imago").to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let physical = stdout.lines().nth(1).unwrap();
    assert!(Path::new(physical).join("boot.json").exists());
    assert!(!Path::new(physical).join("testing-backdoor").exists());
}
