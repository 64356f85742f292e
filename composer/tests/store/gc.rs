//! Garbage collection keeps every rooted object (and its closure) and frees
//! the rest.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use crate::support::store as store_support;

use imago::store::Store;
use std::fs;
use std::os::unix::fs::symlink;
use store_support::{add_file, add_tree, top_level_objects};

#[test]
fn gc_keeps_out_links_named_roots_and_their_closures() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (lib, app, profile, loose, retarget_old) = {
        let store = Store::open(dir.path()).unwrap();
        let lib = add_file(&store, "lib", b"lib", &[]);
        let app = add_tree(&store, "app", std::slice::from_ref(&lib), |out| {
            fs::write(out.join("run"), lib.to_absolute()).unwrap();
        });
        let profile = add_file(&store, "profile", b"generation 1", &[]);
        let loose = add_file(&store, "loose", b"nobody roots this", &[]);
        let retarget_old = add_file(&store, "old-result", b"old", &[]);
        store.add_root(&work.path().join("result"), &app).unwrap();
        store
            .add_root(&work.path().join("result-2"), &retarget_old)
            .unwrap();
        // Retargeting an out-link: the old object stops being rooted.
        store
            .add_root(&work.path().join("result-2"), &profile)
            .unwrap();
        store.set_named_root("system-1", &profile).unwrap();
        (lib, app, profile, loose, retarget_old)
    };
    assert_eq!(
        fs::read_link(work.path().join("result")).unwrap(),
        dir.path().canonicalize().unwrap().join(app.as_str())
    );
    let store = Store::open(dir.path()).unwrap();
    let dry = store.gc(true).unwrap();
    assert_eq!(dry.deleted.len(), 2);
    assert_eq!(
        top_level_objects(dir.path()).len(),
        5,
        "a dry run deleted something"
    );
    let report = store.gc(false).unwrap();
    let mut deleted = report.deleted.clone();
    deleted.sort();
    let mut want = vec![loose.clone(), retarget_old.clone()];
    want.sort();
    assert_eq!(deleted, want);
    assert_eq!(report.freed_bytes, b"nobody roots this".len() as u64 + 3);
    assert_eq!(report.kept, 3);
    for p in [&lib, &app, &profile] {
        assert!(store.is_valid(p).unwrap());
        assert!(store.physical(p).exists());
    }
    for p in [&loose, &retarget_old] {
        assert!(!store.is_valid(p).unwrap());
        assert!(!store.physical(p).exists());
    }
    assert!(store.verify(false).unwrap().problems.is_empty());
    drop(store);

    // Deleting the out-link and the named root frees the rest.
    fs::remove_file(work.path().join("result")).unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.remove_named_root("system-1").unwrap();
    let report = store.gc(false).unwrap();
    // app and lib go; result-2 still roots profile.
    assert_eq!(report.deleted.len(), 2, "{report:?}");
    assert_eq!(report.freed_bytes, (lib.to_absolute().len() + 3) as u64);
    fs::remove_file(work.path().join("result-2")).unwrap();
    let report = store.gc(false).unwrap();
    assert_eq!(report.deleted, vec![profile]);
    assert!(top_level_objects(dir.path()).is_empty());
}

#[test]
fn an_out_link_replaced_by_a_user_file_is_not_a_root() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = add_file(&store, "x", b"x", &[]);
    let link = work.path().join("result");
    store.add_root(&link, &p).unwrap();
    fs::remove_file(&link).unwrap();
    symlink("/etc", &link).unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.gc(false).unwrap().deleted, vec![p]);
    // The user's symlink is untouched.
    assert_eq!(fs::read_link(&link).unwrap(), std::path::Path::new("/etc"));
}

#[test]
fn roots_refuse_to_clobber_files_and_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = add_file(&store, "x", b"x", &[]);
    let file = work.path().join("precious");
    fs::write(&file, b"mine").unwrap();
    let err = store.add_root(&file, &p).unwrap_err();
    assert!(err.to_string().contains("not a symlink"), "{err}");
    assert_eq!(fs::read(&file).unwrap(), b"mine");
    for bad in ["", "../escape", "a/b", ".hidden"] {
        let err = store.set_named_root(bad, &p).unwrap_err();
        assert!(
            err.to_string().contains("not a valid root name"),
            "{bad}: {err}"
        );
    }
    let ghost = "11111111111111111111111111111111-ghost".parse().unwrap();
    assert!(store.set_named_root("ok", &ghost).is_err());
    assert!(store.add_root(&work.path().join("r"), &ghost).is_err());
    assert_eq!(store.named_roots().unwrap(), vec![]);
    store.set_named_root("ok", &p).unwrap();
    assert_eq!(store.named_roots().unwrap(), vec![("ok".to_owned(), p)]);
}

#[test]
fn gc_removes_crash_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // An unregistered object at a final path (as a crash after rename leaves).
    let leftover = dir.path().join("00000000000000000000000000000000-leftover");
    fs::create_dir(&leftover).unwrap();
    fs::write(leftover.join("f"), b"f").unwrap();
    let report = store.gc(false).unwrap();
    assert_eq!(report.leftovers.len(), 1);
    assert!(!leftover.exists());
}
