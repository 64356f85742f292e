//! Printing an AST back to source text.
//!
//! [`print()`] writes an expression as valid source that parses back to the
//! same tree (up to spans, parentheses and how string literals are split).
//! Parentheses are added only where precedence requires them: each node has a
//! binding level (the same table as the parser's, see
//! [`crate::parser`]) and a child printed in a position that needs a tighter
//! level is wrapped. Indented strings are printed as ordinary `"..."` strings
//! with escapes. Attribute sets and `let` put one binding per line; lists stay
//! on one line while short.
//!
//! [`ExprKind::Error`] nodes print as `<error>`, which does not parse: only
//! trees without syntax errors round-trip.

use crate::ast::{
    AttrKey, AttrPath, BinOp, Binding, Expr, ExprKind, Param, PathLit, StrPart, UnaryOp,
};
use std::fmt::Write as _;

/// Source text for `expr`.
pub fn print(expr: &Expr) -> String {
    let mut p = Printer {
        out: String::new(),
        indent: 0,
    };
    p.expr(expr, TOP);
    p.out
}

// Binding levels, loosest first; operators use the parser's precedences.
const TOP: u8 = 0;
const NOT: u8 = 7;
const HAS_ATTR: u8 = 11;
const NEG: u8 = 12;
const APP: u8 = 13;
const SELECT: u8 = 14;
const ATOM: u8 = 15;

/// Precedence and associativity (-1 left, 0 none, 1 right) of an operator;
/// kept in step with `parser::expr::binop_prec`.
fn op_level(op: BinOp) -> (u8, i8) {
    match op {
        BinOp::Impl => (1, 1),
        BinOp::Or => (2, -1),
        BinOp::And => (3, -1),
        BinOp::Eq | BinOp::Ne => (4, 0),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => (5, 0),
        BinOp::Update => (6, 1),
        BinOp::Add | BinOp::Sub => (8, -1),
        BinOp::Mul | BinOp::Div => (9, -1),
        BinOp::Concat => (10, 1),
    }
}

fn level(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Lambda { .. }
        | ExprKind::Let { .. }
        | ExprKind::With { .. }
        | ExprKind::Assert { .. }
        | ExprKind::If { .. } => TOP,
        ExprKind::Binary { op, .. } => op_level(*op).0,
        // A chain of prefix operators is printed without parentheses inside
        // it (`-!x`), so it binds like its loosest operator: in `-!a + b`
        // the `!` takes `a + b`.
        ExprKind::Unary { op, expr } => {
            let own = match op {
                UnaryOp::Not => NOT,
                UnaryOp::Neg => NEG,
            };
            if matches!(expr.kind, ExprKind::Unary { .. }) {
                own.min(level(expr))
            } else {
                own
            }
        }
        ExprKind::HasAttr { .. } => HAS_ATTR,
        ExprKind::Apply { .. } => APP,
        ExprKind::Select { .. } => SELECT,
        ExprKind::Int(n) if *n < 0 => NEG,
        ExprKind::Float(x) if x.is_sign_negative() => NEG,
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Str(_)
        | ExprKind::Path(_)
        | ExprKind::Var(_)
        | ExprKind::List(_)
        | ExprKind::Attrs { .. }
        | ExprKind::Paren(_)
        | ExprKind::Error => ATOM,
    }
}

const KEYWORDS: [&str; 10] = [
    "if", "then", "else", "let", "in", "rec", "with", "assert", "inherit", "or",
];

/// Whether `s` can be written bare as a name (`or` is allowed as an
/// attribute name but not as a variable).
fn is_name(s: &str, allow_or: bool) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '\'' | '-'))
        && (!KEYWORDS.contains(&s) || (allow_or && s == "or"))
}

struct Printer {
    out: String,
    indent: usize,
}

impl Printer {
    fn newline(&mut self) {
        self.out.push('\n');
        for _ in 0..self.indent {
            self.out.push(' ');
        }
    }

    /// Prints `e` where at least binding level `min` is needed.
    fn expr(&mut self, e: &Expr, min: u8) {
        if level(e) < min {
            self.out.push('(');
            self.kind(e);
            self.out.push(')');
        } else {
            self.kind(e);
        }
    }

