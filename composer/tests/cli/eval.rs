//! `imago eval` as a process: output, exit codes and error formats.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn imago(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imago"))
        .args(args)
        .current_dir(cwd)
        .env_remove("IMAGO_STORE")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn prints_a_file_value() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.imago"), "{ x = 1 + 1; y = [ \"s\" ]; }").unwrap();
    let out = imago(&["eval", "a.imago", "--strict"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "{ x = 2; y = [ \"s\" ]; }\n");
}

#[test]
fn lazy_printing_shows_thunks() {
    let dir = tempfile::tempdir().unwrap();
    let out = imago(
        &["eval", "--expr", "{ a = 1 + 1; b = throw \"never\"; }"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "{ a = «thunk»; b = «thunk»; }\n");
}

#[test]
fn selects_an_attribute_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("default.imago"), "{ a.\"b c\".d = 42; }").unwrap();
    let out = imago(&["eval", ".", "-A", "a.\"b c\".d"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "42\n");
}

#[test]
fn missing_attribute_path_suggests() {
    let dir = tempfile::tempdir().unwrap();
    let out = imago(
        &["eval", "--expr", "{ hostName = 1; }", "-A", "hostname"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("E0202"), "{err}");
    assert!(err.contains("did you mean `hostName`?"), "{err}");
}

#[test]
fn json_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = imago(
        &[
            "eval",
            "--json",
            "--expr",
            "{ a = [ 1 2.5 null ]; b = \"x\"; p = /etc; }",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({ "a": [1, 2.5, null], "b": "x", "p": "/etc" })
    );
}

#[test]
fn evaluation_error_exits_1_with_location() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.imago"), "let x = 1;\nin x + \"a\"\n").unwrap();
    let out = imago(&["eval", "bad.imago"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("error[E0203]"), "{err}");
    assert!(err.contains("bad.imago:2:8"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn syntax_error_exits_1_with_parser_code() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("syn.imago"), "let a = 1 in a").unwrap();
    let out = imago(&["eval", "syn.imago"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("error[E01"), "{err}");
    assert!(err.contains("syn.imago:1:11"), "{err}");
}

#[test]
fn json_error_format() {
    let dir = tempfile::tempdir().unwrap();
    let out = imago(
        &["--error-format", "json", "eval", "--expr", "undefinedName"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(v[0]["code"], "E0201");
    assert_eq!(v[0]["labels"][0]["file"], "<command line>");
    assert_eq!(v[0]["labels"][0]["column"], 1);
}

#[test]
fn missing_file_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = imago(&["eval", "nope.imago"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("nope.imago"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn non_utf8_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bin.imago"), b"\"\xff\"").unwrap();
    let out = imago(&["eval", "bin.imago"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("bin.imago") && err.contains("UTF-8"), "{err}");
}

#[test]
fn bad_usage_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(imago(&["eval"], dir.path()).status.code(), Some(2));
    assert_eq!(
        imago(&["eval", "a", "--expr", "1"], dir.path())
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        imago(&["eval", "--no-such-flag", "a"], dir.path())
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn deep_recursion_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let out = imago(
        &["eval", "--expr", "let f = n: f (n + 1) + 1; in f 0"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("E0216"), "{err}");
    assert!(err.lines().count() < 30, "{err}");
}

#[test]
fn pkgs_is_bound() {
    let dir = tempfile::tempdir().unwrap();
    let out = imago(&["eval", "--expr", "pkgs.busybox.type"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "\"step\"\n");
}
