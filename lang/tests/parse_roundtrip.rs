//! Property tests: printing any tree and parsing it back gives the same tree
//! (after normalisation), and parsing arbitrary text never panics.

#[path = "parse/support.rs"]
#[allow(dead_code)]
mod support;

use imago_lang::ast::{
    AttrKey, AttrPath, BinOp, Binding, Expr, ExprKind, Ident, Param, PathAnchor, PathLit,
    PatternEntry, StrPart, UnaryOp,
};
use imago_lang::parser::parse;
use imago_lang::printer::print;
use imago_lang::source::{FileId, Span};
use proptest::prelude::*;
use smol_str::SmolStr;
use support::normalize;

const Z: Span = Span {
    file: FileId(0),
    start: 0,
    end: 0,
};

fn e(kind: ExprKind) -> Expr {
    Expr { kind, span: Z }
}

const KEYWORDS: [&str; 10] = [
    "if", "then", "else", "let", "in", "rec", "with", "assert", "inherit", "or",
];

fn ident() -> impl Strategy<Value = SmolStr> {
    "[a-zA-Z_][a-zA-Z0-9_'-]{0,5}"
        .prop_filter("keyword", |s| !KEYWORDS.contains(&s.as_str()))
        .prop_map(SmolStr::from)
}

/// Text with the characters that need care in strings.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(vec!['$', '{', '}', '\\', '"', '\'', '\n', '\r', '\t', 'a', ' ']),
            1 => any::<char>(),
        ],
        0..8,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

fn path_segment() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._+-]{1,4}"
}

fn attr_path(inner: BoxedStrategy<Expr>) -> impl Strategy<Value = AttrPath> {
    prop::collection::vec(
        prop_oneof![
            3 => ident().prop_map(|name| AttrKey::Static { name, span: Z }),
            1 => text().prop_map(|t| AttrKey::Static { name: SmolStr::from(t), span: Z }),
            1 => inner.prop_map(AttrKey::Dynamic),
        ],
        1..3,
    )
    .prop_map(|keys| AttrPath { keys, span: Z })
}

fn binding(inner: BoxedStrategy<Expr>) -> impl Strategy<Value = Binding> {
    prop_oneof![
        3 => (attr_path(inner.clone()), inner.clone()).prop_map(|(path, value)| Binding::Assign {
            path,
            value,
            span: Z,
        }),
        1 => (
            prop::option::of(inner),
            prop::collection::vec(prop_oneof![ident(), text().prop_map(SmolStr::from)], 0..3),
        )
            .prop_map(|(from, names)| Binding::Inherit {
                from: from.map(Box::new),
                names: names.into_iter().map(|name| Ident { name, span: Z }).collect(),
                span: Z,
            }),
    ]
}

fn str_parts(inner: BoxedStrategy<Expr>) -> impl Strategy<Value = Vec<StrPart>> {
    prop::collection::vec(
        prop_oneof![
            2 => text().prop_map(StrPart::Lit),
            1 => inner.prop_map(StrPart::Interp),
        ],
        0..4,
    )
}