    fn kind(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Int(n) => {
                let _ = write!(self.out, "{n}");
            }
            ExprKind::Float(x) => {
                // `{:?}` keeps a `.` or an exponent, so it reads back as a float.
                let _ = write!(self.out, "{x:?}");
            }
            ExprKind::Str(parts) => self.string(parts),
            ExprKind::Path(p) => self.path(p),
            ExprKind::Var(name) => {
                if name == "or" {
                    // A bare `or` after a selection would read as its default.
                    self.out.push_str("(or)");
                } else {
                    self.out.push_str(name);
                }
            }
            ExprKind::List(items) => self.list(items),
            ExprKind::Attrs { rec, bindings } => {
                if *rec {
                    self.out.push_str("rec ");
                }
                if bindings.is_empty() {
                    self.out.push_str("{ }");
                    return;
                }
                self.out.push('{');
                self.indent += 2;
                for b in bindings {
                    self.newline();
                    self.binding(b);
                }
                self.indent -= 2;
                self.newline();
                self.out.push('}');
            }
            ExprKind::Let { bindings, body } => {
                self.out.push_str("let");
                self.indent += 2;
                for b in bindings {
                    self.newline();
                    self.binding(b);
                }
                self.indent -= 2;
                self.newline();
                self.out.push_str("in ");
                self.expr(body, TOP);
            }
            ExprKind::Lambda { param, body } => {
                self.param(param);
                self.out.push_str(": ");
                self.expr(body, TOP);
            }
            ExprKind::Apply { func, arg } => {
                self.expr(func, APP);
                self.out.push(' ');
                self.expr(arg, SELECT);
            }
            ExprKind::Select {
                expr,
                path,
                default,
            } => {
                // `1.x` and `./a.x` would lex as one number or path.
                if matches!(
                    expr.kind,
                    ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Path(_)
                ) {
                    self.out.push('(');
                    self.kind(expr);
                    self.out.push(')');
                } else {
                    self.expr(expr, ATOM);
                }
                self.out.push('.');
                self.attr_path(path);
                if let Some(d) = default {
                    self.out.push_str(" or ");
                    self.expr(d, SELECT);
                }
            }
            ExprKind::HasAttr { expr, path } => {
                self.expr(expr, HAS_ATTR);
                self.out.push_str(" ? ");
                self.attr_path(path);
            }
            ExprKind::If { cond, then, else_ } => {
                self.out.push_str("if ");
                self.expr(cond, TOP);
                self.out.push_str(" then ");
                self.expr(then, TOP);
                self.out.push_str(" else ");
                self.expr(else_, TOP);
            }
            ExprKind::With { env, body } => {
                self.out.push_str("with ");
                self.expr(env, TOP);
                self.out.push_str("; ");
                self.expr(body, TOP);
            }
            ExprKind::Assert { cond, body } => {
                self.out.push_str("assert ");
                self.expr(cond, TOP);
                self.out.push_str("; ");
                self.expr(body, TOP);
            }
            ExprKind::Unary { op, expr } => {
                // A chain of prefix operators (`- -a`, `!!a`, `-!a`) needs
                // no parentheses inside it, which would count as nesting:
                // the parser reads it back the same way, and `level` makes
                // the parent bracket the chain as a whole when it must.
                let inner = match &expr.kind {
                    ExprKind::Unary { op: inner, .. } => Some(*inner),
                    _ => None,
                };
                match (op, inner) {
                    (UnaryOp::Neg, Some(UnaryOp::Neg)) => self.out.push_str("- "),
                    (UnaryOp::Neg, _) => self.out.push('-'),
                    (UnaryOp::Not, _) => self.out.push('!'),
                }
                if inner.is_some() {
                    self.kind(expr);
                } else if *op == UnaryOp::Neg {
                    let at = self.out.len();
                    self.expr(expr, APP);
                    // `-./a` would lex as one path.
                    if matches!(self.out.as_bytes().get(at), Some(b'.' | b'/')) {
                        self.out.insert(at, ' ');
                    }
                } else {
                    self.expr(expr, NOT + 1);
                }
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let (prec, assoc) = op_level(*op);
                let (lmin, rmin) = match assoc {
                    -1 => (prec, prec + 1),
                    1 => (prec + 1, prec),
                    _ => (prec + 1, prec + 1),
                };
                self.expr(lhs, lmin);
                self.out.push(' ');
                self.out.push_str(op.as_str());
                self.out.push(' ');
                self.expr(rhs, rmin);
            }
            ExprKind::Paren(inner) => {
                self.out.push('(');
                self.expr(inner, TOP);
                self.out.push(')');
            }
            ExprKind::Error => self.out.push_str("<error>"),
        }
    }

    fn list(&mut self, items: &[Expr]) {
        if items.is_empty() {
            self.out.push_str("[ ]");
            return;
        }
        let printed: Vec<String> = items
            .iter()
            .map(|item| {
                let mut p = Printer {
                    out: String::new(),
                    indent: self.indent + 2,
                };
                p.expr(item, SELECT);
                p.out
            })
            .collect();
        let width: usize = printed.iter().map(|s| s.len() + 1).sum();
        if width <= 60 && printed.iter().all(|s| !s.contains('\n')) {
            self.out.push('[');
            for s in &printed {
                self.out.push(' ');
                self.out.push_str(s);
            }
            self.out.push_str(" ]");
        } else {
            self.out.push('[');
            self.indent += 2;
            for s in &printed {
                self.newline();
                self.out.push_str(s);
            }
            self.indent -= 2;
            self.newline();
            self.out.push(']');
        }
    }

    fn binding(&mut self, b: &Binding) {
        match b {
            Binding::Assign { path, value, .. } => {
                self.attr_path(path);
                self.out.push_str(" = ");
                self.expr(value, TOP);
                self.out.push(';');
            }
            Binding::Inherit { from, names, .. } => {
                self.out.push_str("inherit");
                if let Some(from) = from {
                    self.out.push_str(" (");
                    self.expr(from, TOP);
                    self.out.push(')');
                }
                for n in names {
                    self.out.push(' ');
                    self.name(&n.name);
                }
                self.out.push(';');
            }
        }
    }

    fn param(&mut self, param: &Param) {
        match param {
            Param::Ident(id) => self.out.push_str(&id.name),
            Param::Pattern {
                entries,
                ellipsis,
                bind,
            } => {
                if entries.is_empty() && !ellipsis {
                    self.out.push_str("{ }");
                } else {
                    self.out.push_str("{ ");
                    for (i, entry) in entries.iter().enumerate() {
                        if i > 0 {
                            self.out.push_str(", ");
                        }
                        self.out.push_str(&entry.name.name);
                        if let Some(d) = &entry.default {
                            self.out.push_str(" ? ");
                            self.expr(d, TOP);
                        }
                    }
                    if *ellipsis {
                        if !entries.is_empty() {
                            self.out.push_str(", ");
                        }
                        self.out.push_str("...");
                    }
                    self.out.push_str(" }");
                }
                if let Some(b) = bind {
                    self.out.push('@');
                    self.out.push_str(&b.name);
                }
            }
        }
    }

    /// An attribute name: bare when possible, else quoted.
    fn name(&mut self, name: &str) {
        if is_name(name, true) {
            self.out.push_str(name);
        } else {
            self.string(&[StrPart::Lit(name.to_string())]);
        }
    }

    fn attr_path(&mut self, path: &AttrPath) {
        for (i, key) in path.keys.iter().enumerate() {
            if i > 0 {
                self.out.push('.');
            }
            match key {
                AttrKey::Static { name, .. } => self.name(name),
                AttrKey::Dynamic(e) => match &e.kind {
                    ExprKind::Str(parts)
                        if parts.iter().any(|p| matches!(p, StrPart::Interp(_))) =>
                    {
                        self.string(parts)
                    }
                    _ => {
                        self.out.push_str("${");
                        self.expr(e, TOP);
                        self.out.push('}');
                    }
                },
            }
        }
    }

    fn string(&mut self, parts: &[StrPart]) {
        self.out.push('"');
        let mut i = 0;
        while i < parts.len() {
            match &parts[i] {
                StrPart::Interp(e) => {
                    self.out.push_str("${");
                    self.expr(e, TOP);
                    self.out.push('}');
                    i += 1;
                }
                StrPart::Lit(_) => {
                    // Adjacent literals print as one, so that a `$` at the end
                    // of one sees a `{` starting the next.
                    let mut text = String::new();
                    while let Some(StrPart::Lit(s)) = parts.get(i) {
                        text.push_str(s);
                        i += 1;
                    }
                    let interp_next = i < parts.len();
                    self.string_text(&text, interp_next);
                }
            }
        }
        self.out.push('"');
    }

    /// Escapes literal string text; `interp_next` says whether an
    /// interpolation follows it.
    fn string_text(&mut self, s: &str, interp_next: bool) {
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                '$' => {
                    let brace = match chars.peek() {
                        Some('{') => true,
                        Some(_) => false,
                        None => interp_next,
                    };
                    self.out.push_str(if brace { "\\$" } else { "$" });
                }
                c => self.out.push(c),
            }
        }
    }

    fn path(&mut self, p: &PathLit) {
        for part in &p.parts {
            match part {
                StrPart::Lit(s) => self.out.push_str(s),
                StrPart::Interp(e) => {
                    self.out.push_str("${");
                    self.expr(e, TOP);
                    self.out.push('}');
                }
            }
        }
    }
}
