//! `imago store`, `imago gc` and `imago closure` as processes.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn imago(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imago"))
        .arg("--store")
        .arg(store)
        .args(args)
        .stdin(Stdio::null())
        .env_remove("IMAGO_FAULT_INJECT")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn add_info_verify_gc_and_closures_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let src = dir.path().join("hello");
    fs::write(&src, b"hello\n").unwrap();
    let path = ok(&imago(&store, &["store", "add", src.to_str().unwrap()]));
    assert_eq!(
        path.trim(),
        "/imago/store/xjfdmxgrvw7jr2afi78hw94n3nwcv1ww-hello"
    );

    let info = ok(&imago(&store, &["store", "info", path.trim()]));
    assert!(
        info.contains("blake3:ec9cdaf5f9df0f2c894e89d10e24961db8cd879c4386d7a4dd55757bbb969c9c"),
        "{info}"
    );
    assert!(info.contains("references: none"), "{info}");
    let by_base = ok(&imago(
        &store,
        &["store", "info", "xjfdmxgrvw7jr2afi78hw94n3nwcv1ww-hello"],
    ));
    assert_eq!(by_base, info);

    let verify = ok(&imago(&store, &["store", "verify"]));
    assert!(verify.contains("checked 1 objects: 0 broken"), "{verify}");

    // Export to a file, import into a second store.
    let archive = dir.path().join("c.tar.zst");
    ok(&imago(
        &store,
        &[
            "closure",
            "export",
            path.trim(),
            "-o",
            archive.to_str().unwrap(),
        ],
    ));
    assert!(!dir.path().join("c.tar.partial").exists());
    let store2 = dir.path().join("store2");
    let imported = ok(&imago(
        &store2,
        &["closure", "import", archive.to_str().unwrap()],
    ));
    assert_eq!(imported.trim(), path.trim());
    // And through stdin/stdout.
    let exported = Command::new(env!("CARGO_BIN_EXE_imago"))
        .arg("--store")
        .arg(&store)
        .args(["closure", "export", path.trim()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(exported.status.success());
    assert_eq!(exported.stdout, fs::read(&archive).unwrap());

    // Nothing roots it: a dry run lists it, a real run deletes it.
    let dry = ok(&imago(&store, &["gc", "--dry-run"]));
    assert!(
        dry.contains(&format!("would delete {}", path.trim())),
        "{dry}"
    );
    assert!(dry.contains("would delete 1 objects, 6 B freed"), "{dry}");
    let gc = ok(&imago(&store, &["gc"]));
    assert!(gc.contains("deleted 1 objects"), "{gc}");
    let info = imago(&store, &["store", "info", path.trim()]);
    assert_eq!(info.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&info.stderr).contains("is not a valid object"));
}

#[test]
fn verify_reports_a_flipped_byte_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let src = dir.path().join("data");
    fs::write(&src, vec![0u8; 4096]).unwrap();
    let path = ok(&imago(&store, &["store", "add", src.to_str().unwrap()]));
    let physical = store.join(path.trim().trim_start_matches("/imago/store/"));
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&physical, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&physical).unwrap();
    bytes[100] = 1;
    fs::write(&physical, bytes).unwrap();
    let out = imago(&store, &["store", "verify", "--repair"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(path.trim()) && text.contains("hash mismatch"),
        "{text}"
    );
    assert!(text.contains("no source to repair from"), "{text}");
}

#[test]
fn verify_repairs_from_a_closure_archive() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let src = dir.path().join("data");
    fs::write(&src, vec![0u8; 4096]).unwrap();
    let path = ok(&imago(&store, &["store", "add", src.to_str().unwrap()]));
    let archive = dir.path().join("c.tar.zst");
    let archive = archive.to_str().unwrap();
    ok(&imago(
        &store,
        &["closure", "export", path.trim(), "-o", archive],
    ));
    let physical = store.join(path.trim().trim_start_matches("/imago/store/"));
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&physical, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&physical, vec![1u8; 4096]).unwrap();
    let text = ok(&imago(
        &store,
        &["store", "verify", "--repair", "--from", archive],
    ));
    assert!(text.contains("restored from the archive"), "{text}");
    assert!(text.contains("1 broken, 1 repaired"), "{text}");
    let verify = ok(&imago(&store, &["store", "verify"]));
    assert!(verify.contains("checked 1 objects: 0 broken"), "{verify}");
}

#[test]
fn errors_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = imago(&store, &["store", "info", "/imago/store/not-a-path"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid store path `not-a-path`"), "{err}");
    let out = imago(&store, &["closure", "import", "/nonexistent/archive"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/archive"));
    let garbage = dir.path().join("garbage");
    fs::write(&garbage, b"not zstd").unwrap();
    let out = imago(&store, &["closure", "import", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("importing"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = imago(&store, &["gc", "extra"]);
    assert_eq!(out.status.code(), Some(2));
}
