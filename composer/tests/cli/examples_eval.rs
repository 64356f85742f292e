//! Every example system (examples/*.imago, and examples/<folder>/*.imago
//! for the releases and architectures that have their own lock: trixie,
//! arm64) evaluates with the module
//! library: every definition names a declared option with the right type,
//! and the whole merged configuration (including the system toplevel's step)
//! can be computed. No store is involved (steps get pending placeholders).

use imago::system_eval::{eval_system, modules_dir};
use imago_lang::hook::NoStore;
use std::path::{Path, PathBuf};
use std::rc::Rc;

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let files_in = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "imago"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = files_in(&dir);
    out.extend(files_in(&dir.join("trixie")));
    out.extend(files_in(&dir.join("arm64")));
    out.sort();
    out
}

/// Evaluates one example completely; the rendered error on failure.
fn evaluate(file: &Path) -> Result<serde_json::Value, String> {
    let file = file.to_path_buf();
    imago_lang::eval::with_large_stack(move || {
        let flag = std::env::var_os("IMAGO_MODULES").map(PathBuf::from);
        let lib = modules_dir(flag.as_deref());
        let (ev, evaluated) =
            eval_system(&file, Rc::new(NoStore), &lib).map_err(|f| f.render(false))?;
        evaluated.config_json(&ev, None).map_err(|e| {
            imago::system_eval::SystemEvalFailure {
                evaluator: Box::new(ev),
                error: e,
            }
            .render(false)
        })
    })
    .map_err(|e| format!("cannot start the evaluation thread: {e}"))?
}

#[test]
fn every_example_evaluates() {
    let examples = examples();
    if examples.is_empty() {
        println!("skipped: no examples/*.imago yet");
        return;
    }
    let mut failures = Vec::new();
    for file in &examples {
        match evaluate(file) {
            Ok(json) => {
                assert!(json.is_object(), "{}: config is not a set", file.display());
                println!("{}: ok", file.display());
            }
            Err(rendered) => failures.push(format!("{}:\n{rendered}", file.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "examples that do not evaluate:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_example_has_a_toplevel() {
    for file in examples() {
        let json = match evaluate(&file) {
            Ok(j) => j,
            // Reported by `every_example_evaluates`.
            Err(_) => continue,
        };
        let toplevel = &json["system"]["build"]["toplevel"];
        assert!(
            toplevel.as_str().is_some_and(|s| s.starts_with('/')),
            "{}: system.build.toplevel is {toplevel}",
            file.display()
        );
    }
}
