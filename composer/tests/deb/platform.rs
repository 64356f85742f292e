//! The release and architecture a lock is for: recorded, read back (a lock
//! without `release` is bookworm's, though a definition that does not say is
//! trixie's), and a definition of another one refused with E0613 naming
//! both, the lock and the options.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use crate::support::cli::{command, stderr};
use imago::debian::lock::{Lock, LockEntry, LockError};
use imago::debian::platform::{Architecture, Platform, Release};
use std::path::Path;

fn entry(name: &str, arch: &str) -> LockEntry {
    LockEntry {
        name: name.into(),
        version: "1.0-1".into(),
        architecture: arch.into(),
        size: 1234,
        sha256: "ab".repeat(32),
        filename: format!("pool/main/x/{name}/{name}_1.0-1_{arch}.deb"),
        archive: Some("debian".into()),
        snapshot: Some("20261206T031053Z".into()),
        depends: Vec::new(),
    }
}

fn lock_for(release: &str, arch: &str) -> Lock {
    let mut lock = Lock::new(Platform::parse(release, arch).unwrap());
    let e = entry("busybox-static", arch);
    lock.packages.insert(e.name.clone(), e);
    lock
}

#[test]
fn the_lock_records_release_and_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imago.lock");
    let lock = lock_for("trixie", "arm64");
    lock.write(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("release = \"trixie\"\narchitecture = \"arm64\"\n"),
        "{text}"
    );
    let read = Lock::read(&path).unwrap();
    assert_eq!(read.platform.release, Release::Trixie);
    assert_eq!(read.platform.architecture, Architecture::Arm64);
    assert_eq!(read, lock);
}

#[test]
fn a_lock_without_release_is_bookworms() {
    let text = "version = 2\narchitecture = \"amd64\"\n";
    let lock = Lock::parse(text, Path::new("imago.lock")).unwrap();
    assert_eq!(lock.platform.release, Release::Bookworm);
    assert_eq!(lock.platform.architecture, Architecture::Amd64);
    // A definition that sets neither option is Debian's stable release's.
    assert_eq!(
        Platform::DEFAULT,
        Platform::parse("trixie", "amd64").unwrap()
    );
}

#[test]
fn an_unknown_release_or_architecture_is_refused() {
    for (text, word) in [
        (
            "version = 2\nrelease = \"sid\"\narchitecture = \"amd64\"\n",
            "sid",
        ),
        (
            "version = 2\nrelease = \"trixie\"\narchitecture = \"i386\"\n",
            "i386",
        ),
        (
            "version = 2\nrelease = \"trixie\"\narchitecture = \"amd64\"\ncomponents = [\"main\", \"firmware\"]\n",
            "`firmware` is not a Debian archive component",
        ),
    ] {
        let err = Lock::parse(text, Path::new("imago.lock")).unwrap_err();
        assert!(matches!(err, LockError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains(word), "{err}");
    }
}

#[test]
fn a_lock_for_one_platform_refuses_another() {
    let lock = lock_for("bookworm", "amd64");
    let trixie = Platform::parse("trixie", "amd64").unwrap();
    let err = lock
        .check_platform(trixie, Path::new("x/imago.lock"), Path::new("x/sys.imago"))
        .unwrap_err();
    assert_eq!(err.code(), imago::codes::LOCK_MISMATCH);
    let text = err.to_string();
    for part in [
        "x/imago.lock holds Debian bookworm (amd64) packages",
        "x/sys.imago is a trixie (amd64) system",
        "system.debian.release = \"trixie\"",
        "system.architecture = \"amd64\"",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    let bookworm = Platform::parse("bookworm", "amd64").unwrap();
    assert!(
        lock.check_platform(bookworm, Path::new("l"), Path::new("f"))
            .is_ok()
    );
}

/// `imago build` and `imago lock` of a definition beside a lock of another
/// release or architecture stop before anything is evaluated or resolved,
/// with E0613 naming the lock, both platforms and the options.
#[test]
fn build_and_lock_refuse_a_definition_of_another_platform() {
    let dir = tempfile::tempdir().unwrap();
    let lock_path = dir.path().join("imago.lock");
    lock_for("bookworm", "amd64").write(&lock_path).unwrap();
    let cases = [
        (
            "trixie.imago",
            "system.debian.release = \"trixie\";",
            "trixie (amd64)",
        ),
        (
            "arm.imago",
            "system.debian.release = \"bookworm\"; system.architecture = \"arm64\";",
            "bookworm (arm64)",
        ),
        // A definition that does not say is trixie's: an old bookworm lock
        // beside it is refused the same way, naming the options to set.
        ("unsaid.imago", "", "trixie (amd64)"),
    ];
    for (name, setting, wanted) in cases {
        let file = dir.path().join(name);
        std::fs::write(
            &file,
            format!("{{ ... }}: {{ boot.init = \"busybox\"; {setting} }}\n"),
        )
        .unwrap();
        let file = file.to_str().unwrap();
        for verb in [&["build", file][..], &["lock", file][..]] {
            let out = command(verb)
                .env("IMAGO_STORE", dir.path().join("store"))
                .env("XDG_CACHE_HOME", dir.path().join("cache"))
                .env("IMAGO_OFFLINE", "1")
                .output()
                .unwrap();
            let err = stderr(&out);
            assert!(!out.status.success(), "{verb:?}: {err}");
            for part in [
                "error[E0613]",
                &format!(
                    "{} holds Debian bookworm (amd64) packages",
                    lock_path.display()
                ),
                &format!("{file} is a {wanted} system"),
                "system.debian.release",
                "system.architecture",
            ] {
                assert!(
                    err.contains(part),
                    "{verb:?}: {part:?} missing from:\n{err}"
                );
            }
        }
    }
}
