//! Errors that are not language diagnostics honour `--error-format json`
//! and carry stable codes: one real failure per area (store, packages,
//! build, images, generations, other) run through the `imago` binary, and
//! the codes the composer defines (`imago::codes::ALL`) against the tables
//! of docs/errors.md.

use imago::codes;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use crate::support::cli::{command, stderr};

fn imago(args: &[&str]) -> Output {
    command(args)
        .env_remove("IMAGO_STORE")
        .env_remove("IMAGO_PACKAGE_CACHES")
        .output()
        .expect("cannot run imago")
}

/// The JSON array of diagnostics that is the whole of stderr (with JSON
/// errors a build shows no progress).
fn parse_json(err: &str) -> Value {
    serde_json::from_str(err).unwrap_or_else(|e| panic!("{e}: {err}"))
}

/// Runs `imago --error-format json ARGS`, expects exit code 1 and one JSON
/// error on stderr with `code` whose message contains `needle`.
fn json_error(args: &[&str], code: &str, needle: &str) -> Value {
    let mut all = vec!["--error-format", "json"];
    all.extend_from_slice(args);
    let out = imago(&all);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let json = parse_json(&err);
    let items = json.as_array().expect("an array of diagnostics");
    assert_eq!(items.len(), 1, "{err}");
    let diag = &items[0];
    assert_eq!(diag["severity"], "error", "{err}");
    assert_eq!(diag["code"], code, "{err}");
    let message = diag["message"].as_str().expect("a message");
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
    assert!(
        diag["labels"].as_array().is_some_and(Vec::is_empty),
        "{err}"
    );
    assert!(diag["notes"].is_array(), "{err}");
    diag.clone()
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

#[test]
fn a_missing_store_object_is_e0507() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = dir.path().join("out.nar");
    let diag = json_error(
        &[
            "--store",
            arg(&store),
            "closure",
            "export",
            "00000000000000000000000000000000-nope",
            "-o",
            arg(&out),
        ],
        "E0507",
        "00000000000000000000000000000000-nope",
    );
    assert!(
        diag["message"]
            .as_str()
            .unwrap()
            .contains("not a valid object")
    );
}

#[test]
fn a_malformed_lock_is_a_package_error_with_its_cause_as_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sys.imago");
    std::fs::write(&file, "{ a = \"x\"; }").unwrap();
    std::fs::write(dir.path().join("imago.lock"), "this is [not toml").unwrap();
    let diag = json_error(
        &[
            "--store",
            arg(&dir.path().join("store")),
            "build",
            arg(&file),
            "-A",
            "a",
        ],
        "E0602",
        "imago.lock",
    );
    let notes = diag["notes"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("caused by: ")),
        "{diag}"
    );
}

#[test]
fn a_value_that_is_not_an_object_is_a_build_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sys.imago");
    std::fs::write(&file, "{ a = \"hello\"; }").unwrap();
    let store = dir.path().join("store");
    json_error(
        &["--store", arg(&store), "build", arg(&file), "-A", "a"],
        "E0701",
        "not a store object",
    );
    // Text keeps its form and gains the code.
    let out = imago(&["--store", arg(&store), "build", arg(&file), "-A", "a"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error[E0701]: `a` evaluated to \"hello\""),
        "{err}"
    );
}

#[test]
fn a_failed_step_is_one_json_error_per_step() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sys.imago");
    std::fs::write(
        &file,
        r#"{ bad = builtins.step { builder = "tree"; name = "broken"; entries = { "../x" = { text = "x"; }; }; }; }"#,
    )
    .unwrap();
    let mut args = vec!["--error-format", "json", "--store"];
    let store = dir.path().join("store");
    args.extend([arg(&store), "build", arg(&file), "-A", "bad"]);
    let out = imago(&args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let json = parse_json(&err);
    let diag = &json[0];
    // The tree builder refuses the `..` entry: invalid parameters.
    assert_eq!(diag["code"], "E0710", "{err}");
    assert!(
        diag["message"]
            .as_str()
            .unwrap()
            .contains("step `broken` (builder `tree`) failed"),
        "{err}"
    );
}

#[test]
fn an_object_that_is_not_a_system_is_an_image_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sys.imago");
    std::fs::write(
        &file,
        r#"{ top = builtins.step { builder = "text"; name = "not-a-system"; text = "hi"; }; }"#,
    )
    .unwrap();
    json_error(
        &[
            "--store",
            arg(&dir.path().join("store")),
            "image",
            arg(&file),
            "-A",
            "top",
            "-o",
            arg(&dir.path().join("disk.raw")),
        ],
        "E0802",
        "boot.json",
    );
}

#[test]
fn a_missing_profile_directory_is_a_generations_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-profiles");
    json_error(
        &["generations", "--profile", arg(&missing)],
        "E0902",
        "is not a profile directory",
    );
}

#[test]
fn an_error_of_no_known_kind_is_e0401() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["a", "b"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    let (a, b) = (dir.path().join("a/x.imago"), dir.path().join("b/y.imago"));
    json_error(
        &["lock", arg(&a), arg(&b)],
        "E0401",
        "different directories",
    );
}

#[test]
fn a_usage_error_is_e0403_as_json_when_asked_and_clap_text_otherwise() {
    for args in [
        &["--error-format", "json", "bild"][..],
        &["build", "--error-format=json", "--no-such-flag"][..],
    ] {
        let out = imago(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        let json = parse_json(&err);
        let items = json.as_array().expect("an array of diagnostics");
        assert_eq!(items.len(), 1, "{err}");
        assert_eq!(items[0]["code"], "E0403", "{err}");
        assert!(
            items[0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Usage")),
            "{err}"
        );
    }
    let out = imago(&["bild"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("error: unrecognized subcommand"), "{err}");
}

/// The codes of the tables of docs/errors.md, in order.
fn documented_codes() -> Vec<String> {
    let text = include_str!("../../../docs/errors.md");
    text.lines()
        .filter_map(|line| line.strip_prefix("| "))
        .filter_map(|rest| rest.split(" |").next())
        .filter(|cell| {
            cell.len() == 5
                && (cell.starts_with('E') || cell.starts_with('W'))
                && cell[1..].bytes().all(|b| b.is_ascii_digit())
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_documented_code_is_unique() {
    let codes = documented_codes();
    assert!(codes.len() > 60, "{codes:?}");
    let mut seen = BTreeSet::new();
    for code in &codes {
        assert!(seen.insert(code), "{code} is documented twice");
    }
}

#[test]
fn every_code_the_composer_defines_is_documented_and_unique() {
    let documented: BTreeSet<String> = documented_codes().into_iter().collect();
    let mut seen = BTreeSet::new();
    for code in codes::ALL {
        assert!(seen.insert(code.0), "{code} is defined twice");
        assert!(
            documented.contains(code.0),
            "{code} is not in docs/errors.md"
        );
    }
    // And the composer's ranges document nothing it does not define.
    for code in &documented {
        let composer = ["E04", "E05", "E06", "E07", "E08", "E09"]
            .iter()
            .any(|p| code.starts_with(p));
        if composer {
            assert!(
                seen.contains(code.as_str()),
                "{code} is documented but not defined"
            );
        }
    }
}
