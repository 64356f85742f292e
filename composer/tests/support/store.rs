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

/// Adds a closure of three objects, lib ← bin ← top, and returns them in
/// that order: a file; a tree with an executable naming lib, an empty
/// file, names differing only in case (as Linux's xt_TCPMSS.ko and
/// xt_tcpmss.ko), a relative symlink and a name longer than 100 bytes; a
/// tree with a symlink to bin.
pub fn add_closure(store: &Store) -> [StorePath; 3] {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let lib = add_file(store, "lib", b"library contents", &[]);
    let bin = add_tree(store, "bin", std::slice::from_ref(&lib), |out| {
        fs::create_dir(out.join("bin")).unwrap();
        fs::write(out.join("bin/tool"), format!("#!{}\n", lib.to_absolute())).unwrap();
        fs::set_permissions(out.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(out.join("empty"), b"").unwrap();
        fs::write(out.join("M"), b"upper").unwrap();
        fs::write(out.join("m"), b"lower").unwrap();
        symlink("bin/tool", out.join("link")).unwrap();
        fs::write(out.join("long-".repeat(40)), b"long name").unwrap();
    });
    let top = add_tree(store, "top", std::slice::from_ref(&bin), |out| {
        symlink(bin.to_absolute(), out.join("bin")).unwrap();
    });
    [lib, bin, top]
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
