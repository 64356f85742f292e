//! Adding objects: golden digests, read-only results, references, the build
//! cache, closures, verification.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use crate::support::store as store_support;

use imago::store::canon::serialize_into;
use imago::store::{Blake3Digest, Problem, Store, StorePath};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use store_support::{add_file, add_tree};

fn digest_of(path: &Path) -> Blake3Digest {
    let mut bytes = Vec::new();
    serialize_into(path, &mut bytes).unwrap();
    Blake3Digest::of(&bytes)
}

/// A fixed tree: the golden digests below pin the serialization format.
fn golden_tree(root: &Path) {
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("share/empty")).unwrap();
    fs::write(root.join("bin/hello"), b"#!/bin/sh\necho hello\n").unwrap();
    fs::set_permissions(root.join("bin/hello"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("README"), b"read me\n").unwrap();
    fs::write(root.join("zero"), b"").unwrap();
    symlink("bin/hello", root.join("link")).unwrap();
}

#[test]
fn golden_digests() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, b"hello\n").unwrap();
    let exe = dir.path().join("exe");
    fs::write(&exe, b"hello\n").unwrap();
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o700)).unwrap();
    let link = dir.path().join("link");
    symlink("/imago/store/target", &link).unwrap();
    let tree = dir.path().join("tree");
    golden_tree(&tree);
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();

    let got: Vec<String> = [&file, &exe, &link, &tree, &empty]
        .iter()
        .map(|p| digest_of(p).to_hex())
        .collect();
    assert_eq!(
        got,
        [
            "ec9cdaf5f9df0f2c894e89d10e24961db8cd879c4386d7a4dd55757bbb969c9c",
            "b2a750aac6576d470bde5b5528d76500ec5207c4fdb17b6d4b48505b9ba835c2",
            "e5078097d50c9bd4d33b88c0011af53280924a0e168bea4a9dcb3c803c9323d2",
            "c395619b1e10d4eb1e6f8e86e348a27d5cfce825f98f96bbda6a2de3518441de",
            "f46fe7a9097e8203d6159fce3eff3633e83dfa2032a5184a96ffbe5da25d1018",
        ]
    );
}

/// The store path of a file is fixed too (checked against an independent
/// implementation of docs/store.md).
#[test]
fn golden_store_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = add_file(&store, "hello", b"hello\n", &[]);
    assert_eq!(p.as_str(), "xjfdmxgrvw7jr2afi78hw94n3nwcv1ww-hello");
}

#[test]
fn add_makes_a_read_only_valid_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = add_tree(&store, "tree", &[], golden_tree);
    let physical = store.physical(&p);
    assert_eq!(
        physical,
        dir.path().canonicalize().unwrap().join(p.as_str())
    );
    assert!(store.is_valid(&p).unwrap());
    let info = store.info(&p).unwrap().unwrap();
    assert_eq!(info.digest, digest_of(&physical));
    assert_eq!(p.hash_part(), info.digest.store_hash());
    assert_eq!(info.deriver.as_deref(), Some("test"));
    let mode = |rel: &str| {
        fs::symlink_metadata(physical.join(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode(""), 0o555);
    assert_eq!(mode("bin"), 0o555);
    assert_eq!(mode("bin/hello"), 0o555);
    assert_eq!(mode("README"), 0o444);
    // No temp dirs are left behind.
    assert!(store_support::temp_leftovers(dir.path()).is_empty());
    let report = store.verify(false).unwrap();
    assert_eq!(report.checked, 1);
    assert!(report.problems.is_empty(), "{report:?}");
}

#[test]
fn adding_the_same_content_twice_gives_the_same_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = add_file(&store, "same", b"content", &[]);
    let b = add_file(&store, "same", b"content", &[]);
    assert_eq!(a, b);
    let c = add_file(&store, "other-name", b"content", &[]);
    assert_eq!(a.hash_part(), c.hash_part());
    assert_ne!(a, c);
    assert!(store_support::temp_leftovers(dir.path()).is_empty());
}

