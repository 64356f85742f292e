//! Helpers shared by the parser tests and the fuzz target: tree
//! normalisation for round-trip comparisons and an S-expression dump that
//! shows a tree's structure unambiguously.

use imago_lang::ast::{
    AttrKey, AttrPath, Binding, Expr, ExprKind, Ident, Param, PathLit, PatternEntry, StrPart,
};
use imago_lang::source::{FileId, Span};

const ZERO: Span = Span {
    file: FileId(0),
    start: 0,
    end: 0,
};

/// The tree with every span zeroed, parentheses unwrapped, and string parts
/// merged (adjacent literals joined, empty literals dropped).
pub fn normalize(e: &Expr) -> Expr {
    let kind = match &e.kind {
        ExprKind::Paren(inner) => return normalize(inner),
        ExprKind::Int(n) => ExprKind::Int(*n),
        ExprKind::Float(x) => ExprKind::Float(*x),
        ExprKind::Str(parts) => ExprKind::Str(norm_parts(parts)),
        ExprKind::Path(p) => ExprKind::Path(PathLit {
            anchor: p.anchor,
            parts: norm_parts(&p.parts),
        }),
        ExprKind::Var(v) => ExprKind::Var(v.clone()),
        ExprKind::List(items) => ExprKind::List(items.iter().map(normalize).collect()),
        ExprKind::Attrs { rec, bindings } => ExprKind::Attrs {
            rec: *rec,
            bindings: bindings.iter().map(norm_binding).collect(),
        },
        ExprKind::Let { bindings, body } => ExprKind::Let {
            bindings: bindings.iter().map(norm_binding).collect(),
            body: Box::new(normalize(body)),
        },
        ExprKind::Lambda { param, body } => ExprKind::Lambda {
            param: Box::new(match &**param {
                Param::Ident(id) => Param::Ident(norm_ident(id)),
                Param::Pattern {
                    entries,
                    ellipsis,
                    bind,
                } => Param::Pattern {
                    entries: entries
                        .iter()
                        .map(|en| PatternEntry {
                            name: norm_ident(&en.name),
                            default: en.default.as_ref().map(normalize),
                        })
                        .collect(),
                    ellipsis: *ellipsis,
                    bind: bind.as_ref().map(norm_ident),
                },
            }),
            body: Box::new(normalize(body)),
        },
        ExprKind::Apply { func, arg } => ExprKind::Apply {
            func: Box::new(normalize(func)),
            arg: Box::new(normalize(arg)),
        },
        ExprKind::Select {
            expr,
            path,
            default,
        } => ExprKind::Select {
            expr: Box::new(normalize(expr)),
            path: norm_path(path),
            default: default.as_ref().map(|d| Box::new(normalize(d))),
        },
        ExprKind::HasAttr { expr, path } => ExprKind::HasAttr {
            expr: Box::new(normalize(expr)),
            path: norm_path(path),
        },
        ExprKind::If { cond, then, else_ } => ExprKind::If {
            cond: Box::new(normalize(cond)),
            then: Box::new(normalize(then)),
            else_: Box::new(normalize(else_)),
        },
        ExprKind::With { env, body } => ExprKind::With {
            env: Box::new(normalize(env)),
            body: Box::new(normalize(body)),
        },
        ExprKind::Assert { cond, body } => ExprKind::Assert {
            cond: Box::new(normalize(cond)),
            body: Box::new(normalize(body)),
        },
        ExprKind::Unary { op, expr } => ExprKind::Unary {
            op: *op,
            expr: Box::new(normalize(expr)),
        },
        ExprKind::Binary { op, lhs, rhs } => ExprKind::Binary {
            op: *op,
            lhs: Box::new(normalize(lhs)),
            rhs: Box::new(normalize(rhs)),
        },
        ExprKind::Error => ExprKind::Error,
    };
    Expr { kind, span: ZERO }
}

fn norm_ident(id: &Ident) -> Ident {
    Ident {
        name: id.name.clone(),
        span: ZERO,
    }
}

fn norm_parts(parts: &[StrPart]) -> Vec<StrPart> {
    let mut out: Vec<StrPart> = Vec::new();
    for p in parts {
        match p {
            StrPart::Lit(s) if s.is_empty() => {}
            StrPart::Lit(s) => match out.last_mut() {
                Some(StrPart::Lit(prev)) => prev.push_str(s),
                _ => out.push(StrPart::Lit(s.clone())),
            },
            StrPart::Interp(e) => out.push(StrPart::Interp(normalize(e))),
        }
    }
    out
}

fn norm_path(p: &AttrPath) -> AttrPath {
    AttrPath {
        keys: p
            .keys
            .iter()
            .map(|k| match k {
                AttrKey::Static { name, .. } => AttrKey::Static {
                    name: name.clone(),
                    span: ZERO,
                },
                AttrKey::Dynamic(e) => AttrKey::Dynamic(normalize(e)),
            })
            .collect(),
        span: ZERO,
    }
}

fn norm_binding(b: &Binding) -> Binding {
    match b {
        Binding::Assign { path, value, .. } => Binding::Assign {
            path: norm_path(path),
            value: normalize(value),
            span: ZERO,
        },
        Binding::Inherit { from, names, .. } => Binding::Inherit {
            from: from.as_ref().map(|f| Box::new(normalize(f))),
            names: names.iter().map(norm_ident).collect(),
            span: ZERO,
        },
    }
}

