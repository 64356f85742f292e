//! `imago config` and `imago options` as processes: output formats and exit
//! codes (0 success, 1 evaluation failure, 2 bad usage), on a small library
//! in a temporary directory and on the real one.

use crate::support::cli::{imago, stderr, stdout};
use std::path::Path;

/// A library with two options and a user file setting one of them.
fn fixture(dir: &Path, user: &str) -> (String, String) {
    let lib = dir.join("lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    std::fs::write(lib.join("module-list.imago"), "[ ./base.imago ]").expect("write");
    std::fs::write(
        lib.join("base.imago"),
        r#"{ lib, ... }: {
  options.host = lib.mkOption { type = lib.types.str; default = "imago"; description = "The host name."; };
  options.ports = lib.mkOption { type = lib.types.listOf lib.types.port; default = [ 22 ]; description = "Open ports."; };
}"#,
    )
    .expect("write");
    let file = dir.join("sys.imago");
    std::fs::write(&file, user).expect("write");
    (file.display().to_string(), lib.display().to_string())
}

#[test]
fn prints_the_config_as_text_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, lib) = fixture(
        dir.path(),
        "{ lib, ... }: { host = \"box\"; ports = lib.mkAfter [ 80 ]; }",
    );
    let text = imago(&["config", &file, "--modules", &lib]);
    assert!(text.status.success(), "{}", stderr(&text));
    assert_eq!(
        stdout(&text),
        "{\n  host = \"box\";\n  ports = [\n    80\n  ];\n}\n"
    );
    let json = imago(&["config", &file, "--modules", &lib, "--json", "-A", "ports"]);
    assert!(json.status.success(), "{}", stderr(&json));
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).expect("JSON");
    // The plain definition replaces the default (priority 100 beats 1500).
    assert_eq!(v, serde_json::json!([80]));
}

#[test]
fn explains_an_option() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, lib) = fixture(dir.path(), "{ lib, ... }: { host = lib.mkForce \"box\"; }");
    let out = imago(&["config", &file, "--modules", &lib, "--explain", "host"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("used       priority 50 (mkForce)"), "{text}");
    assert!(text.contains("overridden priority 1500"), "{text}");
    assert!(text.contains("sys.imago:1:"), "{text}");
    assert!(text.contains("value: \"box\""), "{text}");
}

#[test]
fn module_errors_exit_1_with_a_diagnostic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, lib) = fixture(dir.path(), "{ hots = \"box\"; }");
    let out = imago(&["config", &file, "--modules", &lib]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("error[E0301]: the option `hots` does not exist"),
        "{err}"
    );
    assert!(err.contains("sys.imago:1:3"), "{err}");
    assert!(err.contains("did you mean one of `host`"), "{err}");
    let json = imago(&["--error-format", "json", "config", &file, "--modules", &lib]);
    assert_eq!(json.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stderr(&json)).expect("JSON error");
    assert_eq!(v[0]["code"], "E0301");
    assert_eq!(v[0]["labels"][0]["line"], 1);
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(imago(&["config"]).status.code(), Some(2));
    assert_eq!(
        imago(&["options", "--json", "--man"]).status.code(),
        Some(2)
    );
    let bad_path = imago(&["config", "x.imago", "-A", "a..b"]);
    assert_ne!(bad_path.status.code(), Some(0));
    assert!(
        stderr(&bad_path).contains("empty component"),
        "{}",
        stderr(&bad_path)
    );
}

#[test]
fn documents_options_of_a_file_and_library() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, lib) = fixture(
        dir.path(),
        "{ lib, ... }: { options.mine = lib.mkEnableOption \"mine\"; }",
    );
    let out = imago(&["options", &file, "--modules", &lib, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let names: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, vec!["host", "mine", "ports"]);
    assert_eq!(v["host"]["declarations"][0], "lib/base.imago:2");
    assert_eq!(v["mine"]["description"], "Whether to enable mine.");
    let man = imago(&["options", "--modules", &lib, "--man"]);
    assert!(
        stdout(&man).starts_with(".TH IMAGO-OPTIONS 5"),
        "{}",
        stdout(&man)
    );
}

#[test]
fn the_real_library_evaluates_the_minimal_example() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/minimal.imago");
    if !example.exists() {
        println!("skipped: examples/minimal.imago does not exist yet");
        return;
    }
    let out = imago(&[
        "config",
        &example.display().to_string(),
        "-A",
        "system.name",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "\"minimal\"");
}
