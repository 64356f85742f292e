//! References of built objects: an output that copies an input which itself
//! names another object refers to that object too, so closures (and with
//! them images, exports and garbage collection) include it.

use imago::store::{Store, StorePath};
use std::process::Command;

#[test]
fn a_copied_tree_keeps_the_references_of_what_it_copies() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sys.imago");
    std::fs::write(
        &file,
        r#"
        let
          script = builtins.step { builder = "text"; name = "script"; text = "echo hi"; executable = true; };
          units = builtins.step { builder = "tree"; name = "units"; entries."a.service".text = "ExecStart=${script}\n"; };
        in {
          etc = builtins.step { builder = "tree"; name = "etc"; entries."systemd/system".source = "${units}"; };
        }
        "#,
    )
    .unwrap();
    let store_dir = dir.path().join("store");
    let out = Command::new(env!("CARGO_BIN_EXE_imago"))
        .arg("--store")
        .arg(&store_dir)
        .args(["build", "-A", "etc"])
        .arg(&file)
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let (etc, _) = StorePath::from_absolute(stdout.lines().next().unwrap()).unwrap();
    let store = Store::open(&store_dir).unwrap();
    let closure = store.closure(std::slice::from_ref(&etc)).unwrap();
    let names: Vec<&str> = closure.iter().map(StorePath::name).collect();
    assert!(names.contains(&"script"), "closure of etc: {names:?}");
    // The copy holds the unit's content, not a link to `units` itself.
    assert!(!names.contains(&"units"), "closure of etc: {names:?}");
}
