//! Two processes and one store (reliability.md 21): the same step is built
//! once, and GC never deletes what a running process uses.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use crate::support::store as store_support;

use imago::store::{Blake3Digest, Store, StorePath};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;
use store_support::{add_file, child, is_child};

/// Child: builds the step `IMAGO_TEST_KEY` unless it is cached, slowly.
#[test]
fn step_child() {
    if !is_child() {
        return;
    }
    let store = Store::open(std::env::var("IMAGO_TEST_STORE").unwrap()).unwrap();
    let key = Blake3Digest::of(std::env::var("IMAGO_TEST_KEY").unwrap().as_bytes());
    let _lock = store.lock_step(&key).unwrap();
    if let Some(p) = store.cache_get(&key).unwrap() {
        println!("\ncached {p}");
        return;
    }
    std::thread::sleep(Duration::from_millis(300));
    let tmp = store.temp_output().unwrap();
    fs::write(tmp.out(), b"built once").unwrap();
    let p = store.add(tmp, "step", &[], None).unwrap();
    store.cache_put(&key, &p).unwrap();
    println!("\nbuilt {p}");
}

#[test]
fn two_processes_build_the_same_step_once() {
    if is_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("IMAGO_TEST_STORE", dir.path().to_str().unwrap()),
        ("IMAGO_TEST_KEY", "the step"),
    ];
    let a = child(concat!(module_path!(), "::step_child"), &envs)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let b = child(concat!(module_path!(), "::step_child"), &envs)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let outs: Vec<String> = [a, b]
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect();
    let built: Vec<&str> = outs
        .iter()
        .flat_map(|o| o.lines())
        .filter(|l| l.starts_with("built "))
        .collect();
    let cached: Vec<&str> = outs
        .iter()
        .flat_map(|o| o.lines())
        .filter(|l| l.starts_with("cached "))
        .collect();
    assert_eq!(built.len(), 1, "{outs:?}");
    assert_eq!(cached.len(), 1, "{outs:?}");
    assert_eq!(
        built[0].trim_start_matches("built "),
        cached[0].trim_start_matches("cached ")
    );
}

/// Child: adds an object and keeps the store open (and a build temp dir
/// with a half-written output) until its stdin closes.
#[test]
fn holder_child() {
    if !is_child() {
        return;
    }
    let store = Store::open(std::env::var("IMAGO_TEST_STORE").unwrap()).unwrap();
    let p = add_file(&store, "in-use", b"used by a running build", &[]);
    let tmp = store.temp_output().unwrap();
    fs::write(tmp.out(), b"half written").unwrap();
    println!("\nHELD {p} {}", tmp.out().display());
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn gc_during_a_build_keeps_what_the_build_uses() {
    if is_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut holder = child(
        concat!(module_path!(), "::holder_child"),
        &[("IMAGO_TEST_STORE", dir.path().to_str().unwrap())],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut reader = BufReader::new(holder.stdout.take().unwrap());
    let mut line = String::new();
    // The test harness prints its own lines too; find ours.
    let (held, tmp_out) = loop {
        line.clear();
        assert_ne!(
            reader.read_line(&mut line).unwrap(),
            0,
            "child exited early"
        );
        let Some(rest) = line.split("HELD ").nth(1) else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        if let (Some(a), Some(b)) = (parts.next(), parts.next()) {
            break (a.parse::<StorePath>().unwrap(), std::path::PathBuf::from(b));
        }
    };
    let store = Store::open(dir.path()).unwrap();
    let garbage = add_file(&store, "garbage", b"nobody needs this", &[]);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let report = store.gc(false).unwrap();
    assert_eq!(report.deleted, vec![garbage]);
    assert!(store.is_valid(&held).unwrap());
    assert!(store.physical(&held).exists());
    assert_eq!(
        fs::read(&tmp_out).unwrap(),
        b"half written",
        "GC touched a running build's temp dir"
    );
    // When the holder exits, its object is garbage and its temp dir goes.
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    let report = store.gc(false).unwrap();
    assert_eq!(report.deleted, vec![held.clone()]);
    assert!(!store.physical(&held).exists());
    assert!(!tmp_out.exists());
}