#[test]
fn references_are_found_and_closures_follow_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let lib = add_file(&store, "lib", b"library", &[]);
    let unused = add_file(&store, "unused", b"not referenced", &[]);
    let bin = add_tree(&store, "bin", &[lib.clone(), unused.clone()], |out| {
        fs::write(out.join("script"), format!("exec {}/x", lib.to_absolute())).unwrap();
    });
    let top = add_tree(&store, "top", std::slice::from_ref(&bin), |out| {
        symlink(bin.to_absolute(), out.join("bin")).unwrap();
    });
    assert_eq!(
        store.references(&bin).unwrap(),
        BTreeSet::from([lib.clone()])
    );
    assert_eq!(
        store.references(&top).unwrap(),
        BTreeSet::from([bin.clone()])
    );
    assert_eq!(
        store.closure(std::slice::from_ref(&top)).unwrap(),
        BTreeSet::from([top.clone(), bin, lib])
    );
    assert!(
        store
            .closure(&["00000000000000000000000000000000-nope".parse().unwrap()])
            .is_err()
    );
}

#[test]
fn references_must_be_valid() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ghost: StorePath = "11111111111111111111111111111111-ghost".parse().unwrap();
    let tmp = store.temp_output().unwrap();
    fs::write(tmp.out(), ghost.to_absolute()).unwrap();
    let err = store.add(tmp, "x", &[ghost], None).unwrap_err();
    assert!(
        err.to_string()
            .contains("11111111111111111111111111111111-ghost"),
        "{err}"
    );
    assert!(store_support::top_level_objects(dir.path()).is_empty());
    assert!(store_support::temp_leftovers(dir.path()).is_empty());
}

#[test]
fn bad_names_and_missing_outputs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for bad in ["", ".hidden", "a/b", "sp ace", &"x".repeat(201)] {
        let tmp = store.temp_output().unwrap();
        fs::write(tmp.out(), b"x").unwrap();
        let err = store.add(tmp, bad, &[], None).unwrap_err();
        assert!(
            err.to_string().contains("invalid store path"),
            "{bad}: {err}"
        );
    }
    let tmp = store.temp_output().unwrap();
    let err = store.add(tmp, "nothing", &[], None).unwrap_err();
    assert!(err.to_string().contains("nothing was written"), "{err}");
    assert!(store_support::temp_leftovers(dir.path()).is_empty());
}

#[test]
fn special_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tmp = store.temp_output().unwrap();
    fs::create_dir(tmp.out()).unwrap();
    let fifo = tmp.out().join("pipe");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let err = store.add(tmp, "special", &[], None).unwrap_err();
    assert!(
        err.to_string().contains("FIFO") && err.to_string().contains("pipe"),
        "{err}"
    );
    assert!(store_support::top_level_objects(dir.path()).is_empty());
    assert!(store_support::temp_leftovers(dir.path()).is_empty());
}

#[test]
fn deep_trees_are_a_bounded_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tmp = store.temp_output().unwrap();
    let mut p = tmp.out();
    // Deeper than the limit but within PATH_MAX-friendly lengths.
    for _ in 0..300 {
        p.push("d");
    }
    fs::create_dir_all(&p).unwrap();
    let err = store.add(tmp, "deep", &[], None).unwrap_err();
    assert!(err.to_string().contains("nested deeper than 256"), "{err}");
    assert!(store_support::temp_leftovers(dir.path()).is_empty());
}

#[test]
fn add_path_copies_without_following_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let outside = dir.path().join("secret");
    fs::write(&outside, b"secret").unwrap();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"f").unwrap();
    symlink(&outside, src.join("escape")).unwrap();
    let p = store.add_path(&src, "src").unwrap();
    let physical = store.physical(&p);
    assert!(
        fs::symlink_metadata(physical.join("escape"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_link(physical.join("escape")).unwrap(), outside);
    // The object is read-only: writing through it fails, and the outside
    // file is untouched.
    assert!(fs::write(physical.join("f"), b"changed").is_err() || nix_is_root());
    assert_eq!(fs::read(&outside).unwrap(), b"secret");
}

fn nix_is_root() -> bool {
    std::env::var("USER").is_ok_and(|u| u == "root")
        || fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false)
}

#[test]
fn build_cache_round_trips_and_forgets_invalid_objects() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let key = Blake3Digest::of(b"step");
    assert_eq!(store.cache_get(&key).unwrap(), None);
    let p = add_file(&store, "out", b"o", &[]);
    store.cache_put(&key, &p).unwrap();
    assert_eq!(store.cache_get(&key).unwrap(), Some(p.clone()));
    let ghost: StorePath = "11111111111111111111111111111111-ghost".parse().unwrap();
    assert!(store.cache_put(&key, &ghost).is_err());
    drop(store);
    // Nothing roots it: GC deletes it and its cache entry.
    let store = Store::open(dir.path()).unwrap();
    let report = store.gc(false).unwrap();
    assert_eq!(report.deleted, vec![p]);
    assert_eq!(store.cache_get(&key).unwrap(), None);
}

