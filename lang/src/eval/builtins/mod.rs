//! The builtins: the `builtins` set and the few names that are also global
//! (`map`, `toString`, `baseNameOf`, `dirOf`, `throw`, `abort`, `import`, plus
//! `true`, `false`, `null` and `builtins` itself).
//!
//! Each builtin is a Rust function of fixed arity receiving possibly unforced
//! arguments; it forces what it needs with the helpers below, which produce
//! type errors naming the builtin and the value's type at the call's span.
//! Builtins that build lists or sets (`map`, `genList`, `mapAttrs`, ...) stay
//! lazy in the elements, as in Nix.

mod attrs;
mod lists;
mod strings;
mod toml;
mod versions;

use crate::eval::error::{ErrorKind, EvalError};
use crate::eval::ops::{Arith, arith};
use crate::eval::value::{Attrs, NixString, Value};
use crate::eval::{CoerceMode, Evaluator};
use crate::source::Span;
use smol_str::SmolStr;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

pub(crate) type Builtin = fn(&Evaluator, &[Value], Span) -> Result<Value, EvalError>;

/// Names that are global as well as in `builtins`.
const GLOBAL: &[&str] = &[
    "map",
    "toString",
    "baseNameOf",
    "dirOf",
    "throw",
    "abort",
    "import",
];

/// Every builtin with its arity.
fn table() -> Vec<(&'static str, usize, Builtin)> {
    let mut t: Vec<(&'static str, usize, Builtin)> = vec![
        ("throw", 1, throw),
        ("abort", 1, abort),
        ("trace", 2, trace),
        ("seq", 2, seq),
        ("deepSeq", 2, deep_seq),
        ("tryEval", 1, try_eval),
        ("typeOf", 1, type_of),
        ("isAttrs", 1, |ev, a, _| {
            is(ev, &a[0], |v| matches!(v, Value::Attrs(_)))
        }),
        ("isList", 1, |ev, a, _| {
            is(ev, &a[0], |v| matches!(v, Value::List(_)))
        }),
        ("isString", 1, |ev, a, _| {
            is(ev, &a[0], |v| matches!(v, Value::String(_)))
        }),
        ("isInt", 1, |ev, a, _| {
            is(ev, &a[0], |v| matches!(v, Value::Int(_)))
        }),
        ("isFloat", 1, |ev, a, _| {
            is(ev, &a[0], |v| matches!(v, Value::Float(_)))
        }),
        ("isBool", 1, |ev, a, _| {
            is(ev, &a[0], |v| matches!(v, Value::Bool(_)))
        }),
        ("isFunction", 1, |ev, a, _| {
            is(ev, &a[0], Value::is_function)
        }),
        ("isNull", 1, |ev, a, _| {
            is(ev, &a[0], |v| matches!(v, Value::Null))
        }),
        ("isPath", 1, |ev, a, _| {
            is(ev, &a[0], |v| matches!(v, Value::Path(_)))
        }),
        ("add", 2, |ev, a, s| num(ev, Arith::Add, a, s)),
        ("sub", 2, |ev, a, s| num(ev, Arith::Sub, a, s)),
        ("mul", 2, |ev, a, s| num(ev, Arith::Mul, a, s)),
        ("div", 2, |ev, a, s| num(ev, Arith::Div, a, s)),
        ("floor", 1, |ev, a, s| {
            rounded(ev, a, s, "floor", f64::floor)
        }),
        ("ceil", 1, |ev, a, s| rounded(ev, a, s, "ceil", f64::ceil)),
        ("bitAnd", 2, |ev, a, s| {
            bits(ev, a, s, "bitAnd", |x, y| x & y)
        }),
        ("bitOr", 2, |ev, a, s| bits(ev, a, s, "bitOr", |x, y| x | y)),
        ("bitXor", 2, |ev, a, s| {
            bits(ev, a, s, "bitXor", |x, y| x ^ y)
        }),
        ("lessThan", 2, |ev, a, s| {
            Ok(Value::Bool(ev.less_than(&a[0], &a[1], s)?))
        }),
        ("import", 1, import),
        ("step", 1, |ev, a, s| ev.step_builtin(&a[0], s)),
        ("functionArgs", 1, function_args),
    ];
    t.extend(lists::table());
    t.extend(attrs::table());
    t.extend(strings::table());
    t.extend(toml::table());
    t.extend(versions::table());
    t
}

