//! The generation rules exist twice: in switch-to-configuration
//! (modules/system/switch/, run on the machine by its own busybox) and in
//! composer/src/generations/ (`imago generations`, `imago rollback` on
//! directories of a machine that need not run). These tests run both on
//! copies of the same machine (profile directory, ESP with counted
//! entries, run directory) and compare what they see and leave: the
//! listing, deleting (and each refusal: current, booted, running, unknown,
//! lock held), rolling back (the default entry), the lock between them,
//! and the store object names the script trusts against `StorePath`. Why
//! both exist: docs/generations.md, "Why two implementations".

#![allow(clippy::unwrap_used)]

use crate::support::switch as switch_support;

use crate::support::cli::stderr;
use imago::generations::SwitchLock;
use imago::store::StorePath;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use switch_support::{Fixture, hash, run_part};

/// Generations 1 to 3 of `web`, added by the script itself: 1 the image's
/// (good entry), 2 and 3 added with `boot` (counted entries, 2 with one
/// boot tried), 3 current; 1 booted and running.
fn machine() -> (Fixture, Vec<PathBuf>) {
    let f = Fixture::new();
    let sys1 = f.root().join("sys1");
    let sys2 = f.system("sys2", 2, 20);
    let sys3 = f.system("sys3", 3, 30);
    f.ok(&sys2, "boot");
    f.ok(&sys3, "boot");
    let entries = f.root().join("esp/loader/entries");
    fs::rename(
        entries.join("imago-web-2+3.conf"),
        entries.join("imago-web-2+2-1.conf"),
    )
    .unwrap();
    assert_eq!(
        f.entries(),
        [
            "imago-web-1.conf",
            "imago-web-2+2-1.conf",
            "imago-web-3+3.conf"
        ]
    );
    (f, vec![sys1, sys2, sys3])
}

/// `imago ARGS` on the copy `at` of the machine.
fn imago(at: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imago"))
        .args(args)
        .arg("--profile")
        .arg(at.join("profiles"))
        .arg("--esp")
        .arg(at.join("esp"))
        .arg("--run")
        .arg(at.join("run"))
        .output()
        .unwrap()
}

/// Every path below `dir`, relative, with its content or link target.
fn tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir).min_depth(1) {
        let e = e.unwrap();
        let v = if e.path_is_symlink() {
            format!("-> {}", fs::read_link(e.path()).unwrap().display())
        } else if e.file_type().is_file() {
            fs::read_to_string(e.path()).unwrap()
        } else {
            "dir".to_owned()
        };
        out.insert(e.path().strip_prefix(dir).unwrap().to_owned(), v);
    }
    out
}

/// Copies of the machine for the script (`a`) and for imago (`b`).
fn twins(f: &Fixture, case: &str) -> (PathBuf, PathBuf) {
    let a = f.copy_machine(&format!("{case}-script"));
    let b = f.copy_machine(&format!("{case}-imago"));
    assert_eq!(tree(&a), tree(&b));
    (a, b)
}

/// Both refused with status 1, and neither changed anything.
fn both_refuse(
    script: &Output,
    rust: &Output,
    a: &Path,
    b: &Path,
    before: &BTreeMap<PathBuf, String>,
) {
    assert_eq!(script.status.code(), Some(1), "script: {}", stderr(script));
    assert_eq!(rust.status.code(), Some(1), "imago: {}", stderr(rust));
    assert_eq!(&tree(a), before, "the script changed something");
    assert_eq!(&tree(b), before, "imago changed something");
}

/// One generation as both listings show it: number, current, booted,
/// toplevel, and its entry (`good`, `tries left N`, or `none`).
type Listed = (u32, bool, bool, String, String);

fn script_listing(text: &str) -> Vec<Listed> {
    text.lines()
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 4, "{l}");
            let marks: Vec<&str> = cols[1].split(' ').collect();
            let entry = match cols[3].split_once('+') {
                _ if cols[3].is_empty() => "none".to_owned(),
                Some((_, counter)) => format!(
                    "tries left {}",
                    counter.trim_end_matches(".conf").split('-').next().unwrap()
                ),
                None => "good".to_owned(),
            };
            (
                cols[0].parse().unwrap(),
                marks.contains(&"current"),
                marks.contains(&"booted"),
                cols[2].to_owned(),
                entry,
            )
        })
        .collect()
}

fn imago_listing(text: &str) -> Vec<Listed> {
    text.lines()
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let entry = if l.ends_with("[entry]") {
                "good".to_owned()
            } else if let Some(rest) = l.split_once("not yet good, ").map(|(_, r)| r) {
                format!("tries left {}", rest.split(' ').next().unwrap())
            } else {
                assert!(l.ends_with("[no boot entry]"), "{l}");
                "none".to_owned()
            };
            (
                words[0].parse().unwrap(),
                l.contains("(current)"),
                l.contains("(booted)"),
                words[3].to_owned(),
                entry,
            )
        })
        .collect()
}

