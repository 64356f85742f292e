//! The evaluator's Rust API, as the module system and the CLI use it.

#![allow(clippy::unwrap_used)]

use imago_lang::diag::IntoDiagnostic;
use imago_lang::eval::{ErrorKind, EvalError, Evaluator, Value, with_large_stack};
use imago_lang::hook::{HookError, NoStore, StepRequest, StoreHook};
use imago_lang::io::MemoryIo;
use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;

fn ev_with(io: MemoryIo) -> Evaluator {
    Evaluator::new(Rc::new(io), Rc::new(NoStore))
}

fn eval(ev: &Evaluator, text: &str) -> Result<Value, EvalError> {
    ev.eval_source("<test>", text, Path::new("/t"))
}

fn show(ev: &Evaluator, text: &str) -> String {
    let v = eval(ev, text).unwrap();
    ev.display(&v, true).unwrap()
}

#[test]
fn native_primop_and_global() {
    let mut ev = ev_with(MemoryIo::new());
    let double = Value::primop("double", 1, |ev, args, span| match ev.force(&args[0])? {
        Value::Int(i) => Ok(Value::Int(i * 2)),
        other => Err(EvalError::type_error("an integer", &other, span)),
    });
    ev.with_global("double", double);
    assert_eq!(show(&ev, "map double [ 1 2 ]"), "[ 2 4 ]");
    let e = eval(&ev, "double \"x\"").unwrap_err();
    assert_eq!(e.code().0, "E0203");
}

#[test]
fn lazy_native_values_run_once() {
    let mut ev = ev_with(MemoryIo::new());
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let lazy = Value::lazy(Some("answer"), move |_| {
        c.set(c.get() + 1);
        Ok(Value::Int(42))
    });
    ev.with_global("answer", lazy);
    assert_eq!(show(&ev, "let unused = answer; in 1"), "1");
    assert_eq!(count.get(), 0);
    assert_eq!(show(&ev, "[ answer answer (answer + 1) ]"), "[ 42 42 43 ]");
    assert_eq!(count.get(), 1);
}

#[test]
fn lazy_native_cycle_is_reported_by_name() {
    let mut ev = ev_with(MemoryIo::new());
    let slot: Rc<RefCell<Option<Value>>> = Rc::new(RefCell::new(None));
    let s = slot.clone();
    let v = Value::lazy(Some("config.a"), move |ev| {
        let me = s.borrow().clone().unwrap();
        ev.force(&me)
    });
    *slot.borrow_mut() = Some(v.clone());
    ev.with_global("selfRef", v);
    let e = eval(&ev, "selfRef").unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InfiniteRecursion { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("`config.a`"), "{e}");
}

#[test]
fn attribute_definition_spans() {
    let ev = ev_with(MemoryIo::new());
    let text = "{ hostName = \"x\"; nested.deep = 1; }";
    let v = eval(&ev, text).unwrap();
    let Value::Attrs(a) = ev.force(&v).unwrap() else {
        panic!("not a set")
    };
    let names: Vec<&str> = a.names().collect();
    assert_eq!(names, ["hostName", "nested"]);
    let span = a.get("hostName").unwrap().span.unwrap();
    assert_eq!(&text[span.range()], "hostName");
    assert!(ev.location(span).ends_with(":1:3"), "{}", ev.location(span));
}

#[test]
fn closure_span_and_formals() {
    let ev = ev_with(MemoryIo::new());
    let text = "let mkThing = { name, size ? 1, ... }: name; in mkThing";
    let v = ev.force(&eval(&ev, text).unwrap()).unwrap();
    let c = v.as_closure().unwrap();
    assert_eq!(c.name(), Some("mkThing"));
    assert_eq!(&text[c.span().range()], "{ name, size ? 1, ... }: name");
    let (formals, ellipsis) = c.formals().unwrap();
    assert!(ellipsis);
    assert_eq!(formals, vec![("name".into(), false), ("size".into(), true)]);
    let r = ev
        .call(&v, Value::attrs_from([("name", Value::string("n"))]))
        .unwrap();
    assert_eq!(r.as_str(), Some("n"));
}

