//! Bounding the depth of syntax trees.
//!
//! The parser counts its own recursion, but loops build nested nodes too:
//! `f a b c ...` is a left-leaning chain of applications and `1 + 1 + ...` one
//! of additions, as deep as the input is long. Everything that walks a tree
//! recursively (the printer, the evaluator, even `Drop`) would overflow the
//! stack on such a chain. [`check`] therefore measures every finished tree
//! (recursing at most [`super::MAX_DEPTH`] levels) and replaces one deeper
//! than that by an error node; [`drop_deep`] frees any tree without
//! recursion.

use super::MAX_DEPTH;
use super::error::ParseError;
use crate::ast::{AttrKey, AttrPath, Binding, Expr, ExprKind, Param, StrPart};
use crate::source::Span;

/// The span of the first node found deeper than `limit` levels, if any.
///
/// Recursive, but never deeper than `limit` frames: the walk stops at the
/// first node past the limit.
pub(crate) fn too_deep(root: &Expr, limit: u32) -> Option<Span> {
    walk(root, limit).err()
}

/// Checks that `e` and everything below it fit in `left` levels.
fn walk(e: &Expr, left: u32) -> Result<(), Span> {
    if left == 0 {
        return Err(e.span);
    }
    let left = left - 1;
    let path = |p: &AttrPath| -> Result<(), Span> {
        for k in &p.keys {
            if let AttrKey::Dynamic(e) = k {
                walk(e, left)?;
            }
        }
        Ok(())
    };
    let parts = |ps: &[StrPart]| -> Result<(), Span> {
        for p in ps {
            if let StrPart::Interp(e) = p {
                walk(e, left)?;
            }
        }
        Ok(())
    };
    let bindings = |bs: &[Binding]| -> Result<(), Span> {
        for b in bs {
            match b {
                Binding::Assign { path: p, value, .. } => {
                    path(p)?;
                    walk(value, left)?;
                }
                Binding::Inherit { from, .. } => {
                    if let Some(e) = from {
                        walk(e, left)?;
                    }
                }
            }
        }
        Ok(())
    };
    match &e.kind {
        ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Var(_) | ExprKind::Error => Ok(()),
        ExprKind::Str(ps) => parts(ps),
        ExprKind::Path(p) => parts(&p.parts),
        ExprKind::List(items) => items.iter().try_for_each(|i| walk(i, left)),
        ExprKind::Attrs { bindings: bs, .. } => bindings(bs),
        ExprKind::Let { bindings: bs, body } => {
            bindings(bs)?;
            walk(body, left)
        }
        ExprKind::Lambda { param, body } => {
            if let Param::Pattern { entries, .. } = &**param {
                for entry in entries {
                    if let Some(d) = &entry.default {
                        walk(d, left)?;
                    }
                }
            }
            walk(body, left)
        }
        ExprKind::Select {
            expr,
            path: p,
            default,
        } => {
            walk(expr, left)?;
            path(p)?;
            match default {
                Some(d) => walk(d, left),
                None => Ok(()),
            }
        }
        ExprKind::HasAttr { expr, path: p } => {
            walk(expr, left)?;
            path(p)
        }
        ExprKind::If { cond, then, else_ } => {
            walk(cond, left)?;
            walk(then, left)?;
            walk(else_, left)
        }
        ExprKind::Apply { func: a, arg: b }
        | ExprKind::With { env: a, body: b }
        | ExprKind::Assert { cond: a, body: b }
        | ExprKind::Binary { lhs: a, rhs: b, .. } => {
            walk(a, left)?;
            walk(b, left)
        }
        ExprKind::Unary { expr, .. } | ExprKind::Paren(expr) => walk(expr, left),
    }
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
            if let Param::Pattern { entries, .. } = *param {
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