/// A fully bracketed dump of the tree: `(+ a (* b c))`, with strings and
/// names quoted the Rust way so that nothing is ambiguous.
pub fn sexpr(e: &Expr) -> String {
    let mut out = String::new();
    dump(e, &mut out);
    out
}

fn dump_parts(tag: &str, parts: &[StrPart], out: &mut String) {
    out.push('(');
    out.push_str(tag);
    for p in parts {
        out.push(' ');
        match p {
            StrPart::Lit(s) => out.push_str(&format!("{s:?}")),
            StrPart::Interp(e) => {
                out.push_str("${");
                dump(e, out);
                out.push('}');
            }
        }
    }
    out.push(')');
}

fn dump_path(p: &AttrPath, out: &mut String) {
    for (i, k) in p.keys.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        match k {
            AttrKey::Static { name, .. } => out.push_str(&format!("{:?}", name.as_str())),
            AttrKey::Dynamic(e) => {
                out.push_str("${");
                dump(e, out);
                out.push('}');
            }
        }
    }
}

fn dump_bindings(bs: &[Binding], out: &mut String) {
    for b in bs {
        out.push(' ');
        match b {
            Binding::Assign { path, value, .. } => {
                out.push('(');
                dump_path(path, out);
                out.push_str(" = ");
                dump(value, out);
                out.push(')');
            }
            Binding::Inherit { from, names, .. } => {
                out.push_str("(inherit");
                if let Some(f) = from {
                    out.push_str(" from ");
                    dump(f, out);
                }
                for n in names {
                    out.push_str(&format!(" {:?}", n.name.as_str()));
                }
                out.push(')');
            }
        }
    }
}

fn dump(e: &Expr, out: &mut String) {
    match &e.kind {
        ExprKind::Int(n) => out.push_str(&n.to_string()),
        ExprKind::Float(x) => out.push_str(&format!("{x:?}f")),
        ExprKind::Str(parts) => dump_parts("str", parts, out),
        ExprKind::Path(p) => dump_parts(
            match p.anchor {
                imago_lang::ast::PathAnchor::Relative => "path-rel",
                imago_lang::ast::PathAnchor::Absolute => "path-abs",
            },
            &p.parts,
            out,
        ),
        ExprKind::Var(v) => out.push_str(v),
        ExprKind::List(items) => {
            out.push_str("(list");
            for i in items {
                out.push(' ');
                dump(i, out);
            }
            out.push(')');
        }
        ExprKind::Attrs { rec, bindings } => {
            out.push_str(if *rec { "(rec-attrs" } else { "(attrs" });
            dump_bindings(bindings, out);
            out.push(')');
        }
        ExprKind::Let { bindings, body } => {
            out.push_str("(let");
            dump_bindings(bindings, out);
            out.push_str(" in ");
            dump(body, out);
            out.push(')');
        }
        ExprKind::Lambda { param, body } => {
            out.push_str("(fn ");
            match &**param {
                Param::Ident(id) => out.push_str(&id.name),
                Param::Pattern {
                    entries,
                    ellipsis,
                    bind,
                } => {
                    out.push('{');
                    for en in entries {
                        out.push(' ');
                        out.push_str(&en.name.name);
                        if let Some(d) = &en.default {
                            out.push_str(" ? ");
                            dump(d, out);
                        }
                    }
                    if *ellipsis {
                        out.push_str(" ...");
                    }
                    out.push_str(" }");
                    if let Some(b) = bind {
                        out.push('@');
                        out.push_str(&b.name);
                    }
                }
            }
            out.push(' ');
            dump(body, out);
            out.push(')');
        }
        ExprKind::Apply { func, arg } => {
            out.push_str("(app ");
            dump(func, out);
            out.push(' ');
            dump(arg, out);
            out.push(')');
        }
        ExprKind::Select {
            expr,
            path,
            default,
        } => {
            out.push_str("(. ");
            dump(expr, out);
            out.push(' ');
            dump_path(path, out);
            if let Some(d) = default {
                out.push_str(" or ");
                dump(d, out);
            }
            out.push(')');
        }
        ExprKind::HasAttr { expr, path } => {
            out.push_str("(? ");
            dump(expr, out);
            out.push(' ');
            dump_path(path, out);
            out.push(')');
        }
        ExprKind::If { cond, then, else_ } => {
            out.push_str("(if ");
            dump(cond, out);
            out.push(' ');
            dump(then, out);
            out.push(' ');
            dump(else_, out);
            out.push(')');
        }
        ExprKind::With { env, body } => {
            out.push_str("(with ");
            dump(env, out);
            out.push(' ');
            dump(body, out);
            out.push(')');
        }
        ExprKind::Assert { cond, body } => {
            out.push_str("(assert ");
            dump(cond, out);
            out.push(' ');
            dump(body, out);
            out.push(')');
        }
        ExprKind::Unary { op, expr } => {
            out.push_str(match op {
                imago_lang::ast::UnaryOp::Neg => "(neg ",
                imago_lang::ast::UnaryOp::Not => "(not ",
            });
            dump(expr, out);
            out.push(')');
        }
        ExprKind::Binary { op, lhs, rhs } => {
            out.push('(');
            out.push_str(op.as_str());
            out.push(' ');
            dump(lhs, out);
            out.push(' ');
            dump(rhs, out);
            out.push(')');
        }
        ExprKind::Paren(inner) => {
            out.push_str("(paren ");
            dump(inner, out);
            out.push(')');
        }
        ExprKind::Error => out.push_str("<error>"),
    }
}
