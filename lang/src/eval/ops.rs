//! Operators: arithmetic with overflow checks, `+` on strings and paths,
//! `//`, `++`, deep equality and ordering.
//!
//! `+` follows Nix: numbers add (an int and a float give a float); a path on
//! the left appends the right operand as text and normalises the result (the
//! text may not depend on store objects); otherwise both sides are coerced to
//! strings as in interpolation and concatenated with their contexts.

use crate::ast::BinOp;
use crate::eval::error::{ErrorKind, EvalError};
use crate::eval::ir::Ir;
use crate::eval::paths::normalize;
use crate::eval::value::{Env, NixString, Value};
use crate::eval::{CoerceMode, Evaluator};
use crate::source::Span;
use std::cmp::Ordering;
use std::path::Path;
use std::rc::Rc;

/// An arithmetic operator shared by the syntax and `builtins.add` etc.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

impl Arith {
    fn symbol(self) -> &'static str {
        match self {
            Arith::Add => "+",
            Arith::Sub => "-",
            Arith::Mul => "*",
            Arith::Div => "/",
        }
    }
}

impl Evaluator {
    pub(crate) fn eval_binary(
        &self,
        op: BinOp,
        lhs: &Ir,
        rhs: &Ir,
        env: &Rc<Env>,
        span: Span,
    ) -> Result<Value, EvalError> {
        match op {
            BinOp::And => {
                let l = self.eval_bool(lhs, env, "the left operand of `&&`")?;
                Ok(Value::Bool(
                    l && self.eval_bool(rhs, env, "the right operand of `&&`")?,
                ))
            }
            BinOp::Or => {
                let l = self.eval_bool(lhs, env, "the left operand of `||`")?;
                Ok(Value::Bool(
                    l || self.eval_bool(rhs, env, "the right operand of `||`")?,
                ))
            }
            BinOp::Impl => {
                let l = self.eval_bool(lhs, env, "the left operand of `->`")?;
                Ok(Value::Bool(
                    !l || self.eval_bool(rhs, env, "the right operand of `->`")?,
                ))
            }
            _ => {
                let l = self.eval(lhs, env)?;
                let r = self.eval(rhs, env)?;
                match op {
                    BinOp::Add => self.add(&l, &r, lhs.span, rhs.span, span),
                    BinOp::Sub => arith(Arith::Sub, &l, &r, lhs.span, rhs.span, span),
                    BinOp::Mul => arith(Arith::Mul, &l, &r, lhs.span, rhs.span, span),
                    BinOp::Div => arith(Arith::Div, &l, &r, lhs.span, rhs.span, span),
                    BinOp::Concat => {
                        let a = expect_list(&l, lhs.span, "`++`")?;
                        let b = expect_list(&r, rhs.span, "`++`")?;
                        let mut out = Vec::with_capacity(a.len() + b.len());
                        out.extend(a.iter().cloned());
                        out.extend(b.iter().cloned());
                        Ok(Value::list(out))
                    }
                    BinOp::Update => {
                        let Value::Attrs(a) = &l else {
                            return Err(EvalError::type_error(
                                "a set on the left of `//`",
                                &l,
                                lhs.span,
                            ));
                        };
                        let Value::Attrs(b) = &r else {
                            return Err(EvalError::type_error(
                                "a set on the right of `//`",
                                &r,
                                rhs.span,
                            ));
                        };
                        if b.entries.is_empty() && b.open.is_none() {
                            return Ok(l.clone());
                        }
                        if a.entries.is_empty() && a.open.is_none() {
                            return Ok(r.clone());
                        }
                        Ok(Value::Attrs(Rc::new(a.update(b))))
                    }
                    BinOp::Eq => Ok(Value::Bool(self.values_equal(&l, &r, span)?)),
                    BinOp::Ne => Ok(Value::Bool(!self.values_equal(&l, &r, span)?)),
                    BinOp::Lt => Ok(Value::Bool(self.less_than(&l, &r, span)?)),
                    BinOp::Gt => Ok(Value::Bool(self.less_than(&r, &l, span)?)),
                    BinOp::Le => Ok(Value::Bool(!self.less_than(&r, &l, span)?)),
                    BinOp::Ge => Ok(Value::Bool(!self.less_than(&l, &r, span)?)),
                    BinOp::And | BinOp::Or | BinOp::Impl => {
                        Err(EvalError::new(ErrorKind::Malformed, span))
                    }
                }
            }
        }
    }

    /// `l + r` on forced values.
    pub(crate) fn add(
        &self,
        l: &Value,
        r: &Value,
        lspan: Span,
        rspan: Span,
        span: Span,
    ) -> Result<Value, EvalError> {
        match (l, r) {
            (Value::Int(_) | Value::Float(_), _) => arith(Arith::Add, l, r, lspan, rspan, span),
            (Value::Path(p), _) => {
                let s = match r {
                    Value::Path(q) => NixString::new(q.to_string_lossy().as_ref()),
                    _ => self.coerce(r, CoerceMode::Interpolate, rspan)?,
                };
                if s.has_context() {
                    return Err(EvalError::invalid(
                        "+",
                        "a string that refers to a store object cannot be appended to a path",
                        rspan,
                    ));
                }
                let text = format!("{}{}", p.to_string_lossy(), s.as_str());
                Ok(Value::Path(Rc::from(normalize(Path::new(&text)))))
            }
            _ => {
                let a = self.coerce(l, CoerceMode::Interpolate, lspan)?;
                let b = self.coerce(r, CoerceMode::Interpolate, rspan)?;
                let mut ctx = a.context_set();
                b.extend_context(&mut ctx);
                let mut text = String::with_capacity(a.as_str().len() + b.as_str().len());
                text.push_str(a.as_str());
                text.push_str(b.as_str());
                Ok(Value::String(NixString::with_context(text, ctx)))
            }
        }
    }

