//! Fuzzes closure import end to end: the input is the tar stream inside a
//! closure archive (compressed here, so that the fuzzer mutates entries
//! rather than zstd frames). Importing it into a fresh store either succeeds,
//! and then every object it names is valid and verifies, or fails, and then
//! nothing is registered and nothing is left in the store's temporary
//! directory. Either way nothing appears beside the store and nothing
//! panics.
#![no_main]

use imago::store::Store;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(dir.path().join("store")).expect("a fresh store");
    let archive = zstd::encode_all(data, 1).expect("compressing in memory");
    match store.import(archive.as_slice()) {
        Ok(paths) => {
            for p in &paths {
                assert!(store.is_valid(p).expect("a database read"), "{p} not valid");
            }
            let report = store.verify(false).expect("verify");
            assert_eq!(report.checked, paths.len());
            assert!(report.problems.is_empty(), "{report:?}");
        }
        Err(_) => {
            let report = store.verify(false).expect("verify");
            assert_eq!(report.checked, 0, "a failed import registered something");
        }
    }
    drop(store);
    let tmp = dir.path().join("store/.imago/tmp");
    let leftovers: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "left in the temporary directory: {leftovers:?}");
    let beside: Vec<_> = std::fs::read_dir(dir.path())
        .expect("the test directory")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(beside, ["store"], "something was written beside the store");
    // Objects are read-only: give directories their write bit back so the
    // temporary directory can go.
    writable(dir.path());
});

fn writable(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            writable(&entry.path());
        }
    }
}