/// The global scope every file starts with.
pub(crate) fn globals() -> HashMap<SmolStr, Value> {
    let mut set: Vec<(SmolStr, Value, Option<Span>)> = Vec::new();
    let mut globals = HashMap::new();
    for (name, arity, f) in table() {
        let v = Value::primop(name, arity, f);
        if GLOBAL.contains(&name) {
            globals.insert(SmolStr::new(name), v.clone());
        }
        set.push((SmolStr::new(name), v, None));
    }
    let builtins = Value::Attrs(Rc::new(Attrs::from_pairs(set)));
    globals.insert("builtins".into(), builtins);
    globals.insert("true".into(), Value::Bool(true));
    globals.insert("false".into(), Value::Bool(false));
    globals.insert("null".into(), Value::Null);
    globals
}

// ---- argument helpers ----

pub(crate) fn int(ev: &Evaluator, v: &Value, span: Span, what: &str) -> Result<i64, EvalError> {
    match ev.force_value(v)? {
        Value::Int(i) => Ok(i),
        other => Err(EvalError::type_error(
            format!("an integer for {what}"),
            &other,
            span,
        )),
    }
}

pub(crate) fn boolean(
    ev: &Evaluator,
    v: &Value,
    span: Span,
    what: &str,
) -> Result<bool, EvalError> {
    match ev.force_value(v)? {
        Value::Bool(b) => Ok(b),
        other => Err(EvalError::type_error(
            format!("a Boolean from {what}"),
            &other,
            span,
        )),
    }
}

pub(crate) fn list(
    ev: &Evaluator,
    v: &Value,
    span: Span,
    what: &str,
) -> Result<Rc<Vec<Value>>, EvalError> {
    match ev.force_value(v)? {
        Value::List(l) => Ok(l),
        other => Err(EvalError::type_error(
            format!("a list for {what}"),
            &other,
            span,
        )),
    }
}

pub(crate) fn attrs(
    ev: &Evaluator,
    v: &Value,
    span: Span,
    what: &str,
) -> Result<Rc<Attrs>, EvalError> {
    match ev.force_value(v)? {
        Value::Attrs(a) => Ok(a),
        other => Err(EvalError::type_error(
            format!("a set for {what}"),
            &other,
            span,
        )),
    }
}

/// A string value (not coerced).
pub(crate) fn string(
    ev: &Evaluator,
    v: &Value,
    span: Span,
    what: &str,
) -> Result<NixString, EvalError> {
    match ev.force_value(v)? {
        Value::String(s) => Ok(s),
        other => Err(EvalError::type_error(
            format!("a string for {what}"),
            &other,
            span,
        )),
    }
}

/// A path value, or a string holding an absolute path.
pub(crate) fn path(
    ev: &Evaluator,
    v: &Value,
    span: Span,
    what: &str,
) -> Result<PathBuf, EvalError> {
    match ev.force_value(v)? {
        Value::Path(p) => Ok(p.to_path_buf()),
        Value::String(s) if s.as_str().starts_with('/') => Ok(crate::eval::paths::normalize(
            std::path::Path::new(s.as_str()),
        )),
        other => Err(EvalError::type_error(
            format!("a path for {what}"),
            &other,
            span,
        )),
    }
}

fn is(ev: &Evaluator, v: &Value, pred: impl Fn(&Value) -> bool) -> Result<Value, EvalError> {
    Ok(Value::Bool(pred(&ev.force_value(v)?)))
}

// ---- general builtins ----

fn throw(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let msg = ev.coerce(&a[0], CoerceMode::ToString, span)?;
    Err(EvalError::new(
        ErrorKind::Throw(msg.as_str().to_string()),
        span,
    ))
}

