//! imago.lock: round trip, validation errors with file:line, closures.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use imago::debian::lock::{Lock, LockDiff, LockEntry, LockError};

fn entry(name: &str, version: &str, depends: &[&str]) -> LockEntry {
    LockEntry {
        name: name.into(),
        version: version.into(),
        architecture: "amd64".into(),
        size: 1234,
        sha256: "ab".repeat(32),
        filename: format!("pool/main/x/{name}/{name}_{version}_amd64.deb"),
        archive: Some("debian".into()),
        snapshot: Some("20261206T031053Z".into()),
        depends: depends.iter().map(|s| s.to_string()).collect(),
    }
}

fn sample() -> Lock {
    let mut lock = Lock::new(imago::debian::platform::Platform::DEFAULT);
    for e in [
        entry(
            "systemd",
            "252.38-1~deb12u1",
            &["libc6", "libsystemd-shared"],
        ),
        entry("libc6", "2.36-9+deb12u10", &[]),
        entry("libsystemd-shared", "252.38-1~deb12u1", &["libc6"]),
        entry("busybox-static", "1:1.35.0-4+b3", &[]),
    ] {
        lock.packages.insert(e.name.clone(), e);
    }
    lock
}

#[test]
fn round_trip_is_exact_and_sorted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imago.lock");
    let lock = sample();
    lock.write(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let busybox = text.find("name = \"busybox-static\"").unwrap();
    let libc = text.find("name = \"libc6\"").unwrap();
    let systemd = text.find("name = \"systemd\"").unwrap();
    assert!(busybox < libc && libc < systemd, "sorted by name:\n{text}");
    assert!(text.contains("version = \"1:1.35.0-4+b3\""));
    assert_eq!(Lock::read(&path).unwrap(), lock);
    // Writing again gives the same bytes, and leaves no temporary files.
    lock.write(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn syntax_error_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imago.lock");
    std::fs::write(
        &path,
        "version = 1\narchitecture = \"amd64\"\n\n[[package]]\nname = \"libc6\"\nsize = = 3\n",
    )
    .unwrap();
    let err = Lock::read(&path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LockError::Syntax { line: 6, .. }), "{msg}");
    assert!(msg.starts_with(&format!("{}:6:", path.display())), "{msg}");
}

#[test]
fn unknown_and_missing_fields_are_errors_with_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imago.lock");
    let mut text = sample().to_toml();
    text = text.replacen("filename =", "filenme =", 1);
    std::fs::write(&path, &text).unwrap();
    let msg = Lock::read(&path).unwrap_err().to_string();
    assert!(msg.contains("filenme"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn invalid_values_name_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imago.lock");
    let good = sample().to_toml();
    for (from, to, expect) in [
        (&"ab".repeat(32)[..], "xyz", "sha256"),
        (
            "name = \"libc6\"",
            "name = \"Libc6\"",
            "invalid package name",
        ),
        (
            "version = \"2.36-9+deb12u10\"",
            "version = \"2 36\"",
            "invalid version",
        ),
        ("pool/main/x/libc6", "../../etc", "invalid filename"),
        (
            "depends = [\"libc6\"]",
            "depends = [\"nowhere\"]",
            "not in the lock",
        ),
        (
            "version = 2",
            "version = 7",
            "unsupported lock format version 7",
        ),
    ] {
        std::fs::write(&path, good.replacen(from, to, 1)).unwrap();
        let msg = Lock::read(&path).unwrap_err().to_string();
        assert!(msg.contains(expect), "{from} -> {to}: {msg}");
    }
}

#[test]
fn missing_lock_reads_as_empty_only_when_absent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imago.lock");
    assert!(Lock::read_or_default(&path).unwrap().packages.is_empty());
    assert!(matches!(Lock::read(&path), Err(LockError::Read { .. })));
    assert_eq!(Lock::path_for(&dir.path().join("system.imago")), path);
}

#[test]
fn closure_and_unused() {
    let lock = sample();
    let c = lock.closure(["systemd"]).unwrap();
    assert_eq!(
        c.into_iter().collect::<Vec<_>>(),
        ["libc6", "libsystemd-shared", "systemd"]
    );
    assert_eq!(lock.closure(["systemd", "nope"]).unwrap_err(), ["nope"]);
    assert_eq!(lock.unused(["systemd"]), ["busybox-static"]);
    assert!(lock.unused(["systemd", "busybox-static"]).is_empty());
}

