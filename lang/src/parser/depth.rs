//! Bounding the depth of syntax trees.
//!
//! The parser counts its own recursion, but loops build nested nodes too:
//! `f a b c ...` is a left-leaning chain of applications and `1 + 1 + ...` one
//! of additions, as deep as the input is long. Everything that walks a tree
//! recursively (the printer, the evaluator, even `Drop`) would overflow the
//! stack on such a chain. [`check`] therefore measures every finished tree
//! with an explicit stack and replaces one deeper than [`super::MAX_DEPTH`] by
//! an error node; [`drop_deep`] frees any tree without recursion.

use super::MAX_DEPTH;
use super::error::ParseError;
use crate::ast::{AttrKey, AttrPath, Binding, Expr, ExprKind, Param, StrPart};
use crate::source::Span;

/// Calls `f` on each direct child expression of `e`.
fn for_each_child<'a>(e: &'a Expr, mut f: impl FnMut(&'a Expr)) {
    let path = |p: &'a AttrPath, f: &mut dyn FnMut(&'a Expr)| {
        for k in &p.keys {
            if let AttrKey::Dynamic(e) = k {
                f(e);
            }
        }
    };
    let parts = |ps: &'a [StrPart], f: &mut dyn FnMut(&'a Expr)| {
        for p in ps {
            if let StrPart::Interp(e) = p {
                f(e);
            }
        }
    };
    let bindings = |bs: &'a [Binding], f: &mut dyn FnMut(&'a Expr)| {
        for b in bs {
            match b {
                Binding::Assign { path: p, value, .. } => {
                    for k in &p.keys {
                        if let AttrKey::Dynamic(e) = k {
                            f(e);
                        }
                    }
                    f(value);
                }
                Binding::Inherit { from, .. } => {
                    if let Some(e) = from {
                        f(e);
                    }
                }
            }
        }
    };
    match &e.kind {
        ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Var(_) | ExprKind::Error => {}
        ExprKind::Str(ps) => parts(ps, &mut f),
        ExprKind::Path(p) => parts(&p.parts, &mut f),
        ExprKind::List(items) => items.iter().for_each(f),
        ExprKind::Attrs { bindings: bs, .. } => bindings(bs, &mut f),
        ExprKind::Let { bindings: bs, body } => {
            bindings(bs, &mut f);
            f(body);
        }
        ExprKind::Lambda { param, body } => {
            if let Param::Pattern { entries, .. } = param {
                for entry in entries {
                    if let Some(d) = &entry.default {
                        f(d);
                    }
                }
            }
            f(body);
        }
        ExprKind::Apply { func, arg } => {
            f(func);
            f(arg);
        }
        ExprKind::Select {
            expr,
            path: p,
            default,
        } => {
            f(expr);
            path(p, &mut f);
            if let Some(d) = default {
                f(d);
            }
        }
        ExprKind::HasAttr { expr, path: p } => {
            f(expr);
            path(p, &mut f);
        }
        ExprKind::If { cond, then, else_ } => {
            f(cond);
            f(then);
            f(else_);
        }
        ExprKind::With { env: a, body: b } | ExprKind::Assert { cond: a, body: b } => {
            f(a);
            f(b);
        }
        ExprKind::Binary { lhs, rhs, .. } => {
            f(lhs);
            f(rhs);
        }
        ExprKind::Unary { expr, .. } | ExprKind::Paren(expr) => f(expr),
    }
}

/// The span of the first node found deeper than `limit` levels, if any.
pub(crate) fn too_deep(root: &Expr, limit: u32) -> Option<Span> {
    let mut stack: Vec<(&Expr, u32)> = vec![(root, 1)];
    while let Some((e, d)) = stack.pop() {
        if d > limit {
            return Some(e.span);
        }
        for_each_child(e, |c| stack.push((c, d + 1)));
    }
    None
}

/// Replaces a tree deeper than [`MAX_DEPTH`] by an error node (reporting it
/// unless a depth error is already among `errors`).
pub(crate) fn check(root: Expr, errors: &mut Vec<ParseError>) -> Expr {
    let Some(span) = too_deep(&root, MAX_DEPTH) else {
        return root;
    };
    if !errors
        .iter()
        .any(|e| matches!(e, ParseError::TooDeep { .. }))
    {
        errors.push(ParseError::TooDeep {
            limit: MAX_DEPTH,
            span,
        });
    }
    let whole = root.span;
    drop_deep(root);
    Expr {
        kind: ExprKind::Error,
        span: whole,
    }
}

/// Drops a tree of any depth without recursion.
pub fn drop_deep(root: Expr) {
    let mut stack = vec![root];
    while let Some(e) = stack.pop() {
        move_children(e.kind, &mut stack);
    }
}

fn move_children(kind: ExprKind, out: &mut Vec<Expr>) {
    fn path(p: AttrPath, out: &mut Vec<Expr>) {
        for k in p.keys {
            if let AttrKey::Dynamic(e) = k {
                out.push(e);
            }
        }
    }
    fn parts(ps: Vec<StrPart>, out: &mut Vec<Expr>) {
        for p in ps {
            if let StrPart::Interp(e) = p {
                out.push(e);
            }
        }
    }
    fn bindings(bs: Vec<Binding>, out: &mut Vec<Expr>) {
        for b in bs {
            match b {
                Binding::Assign { path: p, value, .. } => {
                    path(p, out);
                    out.push(value);
                }
                Binding::Inherit { from, .. } => {
                    if let Some(e) = from {
                        out.push(*e);
                    }
                }
            }
        }
    }
    match kind {
        ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Var(_) | ExprKind::Error => {}
        ExprKind::Str(ps) => parts(ps, out),
        ExprKind::Path(p) => parts(p.parts, out),
        ExprKind::List(items) => out.extend(items),
        ExprKind::Attrs { bindings: bs, .. } => bindings(bs, out),
        ExprKind::Let { bindings: bs, body } => {
            bindings(bs, out);
            out.push(*body);
        }
        ExprKind::Lambda { param, body } => {
            if let Param::Pattern { entries, .. } = param {
                out.extend(entries.into_iter().filter_map(|e| e.default));
            }
            out.push(*body);
        }
        ExprKind::Apply { func, arg } => {
            out.push(*func);
            out.push(*arg);
        }
        ExprKind::Select {
            expr,
            path: p,
            default,
        } => {
            out.push(*expr);
            path(p, out);
            if let Some(d) = default {
                out.push(*d);
            }
        }
        ExprKind::HasAttr { expr, path: p } => {
            out.push(*expr);
            path(p, out);
        }
        ExprKind::If { cond, then, else_ } => {
            out.push(*cond);
            out.push(*then);
            out.push(*else_);
        }
        ExprKind::With { env: a, body: b } | ExprKind::Assert { cond: a, body: b } => {
            out.push(*a);
            out.push(*b);
        }
        ExprKind::Binary { lhs, rhs, .. } => {
            out.push(*lhs);
            out.push(*rhs);
        }
        ExprKind::Unary { expr, .. } | ExprKind::Paren(expr) => out.push(*expr),
    }
}
