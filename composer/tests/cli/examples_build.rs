//! Building the example systems for real: Debian packages from the lock
//! (downloaded through apt into the shared cache `~/.cache/imago`, reused by
//! later runs), every builder, the store. Two builds into two empty stores
//! give the same toplevel path (the build is deterministic), and a second
//! build into the same store runs no step.

use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn build(store: &Path, file: &str, json: bool) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imago"));
    cmd.arg("--store")
        .arg(store)
        .arg("build")
        .arg(examples().join(file));
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("imago runs");
    assert!(
        out.status.success(),
        "imago build {file} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn minimal_builds_to_the_same_path_in_two_empty_stores() {
    let dir = tempfile::tempdir().unwrap();
    let a = build(&dir.path().join("a"), "minimal.imago", false);
    let b = build(&dir.path().join("b"), "minimal.imago", false);
    let first = |s: &str| s.lines().next().unwrap_or_default().to_owned();
    assert!(first(&a).starts_with("/imago/store/"), "{a}");
    assert!(first(&a).ends_with("-imago-system-minimal"), "{a}");
    assert_eq!(first(&a), first(&b));

    // Everything is cached now: a rebuild runs no builder.
    let summary: serde_json::Value =
        serde_json::from_str(&build(&dir.path().join("a"), "minimal.imago", true)).unwrap();
    assert_eq!(summary["built"], 0, "{summary:#}");
}

#[test]
fn the_minimal_toplevel_has_the_documented_layout() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = build(&store, "minimal.imago", false);
    let physical = out.lines().nth(1).expect("the physical path is printed");
    let top = Path::new(physical);
    for entry in [
        "boot.json",
        "kernel",
        "initrd",
        "init",
        "activate",
        "sw",
        "etc",
        "tools",
        "systemd-boot.efi",
        "kernel-modules",
        "closure",
    ] {
        assert!(
            top.join(entry).symlink_metadata().is_ok(),
            "{entry} missing in {physical}"
        );
    }
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(top.join("boot.json")).unwrap()).unwrap();
    assert_eq!(spec["system_name"], "minimal");
    // `closure` lists every object of the toplevel's closure but the
    // toplevel itself, sorted: what a machine keeps for this generation.
    let listed = std::fs::read_to_string(top.join("closure")).unwrap();
    let (top_path, _) =
        imago::store::StorePath::from_absolute(out.lines().next().unwrap()).unwrap();
    let db = imago::store::Store::open(&store).unwrap();
    let want: String = db
        .closure(std::slice::from_ref(&top_path))
        .unwrap()
        .iter()
        .filter(|p| **p != top_path)
        .map(|p| format!("{}\n", p.to_absolute()))
        .collect();
    assert_eq!(listed, want);
    // The initrd of the minimal system stays small.
    let initrd = std::fs::read_link(top.join("initrd")).unwrap();
    let initrd = store.join(initrd.strip_prefix("/imago/store").unwrap());
    let size = std::fs::metadata(&initrd).unwrap().len();
    assert!(size < 3 * 1024 * 1024, "initrd is {size} bytes");
}