fn path_lit(inner: BoxedStrategy<Expr>) -> impl Strategy<Value = PathLit> {
    (
        prop::sample::select(vec!["./", "../", "/"]),
        prop::collection::vec(path_segment(), 1..3),
        prop::collection::vec((inner, prop::option::of(path_segment())), 0..2),
    )
        .prop_map(|(prefix, segs, rest)| {
            let anchor = if prefix == "/" {
                PathAnchor::Absolute
            } else {
                PathAnchor::Relative
            };
            let mut parts = vec![StrPart::Lit(format!("{prefix}{}", segs.join("/")))];
            for (interp, tail) in rest {
                parts.push(StrPart::Interp(interp));
                if let Some(t) = tail {
                    parts.push(StrPart::Lit(format!("/{t}")));
                }
            }
            PathLit { anchor, parts }
        })
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        (0i64..=i64::MAX).prop_map(|n| e(ExprKind::Int(n))),
        (prop::num::f64::POSITIVE | prop::num::f64::ZERO)
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(|x| e(ExprKind::Float(x))),
        ident().prop_map(|v| e(ExprKind::Var(v))),
        text().prop_map(|t| e(ExprKind::Str(vec![StrPart::Lit(t)]))),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(5, 48, 4, |inner| {
        let inner = inner.boxed();
        let b = |x: Expr| Box::new(x);
        prop_oneof![
            str_parts(inner.clone()).prop_map(|p| e(ExprKind::Str(p))),
            path_lit(inner.clone()).prop_map(|p| e(ExprKind::Path(p))),
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| e(ExprKind::List(v))),
            (
                any::<bool>(),
                prop::collection::vec(binding(inner.clone()), 0..3)
            )
                .prop_map(|(rec, bindings)| e(ExprKind::Attrs { rec, bindings })),
            (
                prop::collection::vec(binding(inner.clone()), 0..3),
                inner.clone()
            )
                .prop_map(move |(bindings, body)| e(ExprKind::Let {
                    bindings,
                    body: b(body)
                })),
            (ident(), inner.clone()).prop_map(move |(name, body)| e(ExprKind::Lambda {
                param: Box::new(Param::Ident(Ident { name, span: Z })),
                body: b(body),
            })),
            (
                prop::collection::btree_map(ident(), prop::option::of(inner.clone()), 0..3),
                any::<bool>(),
                prop::option::of(ident()),
                inner.clone()
            )
                .prop_filter("distinct names", |(entries, _, bind, _)| {
                    bind.as_ref().is_none_or(|b| !entries.contains_key(b))
                })
                .prop_map(move |(entries, ellipsis, bind, body)| e(ExprKind::Lambda {
                    param: Box::new(Param::Pattern {
                        entries: entries
                            .into_iter()
                            .map(|(name, default)| PatternEntry {
                                name: Ident { name, span: Z },
                                default,
                            })
                            .collect(),
                        ellipsis,
                        bind: bind.map(|name| Ident { name, span: Z }),
                    }),
                    body: b(body),
                })),
            (inner.clone(), inner.clone()).prop_map(move |(f, a)| e(ExprKind::Apply {
                func: b(f),
                arg: b(a)
            })),
            (
                inner.clone(),
                attr_path(inner.clone()),
                prop::option::of(inner.clone())
            )
                .prop_map(move |(x, path, d)| e(ExprKind::Select {
                    expr: b(x),
                    path,
                    default: d.map(b),
                })),
            (inner.clone(), attr_path(inner.clone()))
                .prop_map(move |(x, path)| e(ExprKind::HasAttr { expr: b(x), path })),
            (inner.clone(), inner.clone(), inner.clone()).prop_map(move |(c, t, f)| e(
                ExprKind::If {
                    cond: b(c),
                    then: b(t),
                    else_: b(f),
                }
            )),
            (inner.clone(), inner.clone()).prop_map(move |(x, y)| e(ExprKind::With {
                env: b(x),
                body: b(y)
            })),
            (inner.clone(), inner.clone()).prop_map(move |(x, y)| e(ExprKind::Assert {
                cond: b(x),
                body: b(y)
            })),
            (
                prop::sample::select(vec![UnaryOp::Neg, UnaryOp::Not]),
                inner.clone()
            )
                .prop_map(move |(op, x)| e(ExprKind::Unary { op, expr: b(x) })),
            (
                prop::sample::select(vec![
                    BinOp::Concat,
                    BinOp::Mul,
                    BinOp::Div,
                    BinOp::Add,
                    BinOp::Sub,
                    BinOp::Update,
                    BinOp::Lt,
                    BinOp::Le,
                    BinOp::Gt,
                    BinOp::Ge,
                    BinOp::Eq,
                    BinOp::Ne,
                    BinOp::And,
                    BinOp::Or,
                    BinOp::Impl,
                ]),
                inner.clone(),
                inner.clone()
            )
                .prop_map(move |(op, l, r)| e(ExprKind::Binary {
                    op,
                    lhs: b(l),
                    rhs: b(r),
                })),
            inner.prop_map(move |x| e(ExprKind::Paren(b(x)))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn print_then_parse_gives_the_same_tree(tree in expr()) {
        let printed = print(&tree);
        let parsed = parse(FileId(0), &printed);
        prop_assert!(parsed.errors.is_empty(), "errors {:?} in\n{}", parsed.errors, printed);
        prop_assert_eq!(normalize(&parsed.expr), normalize(&tree), "printed:\n{}", printed);
    }

    #[test]
    fn parse_never_panics(text in ".{0,200}") {
        let parsed = parse(FileId(0), &text);
        if parsed.errors.is_empty() {
            let printed = print(&parsed.expr);
            let again = parse(FileId(0), &printed);
            prop_assert!(again.errors.is_empty(), "{:?}\n{}", again.errors, printed);
            prop_assert_eq!(normalize(&again.expr), normalize(&parsed.expr));
        }
    }

    #[test]
    fn parse_never_panics_on_language_soup(
        parts in prop::collection::vec(
            prop::sample::select(vec![
                "a", "b.c", " ", "\n", "(", ")", "[", "]", "{", "}", "${", "\"", "''", "'", ";", ":", ",",
                "@", "?", "...", ".", "=", "==", "!", "-", "+", "*", "/", "//", "++", "->", "&&", "||",
                "<", ">", "if", "then", "else", "let", "in", "rec", "with", "assert", "inherit", "or",
                "1", "2.5", "./p", "/q", "x:", "$", "\\", "#", "/*", "*/", "~/", "<n>", "é",
            ]),
            0..60,
        )
    ) {
        let text: String = parts.concat();
        let parsed = parse(FileId(0), &text);
        for err in &parsed.errors {
            prop_assert!(err.span().end as usize <= text.len());
        }
        if parsed.errors.is_empty() {
            let printed = print(&parsed.expr);
            let again = parse(FileId(0), &printed);
            prop_assert!(again.errors.is_empty(), "{:?}\n{}\nfrom\n{}", again.errors, printed, text);
            prop_assert_eq!(normalize(&again.expr), normalize(&parsed.expr));
        }
    }
}

/// A chain of prefix operators prints without parentheses inside it: they
/// would count as nesting, and a chain that parses within the limit would
/// print to text beyond it (found by the `parse` fuzz target).
#[test]
fn prefix_operator_chains_print_without_inner_parentheses() {
    let deep = format!("{}x", "-!".repeat(250));
    for text in [
        deep.as_str(),
        "-!a + b",
        "(-!a) + b",
        "!-a + b",
        "(!-a) + b",
        "- -!a",
        "!!-(a + b)",
        "f (-!a) b",
        "-!a == b",
    ] {
        let parsed = parse(FileId(0), text);
        assert!(parsed.errors.is_empty(), "{text}: {:?}", parsed.errors);
        let printed = print(&parsed.expr);
        let again = parse(FileId(0), &printed);
        assert!(
            again.errors.is_empty(),
            "{text} printed as {printed}: {:?}",
            again.errors
        );
        assert_eq!(
            normalize(&again.expr),
            normalize(&parsed.expr),
            "{text} printed as {printed}"
        );
    }
    assert_eq!(print(&parse(FileId(0), "-!a").expr), "-!a");
}