#[test]
fn diff_between_locks() {
    let old = sample();
    let mut new = sample();
    new.packages.remove("busybox-static");
    new.packages.get_mut("libc6").unwrap().version = "2.36-9+deb12u11".into();
    new.packages
        .insert("bash".into(), entry("bash", "5.2.15-2+b7", &[]));
    let d = LockDiff::between(&old, &new);
    assert_eq!(d.added, [("bash".to_string(), "5.2.15-2+b7".to_string())]);
    assert_eq!(
        d.removed,
        [("busybox-static".to_string(), "1:1.35.0-4+b3".to_string())]
    );
    assert_eq!(d.changed.len(), 1);
    assert!(LockDiff::between(&old, &old).is_empty());
}

#[test]
fn cache_file_names_escape_the_epoch() {
    assert_eq!(
        entry("busybox-static", "1:1.35.0-4+b3", &[]).deb_file_name(),
        "busybox-static_1%3a1.35.0-4+b3_amd64.deb"
    );
}

#[test]
fn the_lock_is_the_graph_package_index() {
    use imago::graph::PackageIndex;
    let lock = sample();
    let pinned = PackageIndex::get(&lock, "systemd").unwrap();
    assert_eq!(pinned.version, "252.38-1~deb12u1");
    assert_eq!(pinned.depends, ["libc6", "libsystemd-shared"]);
    assert_eq!(pinned.sha256, "ab".repeat(32));
    assert!(PackageIndex::get(&lock, "absent").is_none());
}

#[test]
fn a_format_one_lock_still_reads_and_infers_the_archive() {
    let text = format!(
        "version = 1\narchitecture = \"amd64\"\n\n[[package]]\nname = \"kk\"\nversion = \"1\"\narchitecture = \"amd64\"\nsize = 1\nsha256 = \"{}\"\nfilename = \"pool/updates/main/k/kk.deb\"\ndepends = []\n",
        "ab".repeat(32)
    );
    let lock = Lock::parse(&text, std::path::Path::new("imago.lock")).unwrap();
    let k = &lock.packages["kk"];
    assert_eq!(k.archive, None);
    assert_eq!(k.snapshot, None);
    assert_eq!(k.archive(), "debian-security");
    // Written again, it is format 2.
    assert!(lock.to_toml().contains("version = 2"));
}

#[test]
fn a_newer_format_and_bad_new_fields_are_refused_with_the_place() {
    let path = std::path::Path::new("imago.lock");
    let err = Lock::parse("version = 3\narchitecture = \"amd64\"\n", path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unsupported lock format version 3"), "{err}");
    let mut lock = sample();
    lock.packages.get_mut("libc6").unwrap().snapshot = Some("yesterday".into());
    let err = Lock::parse(&lock.to_toml(), path).unwrap_err().to_string();
    assert!(
        err.contains("libc6") && err.contains("`yesterday` is not a snapshot time"),
        "{err}"
    );
    let mut lock = sample();
    lock.packages.get_mut("libc6").unwrap().archive = Some("../x".into());
    let err = Lock::parse(&lock.to_toml(), path).unwrap_err().to_string();
    assert!(err.contains("invalid archive `../x`"), "{err}");
}

#[test]
fn the_lock_is_world_readable_and_a_symlinked_lock_is_written_where_it_points() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    let other = dir.path().join("other");
    std::fs::create_dir(&shared).unwrap();
    std::fs::create_dir(&other).unwrap();
    let target = shared.join("imago.lock");
    sample().write(&target).unwrap();
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "a lock is meant to be committed");
    let link = other.join("imago.lock");
    std::os::unix::fs::symlink("../shared/imago.lock", &link).unwrap();
    let mut changed = sample();
    changed.packages.remove("busybox-static");
    changed.write(&link).unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(Lock::read(&target).unwrap(), changed);
    assert_eq!(Lock::read(&link).unwrap(), changed);
}
