//! Property tests: integer arithmetic agrees with checked Rust arithmetic, and
//! printed data values (without negative numbers) evaluate back to
//! themselves.

#![allow(clippy::unwrap_used)]

use imago_lang::eval::Evaluator;
use imago_lang::hook::NoStore;
use imago_lang::io::MemoryIo;
use proptest::prelude::*;
use std::path::Path;
use std::rc::Rc;

#[derive(Debug, Clone)]
enum Arith {
    Lit(i64),
    Bin(Box<Arith>, char, Box<Arith>),
}

impl Arith {
    fn text(&self) -> String {
        match self {
            Arith::Lit(i) if *i < 0 => format!("({i})"),
            Arith::Lit(i) => i.to_string(),
            Arith::Bin(a, op, b) => format!("({} {op} {})", a.text(), b.text()),
        }
    }

    /// `None` on overflow or division by zero.
    fn value(&self) -> Option<i64> {
        match self {
            Arith::Lit(i) => Some(*i),
            Arith::Bin(a, op, b) => {
                let (a, b) = (a.value()?, b.value()?);
                match op {
                    '+' => a.checked_add(b),
                    '-' => a.checked_sub(b),
                    '*' => a.checked_mul(b),
                    _ => a.checked_div(b),
                }
            }
        }
    }
}

fn arith() -> impl Strategy<Value = Arith> {
    let leaf = prop_oneof![
        (-1000i64..1000).prop_map(Arith::Lit),
        any::<i64>().prop_map(|i| Arith::Lit(i.max(i64::MIN + 1))),
    ];
    leaf.prop_recursive(4, 32, 2, |inner| {
        (
            inner.clone(),
            prop::sample::select(vec!['+', '-', '*', '/']),
            inner,
        )
            .prop_map(|(a, op, b)| Arith::Bin(Box::new(a), op, Box::new(b)))
    })
}

/// Data values written as source text.
fn data() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        "[a-z][a-zA-Z0-9_-]{0,6}",
        "[ -~]{0,6}",
        Just("if".to_string()),
        Just("${x}".to_string()),
    ];
    let leaf = prop_oneof![
        // Non-negative: like Nix, `[ -1 ]` prints without the parentheses
        // that source text needs.
        (0..i64::MAX).prop_map(|i| i.to_string()),
        Just("null".to_string()),
        Just("true".to_string()),
        "[ -~éü\n\t]{0,8}".prop_map(|s| {
            let mut out = String::new();
            imago_lang::eval::print::quote_into(&s, &mut out);
            out
        }),
    ];
    leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[ {} ]", v.join(" "))),
            prop::collection::vec((key.clone(), inner), 0..4).prop_map(|kv| {
                let mut seen = std::collections::BTreeSet::new();
                let body: Vec<String> = kv
                    .into_iter()
                    .filter(|(k, _)| seen.insert(k.clone()))
                    .map(|(k, v)| {
                        let mut name = String::new();
                        imago_lang::eval::print::quote_into(&k, &mut name);
                        format!("{name} = {v};")
                    })
                    .collect();
                format!("{{ {} }}", body.join(" "))
            }),
        ]
    })
}

fn evaluator() -> Evaluator {
    Evaluator::new(Rc::new(MemoryIo::new()), Rc::new(NoStore))
}

proptest! {
    #[test]
    fn integer_arithmetic_matches_checked_rust(e in arith()) {
        let ev = evaluator();
        let got = ev.eval_source("<prop>", &e.text(), Path::new("/")).and_then(|v| ev.display(&v, true));
        match (e.value(), got) {
            (Some(v), Ok(text)) => prop_assert_eq!(text, v.to_string()),
            (None, Err(err)) => prop_assert!(matches!(err.code().0, "E0212" | "E0204"), "{}", err),
            (expected, got) => prop_assert!(false, "{}: expected {:?}, got {:?}", e.text(), expected, got.map_err(|e| e.to_string())),
        }
    }

    #[test]
    fn printed_data_evaluates_to_itself(src in data()) {
        let ev = evaluator();
        let v = ev.eval_source("<prop>", &src, Path::new("/")).unwrap();
        let printed = ev.display(&v, true).unwrap();
        let again = ev.eval_source("<printed>", &printed, Path::new("/")).unwrap();
        prop_assert_eq!(ev.display(&again, true).unwrap(), printed);
    }
}