#[test]
fn list_agrees() {
    let (f, sys) = machine();
    // Booted 2, running 1; generation 1 without an entry.
    let (a, b) = twins(&f, "list");
    for at in [&a, &b] {
        fs::remove_file(at.join("run/booted-system")).unwrap();
        symlink(&sys[1], at.join("run/booted-system")).unwrap();
        fs::remove_file(at.join("esp/loader/entries/imago-web-1.conf")).unwrap();
    }
    let script = f
        .command_at(&sys[2], "list-generations", &a)
        .output()
        .unwrap();
    assert!(script.status.success(), "{}", stderr(&script));
    let rust = imago(&b, &["generations", "list"]);
    assert!(rust.status.success(), "{}", stderr(&rust));
    let script = script_listing(&String::from_utf8_lossy(&script.stdout));
    let rust = imago_listing(&String::from_utf8_lossy(&rust.stdout));
    assert_eq!(script, rust);
    let top = |i: usize| sys[i].display().to_string();
    assert_eq!(
        script,
        [
            (1, false, false, top(0), "none".to_owned()),
            (2, false, true, top(1), "tries left 2".to_owned()),
            (3, true, false, top(2), "tries left 3".to_owned()),
        ]
    );
}

#[test]
fn delete_agrees() {
    let (f, sys) = machine();
    let (a, b) = twins(&f, "delete");
    let before = tree(&a);
    let script = f
        .command_at(&sys[2], "delete-generations 2", &a)
        .output()
        .unwrap();
    assert!(script.status.success(), "{}", stderr(&script));
    let rust = imago(&b, &["generations", "delete", "2"]);
    assert!(rust.status.success(), "{}", stderr(&rust));
    let after = tree(&a);
    assert_eq!(after, tree(&b));
    assert_ne!(after, before);
    // The link, the entry and the kernel and initrd only it used are gone;
    // nothing is left in the run directory.
    let gone: Vec<&PathBuf> = before.keys().filter(|p| !after.contains_key(*p)).collect();
    let mut expected = [
        Path::new("esp/EFI/imago").join(format!("{}-initrd", hash(20))),
        Path::new("esp/EFI/imago").join(format!("{}-linux-bzImage", hash(2))),
        PathBuf::from("esp/loader/entries/imago-web-2+2-1.conf"),
        PathBuf::from("profiles/system-2-link"),
    ];
    expected.sort();
    assert_eq!(gone, expected.iter().collect::<Vec<_>>());
    assert!(after.keys().all(|p| !p.starts_with("run/imago")));
}

#[test]
fn delete_refusals_agree() {
    let (f, sys) = machine();
    // Name, numbers to delete, and a run link to point at another system.
    type Case<'a> = (&'a str, &'a str, Option<(&'a str, usize)>);
    let cases: [Case; 5] = [
        ("current", "3", None),
        ("booted", "1", None),
        ("running", "2", Some(("current-system", 1))),
        ("unknown", "7", None),
        ("twice-unknown", "2 7", None),
    ];
    for (case, numbers, link) in cases {
        let (a, b) = twins(&f, case);
        if let Some((name, i)) = link {
            for at in [&a, &b] {
                fs::remove_file(at.join("run").join(name)).unwrap();
                symlink(&sys[i], at.join("run").join(name)).unwrap();
            }
        }
        let before = tree(&a);
        let script = f
            .command_at(&sys[2], &format!("delete-generations {numbers}"), &a)
            .output()
            .unwrap();
        let mut args = vec!["generations", "delete"];
        args.extend(numbers.split(' '));
        let rust = imago(&b, &args);
        both_refuse(&script, &rust, &a, &b, &before);
    }
}

