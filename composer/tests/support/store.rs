//! Helpers shared by the store integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use imago::store::{Store, StorePath};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

/// Adds a single file with `contents` as `name`.
pub fn add_file(store: &Store, name: &str, contents: &[u8], refs: &[StorePath]) -> StorePath {
    let tmp = store.temp_output().unwrap();
    fs::write(tmp.out(), contents).unwrap();
    store.add(tmp, name, refs, Some("test")).unwrap()
}

/// Adds a directory tree written by `fill` (given the output dir).
pub fn add_tree(
    store: &Store,
    name: &str,
    refs: &[StorePath],
    fill: impl FnOnce(&Path),
) -> StorePath {
    let tmp = store.temp_output().unwrap();
    fs::create_dir(tmp.out()).unwrap();
    fill(&tmp.out());
    store.add(tmp, name, refs, Some("test")).unwrap()
}

/// Runs the test `test` (its path as `module_path!()` spells it, see
/// [`super::child_test`]) of the current test binary as a child process,
/// with `envs`. The child test does its work only when `IMAGO_TEST_CHILD`
/// is set.
pub fn child(test: &str, envs: &[(&str, &str)]) -> Command {
    let mut cmd = super::child_test(test);
    cmd.env("IMAGO_TEST_CHILD", "1")
        .env_remove("IMAGO_FAULT_INJECT")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// True inside a child started by [`child`].
pub fn is_child() -> bool {
    std::env::var_os("IMAGO_TEST_CHILD").is_some()
}

/// Every entry inside the sessions' temp directories (should be empty when
/// no build is running). With no store open, use [`all_temp_entries`].
pub fn temp_leftovers(store_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(sessions) = fs::read_dir(store_dir.join(".imago/tmp")) {
        for s in sessions.flatten() {
            out.extend(walk(&s.path()));
        }
    }
    out
}

/// Every entry under the temp area, session directories included.
pub fn all_temp_entries(store_dir: &Path) -> Vec<String> {
    walk(&store_dir.join(".imago/tmp"))
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            out.push(e.path().display().to_string());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&e.path()));
            }
        }
    }
    out
}

/// Object-like entries at the top of the store directory.
pub fn top_level_objects(store_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(store_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}