#[test]
fn select_with_quoted_path_and_suggestions() {
    let ev = ev_with(MemoryIo::new());
    let v = eval(&ev, "{ a.\"b.c\".d = 1; hostName = 2; }").unwrap();
    let got = ev.select(&v, "a.\"b.c\".d").unwrap();
    assert!(matches!(got, Value::Int(1)));
    let e = ev.select(&v, "hostname").unwrap_err();
    let d = e.to_diagnostic();
    assert_eq!(d.code.0, "E0202");
    assert_eq!(d.hint.as_deref(), Some("did you mean `hostName`?"));
}

#[test]
fn non_strict_display_shows_thunks() {
    let ev = ev_with(MemoryIo::new());
    let v = eval(&ev, "{ a = 1 + 1; b = throw \"x\"; c = 3; }").unwrap();
    assert_eq!(
        ev.display(&v, false).unwrap(),
        "{ a = «thunk»; b = «thunk»; c = 3; }"
    );
    let e = ev.display(&v, true).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Throw(m) if m == "x"));
}

#[test]
fn json_and_string_coercion() {
    let mut ev = ev_with(MemoryIo::new().with_file("/t/f.txt", "hi"));
    let pkgs = ev.packages_value();
    ev.with_global("pkgs", pkgs);
    let v = eval(
        &ev,
        "{ a = [ 1 2.5 null ]; p = ./f.txt; s = pkgs.busybox; }",
    )
    .unwrap();
    let j = ev.to_json(&v).unwrap();
    assert_eq!(j["a"], serde_json::json!([1, 2.5, null]));
    assert_eq!(j["p"], "/t/f.txt");
    assert!(j["s"].as_str().unwrap().ends_with("-busybox"));
    let s = eval(&ev, "\"${pkgs.busybox}/bin/sh\"").unwrap();
    let (text, ctx) = ev.coerce_to_string(&s).unwrap();
    assert!(text.ends_with("-busybox/bin/sh"));
    assert_eq!(ctx.len(), 1);
    assert!(text.starts_with(ctx.iter().next().unwrap()));
}

/// Counts requests per builder.
#[derive(Default)]
struct Counting(RefCell<Vec<StepRequest>>);

impl StoreHook for Counting {
    fn add_step(&self, request: StepRequest) -> Result<String, HookError> {
        if request.name == "refused" {
            return Err(HookError::new("no such package"));
        }
        let name = format!("/imago/x-{}", request.name);
        self.0.borrow_mut().push(request);
        Ok(name)
    }
}

#[test]
fn packages_are_requested_once_and_cannot_be_listed() {
    let hook = Rc::new(Counting::default());
    let mut ev = Evaluator::new(Rc::new(MemoryIo::new()), hook.clone());
    let pkgs = ev.packages_value();
    ev.with_global("pkgs", pkgs);
    assert_eq!(
        show(
            &ev,
            "[ \"${pkgs.hello}\" pkgs.hello.name (pkgs ? refused) ]"
        ),
        "[ \"/imago/x-hello\" \"hello\" false ]"
    );
    assert_eq!(hook.0.borrow().len(), 1);
    assert_eq!(hook.0.borrow()[0].builder, "deb");
    let e = eval(&ev, "builtins.attrNames pkgs").unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::OpenSet { name } if name == "pkgs"));
    let e = eval(&ev, "pkgs.refused").unwrap_err();
    assert_eq!(e.code().0, "E0215");
}

#[test]
fn files_are_evaluated_once_per_evaluator() {
    let io = MemoryIo::new()
        .with_file("/p/a.imago", "builtins.trace \"loading a\" { v = 1; }")
        .with_file(
            "/p/b.imago",
            "(import ./a.imago).v + (import /p/./a.imago).v",
        );
    let ev = ev_with(io);
    let traces = Rc::new(RefCell::new(0));
    let t = traces.clone();
    ev.set_trace_handler(Rc::new(move |_| *t.borrow_mut() += 1));
    let v = ev.eval_file(Path::new("/p/b.imago")).unwrap();
    assert_eq!(ev.display(&v, true).unwrap(), "2");
    ev.eval_file(Path::new("/p/a.imago")).unwrap();
    assert_eq!(*traces.borrow(), 1);
}

