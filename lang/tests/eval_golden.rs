//! Golden tests for the evaluator.
//!
//! Files see the globals `pkgs` (the package set) and `lib` (the module
//! library's `lib`). Cases whose comment says "checked against Nix" have
//! expected output that `nix-instantiate --eval --strict` printed for the
//! same file (with `lib` bound to nixpkgs' definitions); Nix is not needed
//! to run the tests.
//!
//! Every `tests/eval/eval-okay-NAME.imago` is evaluated and printed strictly;
//! the output, followed by any `trace:` lines and `step:` lines (requests the
//! store hook received, in order), must equal `eval-okay-NAME.exp`. Every
//! `eval-fail-NAME.imago` must fail; its rendered diagnostic is an insta
//! snapshot in `tests/eval/snapshots/`. Files are served from memory under
//! `/eval/` (subdirectories included), so paths in snapshots do not depend on
//! the machine. Evaluation runs on a large stack, as the CLI does. Files
//! under `/eval/lib/` count as library code (their trace frames are only
//! counted), except in `eval-fail-show-trace-*` cases (`--show-trace`).
//!
//! `EVAL_CASE=substring` runs only matching cases; `EVAL_BLESS=1` rewrites
//! the `.exp` files of failing okay cases (review the diff!).

// Tests and benches read their fixtures from disk (lang/clippy.toml forbids
// file system, environment and clock access in the language itself).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![allow(clippy::unwrap_used)]

use imago_lang::diag::{IntoDiagnostic, render};
use imago_lang::eval::{Evaluator, with_large_stack};
use imago_lang::hook::{HookError, StepRequest, StepValue, StoreHook};
use imago_lang::io::MemoryIo;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Records requests; placeholders are `/imago/placeholder/<n>-<name>`.
/// Refuses steps whose builder is `refuse`.
#[derive(Default)]
struct RecordingHook {
    requests: RefCell<Vec<StepRequest>>,
}

impl StoreHook for RecordingHook {
    fn add_step(&self, request: StepRequest) -> Result<String, HookError> {
        if request.builder == "refuse" {
            return Err(HookError {
                message: format!("builder `refuse` does not accept step `{}`", request.name),
                hint: Some("use another builder".into()),
            });
        }
        let mut reqs = self.requests.borrow_mut();
        let idx = match reqs.iter().position(|r| *r == request) {
            Some(i) => i,
            None => {
                reqs.push(request.clone());
                reqs.len() - 1
            }
        };
        Ok(format!("/imago/placeholder/{idx}-{}", request.name))
    }
}

fn show_step_value(v: &StepValue) -> String {
    match v {
        StepValue::Null => "null".into(),
        StepValue::Bool(b) => b.to_string(),
        StepValue::Int(i) => i.to_string(),
        StepValue::Float(f) => f.to_string(),
        StepValue::Str { text, context } => {
            if context.is_empty() {
                format!("{text:?}")
            } else {
                format!("{text:?}{context:?}")
            }
        }
        StepValue::List(items) => format!(
            "[ {} ]",
            items
                .iter()
                .map(show_step_value)
                .collect::<Vec<_>>()
                .join(" ")
        ),
        StepValue::Attrs(m) => format!(
            "{{ {} }}",
            m.iter()
                .map(|(k, v)| format!("{k} = {};", show_step_value(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/eval")
}

/// Every file under tests/eval, served at /eval/...
fn memory_io() -> MemoryIo {
    let mut io = MemoryIo::new();
    let root = dir();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("snapshots") {
                    stack.push(p);
                }
            } else if let Ok(text) = std::fs::read_to_string(&p) {
                io.add(
                    Path::new("/eval").join(p.strip_prefix(&root).unwrap()),
                    text,
                );
            }
        }
    }
    io
}

/// Evaluates one case: Ok(output) or Err(rendered diagnostic).
fn run_case(io: &MemoryIo, name: &str) -> Result<String, String> {
    let hook = Rc::new(RecordingHook::default());
    let mut ev = Evaluator::new(Rc::new(io.clone()), hook.clone());
    ev.set_library_dirs(vec![PathBuf::from("/eval/lib")]);
    // `eval-fail-show-trace-*` cases keep every frame (`--show-trace`).
    ev.set_show_trace(name.contains("show-trace"));
    let pkgs = ev.packages_value();
    ev.with_global("pkgs", pkgs);
    let lib = imago_lang::modules::library(&ev).unwrap();
    ev.with_global("lib", lib);
    let traces = Rc::new(RefCell::new(Vec::new()));
    let t = traces.clone();
    ev.set_trace_handler(Rc::new(move |m: &str| t.borrow_mut().push(m.to_string())));
    let path = PathBuf::from(format!("/eval/{name}.imago"));
    let result = ev.eval_file(&path).and_then(|v| ev.display(&v, true));
    match result {
        Ok(text) => {
            let mut out = text;
            out.push('\n');
            for t in traces.borrow().iter() {
                out.push_str(&format!("trace: {t}\n"));
            }
            for r in hook.requests.borrow().iter() {
                let params: Vec<String> = r
                    .params
                    .iter()
                    .map(|(k, v)| format!("{k} = {};", show_step_value(v)))
                    .collect();
                let params = if params.is_empty() {
                    "{ }".to_string()
                } else {
                    format!("{{ {} }}", params.join(" "))
                };
                out.push_str(&format!("step: {} {} {params}\n", r.builder, r.name));
            }
            Ok(out)
        }
        Err(e) => {
            let diags = match e.parse_diagnostics() {
                Some(d) => d.to_vec(),
                None => vec![e.to_diagnostic()],
            };
            Err(render(&diags, ev.sources(), false))
        }
    }
}

fn cases(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".imago")?;
            stem.starts_with(prefix).then(|| stem.to_string())
        })
        .collect();
    names.sort();
    names
}

#[test]
fn eval_okay() {
    let filter = std::env::var("EVAL_CASE").ok();
    let failures = with_large_stack(move || {
        let io = memory_io();
        let mut failures = Vec::new();
        for name in cases("eval-okay-") {
            if filter.as_deref().is_some_and(|f| !name.contains(f)) {
                continue;
            }
            let exp_path = dir().join(format!("{name}.exp"));
            let expected = std::fs::read_to_string(&exp_path).unwrap_or_default();
            match run_case(&io, &name) {
                Ok(out) if out == expected => {}
                Ok(out) => {
                    if std::env::var_os("EVAL_BLESS").is_some() {
                        std::fs::write(&exp_path, &out).unwrap();
                    }
                    failures.push(format!("{name}: expected\n{expected}got\n{out}"));
                }
                Err(diag) => failures.push(format!("{name}: failed\n{diag}")),
            }
        }
        failures
    })
    .unwrap();
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn eval_fail() {
    let filter = std::env::var("EVAL_CASE").ok();
    let results = with_large_stack(move || {
        let io = memory_io();
        let mut out = Vec::new();
        for name in cases("eval-fail-") {
            if filter.as_deref().is_some_and(|f| !name.contains(f)) {
                continue;
            }
            out.push((name.clone(), run_case(&io, &name)));
        }
        out
    })
    .unwrap();
    let mut unexpected = Vec::new();
    for (name, r) in results {
        match r {
            Ok(out) => unexpected.push(format!("{name} evaluated to {out}")),
            Err(diag) => {
                insta::with_settings!({
                    snapshot_path => dir().join("snapshots"),
                    prepend_module_to_snapshot => false,
                    omit_expression => true,
                }, {
                    insta::assert_snapshot!(name, diag);
                });
            }
        }
    }
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
}