#[test]
fn verify_names_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let good = add_file(&store, "good", b"fine", &[]);
    let bad = add_tree(&store, "bad", &[], |out| {
        fs::write(out.join("data"), vec![7u8; 100_000]).unwrap();
    });
    let file = store.physical(&bad).join("data");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&file).unwrap();
    bytes[54_321] ^= 1;
    fs::write(&file, &bytes).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o444)).unwrap();
    let report = store.verify(false).unwrap();
    assert_eq!(report.checked, 2);
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].path, bad);
    assert!(matches!(
        report.problems[0].problem,
        Problem::HashMismatch { .. }
    ));
    assert!(!report.is_ok());
    let repaired = store.verify(true).unwrap();
    assert!(
        repaired.problems[0]
            .note
            .as_deref()
            .is_some_and(|n| n.starts_with("no source to repair from")),
        "{repaired:?}"
    );
    assert!(!repaired.problems[0].repaired);
    let _ = good;
}

/// Corrupts one file of `path` (flips a byte).
fn corrupt(store: &Store, path: &StorePath, file: &str, at: usize) {
    let file = store.physical(path).join(file);
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&file).unwrap();
    bytes[at] ^= 1;
    fs::write(&file, &bytes).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o444)).unwrap();
}

#[test]
fn repair_restores_broken_and_missing_objects_from_a_closure_archive() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let lib = add_file(&store, "lib", b"library", &[]);
    let app = add_tree(&store, "app", std::slice::from_ref(&lib), |out| {
        fs::write(out.join("data"), vec![7u8; 100_000]).unwrap();
        fs::write(out.join("uses"), lib.to_absolute()).unwrap();
    });
    let mut archive = Vec::new();
    store
        .export(std::slice::from_ref(&app), &mut archive)
        .unwrap();
    corrupt(&store, &app, "data", 54_321);
    fs::set_permissions(store.physical(&lib), fs::Permissions::from_mode(0o644)).unwrap();
    fs::remove_file(store.physical(&lib)).unwrap();
    assert_eq!(store.verify(false).unwrap().problems.len(), 2);

    let report = store.repair_from(archive.as_slice()).unwrap();
    assert_eq!(report.problems.len(), 2, "{report:?}");
    assert!(report.is_ok(), "{report:?}");
    assert!(report.problems.iter().all(|p| p.repaired));
    let after = store.verify(false).unwrap();
    assert!(after.problems.is_empty(), "{after:?}");
    assert_eq!(after.checked, 2);
    let mode = fs::metadata(store.physical(&app))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o555);
    assert_eq!(
        fs::read(store.physical(&app).join("uses")).unwrap(),
        lib.to_absolute().as_bytes()
    );
}

#[test]
fn repair_from_an_archive_without_the_object_or_a_corrupt_one_restores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let other = add_file(&store, "other", b"other", &[]);
    let bad = add_tree(&store, "bad", &[], |out| {
        fs::write(out.join("data"), vec![1u8; 10_000]).unwrap();
    });
    let mut without = Vec::new();
    store
        .export(std::slice::from_ref(&other), &mut without)
        .unwrap();
    let mut with = Vec::new();
    store.export(std::slice::from_ref(&bad), &mut with).unwrap();
    corrupt(&store, &bad, "data", 5);

    let report = store.repair_from(without.as_slice()).unwrap();
    assert!(!report.is_ok());
    assert_eq!(
        report.problems[0].note.as_deref(),
        Some("not in the archive")
    );

    // A truncated archive is refused as a whole: nothing is restored.
    let truncated = &with[..with.len() / 2];
    assert!(store.repair_from(truncated).is_err());
    assert_eq!(store.verify(false).unwrap().problems.len(), 1);
    assert!(store.repair_from(with.as_slice()).unwrap().is_ok());
    assert!(store.verify(false).unwrap().problems.is_empty());
}

#[test]
fn verify_names_a_missing_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = add_file(&store, "gone", b"x", &[]);
    fs::remove_file(store.physical(&p)).unwrap();
    let report = store.verify(false).unwrap();
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].problem, Problem::Missing);
}

