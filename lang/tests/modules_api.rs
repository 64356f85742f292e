//! The module system's Rust API: `--explain` data, option documentation
//! (with submodule options), values at paths, declarations, and
//! `lib.evalModules` errors.

// Tests and benches read their fixtures from disk (lang/clippy.toml forbids
// file system, environment and clock access in the language itself).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use imago_lang::diag::{IntoDiagnostic, render};
use imago_lang::eval::{Evaluator, Value};
use imago_lang::hook::NoStore;
use imago_lang::io::MemoryIo;
use imago_lang::modules::{
    DefStatus, Evaluated, ModuleSource, OptionPath, declare_modules, eval_modules,
};
use std::path::PathBuf;
use std::rc::Rc;

const OPTIONS: &str = r#"
{ lib, ... }:
let inherit (lib) mkOption types; in
{
  options = {
    name = mkOption { type = types.str; default = "dflt"; description = "The name."; };
    tags = mkOption { type = types.listOf types.str; default = [ ]; example = [ "a" ]; };
    version = mkOption { type = types.str; readOnly = true; default = "1"; };
    users = mkOption {
      description = "Users.";
      default = { };
      type = types.attrsOf (types.submodule ({ name, ... }: {
        options.home = mkOption {
          type = types.str;
          default = "/home/${name}";
          defaultText = lib.literalExpression "\"/home/\${name}\"";
          description = "Home directory.";
        };
      }));
    };
  };
}
"#;

const USER: &str = r#"
{ lib, config, ... }:
{
  imports = [
    ./options.imago
    { name = lib.mkDefault "weak"; tags = [ "m1" ]; }
    { name = lib.mkIf false "never"; tags = lib.mkBefore [ "first" ]; }
  ];
  name = "strong";
  tags = [ "user" ];
  users.alice = { };
}
"#;

fn setup() -> (Evaluator, Evaluated) {
    let io = MemoryIo::new()
        .with_file("/m/options.imago", OPTIONS)
        .with_file("/m/user.imago", USER);
    let ev = Evaluator::new(Rc::new(io), Rc::new(NoStore));
    let evaluated = match eval_modules(
        &ev,
        vec![ModuleSource::Path(PathBuf::from("/m/user.imago"))],
        Vec::new(),
    ) {
        Ok(e) => e,
        Err(e) => panic!("{}", render(&[e.to_diagnostic()], ev.sources(), false)),
    };
    (ev, evaluated)
}

fn path(p: &str) -> OptionPath {
    OptionPath::parse(p).unwrap()
}

#[test]
fn explain_lists_every_definition_and_the_winner() {
    let (ev, evaluated) = setup();
    let e = evaluated.explain(&ev, &path("name")).unwrap();
    assert_eq!(e.ty, "string");
    let by_status = |s: DefStatus| e.defs.iter().filter(|d| d.status == s).count();
    assert_eq!(by_status(DefStatus::Used), 1, "{e:?}");
    // mkDefault and the option's default lose; mkIf false is listed too.
    assert_eq!(by_status(DefStatus::Overridden), 2, "{e:?}");
    assert_eq!(by_status(DefStatus::ConditionFalse), 1, "{e:?}");
    let used = e.defs.iter().find(|d| d.status == DefStatus::Used).unwrap();
    assert_eq!(used.priority, Some(100));
    assert_eq!(used.value, "\"strong\"");
    assert!(
        ev.location(used.site.span.unwrap())
            .starts_with("/m/user.imago:9:")
    );
    assert!(e.summary.contains("priority 100"), "{}", e.summary);
    assert_eq!(e.result, Ok("\"strong\"".to_string()));
}

#[test]
fn explain_of_a_list_shows_orders() {
    let (ev, evaluated) = setup();
    let e = evaluated.explain(&ev, &path("tags")).unwrap();
    let orders: Vec<Option<i64>> = e
        .defs
        .iter()
        .filter(|d| d.status == DefStatus::Used)
        .map(|d| d.order)
        .collect();
    assert_eq!(orders, vec![Some(1000), Some(1000), Some(500)]);
    assert!(e.summary.contains("concatenated"), "{}", e.summary);
    let json = evaluated.config_json(&ev, Some(&path("tags"))).unwrap();
    assert_eq!(json, serde_json::json!(["first", "user", "m1"]));
}

#[test]
fn explain_of_an_unknown_option_suggests_names() {
    let (ev, evaluated) = setup();
    let err = evaluated.explain(&ev, &path("nmae")).unwrap_err();
    let text = render(&[err.to_diagnostic()], ev.sources(), false);
    assert!(text.contains("E0301"), "{text}");
    assert!(text.contains("did you mean `name`?"), "{text}");
}

#[test]
fn explain_inside_a_value_names_the_option() {
    let (ev, evaluated) = setup();
    let err = evaluated
        .explain(&ev, &path("users.alice.home"))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("inside the value of the option `users`"),
        "{text}"
    );
}

