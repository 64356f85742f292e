//! The download cache and the builders, without network: verification
//! against the lock, rejected files, offline errors, and the `deb` /
//! `deb-file` builders on fixture packages.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use crate::support::deb as support;

use imago::builders::{BuildContext, Builder, ResolvedStep};
use imago::debian::builder::{DEB, DEB_FILE};
use imago::debian::fetch::{
    FetchError, FetchOptions, Sources, ensure_cached, sha256_file, verify_file,
};
use imago::debian::lock::LockEntry;
use std::path::Path;
use support::{Comp, Entry, deb, hello_entries};

fn entry_for(bytes: &[u8], name: &str) -> LockEntry {
    support::lock_entry(name, bytes)
}

fn opts(cache: &Path, offline: bool) -> FetchOptions {
    // No source is ever asked: every test either has the file cached or
    // is offline.
    FetchOptions {
        offline,
        ..FetchOptions::new(cache.to_path_buf(), Sources::default())
    }
}

#[test]
fn known_digest() {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), b"abc").unwrap();
    assert_eq!(
        sha256_file(tmp.path()).unwrap(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn hash_mismatch_moves_the_file_aside_and_names_both_digests() {
    let cache = tempfile::tempdir().unwrap();
    let good = deb("hello", Comp::Gz, &hello_entries());
    let entry = entry_for(&good, "hello");
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let downloaded = cache.path().join(entry.deb_file_name());
    std::fs::write(&downloaded, &bad).unwrap();
    let err = verify_file(&downloaded, &entry, cache.path()).unwrap_err();
    let msg = err.to_string();
    let FetchError::HashMismatch {
        expected,
        actual,
        rejected,
        ..
    } = &err
    else {
        panic!("{msg}")
    };
    assert!(
        msg.contains("hash mismatch") && msg.contains("`hello`"),
        "{msg}"
    );
    assert!(
        msg.contains(expected.as_str()) && msg.contains(actual.as_str()),
        "{msg}"
    );
    assert_eq!(expected, &entry.sha256);
    assert_ne!(actual, expected);
    assert!(
        !downloaded.exists(),
        "the bad file must not stay in the cache"
    );
    assert_eq!(
        rejected,
        &cache.path().join("rejected").join(entry.deb_file_name())
    );
    assert_eq!(std::fs::read(rejected).unwrap(), bad);
}

#[test]
fn size_mismatch_is_rejected_too() {
    let cache = tempfile::tempdir().unwrap();
    let good = deb("hello", Comp::None, &hello_entries());
    let entry = entry_for(&good, "hello");
    let downloaded = cache.path().join(entry.deb_file_name());
    std::fs::write(&downloaded, &good[..100]).unwrap();
    let err = verify_file(&downloaded, &entry, cache.path()).unwrap_err();
    assert!(matches!(err, FetchError::SizeMismatch { .. }), "{err}");
    assert!(
        cache
            .path()
            .join("rejected")
            .join(entry.deb_file_name())
            .exists()
    );
}

#[test]
fn cached_files_need_no_source_and_offline_names_missing_ones() {
    let cache = tempfile::tempdir().unwrap();
    let good = deb("hello", Comp::Zst, &hello_entries());
    let entry = entry_for(&good, "hello");
    std::fs::write(cache.path().join(entry.deb_file_name()), &good).unwrap();
    // Not offline, yet nothing is fetched: the file is there.
    let paths = ensure_cached(std::slice::from_ref(&entry), &opts(cache.path(), false)).unwrap();
    assert_eq!(paths, [cache.path().join(entry.deb_file_name())]);

    let mut missing = entry.clone();
    missing.name = "absent-pkg".into();
    missing.version = "2:3.0".into();
    let err = ensure_cached(&[entry, missing], &opts(cache.path(), true)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FetchError::Offline { .. }), "{msg}");
    assert!(msg.contains("absent-pkg=2:3.0"), "{msg}");
}

#[test]
fn cached_file_of_wrong_size_is_rejected_offline() {
    let cache = tempfile::tempdir().unwrap();
    let good = deb("hello", Comp::Zst, &hello_entries());
    let entry = entry_for(&good, "hello");
    std::fs::write(cache.path().join(entry.deb_file_name()), b"short").unwrap();
    let err = ensure_cached(std::slice::from_ref(&entry), &opts(cache.path(), true)).unwrap_err();
    assert!(matches!(err, FetchError::SizeMismatch { .. }), "{err}");
    assert!(
        cache
            .path()
            .join("rejected")
            .join(entry.deb_file_name())
            .exists()
    );
}

fn ctx(dir: &Path) -> BuildContext {
    BuildContext {
        store_dir: dir.join("store"),
        deb_cache: dir.join("debs"),
        offline: true,
    }
}

fn deb_step(entry: &LockEntry) -> ResolvedStep {
    ResolvedStep {
        builder: "deb".into(),
        name: entry.name.clone(),
        params: serde_json::json!({
            "package": entry.name,
            "version": entry.version,
            "architecture": entry.architecture,
            "size": entry.size,
            "sha256": entry.sha256,
        }),
        inputs: vec![],
        closure: vec![],
    }
}

#[test]
fn deb_builder_unpacks_a_verified_cached_package() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path());
    std::fs::create_dir_all(&ctx.deb_cache).unwrap();
    let bytes = deb("hello", Comp::Xz, &hello_entries());
    let entry = entry_for(&bytes, "hello");
    std::fs::write(ctx.deb_cache.join(entry.deb_file_name()), &bytes).unwrap();
    let out = dir.path().join("out");
    let mut log = Vec::new();
    DEB.build(&ctx, &deb_step(&entry), &out, &mut log).unwrap();
    assert!(out.join("usr/bin/hello").is_file());
    assert!(String::from_utf8(log).unwrap().contains("unpacked"));
}