#[test]
fn a_lock_held_by_either_refuses_the_other() {
    let (f, sys) = machine();
    let (a, b) = twins(&f, "lock");
    // The same run directory for both: the machine's /run.
    let run = a.join("run");
    fs::remove_dir_all(b.join("run")).unwrap();
    symlink(&run, b.join("run")).unwrap();
    let before = (tree(&a.join("profiles")), tree(&a.join("esp")));

    // The script holds it (paused once it has it): imago refuses.
    let mut child = f
        .command_at(&sys[2], "delete-generations 2", &a)
        .env("IMAGO_SWITCH_PAUSE_AFTER", "lock")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lock = run.join("imago-switch.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !lock.is_symlink() {
        assert!(
            std::time::Instant::now() < deadline,
            "the script took no lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let rust = imago(&b, &["generations", "delete", "2"]);
    assert_eq!(rust.status.code(), Some(1));
    let err = stderr(&rust);
    assert!(
        err.contains(&format!("(pid {}) holds the lock", child.id())),
        "{err}"
    );
    // Killed while holding it: the lock is stale, imago takes it over.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(lock.is_symlink());
    let rust = imago(&b, &["generations", "delete", "--older-than", "1000w"]);
    assert!(rust.status.success(), "{}", stderr(&rust));
    assert!(!lock.is_symlink());
    assert_eq!(tree(&b.join("profiles")), tree(&a.join("profiles")));

    // imago holds it: the script refuses, then runs once it is released.
    let held = SwitchLock::take(&run).unwrap();
    let script = f
        .command_at(&sys[2], "delete-generations 2", &a)
        .output()
        .unwrap();
    assert_eq!(script.status.code(), Some(1));
    let err = stderr(&script);
    assert!(
        err.contains(&format!("(pid {}) is running", std::process::id())),
        "{err}"
    );
    assert_eq!((tree(&a.join("profiles")), tree(&a.join("esp"))), before);
    drop(held);
    assert!(!lock.is_symlink());
    let script = f
        .command_at(&sys[2], "delete-generations 2", &a)
        .output()
        .unwrap();
    assert!(script.status.success(), "{}", stderr(&script));
    assert!(!lock.is_symlink());
}

#[test]
fn rollback_to_a_counted_entry_agrees() {
    let (f, sys) = machine();
    let (a, b) = twins(&f, "rollback");
    let script = f.command_at(&sys[2], "rollback boot", &a).output().unwrap();
    assert!(script.status.success(), "{}", stderr(&script));
    let rust = imago(&b, &["rollback"]);
    assert!(rust.status.success(), "{}", stderr(&rust));
    let after = tree(&a);
    assert_eq!(after, tree(&b));
    assert_eq!(after[Path::new("profiles/system")], "-> system-2-link");
    assert_eq!(
        after[Path::new("esp/loader/loader.conf")],
        "default imago-web-2.conf\ntimeout 0\nconsole-mode keep\neditor no\n"
    );
}

/// The script trusts a store name (in a closure file, or in the store
/// directory it collects) exactly when `StorePath` accepts it.
#[test]
fn store_object_names_agree_with_store_path() {
    let h = "0123456789abcdfghijklmnpqrsvwxyz";
    assert_eq!(h.len(), 32);
    let long = "a".repeat(200);
    let too_long = "a".repeat(201);
    let huge = "a".repeat(10_000);
    let names: Vec<String> = vec![
        format!("{h}-hello"),
        format!("{h}-a"),
        format!("{h}-{long}"),
        format!("{h}--leading-dash"),
        format!("{h}-name+1.2_3?=x-"),
        format!("{h}-UPPER.case"),
        String::new(),
        ".".into(),
        "..".into(),
        "/".into(),
        h.into(),
        format!("{h}-"),
        format!("{h}-."),
        format!("{h}-.."),
        format!("{h}-.hidden"),
        format!("{h}-a/b"),
        format!("{h}-a/"),
        format!("/{h}-a"),
        format!("{}-a", &h[..31]),
        format!("{h}0-a"),
        format!("{h}a"),
        format!("{}-a", h.to_uppercase()),
        format!("{}e-a", &h[..31]),
        format!("-{h}-a"),
        format!("{h}-{too_long}"),
        format!("{h}-{huge}"),
        format!("{h}-with space"),
        format!("{h}-tab\there"),
        format!("{h}-line\n"),
        format!("{h}-li\nne"),
        format!("{h}\n-a"),
        format!("{h}-caf\u{e9}"),
        format!("{}\u{e9}-a", &h[..30]),
        format!("{h}-\u{1F600}"),
        format!("{h}-glob*"),
        format!("{h}-[ab]"),
        format!("{h}-$(reboot)"),
        format!("{h}-a\\b"),
        format!("{h}-a'b\""),
        format!("{h}-a:b"),
    ];
    let args: Vec<&str> = names.iter().map(String::as_str).collect();
    let out = run_part(
        "store.sh",
        r#"for n in "$@"; do if is_object_name "$n"; then echo yes; else echo no; fi; done"#,
        &args,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let script: Vec<bool> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l == "yes")
        .collect();
    assert_eq!(script.len(), names.len());
    let mut disagree = Vec::new();
    for (name, by_script) in names.iter().zip(&script) {
        let by_rust = StorePath::try_from(name.as_str()).is_ok();
        if by_rust != *by_script {
            disagree.push(format!("{name:?}: script {by_script}, StorePath {by_rust}"));
        }
    }
    assert!(disagree.is_empty(), "{disagree:#?}");
    // The list holds both kinds.
    assert_eq!(script.iter().filter(|ok| **ok).count(), 6, "{script:?}");
}
