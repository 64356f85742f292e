//! Crash safety and disk-full handling (reliability.md 19–20): a child
//! process adds (or imports) with `IMAGO_FAULT_INJECT` set and dies at each
//! named point; the next open must leave a store where every registered
//! object verifies, nothing unregistered sits at a final path, and no
//! temporary files remain.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use crate::support::store as store_support;

use imago::store::fault::POINTS;
use imago::store::{Store, StorePath};
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use store_support::{
    add_file, add_tree, all_temp_entries, child, is_child, temp_leftovers, top_level_objects,
};

/// Child: opens the store at `IMAGO_TEST_STORE` and adds a tree (or, with
/// `IMAGO_TEST_IMPORT`, imports that archive), printing the result.
#[test]
fn crash_child() {
    if !is_child() {
        return;
    }
    let dir = std::env::var("IMAGO_TEST_STORE").unwrap();
    let store = Store::open(&dir).unwrap();
    if let Ok(archive) = std::env::var("IMAGO_TEST_IMPORT") {
        let result = store.import(fs::File::open(archive).unwrap());
        println!("result: {result:?}");
        return;
    }
    if std::env::var_os("IMAGO_TEST_PARALLEL").is_some() {
        return parallel_adds(&store);
    }
    let dep = add_file(&store, "dep", b"dependency", &[]);
    let result = {
        let tmp = store.temp_output().unwrap();
        fs::create_dir(tmp.out()).unwrap();
        for i in 0..20 {
            fs::write(tmp.out().join(format!("f{i}")), vec![i as u8; 10_000]).unwrap();
        }
        fs::write(tmp.out().join("ref"), dep.to_absolute()).unwrap();
        store.add(tmp, "crashy", &[dep], None)
    };
    println!("result: {result:?}");
}

/// Four threads adding five objects each at once, so that the group commit
/// registers several outputs per batch.
fn parallel_adds(store: &Store) {
    std::thread::scope(|scope| {
        for t in 0..4u8 {
            scope.spawn(move || {
                for i in 0..5u8 {
                    let tmp = store.temp_output().unwrap();
                    fs::create_dir(tmp.out()).unwrap();
                    fs::write(tmp.out().join("data"), vec![t * 16 + i; 50_000]).unwrap();
                    let result = store.add(tmp, &format!("p{t}-{i}"), &[], None);
                    println!("result: {result:?}");
                }
            });
        }
    });
}

/// The store after recovery: every registered object verifies, the top
/// level holds exactly the registered objects, and no temp files remain.
fn check_recovered(dir: &Path) -> BTreeSet<String> {
    let store = Store::open(dir).unwrap();
    let report = store.verify(false).unwrap();
    assert!(report.problems.is_empty(), "{report:?}");
    let on_disk = top_level_objects(dir);
    assert_eq!(
        on_disk.len(),
        report.checked,
        "unregistered objects remain: {on_disk:?}"
    );
    for name in &on_disk {
        let p: StorePath = name.parse().unwrap();
        assert!(
            store.is_valid(&p).unwrap(),
            "{name} is on disk but not valid"
        );
    }
    assert!(temp_leftovers(dir).is_empty(), "{:?}", temp_leftovers(dir));
    drop(store);
    assert!(
        all_temp_entries(dir).is_empty(),
        "{:?}",
        all_temp_entries(dir)
    );
    on_disk.into_iter().collect()
}

#[test]
fn a_crash_at_every_point_of_add_leaves_a_valid_store() {
    if is_child() {
        return;
    }
    for point in POINTS {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let store = Store::open(dir.path()).unwrap();
            add_file(&store, "existing", b"already here", &[])
        };
        let out = child(
            concat!(module_path!(), "::crash_child"),
            &[
                ("IMAGO_TEST_STORE", dir.path().to_str().unwrap()),
                ("IMAGO_FAULT_INJECT", point),
            ],
        )
        .output()
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{point}: the child did not crash");
        // The first add (of `dep`) crashes already: what matters is the state.
        assert!(
            stderr.contains(&format!("injected crash at `{point}`")),
            "{point}: {stderr}"
        );
        let names = check_recovered(dir.path());
        assert!(names.contains(before.as_str()), "{point}: lost {before}");
        let dep_valid = names.iter().any(|n| n.ends_with("-dep"));
        assert_eq!(dep_valid, point == "after-commit", "{point}: {names:?}");
    }
}