#[test]
fn parse_errors_keep_their_own_codes_and_file() {
    let io = MemoryIo::new().with_file("/p/bad.imago", "{ a = ; }");
    let ev = ev_with(io);
    let e = ev.eval_file(Path::new("/p/bad.imago")).unwrap_err();
    assert_eq!(e.code().0, "E0214");
    let diags = e.parse_diagnostics().unwrap();
    assert!(diags[0].code.0.starts_with("E01"));
    let path = ev.sources().path(diags[0].labels[0].span.file).unwrap();
    assert_eq!(path, Path::new("/p/bad.imago"));
}

#[test]
fn deep_recursion_needs_a_large_stack_and_is_bounded() {
    let r = with_large_stack(|| {
        let ev = ev_with(MemoryIo::new());
        let ok = show(
            &ev,
            "let sum = n: if n == 0 then 0 else n + sum (n - 1); in sum 4000",
        );
        let err = eval(&ev, "let f = n: f (n + 1) + 1; in f 0").unwrap_err();
        (ok, err.code().0, err.to_diagnostic().notes.len())
    })
    .unwrap();
    assert_eq!(r.0, "8002000");
    assert_eq!(r.1, "E0216");
    assert!(r.2 <= 11, "{} notes", r.2);
}

#[test]
fn max_depth_is_configurable() {
    let ev = ev_with(MemoryIo::new());
    ev.set_max_depth(50);
    let e = eval(
        &ev,
        "let f = n: if n == 0 then 0 else 1 + f (n - 1); in f 100",
    )
    .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::DepthLimit { limit: 50 }));
    assert_eq!(
        show(
            &ev,
            "let f = n: if n == 0 then 0 else 1 + f (n - 1); in f 10"
        ),
        "10"
    );
}

#[test]
fn error_codes_are_distinct() {
    use imago_lang::source::{FileId, Span};
    let s = Span::new(FileId(0), 0, 0);
    let kinds = vec![
        ErrorKind::UndefinedVariable {
            name: "x".into(),
            suggestions: vec![],
        },
        ErrorKind::MissingAttribute {
            name: "x".into(),
            suggestions: vec![],
        },
        ErrorKind::TypeError {
            expected: "a set".into(),
            got: "a list",
        },
        ErrorKind::DivisionByZero,
        ErrorKind::AssertionFailed,
        ErrorKind::Throw("m".into()),
        ErrorKind::Abort("m".into()),
        ErrorKind::InfiniteRecursion { cycle: vec![] },
        ErrorKind::UnexpectedArgument {
            name: "x".into(),
            function: s,
            suggestions: vec![],
        },
        ErrorKind::MissingArgument {
            name: "x".into(),
            function: s,
        },
        ErrorKind::DuplicateAttribute {
            name: "x".into(),
            first: s,
        },
        ErrorKind::IntegerOverflow { op: "+" },
        ErrorKind::Io {
            path: "/x".into(),
            source: std::io::Error::other("e"),
        },
        ErrorKind::Parse {
            path: "/x".into(),
            diagnostics: vec![],
        },
        ErrorKind::Hook(HookError::new("no")),
        ErrorKind::DepthLimit { limit: 1 },
        ErrorKind::InvalidArgument {
            function: "f",
            message: "m".into(),
        },
        ErrorKind::OpenSet {
            name: "pkgs".into(),
        },
        ErrorKind::Malformed,
    ];
    let mut codes: Vec<&str> = kinds.iter().map(|k| k.code().0).collect();
    assert!(codes.iter().all(|c| c.starts_with("E02")));
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), kinds.len());
}

/// A recursion whose every level is a deep expression: bounded by the native
/// stack budget (the call-depth limit alone would allow a stack overflow).
fn deep_expression_recursion() -> String {
    let body = format!("{}f (n - 1){}", "1 + (".repeat(200), ")".repeat(200));
    format!("let f = n: if n == 0 then 0 else {body}; in f 100000")
}

