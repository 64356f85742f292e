//! Golden tests of the module system.
//!
//! Every `modules/ok-*.imago` is evaluated as the only user module (with the
//! other files of `modules/` available under `/test/` for imports); the
//! snapshot is the merged configuration as JSON, followed by the rendered
//! warnings if there are any. Every `modules/fail-*.imago` must fail; the
//! snapshot is the rendered diagnostics (all of them: one pass reports
//! every unknown option). Files are served from memory, so snapshots do not
//! depend on the machine.

// Tests and benches read their fixtures from disk (lang/clippy.toml forbids
// file system, environment and clock access in the language itself).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use imago_lang::diag::render;
use imago_lang::eval::Evaluator;
use imago_lang::hook::NoStore;
use imago_lang::io::MemoryIo;
use imago_lang::modules::{ModuleSource, eval_modules};
use std::path::{Path, PathBuf};
use std::rc::Rc;

fn memory_io() -> MemoryIo {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/modules");
    let mut io = MemoryIo::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "imago") {
            let name = path.file_name().unwrap().to_owned();
            io.add(
                PathBuf::from("/test").join(name),
                std::fs::read_to_string(&path).unwrap(),
            );
        }
    }
    io
}

/// Evaluates `/test/<file>` with a `pkgs` special argument on a large stack
/// (as the CLI does); the config as pretty JSON, or the rendered error.
fn run(file: &str) -> Result<String, String> {
    let file = file.to_string();
    imago_lang::eval::with_large_stack(move || run_here(&file)).unwrap()
}

fn run_here(file: &str) -> Result<String, String> {
    let ev = Evaluator::new(Rc::new(memory_io()), Rc::new(NoStore));
    let pkgs = ev.packages_value();
    let result = eval_modules(
        &ev,
        vec![ModuleSource::Path(PathBuf::from("/test").join(file))],
        vec![("pkgs".to_string(), pkgs)],
    )
    .and_then(|evaluated| {
        let json = evaluated.config_json(&ev, None)?;
        Ok((json, evaluated.warnings()))
    });
    match result {
        Ok((json, warnings)) => {
            let mut out = serde_json::to_string_pretty(&json).unwrap();
            if !warnings.is_empty() {
                out.push_str("\n\n");
                out.push_str(&render(&warnings, ev.sources(), false));
            }
            Ok(out)
        }
        Err(e) => Err(render(&e.diagnostics(), ev.sources(), false)),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn stem(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn ok_cases() {
    insta::with_settings!({snapshot_path => "modules/snapshots", prepend_module_to_snapshot => false}, {
        insta::glob!("modules/ok-*.imago", |path| {
            match run(&file_name(path)) {
                Ok(json) => insta::assert_snapshot!(stem(path), json),
                Err(e) => panic!("{} failed:\n{e}", path.display()),
            }
        });
    });
}

#[test]
fn fail_cases() {
    let unexpected = std::cell::RefCell::new(Vec::new());
    insta::with_settings!({snapshot_path => "modules/snapshots", prepend_module_to_snapshot => false}, {
        insta::glob!("modules/fail-*.imago", |path| {
            match run(&file_name(path)) {
                Ok(json) => unexpected.borrow_mut().push(format!("{}: {json}", path.display())),
                Err(e) => insta::assert_snapshot!(stem(path), e),
            }
        });
    });
    let unexpected = unexpected.into_inner();
    assert!(
        unexpected.is_empty(),
        "these should fail:\n{}",
        unexpected.join("\n")
    );
}