#[test]
fn deb_builder_rejects_a_corrupted_cache_file_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path());
    std::fs::create_dir_all(&ctx.deb_cache).unwrap();
    let bytes = deb("hello", Comp::None, &hello_entries());
    let entry = entry_for(&bytes, "hello");
    // Same size, one flipped byte inside a file's contents.
    let mut bad = bytes.clone();
    let at = bad.windows(5).position(|w| w == b"hello").unwrap();
    bad[at] = b'J';
    let cached = ctx.deb_cache.join(entry.deb_file_name());
    std::fs::write(&cached, &bad).unwrap();
    let out = dir.path().join("out");
    let err = DEB
        .build(&ctx, &deb_step(&entry), &out, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("hash mismatch for package `hello`"), "{err}");
    assert!(err.contains(&entry.sha256), "{err}");
    assert!(!out.exists(), "partial output must be removed");
    assert!(!cached.exists());
    assert!(
        ctx.deb_cache
            .join("rejected")
            .join(entry.deb_file_name())
            .exists()
    );
}

#[test]
fn deb_builder_checks_the_control_file_against_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path());
    std::fs::create_dir_all(&ctx.deb_cache).unwrap();
    // A package whose control file says `other`, stored under `hello`.
    let bytes = deb("other", Comp::Gz, &hello_entries());
    let entry = entry_for(&bytes, "hello");
    std::fs::write(ctx.deb_cache.join(entry.deb_file_name()), &bytes).unwrap();
    let out = dir.path().join("out");
    let err = DEB
        .build(&ctx, &deb_step(&entry), &out, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("control file says Package `other`"), "{err}");
    assert!(!out.exists());
}

#[test]
fn deb_builder_without_the_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path());
    let entry = entry_for(b"x", "hello");
    let err = DEB
        .build(
            &ctx,
            &deb_step(&entry),
            &dir.path().join("out"),
            &mut Vec::new(),
        )
        .unwrap_err();
    assert!(format!("{err:#}").contains("hello=1.0-1"), "{err:#}");
}

#[test]
fn deb_builder_rejects_unknown_params() {
    let dir = tempfile::tempdir().unwrap();
    let entry = entry_for(b"x", "hello");
    let mut step = deb_step(&entry);
    step.params["colour"] = serde_json::json!("red");
    let err = DEB
        .build(
            &ctx(dir.path()),
            &step,
            &dir.path().join("out"),
            &mut Vec::new(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("colour"), "{err}");
}

#[test]
fn deb_file_builder_unpacks_from_the_store_and_cleans_up_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path());
    let obj = ctx
        .store_dir
        .join("0123456789abcdef0123456789abcdef-in-house.deb");
    std::fs::create_dir_all(&ctx.store_dir).unwrap();
    std::fs::write(&obj, deb("in-house", Comp::Zst, &hello_entries())).unwrap();
    let step = ResolvedStep {
        builder: "deb-file".into(),
        name: "in-house".into(),
        params: serde_json::json!({ "file": "/imago/store/0123456789abcdef0123456789abcdef-in-house.deb" }),
        inputs: vec![],
        closure: vec![],
    };
    let out = dir.path().join("out");
    DEB_FILE.build(&ctx, &step, &out, &mut Vec::new()).unwrap();
    assert!(out.join("usr/bin/hello").is_file());
    assert!(
        std::fs::read_to_string(out.join(".imago/deb/control"))
            .unwrap()
            .contains("in-house")
    );

    std::fs::write(
        &obj,
        deb(
            "in-house",
            Comp::Zst,
            &[support::Entry::file("../escape", "x")],
        ),
    )
    .unwrap();
    let out2 = dir.path().join("out2");
    let err = DEB_FILE
        .build(&ctx, &step, &out2, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("package `in-house`") && err.contains("../escape"),
        "{err}"
    );
    assert!(!out2.exists());
    assert!(!dir.path().join("escape").exists());
}

/// Archive packages may hold names that differ only in case (the lock
/// vouches for them), but only once the file is the locked one: a file
/// whose digest is not the lock's is refused as such before anything is
/// unpacked under the relaxed rules.
#[test]
fn deb_builder_relaxes_name_rules_only_for_the_locked_file() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path());
    std::fs::create_dir_all(&ctx.deb_cache).unwrap();
    let mut entries = hello_entries();
    entries.push(Entry::file("./usr/share/doc/hello/NEWS", "a\n"));
    entries.push(Entry::file("./usr/share/doc/hello/news", "b\n"));
    let bytes = deb("hello", Comp::Gz, &entries);
    let entry = entry_for(&bytes, "hello");
    let cached = ctx.deb_cache.join(entry.deb_file_name());
    std::fs::write(&cached, &bytes).unwrap();
    let out = dir.path().join("out");
    DEB.build(&ctx, &deb_step(&entry), &out, &mut Vec::new())
        .unwrap();
    assert!(out.join("usr/share/doc/hello/NEWS").exists());
    assert!(out.join("usr/share/doc/hello/news").exists());

    // The same pair in a file the lock does not vouch for.
    let mut other = entries.clone();
    other.push(Entry::file("./usr/share/doc/hello/extra", "c\n"));
    let forged = deb("hello", Comp::Gz, &other);
    let mut lying = entry_for(&forged, "hello");
    lying.sha256 = entry.sha256.clone();
    std::fs::write(ctx.deb_cache.join(lying.deb_file_name()), &forged).unwrap();
    let out2 = dir.path().join("out2");
    let err = DEB
        .build(&ctx, &deb_step(&lying), &out2, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("hash mismatch for package `hello`"), "{err}");
    assert!(!out2.exists(), "nothing unpacked");
}