#[test]
fn deep_expressions_in_deep_recursion_stop_within_the_stack() {
    let code = with_large_stack(|| {
        let ev = ev_with(MemoryIo::new());
        eval(&ev, &deep_expression_recursion())
            .unwrap_err()
            .code()
            .0
    })
    .unwrap();
    assert_eq!(code, "E0216");
}

#[test]
fn stack_budget_protects_small_stacks() {
    // The default test thread has a 2 MB stack.
    let ev = ev_with(MemoryIo::new());
    ev.set_stack_budget(512 * 1024);
    let e = eval(
        &ev,
        "let f = n: if n == 0 then 0 else 1 + f (n - 1); in f 100000",
    )
    .unwrap_err();
    assert_eq!(e.code().0, "E0216");
    // The evaluator is still usable afterwards.
    assert_eq!(show(&ev, "1 + 1"), "2");
}

#[test]
fn recursive_scopes_are_freed_with_the_evaluator() {
    let programs = [
        "let f = x: f x; in f",
        "(rec { a = 1; f = x: a + f x; }).f",
        "({ a ? b, b ? (x: a) }: b) { }",
        "let inherit ({ g = x: h; }) g; h = x: g; in h",
    ];
    for text in programs {
        let ev = ev_with(MemoryIo::new());
        let v = eval(&ev, text).unwrap();
        let f = Rc::downgrade(v.as_closure().unwrap());
        drop(v);
        // The function's scope refers to the function itself...
        assert!(f.upgrade().is_some(), "{text}: no cycle to free");
        // ...and the evaluator frees that cycle when it goes.
        drop(ev);
        assert!(f.upgrade().is_none(), "{text}: leaked");
    }
}

/// Found by the `eval` fuzz target: the scope is freed once `x` is
/// evaluated, but `x`'s value refers to `x` itself.
#[test]
fn values_that_refer_to_their_own_binding_are_freed_with_the_evaluator() {
    let programs = [
        "let x = { a = 1; zelf = x; }; in x",
        "let inherit (s) a; s = { a = { b = a; }; }; in a",
        "({ a ? { b = a; } }: a) { }",
    ];
    for text in programs {
        let ev = ev_with(MemoryIo::new());
        let v = eval(&ev, text).unwrap();
        // Force everything, so that the knots hold their values.
        assert!(!ev.display(&v, true).unwrap().is_empty());
        let set = Rc::downgrade(v.as_attrs().unwrap());
        drop(v);
        assert!(set.upgrade().is_some(), "{text}: no cycle to free");
        drop(ev);
        assert!(set.upgrade().is_none(), "{text}: leaked");
    }
}

#[test]
fn a_value_forced_after_its_evaluator_is_dropped_is_an_error() {
    let ev = ev_with(MemoryIo::new());
    let v = eval(&ev, "let a = 1 + 1; in [ a ]").unwrap();
    drop(ev);
    let item = v.as_list().unwrap()[0].clone();
    let other = ev_with(MemoryIo::new());
    let e = other.force(&item).unwrap_err();
    assert_eq!(e.code().0, "E0219");
}

#[test]
fn package_sites_point_at_the_first_request_of_each_name() {
    let mut ev = ev_with(MemoryIo::new());
    let pkgs = ev.packages_value();
    ev.with_global("pkgs", pkgs);
    let text = "[\n  pkgs.hello\n  (with pkgs; ngnix)\n  pkgs.hello\n  (builtins.step { builder = \"deb\"; name = \"x\"; package = \"viaStep\"; }).outPath\n  (pkgs.writeText \"t\" \"no package\")\n]";
    let v = eval(&ev, text).unwrap();
    ev.force_deep(&v).unwrap();
    let sites: Vec<(String, String)> = ev
        .package_sites()
        .into_iter()
        .map(|(name, span)| (name, ev.location(span)))
        .collect();
    assert_eq!(
        sites,
        [
            ("hello".to_string(), "<test>:2:8".to_string()),
            ("ngnix".to_string(), "<test>:3:15".to_string()),
            ("viaStep".to_string(), "<test>:5:4".to_string()),
        ]
    );
}
