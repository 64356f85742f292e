//! Focused parser tests: the shape of the tree for each construct (as an
//! S-expression), operator precedence, spans, error codes and messages, and
//! hostile inputs (deep nesting, long chains, odd bytes).

// Tests and benches read their fixtures from disk (lang/clippy.toml forbids
// file system, environment and clock access in the language itself).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "parse/support.rs"]
#[allow(dead_code)]
mod support;

use imago_lang::ast::{Binding, ExprKind};
use imago_lang::diag::IntoDiagnostic;
use imago_lang::parser::{MAX_DEPTH, Parse, ParseError, parse};
use imago_lang::source::FileId;
use support::sexpr;

fn p(src: &str) -> Parse {
    parse(FileId(7), src)
}

/// Parses without errors and dumps the tree.
fn tree(src: &str) -> String {
    let parsed = p(src);
    assert!(parsed.errors.is_empty(), "{src:?}: {:?}", parsed.errors);
    sexpr(&parsed.expr)
}

/// The error codes reported for `src`.
fn codes(src: &str) -> Vec<&'static str> {
    p(src).errors.iter().map(|e| e.code().0).collect()
}

fn first_message(src: &str) -> String {
    let parsed = p(src);
    let e = parsed.errors.first().expect("an error");
    e.to_string()
}

#[test]
fn precedence_follows_nix() {
    let cases = [
        ("a + b * c", "(+ a (* b c))"),
        ("a * b + c", "(+ (* a b) c)"),
        ("a - b - c", "(- (- a b) c)"),
        ("a ++ b ++ c", "(++ a (++ b c))"),
        ("a // b // c", "(// a (// b c))"),
        ("a -> b -> c", "(-> a (-> b c))"),
        ("a || b && c", "(|| a (&& b c))"),
        ("a && b || c", "(|| (&& a b) c)"),
        ("a == b && c != d", "(&& (== a b) (!= c d))"),
        ("a < b == c", "(== (< a b) c)"),
        ("!a + b", "(not (+ a b))"),
        ("!a == b", "(== (not a) b)"),
        ("a // !b", "(// a (not b))"),
        ("a * !b + c", "(* a (not (+ b c)))"),
        ("-a ? b", "(? (neg a) \"b\")"),
        ("-a.b", "(neg (. a \"b\"))"),
        ("- f x", "(neg (app f x))"),
        ("f -1", "(- f 1)"),
        ("a ? b.c", "(? a \"b\".\"c\")"),
        ("a ++ b ? c", "(++ a (? b \"c\"))"),
        ("a ? b ? c.d", "(? (? a \"b\") \"c\".\"d\")"),
        ("f a b", "(app (app f a) b)"),
        ("f a.b c", "(app (app f (. a \"b\")) c)"),
        ("a.b or c d", "(app (. a \"b\" or c) d)"),
        ("x or y", "(app (app x or) y)"),
        ("a + b -> c // d", "(-> (+ a b) (// c d))"),
        ("a->b", "(> a- b)"),
        ("- - a", "(neg (neg a))"),
        ("a / b", "(/ a b)"),
        ("a//b", "(// a b)"),
    ];
    for (src, want) in cases {
        assert_eq!(tree(src), want, "{src}");
    }
}

#[test]
fn non_associative_operators_are_rejected() {
    for src in ["a == b == c", "a < b < c", "a != b == c", "a <= b > c"] {
        assert_eq!(codes(src), vec!["E0109"], "{src}");
    }
    assert_eq!(
        first_message("a == b != c"),
        "operator `!=` cannot follow `==` without parentheses"
    );
}

#[test]
fn literals() {
    assert_eq!(tree("42"), "42");
    assert_eq!(tree("9223372036854775807"), "9223372036854775807");
    assert_eq!(
        tree("[ 1.5 .5 1e3 1.5e-3 2E+2 1. 0.25 ]"),
        "(list 1.5f 0.5f 1000.0f 0.0015f 200.0f 1.0f 0.25f)"
    );
    assert_eq!(tree("true"), "true");
    assert_eq!(tree("null"), "null");
    assert_eq!(tree("x'"), "x'");
    assert_eq!(tree("a-b_c'd"), "a-b_c'd");
    assert_eq!(codes("9223372036854775808"), vec!["E0106"]);
    assert_eq!(codes("1e400"), vec!["E0106"]);
}