#[test]
fn docs_include_submodule_options_with_placeholders() {
    let (ev, evaluated) = setup();
    let docs = evaluated.option_docs(&ev).unwrap();
    let names: Vec<String> = docs.iter().map(|d| d.path.to_string()).collect();
    assert_eq!(
        names,
        vec!["name", "tags", "users", "users.<name>.home", "version"]
    );
    let home = &docs[3];
    assert_eq!(home.default.as_deref(), Some("\"/home/${name}\""));
    assert_eq!(home.description.as_deref(), Some("Home directory."));
    assert_eq!(docs[1].ty, "list of string");
    assert_eq!(docs[1].example.as_deref(), Some("[ \"a\" ]"));
    assert!(docs[4].read_only);
    assert_eq!(docs[2].ty, "attribute set of submodule");
}

#[test]
fn values_at_paths_go_into_submodules() {
    let (ev, evaluated) = setup();
    let home = evaluated.value_at(&ev, &path("users.alice.home")).unwrap();
    assert_eq!(home.as_str(), Some("/home/alice"));
    let err = evaluated
        .value_at(&ev, &path("users.alice.hom"))
        .unwrap_err();
    assert!(err.to_string().contains("users.alice.hom"), "{err}");
    assert!(evaluated.declaration(&path("tags")).is_some());
    assert!(evaluated.declaration(&path("users.alice")).is_none());
    assert_eq!(evaluated.declarations().len(), 4);
}

#[test]
fn declarations_alone_do_not_look_at_definitions() {
    let io = MemoryIo::new()
        .with_file("/m/options.imago", OPTIONS)
        .with_file(
            "/m/bad.imago",
            "{ imports = [ ./options.imago ]; nosuch = 1; }",
        );
    let ev = Evaluator::new(Rc::new(io), Rc::new(NoStore));
    let sources = vec![ModuleSource::Path(PathBuf::from("/m/bad.imago"))];
    let declared = declare_modules(&ev, sources.clone(), Vec::new()).unwrap();
    assert_eq!(declared.option_docs(&ev).unwrap().len(), 5);
    let err = eval_modules(&ev, sources, Vec::new()).err().unwrap();
    assert_eq!(err.code().0, "E0301");
}

#[test]
fn special_args_reach_modules_and_values_can_be_modules() {
    let ev = Evaluator::new(Rc::new(MemoryIo::new()), Rc::new(NoStore));
    let module = ev
        .eval_source(
            "<inline>",
            "{ lib, greeting, ... }: { options.x = lib.mkOption { type = lib.types.str; default = greeting; }; }",
            std::path::Path::new("/"),
        )
        .unwrap();
    let evaluated = eval_modules(
        &ev,
        vec![ModuleSource::Value {
            value: module,
            name: "<inline>".into(),
        }],
        vec![("greeting".into(), Value::string("hi"))],
    )
    .unwrap();
    let x = evaluated.value_at(&ev, &path("x")).unwrap();
    assert_eq!(x.as_str(), Some("hi"));
}

#[test]
fn eval_modules_in_the_language_reports_module_errors() {
    let io = MemoryIo::new().with_file(
        "/m/a.imago",
        r#"{ lib, ... }:
        let r = lib.evalModules { modules = [ { options.x = lib.mkOption { type = lib.types.int; }; config.x = "no"; } ]; };
        in { options.y = lib.mkOption { type = lib.types.int; }; config.y = r.config.x; }"#,
    );
    let ev = Evaluator::new(Rc::new(io), Rc::new(NoStore));
    // `y` is defined in a user's file, so evaluating the modules merges it
    // (and so the inner evaluation) and reports the error.
    let Err(err) = eval_modules(
        &ev,
        vec![ModuleSource::Path(PathBuf::from("/m/a.imago"))],
        Vec::new(),
    ) else {
        panic!("the inner type error was not reported");
    };
    let text = render(&err.diagnostics(), ev.sources(), false);
    assert!(text.contains("E0302"), "{text}");
    assert!(text.contains("/m/a.imago:2:"), "{text}");
}

/// Hostile input: a configuration with thousands of unknown options, some
/// inside submodules, is reported in one run, in bounded output, quickly.
#[test]
fn thousands_of_unknown_options_give_a_bounded_report() {
    let mut text = String::from("{\n  imports = [ ./options.imago ];\n");
    for i in 0..3000 {
        text.push_str(&format!("  unknown{i} = {i};\n"));
    }
    for i in 0..500 {
        text.push_str(&format!("  users.u{i}.nohome = \"x\";\n"));
    }
    text.push_str("}\n");
    let io = MemoryIo::new()
        .with_file("/m/options.imago", OPTIONS)
        .with_file("/m/big.imago", &text);
    let result = imago_lang::eval::with_large_stack(move || {
        let ev = Evaluator::new(Rc::new(io), Rc::new(NoStore));
        let started = std::time::Instant::now();
        let err = eval_modules(
            &ev,
            vec![ModuleSource::Path(PathBuf::from("/m/big.imago"))],
            Vec::new(),
        )
        .err()
        .expect("the unknown options were not reported");
        let elapsed = started.elapsed();
        let diags = err.diagnostics();
        let rendered = render(&diags, ev.sources(), false);
        (elapsed, diags.len(), rendered)
    })
    .unwrap();
    let (elapsed, count, rendered) = result;
    assert!(
        elapsed < std::time::Duration::from_secs(20),
        "took {elapsed:?}"
    );
    assert_eq!(count, imago_lang::modules::problems::MAX_REPORTED);
    assert!(
        rendered.contains("and 3480 more errors not shown"),
        "{rendered}"
    );
    assert!(rendered.lines().count() < 400, "{rendered}");
}