fn abort(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let msg = ev.coerce(&a[0], CoerceMode::ToString, span)?;
    Err(EvalError::new(
        ErrorKind::Abort(msg.as_str().to_string()),
        span,
    ))
}

fn trace(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let msg = ev.force_value(&a[0])?;
    let text = match &msg {
        Value::String(s) => s.as_str().to_string(),
        other => {
            let mut out = String::new();
            ev.print_value(other, true, &mut out, &mut Vec::new(), span)?;
            out
        }
    };
    let handler = ev.trace_handler.borrow().clone();
    handler(&text);
    ev.force_value(&a[1])
}

fn seq(ev: &Evaluator, a: &[Value], _: Span) -> Result<Value, EvalError> {
    ev.force_value(&a[0])?;
    ev.force_value(&a[1])
}

fn deep_seq(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    ev.force_deep_value(&a[0], span)?;
    ev.force_value(&a[1])
}

fn try_eval(ev: &Evaluator, a: &[Value], _: Span) -> Result<Value, EvalError> {
    match ev.force_value(&a[0]) {
        Ok(v) => Ok(Value::attrs_from([
            ("success", Value::Bool(true)),
            ("value", v),
        ])),
        Err(e) if e.is_catchable() => Ok(Value::attrs_from([
            ("success", Value::Bool(false)),
            ("value", Value::Bool(false)),
        ])),
        Err(e) => Err(e),
    }
}

fn type_of(ev: &Evaluator, a: &[Value], _: Span) -> Result<Value, EvalError> {
    Ok(Value::string(ev.force_value(&a[0])?.type_name()))
}

fn num(ev: &Evaluator, op: Arith, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let x = ev.force_value(&a[0])?;
    let y = ev.force_value(&a[1])?;
    arith(op, &x, &y, span, span, span)
}

/// `floor` and `ceil`: a number (an integer counts as a float, as in Nix)
/// rounded to an integer. Unlike Nix, whose result is undefined then, a
/// result outside the 64-bit range (or NaN) is an error.
fn rounded(
    ev: &Evaluator,
    a: &[Value],
    span: Span,
    name: &'static str,
    f: fn(f64) -> f64,
) -> Result<Value, EvalError> {
    let x = match ev.force_value(&a[0])? {
        Value::Float(x) => x,
        Value::Int(i) => return Ok(Value::Int(i)),
        other => {
            return Err(EvalError::type_error(
                format!("a float for {name}"),
                &other,
                span,
            ));
        }
    };
    let r = f(x);
    // 2^63 is exactly representable; every float below it and at or above
    // -2^63 converts without loss of range.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if r.is_nan() || !(-LIMIT..LIMIT).contains(&r) {
        return Err(EvalError::invalid(
            name,
            format!(
                "{} does not fit in a 64-bit integer",
                crate::eval::print::format_float(x)
            ),
            span,
        ));
    }
    Ok(Value::Int(r as i64))
}

fn bits(
    ev: &Evaluator,
    a: &[Value],
    span: Span,
    name: &str,
    f: fn(i64, i64) -> i64,
) -> Result<Value, EvalError> {
    let x = int(ev, &a[0], span, name)?;
    let y = int(ev, &a[1], span, name)?;
    Ok(Value::Int(f(x, y)))
}

fn import(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let p = path(ev, &a[0], span, "import")?;
    ev.import(&p, span)
}

fn function_args(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    match ev.force_value(&a[0])? {
        Value::Lambda(c) => Ok(match c.formals() {
            Some((formals, _)) => {
                Value::attrs_from(formals.into_iter().map(|(n, d)| (n, Value::Bool(d))))
            }
            None => Value::attrs_from(Vec::<(SmolStr, Value)>::new()),
        }),
        Value::PrimOp(_) => Ok(Value::attrs_from(Vec::<(SmolStr, Value)>::new())),
        other => Err(EvalError::type_error(
            "a function for functionArgs",
            &other,
            span,
        )),
    }
}