    /// Deep equality (forces both sides as far as needed).
    pub(crate) fn values_equal(&self, a: &Value, b: &Value, span: Span) -> Result<bool, EvalError> {
        let a = self.force_value(a)?;
        let b = self.force_value(b)?;
        Ok(match (&a, &b) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::Int(x), Value::Int(y)) => x == y,
            (Value::Int(x), Value::Float(y)) => (*x as f64) == *y,
            (Value::Float(x), Value::Int(y)) => *x == (*y as f64),
            (Value::Float(x), Value::Float(y)) => x == y,
            (Value::String(x), Value::String(y)) => x.as_str() == y.as_str(),
            (Value::Path(x), Value::Path(y)) => x == y,
            (Value::List(x), Value::List(y)) => {
                if Rc::ptr_eq(x, y) {
                    return Ok(true);
                }
                if x.len() != y.len() {
                    return Ok(false);
                }
                self.enter(0, None, span)?;
                let mut eq = Ok(true);
                for (p, q) in x.iter().zip(y.iter()) {
                    match self.values_equal(p, q, span) {
                        Ok(true) => {}
                        other => {
                            eq = other;
                            break;
                        }
                    }
                }
                self.leave();
                eq?
            }
            (Value::Attrs(x), Value::Attrs(y)) => {
                if Rc::ptr_eq(x, y) {
                    return Ok(true);
                }
                if x.len() != y.len() || x.is_open() != y.is_open() {
                    return Ok(false);
                }
                self.enter(0, None, span)?;
                let mut eq = Ok(true);
                for (p, q) in x.entries().iter().zip(y.entries().iter()) {
                    if p.name != q.name {
                        eq = Ok(false);
                        break;
                    }
                    match self.values_equal(&p.value, &q.value, span) {
                        Ok(true) => {}
                        other => {
                            eq = other;
                            break;
                        }
                    }
                }
                self.leave();
                eq?
            }
            _ => false,
        })
    }

    /// `a < b` for numbers, strings, paths and lists (lexicographically).
    pub(crate) fn less_than(&self, a: &Value, b: &Value, span: Span) -> Result<bool, EvalError> {
        Ok(self.compare(a, b, span)? == Ordering::Less)
    }

    pub(crate) fn compare(&self, a: &Value, b: &Value, span: Span) -> Result<Ordering, EvalError> {
        let a = self.force_value(a)?;
        let b = self.force_value(b)?;
        let incomparable = || {
            EvalError::new(
                ErrorKind::TypeError {
                    expected: format!("a value that can be compared with {}", a.describe()),
                    got: b.describe(),
                },
                span,
            )
        };
        match (&a, &b) {
            (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
            (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(y).ok_or_else(incomparable),
            (Value::Float(x), Value::Int(y)) => {
                x.partial_cmp(&(*y as f64)).ok_or_else(incomparable)
            }
            (Value::Float(x), Value::Float(y)) => Ok(x.partial_cmp(y).unwrap_or(Ordering::Equal)),
            (Value::String(x), Value::String(y)) => Ok(x.as_str().cmp(y.as_str())),
            (Value::Path(x), Value::Path(y)) => Ok(x.as_os_str().cmp(y.as_os_str())),
            (Value::List(x), Value::List(y)) => {
                for (p, q) in x.iter().zip(y.iter()) {
                    self.enter(0, None, span)?;
                    let o = self.compare(p, q, span);
                    self.leave();
                    match o? {
                        Ordering::Equal => {}
                        other => return Ok(other),
                    }
                }
                Ok(x.len().cmp(&y.len()))
            }
            _ => Err(incomparable()),
        }
    }
}

pub(crate) fn expect_list<'v>(
    v: &'v Value,
    span: Span,
    what: &str,
) -> Result<&'v Rc<Vec<Value>>, EvalError> {
    match v {
        Value::List(l) => Ok(l),
        other => Err(EvalError::type_error(
            format!("a list for {what}"),
            other,
            span,
        )),
    }
}

/// Numeric `op` on forced values: ints stay ints (overflow is an error), any
/// float makes the result a float.
pub(crate) fn arith(
    op: Arith,
    l: &Value,
    r: &Value,
    lspan: Span,
    rspan: Span,
    span: Span,
) -> Result<Value, EvalError> {
    let overflow = || EvalError::new(ErrorKind::IntegerOverflow { op: op.symbol() }, span);
    match (l, r) {
        (Value::Int(a), Value::Int(b)) => {
            let (a, b) = (*a, *b);
            let v = match op {
                Arith::Add => a.checked_add(b),
                Arith::Sub => a.checked_sub(b),
                Arith::Mul => a.checked_mul(b),
                Arith::Div => {
                    if b == 0 {
                        return Err(EvalError::new(ErrorKind::DivisionByZero, rspan));
                    }
                    a.checked_div(b)
                }
            };
            v.map(Value::Int).ok_or_else(overflow)
        }
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            let a = as_f64(l);
            let b = as_f64(r);
            Ok(Value::Float(match op {
                Arith::Add => a + b,
                Arith::Sub => a - b,
                Arith::Mul => a * b,
                Arith::Div => {
                    if b == 0.0 {
                        return Err(EvalError::new(ErrorKind::DivisionByZero, rspan));
                    }
                    a / b
                }
            }))
        }
        (Value::Int(_) | Value::Float(_), other) => Err(EvalError::type_error(
            format!("a number on the right of `{}`", op.symbol()),
            other,
            rspan,
        )),
        (other, _) => Err(EvalError::type_error(
            format!("a number on the left of `{}`", op.symbol()),
            other,
            lspan,
        )),
    }
}

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        _ => 0.0,
    }
}
