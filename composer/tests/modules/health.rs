//! `system.healthChecks` and the toplevel's `bin/check-health`, built for
//! real (the example server with three checks) and run on the host's
//! busybox, as the target runs it: each check with its time limit, `ok` or
//! `FAILED` with the command and its output, exit status 1 when one failed.
//! (`imago deploy` running it and rolling back: generations/deploy.rs.)

#![allow(clippy::unwrap_used)]

use crate::support::system::{Built, on_host_busybox};
use std::fs;
use std::process::Command;

const SYSTEM: &str = r#"{ ... }:
{
  imports = [ @server@ ];
  system.healthChecks.fine.command = "test -d /";
  system.healthChecks.broken.command = "echo it is broken; exit 3";
  system.healthChecks.slow = { command = "sleep 10"; timeout = 1; };
}
"#;

#[test]
fn check_health_runs_every_check_with_its_limit_and_says_which_failed() {
    let built = Built::server_with(SYSTEM);
    let text = fs::read_to_string(built.entry("bin/check-health")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = on_host_busybox(dir.path(), "check-health", &text);
    // Not the host's systemd: the settling wait is for the target.
    let started = std::time::Instant::now();
    let out = Command::new(&script).arg("--no-settle").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("ok fine\n"), "{stdout}");
    assert!(
        stdout.contains(
            "FAILED broken (exit status 3, limit 30 s): echo it is broken; exit 3\n  it is broken\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAILED slow (exit status ") && stdout.contains("limit 1 s): sleep 10"),
        "{stdout}"
    );
    assert!(!stdout.contains("settled"), "{stdout}");
    // The slow check was stopped at its limit, not waited for.
    assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
    // A systemd system waits for systemd to settle first.
    assert!(
        text.contains("systemctl is-system-running --wait"),
        "{text}"
    );
}