#[test]
fn a_crash_at_every_point_of_parallel_adds_leaves_a_valid_store() {
    if is_child() {
        return;
    }
    for point in POINTS {
        let dir = tempfile::tempdir().unwrap();
        let out = child(
            concat!(module_path!(), "::crash_child"),
            &[
                ("IMAGO_TEST_STORE", dir.path().to_str().unwrap()),
                ("IMAGO_TEST_PARALLEL", "1"),
                ("IMAGO_FAULT_INJECT", point),
            ],
        )
        .output()
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{point}: the child did not crash");
        assert!(
            stderr.contains(&format!("injected crash at `{point}`")),
            "{point}: {stderr}"
        );
        let names = check_recovered(dir.path());
        if point != "after-commit" {
            assert!(names.is_empty(), "{point}: {names:?}");
        }
    }
    // Without a fault, every add of every thread lands.
    let dir = tempfile::tempdir().unwrap();
    let out = child(
        concat!(module_path!(), "::crash_child"),
        &[
            ("IMAGO_TEST_STORE", dir.path().to_str().unwrap()),
            ("IMAGO_TEST_PARALLEL", "1"),
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(check_recovered(dir.path()).len(), 20);
}

#[test]
fn a_crash_at_every_point_of_import_registers_all_or_nothing() {
    if is_child() {
        return;
    }
    let src_dir = tempfile::tempdir().unwrap();
    let src = Store::open(src_dir.path()).unwrap();
    let a = add_file(&src, "a", b"first", &[]);
    let b = add_tree(&src, "b", std::slice::from_ref(&a), |out| {
        fs::write(out.join("x"), a.to_absolute()).unwrap();
    });
    let archive = src_dir.path().join("closure.tar.zst");
    src.export(
        std::slice::from_ref(&b),
        fs::File::create(&archive).unwrap(),
    )
    .unwrap();
    for point in POINTS {
        let dir = tempfile::tempdir().unwrap();
        let out = child(
            concat!(module_path!(), "::crash_child"),
            &[
                ("IMAGO_TEST_STORE", dir.path().to_str().unwrap()),
                ("IMAGO_TEST_IMPORT", archive.to_str().unwrap()),
                ("IMAGO_FAULT_INJECT", point),
            ],
        )
        .output()
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Import has no hashing fault point of its own (it has synced its
        // staged files before the batch; `after-fsync` follows the store
        // directory's fsync there).
        if point == "after-hash" {
            assert!(out.status.success(), "{point}: {stderr}");
        } else {
            assert!(!out.status.success(), "{point}: the child did not crash");
        }
        let names = check_recovered(dir.path());
        let expect_all = ["after-hash", "after-commit"].contains(&point);
        let want: BTreeSet<String> = if expect_all {
            [a.to_string(), b.to_string()].into()
        } else {
            BTreeSet::new()
        };
        assert_eq!(names, want, "{point}");
    }
}

#[test]
fn disk_full_at_every_point_is_a_clear_error_and_leaves_nothing() {
    if is_child() {
        return;
    }
    for point in POINTS {
        let dir = tempfile::tempdir().unwrap();
        let out = child(
            concat!(module_path!(), "::crash_child"),
            &[
                ("IMAGO_TEST_STORE", dir.path().to_str().unwrap()),
                ("IMAGO_FAULT_INJECT", &format!("enospc:{point}")),
            ],
        )
        .output()
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if point == "after-commit" {
            // The object is registered; the error only reports the fault.
            assert!(!out.status.success(), "{stdout}{stderr}");
        } else {
            assert!(!out.status.success(), "{point}: {stdout}{stderr}");
            assert!(
                stderr.contains("No space left on device")
                    || stdout.contains("No space left")
                    || stderr.contains("os error 28"),
                "{point}: {stdout}{stderr}"
            );
        }
        let names = check_recovered(dir.path());
        if point != "after-commit" {
            assert!(names.is_empty(), "{point}: {names:?}");
        }
    }
}

/// In-process: the error itself names the fault and nothing stays behind
/// even before the next open.
#[test]
fn disk_full_errors_clean_up_immediately() {
    if is_child() {
        return;
    }
    // SAFETY of the environment: only this test in this binary sets the
    // variable, and it is read once at open.
    let dir = tempfile::tempdir().unwrap();
    let out = child(
        concat!(module_path!(), "::enospc_child"),
        &[
            ("IMAGO_TEST_STORE", dir.path().to_str().unwrap()),
            ("IMAGO_FAULT_INJECT", "enospc:after-rename"),
        ],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("No space left on device"), "{stdout}");
    assert!(stdout.contains("objects: []"), "{stdout}");
    assert!(stdout.contains("temp: []"), "{stdout}");
}

#[test]
fn enospc_child() {
    if !is_child() {
        return;
    }
    let dir = std::env::var("IMAGO_TEST_STORE").unwrap();
    let store = Store::open(&dir).unwrap();
    let tmp = store.temp_output().unwrap();
    fs::write(tmp.out(), b"x").unwrap();
    let err = store.add(tmp, "x", &[], None).unwrap_err();
    println!("error: {:#}", anyhow::Error::from(err));
    println!("objects: {:?}", top_level_objects(Path::new(&dir)));
    println!("temp: {:?}", temp_leftovers(Path::new(&dir)));
}

/// A real full disk: a 1 MiB tmpfs (needs root; skipped otherwise).
#[test]
fn a_real_full_disk_is_a_clear_error() {
    if is_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipping: cannot mount a tmpfs (not root?)");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(&mnt);
    let big = dir.path().join("big");
    fs::write(&big, vec![1u8; 2 << 20]).unwrap();
    fs::write(dir.path().join("small"), b"fits").unwrap();
    let store_dir = mnt.join("store");
    let store = Store::open(&store_dir).unwrap();
    let err = store.add_path(&big, "big").unwrap_err();
    let text = format!("{:#}", anyhow::Error::from(err));
    assert!(text.contains("No space left on device"), "{text}");
    assert!(text.contains("big"), "{text}");
    assert!(top_level_objects(&store_dir).is_empty());
    assert!(
        temp_leftovers(&store_dir).is_empty(),
        "{:?}",
        temp_leftovers(&store_dir)
    );
    // Import of a closure that does not fit: refused, nothing registered.
    let src_dir = tempfile::tempdir().unwrap();
    let src = Store::open(src_dir.path()).unwrap();
    let p = src.add_path(&big, "big").unwrap();
    let mut archive = Vec::new();
    src.export(&[p], &mut archive).unwrap();
    let err = store.import(archive.as_slice()).unwrap_err();
    let text = format!("{:#}", anyhow::Error::from(err));
    assert!(text.contains("No space left on device"), "{text}");
    assert_eq!(store.verify(false).unwrap().checked, 0);
    assert!(temp_leftovers(&store_dir).is_empty());
    // Space is back: a small add works. Another test of this binary may be
    // forking a child at the moment the big temporary file is closed; until
    // that child execs, it holds a copy of the descriptor and the tmpfs keeps
    // the pages. Wait (bounded) for the space to be released first.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while rustix::fs::statvfs(&mnt).map_or(0, |s| s.f_bavail * s.f_frsize) < 512 * 1024
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let small = store.add_path(&dir.path().join("small"), "small");
    let du = std::process::Command::new("du")
        .arg("-a")
        .arg(&store_dir)
        .output()
        .unwrap();
    let small = small.unwrap_or_else(|e| panic!("{e:#}\n{}", String::from_utf8_lossy(&du.stdout)));
    assert!(store.is_valid(&small).unwrap());
}
