//! Golden tests for the parser.
//!
//! `tests/parse/ok-*.imago` must parse without errors; the snapshot holds the
//! printed source and a fully bracketed dump of the tree, and the printed
//! source must parse back to the same tree. `tests/parse/fail-*.imago` must
//! fail; the snapshot holds the rendered diagnostics (no colour).
//! Snapshots live in `tests/parse/snapshots/`.

// Tests and benches read their fixtures from disk (lang/clippy.toml forbids
// file system, environment and clock access in the language itself).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "parse/support.rs"]
mod support;

use imago_lang::diag::{IntoDiagnostic, render};
use imago_lang::parser::parse;
use imago_lang::printer::print;
use imago_lang::source::SourceMap;
use support::{normalize, sexpr};

fn read(path: &std::path::Path) -> (String, String) {
    let text = std::fs::read_to_string(path).expect("readable test file");
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (name, text)
}

#[test]
fn ok_files_parse_and_round_trip() {
    insta::with_settings!({ snapshot_path => "parse/snapshots", prepend_module_to_snapshot => false }, {
        insta::glob!("parse/ok-*.imago", |path| {
            let (name, text) = read(path);
            let map = SourceMap::new();
            let file = map.add(&name, text.as_str());
            let parsed = parse(file, &text);
            assert!(parsed.errors.is_empty(), "{name}: {:?}", parsed.errors);
            let printed = print(&parsed.expr);
            let again = parse(file, &printed);
            assert!(again.errors.is_empty(), "{name}: printed text fails: {:?}\n{printed}", again.errors);
            assert_eq!(normalize(&again.expr), normalize(&parsed.expr), "{name}: round trip");
            insta::assert_snapshot!(format!("{printed}\n---\n{}\n", sexpr(&parsed.expr)));
        });
    });
}

#[test]
fn fail_files_report_diagnostics() {
    insta::with_settings!({ snapshot_path => "parse/snapshots", prepend_module_to_snapshot => false }, {
        insta::glob!("parse/fail-*.imago", |path| {
            let (name, text) = read(path);
            let map = SourceMap::new();
            let file = map.add(&name, text.as_str());
            let parsed = parse(file, &text);
            assert!(!parsed.errors.is_empty(), "{name} parsed without errors");
            let diags: Vec<_> = parsed.errors.iter().map(|e| e.to_diagnostic()).collect();
            insta::assert_snapshot!(render(&diags, &map, false));
        });
    });
}