#[test]
fn queued_adds_from_many_threads_register_with_their_cache_entries() {
    use imago::store::AddSpec;
    use std::sync::mpsc;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let dep = add_file(&store, "dep", b"dependency", &[]);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        for t in 0..4u32 {
            let (store, dep, tx) = (&store, dep.clone(), tx.clone());
            scope.spawn(move || {
                for i in 0..10u32 {
                    let tmp = store.temp_output().unwrap();
                    let text = format!("{t} {i} {}", dep.to_absolute());
                    fs::write(tmp.out(), text).unwrap();
                    let key = Blake3Digest::of(format!("step {t} {i}").as_bytes());
                    let spec = AddSpec {
                        name: &format!("q{t}-{i}"),
                        candidate_refs: std::slice::from_ref(&dep),
                        deriver: Some("test"),
                        cache_key: Some(key),
                        step_inputs: &[],
                    };
                    let tx = tx.clone();
                    store.add_then(tmp, &spec, move |r| tx.send((key, r)).unwrap());
                }
            });
        }
    });
    drop(tx);
    let results: Vec<_> = rx.iter().collect();
    assert_eq!(results.len(), 40);
    for (key, result) in results {
        let path = result.unwrap();
        assert_eq!(store.cache_get(&key).unwrap(), Some(path.clone()));
        assert_eq!(
            store.references(&path).unwrap(),
            BTreeSet::from([dep.clone()])
        );
    }
    assert!(store.verify(false).unwrap().problems.is_empty());
}

#[test]
fn a_directory_of_objects_without_a_database_is_refused_and_left_alone() {
    // What a machine's /imago/store looks like: objects, no database.
    let dir = tempfile::tempdir().unwrap();
    let object = dir.path().join("0123456789abcdfghijklmnpqrsvwxyz-hello");
    fs::create_dir(&object).unwrap();
    fs::write(object.join("f"), "hi").unwrap();
    let err = Store::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no Imago store database"), "{err}");
    assert!(
        err.contains("0123456789abcdfghijklmnpqrsvwxyz-hello"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(object.join("f")).unwrap(), "hi");
    assert!(!dir.path().join(".imago").exists(), "nothing written");
    // Other files do not stop a new store, and a store reopens.
    let other = tempfile::tempdir().unwrap();
    fs::write(other.path().join("README"), "notes").unwrap();
    let store = Store::open(other.path()).unwrap();
    let tmp = store.temp_output().unwrap();
    fs::write(tmp.out(), "x").unwrap();
    let p = store.add(tmp, "x", &[], None).unwrap();
    drop(store);
    let store = Store::open(other.path()).unwrap();
    assert!(store.is_valid(&p).unwrap());
}

#[test]
fn a_temporary_output_is_only_a_path_and_goes_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let tmp = store.temp_output().unwrap();
    let out = tmp.out();
    assert!(!out.exists(), "nothing is created for a build's output");
    assert!(out.parent().unwrap().is_dir());
    assert_ne!(out, store.temp_output().unwrap().out());
    // A failed build's partial output (a read-only tree) goes with the guard.
    fs::create_dir(&out).unwrap();
    fs::write(out.join("partial"), "x").unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o555)).unwrap();
    drop(tmp);
    assert!(fs::symlink_metadata(&out).is_err());
}

#[test]
fn a_leftover_at_an_objects_name_is_replaced_and_never_followed() {
    // Learn the object's name in a scratch store.
    let scratch = tempfile::tempdir().unwrap();
    let path = add_file(&Store::open(scratch.path()).unwrap(), "obj", b"real", &[]);

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("keep"), b"outside").unwrap();
    // What a crashed add of another process could leave: an unregistered
    // tree under the name, here with a link that leads out of the store.
    let dest = store.physical(&path);
    fs::create_dir(&dest).unwrap();
    symlink(outside.path(), dest.join("escape")).unwrap();
    fs::write(dest.join("junk"), b"junk").unwrap();

    assert_eq!(add_file(&store, "obj", b"real", &[]), path);
    assert_eq!(fs::read(&dest).unwrap(), b"real");
    assert_eq!(fs::read(outside.path().join("keep")).unwrap(), b"outside");
    assert!(store.verify(false).unwrap().problems.is_empty());
}

#[test]
fn adding_a_registered_object_whose_files_vanished_puts_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let path = add_file(&store, "obj", b"content", &[]);
    let dest = store.physical(&path);
    fs::remove_file(&dest).unwrap();
    assert_eq!(add_file(&store, "obj", b"content", &[]), path);
    assert_eq!(fs::read(&dest).unwrap(), b"content");
    assert_eq!(
        fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o444
    );
    assert!(store.verify(false).unwrap().problems.is_empty());
}
