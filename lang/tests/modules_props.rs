//! Property test: list merging through the whole pipeline matches a model.
//! Random definitions of a `listOf int` option, each with a priority
//! (`mkForce`, plain, `mkDefault`), an order (`mkBefore`, default,
//! `mkAfter`) and maybe a false `mkIf`, spread over modules: the result must
//! be the definitions of the lowest priority, sorted by order, then module
//! order — NixOS's semantics.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use imago_lang::eval::Evaluator;
use imago_lang::hook::NoStore;
use imago_lang::io::MemoryIo;
use imago_lang::modules::{ModuleSource, eval_modules};
use proptest::prelude::*;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::rc::Rc;

#[derive(Debug, Clone)]
struct Def {
    prio: u8,  // 0 mkForce, 1 plain, 2 mkDefault
    order: u8, // 0 mkBefore, 1 default, 2 mkAfter
    enabled: bool,
    items: Vec<i64>,
}

fn def() -> impl Strategy<Value = Def> {
    (
        0u8..3,
        0u8..3,
        any::<bool>(),
        prop::collection::vec(0i64..100, 0..3),
    )
        .prop_map(|(prio, order, enabled, items)| Def {
            prio,
            order,
            enabled,
            items,
        })
}

fn source(d: &Def) -> String {
    let list = format!(
        "[ {} ]",
        d.items
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let ordered = match d.order {
        0 => format!("(lib.mkBefore {list})"),
        1 => list,
        _ => format!("(lib.mkAfter {list})"),
    };
    let prioritised = match d.prio {
        0 => format!("(lib.mkForce {ordered})"),
        1 => ordered,
        _ => format!("(lib.mkDefault {ordered})"),
    };
    format!("(lib.mkIf {} {prioritised})", d.enabled)
}

fn model(defs: &[Def]) -> Vec<i64> {
    let live: Vec<&Def> = defs.iter().filter(|d| d.enabled).collect();
    let Some(best) = live.iter().map(|d| d.prio).min() else {
        return vec![-1]; // the option's default
    };
    let mut winners: Vec<&Def> = live.into_iter().filter(|d| d.prio == best).collect();
    winners.sort_by_key(|d| d.order); // stable: module order within an order
    winners.iter().flat_map(|d| d.items.clone()).collect()
}

fn evaluate(defs: &[Def]) -> Vec<i64> {
    let mut io = MemoryIo::new();
    let mut imports = String::new();
    for (i, d) in defs.iter().enumerate() {
        io.add(
            format!("/p/m{i}.imago"),
            format!("{{ lib, ... }}: {{ xs = {}; }}", source(d)),
        );
        let _ = write!(imports, " ./m{i}.imago");
    }
    io.add(
        "/p/main.imago",
        format!(
            "{{ lib, ... }}: {{ imports = [{imports} ]; options.xs = lib.mkOption {{ type = lib.types.listOf lib.types.int; default = [ (-1) ]; }}; }}"
        ),
    );
    let ev = Evaluator::new(Rc::new(io), Rc::new(NoStore));
    let evaluated = eval_modules(
        &ev,
        vec![ModuleSource::Path(PathBuf::from("/p/main.imago"))],
        Vec::new(),
    )
    .unwrap();
    let json = evaluated.config_json(&ev, None).unwrap();
    json["xs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn list_merging_matches_the_model(defs in prop::collection::vec(def(), 0..6)) {
        prop_assert_eq!(evaluate(&defs), model(&defs));
    }
}