#[test]
fn strings_and_escapes() {
    assert_eq!(
        tree(r#""a\nb\tc\rd\\e\"f\$g\${h}""#),
        r#"(str "a\nb\tc\rd\\e\"f$g${h}")"#
    );
    assert_eq!(tree(r#""$${x}""#), r#"(str "$${x}")"#);
    assert_eq!(tree(r#""a${b}c""#), r#"(str "a" ${b} "c")"#);
    assert_eq!(tree(r#""${a}${b}""#), "(str ${a} ${b})");
    assert_eq!(tree(r#""""#), "(str)");
    assert_eq!(tree(r#""\q""#), r#"(str "q")"#);
    assert_eq!(tree("\"a\r\nb\rc\""), r#"(str "a\nb\nc")"#);
    assert_eq!(
        tree(r#""${ { a = "}"; }.a }""#),
        r#"(str ${(. (attrs ("a" = (str "}"))) "a")})"#
    );
    assert_eq!(tree(r#""$""#), r#"(str "$")"#);
    assert_eq!(tree("\"é${x}ü\""), r#"(str "é" ${x} "ü")"#);
}

#[test]
fn indented_strings_strip_like_nix() {
    // Each expected value was checked against `nix-instantiate --eval`.
    let cases = [
        ("''\n  foo\n    bar\n  ''", "foo\n  bar\n"),
        ("''\n  foo\n    bar\n  baz''", "foo\n  bar\nbaz"),
        ("''  foo\n  bar''", "foo\nbar"),
        ("''\n\n  a\n\n  b\n''", "\na\n\nb\n"),
        (
            "''\n  ''$x ''${y} '''q ''\\n ''\\t ''\\x\n  ''",
            "$x ${y} ''q \n\t x\n",
        ),
        ("''\n  a'b '$ $' $$ $${x}\n''", "a'b '$ $' $$ $${x}\n"),
        ("''   \n   a\n    b\n   ''", "a\n b\n"),
        ("''''", ""),
        ("''\n  x\n   ''\\ y\n  ''", "x\n  y\n"),
    ];
    for (src, want) in cases {
        let parsed = p(src);
        assert!(parsed.errors.is_empty(), "{src:?}");
        let ExprKind::Str(parts) = &parsed.expr.kind else {
            panic!("not a string: {src:?}");
        };
        let got: String = parts
            .iter()
            .map(|part| match part {
                imago_lang::ast::StrPart::Lit(s) => s.as_str(),
                imago_lang::ast::StrPart::Interp(_) => "<interp>",
            })
            .collect();
        assert_eq!(got, want, "{src:?}");
    }
    // Interpolations end a line's indentation.
    assert_eq!(
        tree("''\n    ${x} a\n  b\n''"),
        r#"(str "  " ${x} " a\nb\n")"#
    );
}

#[test]
fn paths() {
    assert_eq!(tree("./a/b.nix"), r#"(path-rel "./a/b.nix")"#);
    assert_eq!(tree("../x"), r#"(path-rel "../x")"#);
    assert_eq!(tree("/etc/x"), r#"(path-abs "/etc/x")"#);
    assert_eq!(tree("a/b"), r#"(path-rel "./a/b")"#);
    assert_eq!(tree("./."), r#"(path-rel "./.")"#);
    assert_eq!(tree("./a/${b}c/d"), r#"(path-rel "./a/" ${b} "c/d")"#);
    assert_eq!(tree("./a${b}"), r#"(path-rel "./a" ${b})"#);
    assert_eq!(tree("/${x}"), r#"(path-abs "/" ${x})"#);
    assert_eq!(
        tree("f ./a ./b"),
        r#"(app (app f (path-rel "./a")) (path-rel "./b"))"#
    );
    assert_eq!(codes("./a/"), vec!["E0107"]);
    assert_eq!(codes("./a/${b}/"), vec!["E0107"]);
    assert_eq!(
        first_message("[ ./dir/ ]"),
        "path `./dir/` has a trailing slash"
    );
}

#[test]
fn unsupported_literals_say_so() {
    assert_eq!(codes("http://example.org/x"), vec!["E0108"]);
    assert_eq!(codes("<nixpkgs>"), vec!["E0108"]);
    assert_eq!(codes("import <nixpkgs/lib> { }"), vec!["E0108"]);
    assert_eq!(codes("~/x"), vec!["E0108"]);
    assert_eq!(codes("let { body = 1; }"), vec!["E0108"]);
    assert_eq!(
        first_message("x:x"),
        "unquoted URI literals are not supported"
    );
    assert!(first_message("<nixpkgs>").contains("search path"));
    // `a < b` and `a <b` are still comparisons.
    assert_eq!(tree("a < b"), "(< a b)");
    assert_eq!(tree("a <b"), "(< a b)");
}

#[test]
fn attribute_sets() {
    assert_eq!(
        tree(
            r#"{ a = 1; b.c = 2; "q r" = 3; ${e} = 4; "x${y}" = 5; inherit a; inherit (s) x y; }"#
        ),
        r#"(attrs ("a" = 1) ("b"."c" = 2) ("q r" = 3) (${e} = 4) (${(str "x" ${y})} = 5) (inherit "a") (inherit from s "x" "y"))"#
    );
    assert_eq!(
        tree("rec { a = 1; b = a; }"),
        r#"(rec-attrs ("a" = 1) ("b" = a))"#
    );
    assert_eq!(tree("{ }"), "(attrs)");
    assert_eq!(tree("{ or = 1; }.or"), r#"(. (attrs ("or" = 1)) "or")"#);
    assert_eq!(
        tree(r#"{ inherit "a b" or; }"#),
        r#"(attrs (inherit "a b" "or"))"#
    );
    // Paths that share a prefix stay separate bindings.
    let parsed = p("{ a.b.c = 1; a.d = 2; }");
    let ExprKind::Attrs { bindings, .. } = &parsed.expr.kind else {
        panic!("not a set");
    };
    assert_eq!(bindings.len(), 2);
    assert!(matches!(&bindings[0], Binding::Assign { path, .. } if path.keys.len() == 3));
    assert_eq!(codes("{ inherit ${x}; }"), vec!["E0112"]);
    assert_eq!(codes(r#"{ inherit "a${x}"; }"#), vec!["E0112"]);
}

#[test]
fn selection() {
    assert_eq!(tree("a.b.c"), r#"(. a "b"."c")"#);
    assert_eq!(tree(r#"a."b c".${d}"#), r#"(. a "b c".${d})"#);
    assert_eq!(tree("a.b or c.d or e"), r#"(. a "b" or (. c "d" or e))"#);
    assert_eq!(tree("(f x).y"), r#"(. (paren (app f x)) "y")"#);
    assert_eq!(tree("a.or"), r#"(. a "or")"#);
    assert_eq!(tree(r#"a."${b}""#), r#"(. a ${(str ${b})})"#);
}

#[test]
fn functions() {
    assert_eq!(tree("x: y: x"), "(fn x (fn y x))");
    assert_eq!(tree("{ a, b ? 2, ... }: a"), "(fn { a b ? 2 ... } a)");
    assert_eq!(tree("args@{ a, ... }: a"), "(fn { a ... }@args a)");
    assert_eq!(tree("{ a }@args: a"), "(fn { a }@args a)");
    assert_eq!(tree("{ }: 1"), "(fn { } 1)");
    assert_eq!(tree("{ ... }: 1"), "(fn { ... } 1)");
    assert_eq!(tree("{ a, }: a"), "(fn { a } a)");
    assert_eq!(
        tree("{ a ? { b = 1; } }: a"),
        r#"(fn { a ? (attrs ("b" = 1)) } a)"#
    );
    assert_eq!(tree("map (x: x) l"), "(app (app map (paren (fn x x))) l)");
    assert_eq!(codes("{ a, a }: a"), vec!["E0111"]);
    assert_eq!(codes("a@{ a }: a"), vec!["E0111"]);
    assert_eq!(codes("{ ..., a }: a"), vec!["E0104"]);
}

#[test]
fn keywords_forms() {
    assert_eq!(
        tree("let a = 1; b = a; in b"),
        r#"(let ("a" = 1) ("b" = a) in b)"#
    );
    assert_eq!(tree("let in 1"), "(let in 1)");
    assert_eq!(
        tree("let inherit (x) y; in y"),
        "(let (inherit from x \"y\") in y)"
    );
    assert_eq!(tree("if a then b else c"), "(if a b c)");
    assert_eq!(tree("with a; b"), "(with a b)");
    assert_eq!(tree("assert a; b"), "(assert a b)");
    assert_eq!(tree("with a; with b; x: c"), "(with a (with b (fn x c)))");
    assert_eq!(tree("[ f x (g y) ]"), "(list f x (paren (app g y)))");
    assert_eq!(tree("[ ]"), "(list)");
    // As in Nix, these need parentheses.
    assert_eq!(codes("1 + if a then b else c"), vec!["E0104"]);
    assert_eq!(codes("[ -1 ]"), vec!["E0104"]);
}

#[test]
fn comments_and_whitespace() {
    assert_eq!(tree("# c\n/* d */ a /* e\n f */ + # g\n b"), "(+ a b)");
    assert_eq!(tree("a/* c */b"), "(app a b)");
    assert_eq!(tree("{\r\n  a = 1;\r\n}\r\n"), r#"(attrs ("a" = 1))"#);
    assert_eq!(codes("a /* open"), vec!["E0103"]);
}

#[test]
fn spans_point_at_the_source() {
    let src = "let x = f  1; in x.y";
    let parsed = p(src);
    assert!(parsed.errors.is_empty());
    let e = &parsed.expr;
    assert_eq!((e.span.start, e.span.end), (0, src.len() as u32));
    assert_eq!(e.span.file, FileId(7));
    let ExprKind::Let { bindings, body } = &e.kind else {
        panic!("not a let");
    };
    let Binding::Assign { path, value, span } = &bindings[0] else {
        panic!("not an assignment");
    };
    assert_eq!(&src[span.range()], "x = f  1;");
    assert_eq!(&src[path.span.range()], "x");
    assert_eq!(&src[value.span.range()], "f  1");
    assert_eq!(&src[body.span.range()], "x.y");
    let ExprKind::Select { path, .. } = &body.kind else {
        panic!("not a select");
    };
    assert_eq!(&src[path.keys[0].span().range()], "y");
}

#[test]
fn several_errors_are_reported_with_recovery() {
    let src = "{\n  a = 1\n  b = 2;\n  c = if x = y then 1 else 2;\n  d = [ 1, 2 ];\n  e = ;\n}\n";
    let parsed = p(src);
    let msgs: Vec<String> = parsed.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        msgs,
        vec![
            "expected `;` after the binding of `a`, found `b`",
            "expected `then` after the condition, found `=`",
            "expected a list element or `]`, found `,`",
            "expected an expression, found `;`",
        ]
    );
    // Recovery kept the bindings.
    let ExprKind::Attrs { bindings, .. } = &parsed.expr.kind else {
        panic!("not a set");
    };
    assert_eq!(bindings.len(), 5);
    // Every error has a hint or a secondary label where one helps.
    let d = parsed.errors[0].to_diagnostic();
    assert_eq!(d.code.0, "E0104");
    assert!(d.hint.as_deref().is_some_and(|h| h.contains("add `;`")));
    let d = parsed.errors[1].to_diagnostic();
    assert!(d.hint.as_deref().is_some_and(|h| h.contains("==")));
}

#[test]
fn unclosed_brackets_point_at_the_opener() {
    let parsed = p("[ 1 2 (3\n");
    let spans: Vec<(u32, &str)> = parsed
        .errors
        .iter()
        .map(|e| (e.span().start, e.code().0))
        .collect();
    assert_eq!(spans, vec![(0, "E0105"), (6, "E0105")]);
    let parsed = p("{ a = 1;");
    assert!(matches!(
        parsed.errors.as_slice(),
        [ParseError::Unclosed {
            what: "attribute set",
            ..
        }]
    ));
    // A mismatched closer names the opener.
    let parsed = p("( a ]");
    assert!(matches!(
        &parsed.errors[0],
        ParseError::Expected { related: Some((s, _)), .. } if s.start == 0
    ));
}

#[test]
fn unterminated_strings_point_at_their_start() {
    let parsed = p("{ a = \"foo;\n b = 2; }");
    assert_eq!(parsed.errors.len(), 1, "{:?}", parsed.errors);
    assert!(
        matches!(parsed.errors[0], ParseError::UnterminatedString { indented: false, span } if span.start == 6)
    );
    let parsed = p("x: ''\n  abc");
    assert!(
        matches!(parsed.errors[0], ParseError::UnterminatedString { indented: true, span } if span.start == 3)
    );
    assert_eq!(codes("\"${ \"a\" "), vec!["E0102"]);
}

#[test]
fn unexpected_characters() {
    assert_eq!(codes("a & b"), vec!["E0101"]);
    assert_eq!(codes("a % b"), vec!["E0101"]);
    assert_eq!(codes("a \u{0}"), vec!["E0101"]);
    assert_eq!(first_message("a ☃ b"), "unexpected character `☃`");
    let d = p("a & b").errors[0].to_diagnostic();
    assert!(d.hint.as_deref().is_some_and(|h| h.contains("&&")));
}

#[test]
fn every_syntax_error_code_is_documented() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/errors.md"))
        .expect("docs/errors.md");
    let section = doc
        .split("## Syntax errors (E01xx)")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a syntax errors section");
    // One input per error kind.
    let inputs = [
        "a & b",
        "\"open",
        "/* open",
        "a = 1;",
        "[ 1",
        "99999999999999999999",
        "./a/",
        "<nixpkgs>",
        "a == b == c",
        "{ a, a }: a",
        "{ inherit ${a}; }",
    ];
    let mut seen = Vec::new();
    for src in inputs {
        for err in p(src).errors {
            let code = err.code().0;
            assert!(
                section.contains(&format!("| {code} |")),
                "{code} is not in docs/errors.md"
            );
            seen.push(code);
        }
    }
    let deep = "(".repeat(600);
    seen.extend(p(&deep).errors.iter().map(|e| e.code().0));
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 12, "{seen:?}");
    assert!(section.contains("| E0113 |"));
}

#[test]
fn errors_are_capped() {
    let parsed = p(&"% ".repeat(10_000));
    assert_eq!(parsed.errors.len(), imago_lang::parser::MAX_ERRORS);
    let parsed = p(&"{ a = ; } ".repeat(10_000));
    assert!(parsed.errors.len() <= imago_lang::parser::MAX_ERRORS);
}

#[test]
fn trailing_input_is_an_error() {
    assert_eq!(first_message("a = 1;"), "expected end of file, found `=`");
    assert_eq!(first_message("1 )"), "expected end of file, found `)`");
}

/// Runs `f` on a thread with a small stack, as the test harness and the
/// evaluator's workers have.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no stack overflow");
}

fn assert_too_deep(src: String) {
    on_small_stack(move || {
        let parsed = p(&src);
        let n = parsed
            .errors
            .iter()
            .filter(|e| matches!(e, ParseError::TooDeep { limit, .. } if *limit == MAX_DEPTH))
            .count();
        assert_eq!(n, 1, "{:?}", &parsed.errors[..parsed.errors.len().min(3)]);
        assert_eq!(parsed.errors[0].code().0, "E0110");
    });
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let n = 100_000;
    assert_too_deep("(".repeat(n) + "1" + &")".repeat(n));
    assert_too_deep("(".repeat(n));
    assert_too_deep("[".repeat(n));
    assert_too_deep("{ a = ".repeat(n));
    assert_too_deep("-".repeat(n) + "1");
    assert_too_deep("!".repeat(n) + "a");
    assert_too_deep("x: ".repeat(n) + "x");
    assert_too_deep("let a = 1; in ".repeat(n) + "a");
    assert_too_deep("with a; ".repeat(n) + "a");
    assert_too_deep("assert a; ".repeat(n) + "a");
    assert_too_deep("if a then ".repeat(n) + "a");
    assert_too_deep("\"${".repeat(n));
    assert_too_deep("a.b or ".repeat(n) + "c");
    assert_too_deep(vec!["1"; n].join(" + "));
    assert_too_deep(vec!["1"; n].join(" ++ "));
    assert_too_deep(vec!["1"; n].join(" -> "));
    assert_too_deep("f ".repeat(n));
    assert_too_deep("a ? ${".repeat(n));
    assert_too_deep("{ ${".repeat(n));
    assert_too_deep("./a${".repeat(n));
    assert_too_deep("{ a ? ".repeat(n));
    assert_too_deep(vec!["(a"; 300].join(" + ") + &")".repeat(300));
}

#[test]
fn nesting_below_the_limit_parses() {
    on_small_stack(|| {
        let n = (MAX_DEPTH - 12) as usize;
        for src in [
            "(".repeat(n) + "1" + &")".repeat(n),
            "[".repeat(n) + &"]".repeat(n),
            "x: ".repeat(n) + "x",
            "-".repeat(n) + "1",
            vec!["a"; n].join(" + "),
            "{ a = ".repeat(n / 2) + "1" + &"; }".repeat(n / 2),
            "\"${".repeat(n / 2) + "a" + &"}\"".repeat(n / 2),
        ] {
            let parsed = p(&src);
            assert!(parsed.errors.is_empty(), "{:?}", &parsed.errors[..1]);
            let printed = imago_lang::printer::print(&parsed.expr);
            assert!(p(&printed).errors.is_empty());
        }
    });
}

#[test]
fn long_flat_inputs_are_fine() {
    let n = 200_000;
    let list = format!("[ {} ]", vec!["1"; n].join(" "));
    let parsed = p(&list);
    assert!(parsed.errors.is_empty());
    assert!(matches!(&parsed.expr.kind, ExprKind::List(v) if v.len() == n));
    let set = format!(
        "{{ {} }}",
        (0..n).map(|i| format!("a{i} = {i};")).collect::<String>()
    );
    assert!(p(&set).errors.is_empty());
    let path = format!("a.{}", vec!["b"; n].join("."));
    assert!(p(&path).errors.is_empty());
}

#[test]
fn odd_inputs_do_not_panic() {
    for src in [
        "",
        " ",
        "\"",
        "''",
        "'''",
        "${",
        "}",
        "]",
        ")",
        "\\",
        "$",
        "'",
        "./",
        "/",
        "//",
        "...",
        ".",
        "..",
        "~",
        "~/",
        "<",
        "<a",
        "<a>",
        "x@",
        "x@{",
        "{",
        "{ a",
        "{ a,",
        "{ a ?",
        "{ a }",
        "{ ... ",
        "''\\",
        "''$",
        "'$",
        "$'",
        "1.",
        "1e",
        "1e+",
        ".e1",
        "a.",
        "a.b or",
        "inherit",
        "let",
        "let a",
        "let a =",
        "if",
        "rec",
        "rec x",
        "\u{feff}a",
        "\"\\",
        "''${",
        "./a${",
        "./a${b",
        "a ?",
        "a ? ${",
        "\"${}\"",
        "{ ${} = 1; }",
        "\u{0}",
        "\"\u{0}\"",
        "''\u{0}''",
        "''\r\n''",
        "\r",
    ] {
        let _ = p(src);
    }
}
