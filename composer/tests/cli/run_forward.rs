//! `imago run --forward` from the outside, as a user meets it: boot
//! examples/server.imago with a host port forwarded to its web server and
//! fetch the page over plain HTTP from the host. No backdoor. Then stop
//! `imago run` with SIGTERM and find its VM gone too.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::group::{group_alive, spawn_logged};

/// One HTTP GET of `/` on 127.0.0.1:`port`; the whole answer.
fn get(port: u16) -> Option<String> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    conn.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).ok()?;
    Some(answer)
}

#[test]
fn the_server_example_answers_on_a_forwarded_port() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/server.imago");
    let (mut child, _group) = spawn_logged(
        Command::new(env!("CARGO_BIN_EXE_imago"))
            .arg("--store")
            .arg(dir.path().join("store"))
            .arg("run")
            .arg(&file)
            .args(["--forward", &format!("{port}:80")]),
        &dir.path().join("console.log"),
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(420);
    let answer = loop {
        if let Some(answer) = get(port).filter(|a| a.starts_with("HTTP/1.")) {
            break answer;
        }
        let console =
            || std::fs::read_to_string(dir.path().join("console.log")).unwrap_or_default();
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "imago run ended ({status}) before answering; output:\n{}",
                console()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no answer on 127.0.0.1:{port} after {:?}; console:\n{}",
            started.elapsed(),
            console()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("answered after {:?} (build and boot)", started.elapsed());
    // Stopping `imago run` as a service manager or `timeout` would (SIGTERM
    // to imago alone) stops its VM too: nothing of the process group is
    // left once imago has exited.
    let pgid = child.id();
    let term = Command::new("kill")
        .args(["-TERM", &pgid.to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(143),
        "imago run after SIGTERM: {status}"
    );
    let stopped = Instant::now();
    while group_alive(pgid) {
        assert!(
            stopped.elapsed() < Duration::from_secs(15),
            "QEMU (or virtiofsd) outlived `imago run` after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(_group);
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    assert!(answer.contains("<h1>Served by server</h1>"), "{answer}");
}
