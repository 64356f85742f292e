//! What the composer's test binaries share. Each binary (`tests/<area>/main.rs`)
//! includes this module whole; the parts it does not use are dead code there.
#![allow(dead_code)]

pub mod boot;
pub mod cli;
pub mod deb;
pub mod group;
pub mod http;
pub mod store;
pub mod switch;
pub mod system;

/// Runs the test `test` of the current test binary again as a child
/// process. `test` is the test function's full path as `module_path!()`
/// spells it (`store::crash::crash_child`); the binary's own name, its first
/// segment, is dropped, because libtest names tests without it.
pub fn child_test(test: &str) -> std::process::Command {
    let name = test.split_once("::").map_or(test, |(_, rest)| rest);
    #[allow(clippy::unwrap_used)]
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"]);
    cmd
}

/// A TCP port of 127.0.0.1 that was free a moment ago (for a server the
/// test starts, which binds it itself).
pub fn free_port() -> u16 {
    #[allow(clippy::unwrap_used)]
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    #[allow(clippy::unwrap_used)]
    listener.local_addr().unwrap().port()
}
