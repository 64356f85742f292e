//! Commands that start QEMU (`imago run`) run in a process group of their
//! own, killed whole when the test ends, so no VM outlives a test.
#![allow(clippy::unwrap_used)]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Kills the process group on drop.
pub struct Group(pub i32);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .status();
    }
}

/// Starts `command` in a process group of its own, with no input and its
/// output (both streams) appended to the file `log`.
pub fn spawn_logged(command: &mut Command, log: &Path) -> (Child, Group) {
    let log = std::fs::File::create(log).unwrap();
    let child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap();
    let group = Group(child.id() as i32);
    (child, group)
}

/// Whether any process of the process group `pgid` is still alive.
pub fn group_alive(pgid: u32) -> bool {
    Command::new("kill")
        .args(["-0", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}
